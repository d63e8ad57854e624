//! Leader election with a `coordination.k8s.io` Lease, so two controller
//! replicas never both act: the holder renews the Lease; another replica
//! takes it only once it has not been renewed for its whole duration, and
//! every write carries the `resourceVersion` it read, so of two replicas
//! racing for an expired Lease the API lets one win (the other gets 409).

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    jiff::{SignedDuration, Timestamp},
};
use kube::{Api, Client, api::PostParams};

/// What one attempt found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Leadership {
    /// This replica leads (it created, renewed or took over the Lease).
    Leading,
    /// Another replica leads (its identity, when the Lease names one).
    Follower(Option<String>),
}

/// One replica's side of the Lease.
pub struct LeaseLock {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration_secs: i32,
}

impl LeaseLock {
    /// The Lease `name` in `namespace`, held for `duration_secs` by `identity`.
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        duration_secs: i32,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.into(),
            identity: identity.into(),
            duration_secs,
        }
    }

    /// Acquires, renews or observes the Lease at `now`. A 409 on a write
    /// means another replica wrote first: this one follows.
    pub async fn try_acquire_or_renew(&self, now: Timestamp) -> Result<Leadership, kube::Error> {
        let Some(current) = self.api.get_opt(&self.name).await? else {
            let lease = self.lease(None, now, now, 0);
            return self.write(self.api.create(&PostParams::default(), &lease).await);
        };
        let spec = current.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone();
        if holder.as_deref() == Some(self.identity.as_str()) {
            let acquired = spec.acquire_time.map_or(now, |time| time.0);
            let lease = self.lease(
                current.metadata.resource_version.clone(),
                acquired,
                now,
                spec.lease_transitions.unwrap_or(0),
            );
            return self.write(
                self.api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await,
            );
        }
        let duration = i64::from(spec.lease_duration_seconds.unwrap_or(self.duration_secs));
        let expired = spec.renew_time.is_none_or(|renewed| {
            renewed
                .0
                .saturating_add(SignedDuration::from_secs(duration))
                .is_ok_and(|end| end <= now)
        });
        if holder.is_some() && !expired {
            return Ok(Leadership::Follower(holder));
        }
        let lease = self.lease(
            current.metadata.resource_version.clone(),
            now,
            now,
            spec.lease_transitions.unwrap_or(0) + 1,
        );
        self.write(
            self.api
                .replace(&self.name, &PostParams::default(), &lease)
                .await,
        )
    }

    fn write(&self, result: Result<Lease, kube::Error>) -> Result<Leadership, kube::Error> {
        match result {
            Ok(_) => Ok(Leadership::Leading),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(Leadership::Follower(None)),
            Err(error) => Err(error),
        }
    }

    fn lease(
        &self,
        resource_version: Option<String>,
        acquired: Timestamp,
        renewed: Timestamp,
        transitions: i32,
    ) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: self.api.namespace().map(str::to_string),
                resource_version,
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.identity.clone()),
                lease_duration_seconds: Some(self.duration_secs),
                acquire_time: Some(MicroTime(acquired)),
                renew_time: Some(MicroTime(renewed)),
                lease_transitions: Some(transitions),
                ..LeaseSpec::default()
            }),
        }
    }
}
