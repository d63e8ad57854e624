//! `revertOnDeletion`: Flagger's finalizer (`pkg/controller/finalizer.go`).
//!
//! With it set, the canary carries `finalizer.flagger.app`, so deleting it
//! waits for the controller: the target Deployment gets the primary's
//! replicas back, and once it is ready the apex Service selects its pods
//! again and is released from the canary (no owner reference), so it
//! outlives the canary as it stood before serin; then the finalizer goes
//! and Kubernetes' garbage collection removes what the canary owns (the
//! primary, the other Services, the router's objects, the config copies).
//! Without it, deletion is left to that garbage collection alone.

use k8s_openapi::api::apps::v1::Deployment;
use kube::{
    Api,
    api::{DynamicObject, Patch, PatchParams},
};
use serde_json::json;

use super::{Checks, Error, Hooks, Outcome, Pass, Reconciler, Target};
use crate::{Cluster, Object, Subject, workload};

/// Flagger's finalizer, so a canary moves between Flagger and serin with it.
pub const FINALIZER: &str = "finalizer.flagger.app";

/// How soon a pass looks again at a target still rolling out its replicas.
const READY_POLL: std::time::Duration = std::time::Duration::from_secs(5);

impl<C: Checks> Reconciler<C> {
    /// Adds the finalizer to a canary with `revertOnDeletion`, removes it
    /// from one without (Flagger's sync does both). Nothing when in place.
    pub(super) async fn keep_finalizer(&self, target: &Target<'_>) -> Result<(), Error> {
        let canary = target.canary;
        let has = canary.metadata.finalizers.iter().any(|f| f == FINALIZER);
        if canary.spec.revert_on_deletion == has {
            return Ok(());
        }
        let mut finalizers = canary.metadata.finalizers.clone();
        if has {
            finalizers.retain(|f| f != FINALIZER);
        } else {
            finalizers.push(FINALIZER.to_string());
        }
        self.set_finalizers(target, finalizers).await
    }

    /// Writes the canary's finalizers: a merge patch of the whole list,
    /// conditional on the resource version read (a 409 if another writer
    /// changed them meanwhile; the pass is retried with what is current).
    async fn set_finalizers(
        &self,
        target: &Target<'_>,
        finalizers: Vec<String>,
    ) -> Result<(), Error> {
        let canary = target.canary;
        let namespace = canary.metadata.namespace.as_deref().unwrap_or("default");
        let mut metadata = json!({ "finalizers": finalizers });
        if let Some(version) = &canary.metadata.resource_version {
            metadata["resourceVersion"] = json!(version);
        }
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), namespace, &target.resource);
        api.patch(
            canary.name(),
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": metadata })),
        )
        .await?;
        Ok(())
    }

    /// A pass over a canary being deleted. Without serin's finalizer there
    /// is nothing to do (garbage collection takes the rest).
    pub(super) async fn finalize(
        &self,
        target: Target<'_>,
        now: &str,
        hooks: &Hooks,
    ) -> Result<Outcome, Error> {
        let canary = target.canary;
        if !canary.metadata.finalizers.iter().any(|f| f == FINALIZER) {
            return Ok(Outcome::Idle);
        }
        let namespace = canary
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let id = format!("{}.{namespace}", canary.name());
        let mut status = target.status.clone();
        let terminated = status.phase.as_deref() == Some("Terminated");
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), &namespace);
        let target_name = canary
            .spec
            .target_ref
            .as_ref()
            .map(|reference| reference.name.clone())
            .unwrap_or_default();
        // A target already gone leaves nothing to revert: the finalizer
        // must not hold the canary forever.
        let deployment = if canary.spec.revert_on_deletion && !terminated {
            deployments.get_opt(&target_name).await?
        } else {
            None
        };
        let cluster = Cluster {
            target: deployment.clone(),
            ..Cluster::default()
        };
        // A canary serin cannot model (its spec edited into one it refuses)
        // has nothing serin can revert: its finalizer must not hold it.
        let subject = deployment
            .as_ref()
            .and_then(|_| Subject::new(canary, &cluster, &self.default_provider).ok());
        if let (Some(deployment), Some(subject)) = (deployment, subject) {
            let pass = Pass {
                client: &self.client,
                subject: &subject,
                resource: &target.resource,
                namespace: &namespace,
                now,
                hooks,
                default_provider: &self.default_provider,
            };
            if status.phase.as_deref() != Some("Terminating") {
                status.phase = Some("Terminating".into());
                pass.write_status(&status).await?;
                pass.event("Normal", "Synced", &format!("Terminating canary {id}"))
                    .await?;
            }
            // Flagger's `Finalize`: the target runs the primary's replicas.
            let replicas = deployments
                .get_opt(&subject.primary_workload_name())
                .await?
                .and_then(|primary| primary.spec.replicas)
                .filter(|replicas| *replicas > 0)
                .unwrap_or(1);
            if deployment.spec.replicas != Some(replicas) {
                pass.scale(&target_name, replicas).await?;
                return Ok(Outcome::Wait(READY_POLL));
            }
            // Traffic moves back only to pods that serve it.
            if workload::rollout_pending(&deployment).is_some() {
                return Ok(Outcome::Wait(READY_POLL));
            }
            pass.apply(&[released_apex(&subject)?]).await?;
            status.phase = Some("Terminated".into());
            pass.write_status(&status).await?;
            pass.event("Normal", "Synced", &format!("Terminated canary {id}"))
                .await?;
        }
        let finalizers = canary
            .metadata
            .finalizers
            .iter()
            .filter(|f| *f != FINALIZER)
            .cloned()
            .collect();
        self.set_finalizers(&target, finalizers).await?;
        // Released: Kubernetes deletes the canary now.
        Ok(Outcome::Moved("Terminated".into()))
    }
}

/// The apex Service as before serin: selecting the target's pods, owned by
/// nobody (applied without the owner reference serin set, which server-side
/// apply then removes), so garbage collection keeps it.
fn released_apex(subject: &Subject<'_>) -> Result<Object, Error> {
    let services = crate::services::services(subject, true)?;
    let mut apex = services
        .into_iter()
        .next()
        .ok_or_else(|| crate::Error::field("spec.service", "no apex Service modelled"))?;
    apex.metadata.owner_references = None;
    Ok(Object::Service(Box::new(apex)))
}
