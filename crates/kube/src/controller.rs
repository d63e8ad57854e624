//! The reconciler of Kubernetes mode: one pass over one canary, Flagger's
//! phases and messages, every write a server-side apply or a merge patch
//! so a pass repeated after an error (a 409, a 500) writes the same thing.
//!
//! All durable state lives in the cluster: the canary's status subresource
//! (phase, weight, failed checks, the revision fingerprints) says where a
//! rollout stands, so a controller restarted elsewhere resumes it.
//!
//! One pass moves a canary at most one step; the caller requeues it after
//! the analysis interval. What decides a step is the [`Checks`] port.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{apps::v1::Deployment, autoscaling::v2::HorizontalPodAutoscaler, core::v1::Event},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time},
};
use kube::{
    Api, Client,
    api::{DynamicObject, Patch, PatchParams, PostParams},
    core::{ApiResource, GroupVersionKind},
};
use serde_json::json;
use serin_providers::AlertSeverity;
use serin_rollout::HookKind;
use serin_spec::Canary;

use crate::{
    Cluster, Object, Routes, Subject,
    crds::ScaledObject,
    resource::{ANALYSIS_ANNOTATION, AnalysisRecord, CanaryCondition, CanaryStatus},
    router::router_for,
    workload::template_hash,
};

mod alerts;
mod deletion;
mod hooks;
mod iterations;
mod manual;
mod revision;

pub use deletion::FINALIZER;
use hooks::Hooks;

/// The field manager of every apply.
pub const FIELD_MANAGER: &str = "serin";

/// Errors of one pass; the caller requeues with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API refused or failed a request (409 conflict, 5xx, …).
    #[error("Kubernetes API: {0}")]
    Api(#[from] kube::Error),
    /// The canary cannot be modelled (a field at fault).
    #[error(transparent)]
    Model(#[from] crate::Error),
    /// serin's analysis record could not be written as JSON.
    #[error("metadata.annotations.{ANALYSIS_ANNOTATION}: {0}")]
    Record(serde_json::Error),
}

/// What the analysis says of the canary at its current step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every check passed: advance.
    Pass,
    /// Not judged yet (too little traffic, evidence still gathering):
    /// stay at this weight without counting a failed check.
    Hold(String),
    /// A check failed: one more failed check.
    Fail(String),
    /// Decisive evidence of harm: roll back now, whatever the threshold.
    Rollback(String),
}

/// What the analysis is asked at one pass.
pub struct Request<'a> {
    /// The canary with its cluster objects.
    pub subject: &'a Subject<'a>,
    /// Its status as read.
    pub status: &'a CanaryStatus,
    /// serin's analysis saved at the previous pass (the annotation), if any.
    pub saved: Option<&'a AnalysisRecord>,
    /// The pass's time, Unix milliseconds.
    pub now_ms: u64,
}

/// The analysis's answer: the verdict, and what to save before acting on it.
#[derive(Clone, Debug, PartialEq)]
pub struct Judgement {
    /// What to do.
    pub verdict: Verdict,
    /// The analysis to keep in the cluster (`None`: nothing to keep).
    pub record: Option<AnalysisRecord>,
}

// === impl Judgement ===

impl Judgement {
    /// A verdict with nothing to save.
    pub fn only(verdict: Verdict) -> Self {
        Self {
            verdict,
            record: None,
        }
    }
}

/// The analysis port: the controller asks it once per due pass while the
/// canary progresses with traffic on it. Async: a real analysis queries a
/// metrics server.
pub trait Checks: Send + Sync {
    /// The judgement on the canary of `request`.
    fn check<'a>(&'a self, request: Request<'a>) -> futures_util::future::BoxFuture<'a, Judgement>;
}

/// What the pass did, for logs and the requeue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to do: no new revision.
    Idle,
    /// The analysis is not due yet: this long until it is (a pass caused
    /// by the controller's own write comes back before the interval).
    Wait(std::time::Duration),
    /// The phase the canary moved to.
    Moved(String),
}

/// One canary resource: its group's API resource and its current status.
pub struct Target<'a> {
    /// The canary, as `serin-spec` reads it.
    pub canary: &'a Canary,
    /// Its status as read.
    pub status: CanaryStatus,
    /// `canaries` in `flagger.app/v1beta1` or `serin.dev/v1alpha1`.
    pub resource: ApiResource,
}

/// Does one pass for one canary.
pub struct Reconciler<C> {
    client: Client,
    checks: C,
    default_provider: String,
}

impl<C: Checks> Reconciler<C> {
    /// A reconciler writing through `client`.
    pub fn new(client: Client, checks: C, default_provider: impl Into<String>) -> Self {
        Self {
            client,
            checks,
            default_provider: default_provider.into(),
        }
    }

    /// One pass. `now` is the RFC 3339 time written to conditions and
    /// events (injected: tests compare bodies exactly).
    pub async fn reconcile(&self, target: Target<'_>, now: &str) -> Result<Outcome, Error> {
        let hooks = Hooks::new(target.canary, &target.status);
        let outcome = self.pass(target, now, &hooks).await;
        // The pass's events reach the `event` webhooks before it ends.
        hooks.flush().await;
        outcome
    }

    async fn pass(&self, target: Target<'_>, now: &str, hooks: &Hooks) -> Result<Outcome, Error> {
        let canary = target.canary;
        if canary.metadata.deletion_timestamp.is_some() {
            return self.finalize(target, now, hooks).await;
        }
        self.keep_finalizer(&target).await?;
        let namespace = canary
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), &namespace);
        let target_name = canary
            .spec
            .target_ref
            .as_ref()
            .map(|reference| reference.name.clone())
            .unwrap_or_default();
        let deployment = deployments.get(&target_name).await?;
        let mut status = target.status.clone();
        let phase = status.phase.clone().unwrap_or_default();
        let mut cluster = Cluster {
            target: Some(deployment.clone()),
            ..Cluster::default()
        };
        // The tracked configs and the autoscaler are read where the pass
        // writes the primary or looks for a new revision; a progressing
        // canary reads them again only to promote. `WaitingPromotion` is a
        // progressing canary (its analysis goes on behind the
        // `confirm-promotion` gate), not a settled one.
        let settled = !matches!(
            phase.as_str(),
            "Progressing" | "WaitingPromotion" | "Promoting" | "Finalising"
        );
        if settled {
            crate::read::configs(&self.client, &namespace, &mut cluster).await?;
            crate::read::autoscaler(&self.client, &namespace, canary, &mut cluster).await?;
        }
        let subject = Subject::new(canary, &cluster, &self.default_provider)?;
        let hash = template_hash(&deployment.spec.template);
        let tracked = crate::configs::checksums(&subject);
        let name = canary.name().to_string();
        let id = format!("{name}.{namespace}");
        let pass = Pass {
            client: &self.client,
            subject: &subject,
            resource: &target.resource,
            namespace: &namespace,
            now,
            hooks,
            default_provider: &self.default_provider,
        };

        match phase.as_str() {
            "" | "Initializing" => {
                pass.apply(&crate::primary(&subject)?).await?;
                pass.apply_routes(&Routes::primary()).await?;
                pass.scale(&target_name, 0).await?;
                status.phase = Some("Initialized".into());
                status.canary_weight = 0;
                status.failed_checks = 0;
                status.iterations = 0;
                status.last_applied_spec = Some(hash.clone());
                status.last_promoted_spec = Some(hash);
                status.tracked_configs = tracked;
                pass.promoted(
                    &mut status,
                    "True",
                    "Initialized",
                    "Deployment initialization completed.",
                );
                pass.write_status(&status).await?;
                pass.event("Normal", "Synced", &format!("Initialization done! {id}"))
                    .await?;
                let message = format!("New Deployment detected, initialization completed! {id}");
                pass.alert(AlertSeverity::Info, &message, &status).await?;
            }
            // A new revision is a new pod template or a tracked config's
            // new data (Flagger's `HasTargetChanged`).
            "Initialized" | "Succeeded" | "Failed"
                if status.last_applied_spec.as_deref() == Some(hash.as_str())
                    && status.tracked_configs == tracked =>
            {
                pass.drop_action(&phase).await?;
                pass.keep_autoscaler_in_step().await?;
                return Ok(Outcome::Idle);
            }
            "Initialized" | "Succeeded" | "Failed" | "Waiting" => {
                if let Some(outcome) = pass
                    .manual_pending(&mut status, &target_name, &hash, &tracked)
                    .await?
                {
                    return Ok(outcome);
                }
                if phase == "Waiting"
                    && let Some(wait) = not_due(&status, now, canary.analysis().interval())
                {
                    return Ok(Outcome::Wait(wait));
                }
                if !pass.confirm_rollout(&mut status).await? {
                    return Ok(Outcome::Moved("Waiting".into()));
                }
                pass.event(
                    "Normal",
                    "Synced",
                    &format!("New revision detected! Scaling up {id}"),
                )
                .await?;
                let replicas = deployments
                    .get(&subject.primary_workload_name())
                    .await?
                    .spec
                    .replicas
                    .filter(|replicas| *replicas > 0)
                    .unwrap_or(1);
                pass.scale(&target_name, replicas).await?;
                status.phase = Some("Progressing".into());
                status.canary_weight = 0;
                status.failed_checks = 0;
                status.iterations = 0;
                status.last_applied_spec = Some(hash);
                status.tracked_configs = tracked;
                pass.promoted(
                    &mut status,
                    "Unknown",
                    "Progressing",
                    "New revision detected, progressing canary analysis.",
                );
                pass.write_status(&status).await?;
                let message = format!(
                    "New revision detected, progressing canary analysis! Scaling up {target_name}.{namespace}"
                );
                pass.alert(AlertSeverity::Info, &message, &status).await?;
            }
            "Progressing" if status.last_applied_spec.as_deref() != Some(hash.as_str()) => {
                self.restart(&pass, &mut status, hash).await?;
            }
            "Progressing" if canary.spec.skip_analysis => {
                // Flagger's `skipAnalysis`: the new revision is promoted in
                // one pass, all traffic on the primary, without a check.
                pass.apply_routes(&Routes::primary()).await?;
                pass.copy_to_primary(&deployment).await?;
                pass.scale(&target_name, 0).await?;
                status.phase = Some("Succeeded".into());
                status.canary_weight = 0;
                status.last_promoted_spec = status.last_applied_spec.clone();
                pass.promoted(
                    &mut status,
                    "True",
                    "Succeeded",
                    "Canary analysis completed successfully, promotion finished.",
                );
                pass.write_status(&status).await?;
                pass.event(
                    "Normal",
                    "Synced",
                    &format!("Promotion completed! Canary analysis was skipped for {id}"),
                )
                .await?;
                let message = "Canary analysis was skipped, promotion finished.";
                pass.alert(AlertSeverity::Info, message, &status).await?;
            }
            "Progressing" | "WaitingPromotion" => {
                let analysis = canary.analysis();
                if let Some(outcome) = pass
                    .manual_progressing(&mut status, &target_name, &deployment)
                    .await?
                {
                    return Ok(outcome);
                }
                if let Some(wait) = not_due(&status, now, analysis.interval()) {
                    return Ok(Outcome::Wait(wait));
                }
                if pass.rollback_requested(&status).await? {
                    let message = format!("Rolling back {id} manual webhook invoked");
                    pass.rollback(&mut status, &target_name, &message).await?;
                    return Ok(Outcome::Moved("Failed".into()));
                }
                let weight = u8::try_from(status.canary_weight).unwrap_or(0);
                let verdict = if weight == 0 && status.iterations == 0 {
                    // As Flagger: no traffic on the canary yet, nothing to
                    // judge; the analysis starts with the first step.
                    pass.event(
                        "Normal",
                        "Synced",
                        &format!("Starting canary analysis for {target_name}.{namespace}"),
                    )
                    .await?;
                    if let Some(reason) = pass.analysis_hooks(HookKind::PreRollout, &status).await?
                    {
                        return pass
                            .hook_failed(&mut status, &target_name, HookKind::PreRollout, &reason)
                            .await;
                    }
                    Verdict::Pass
                } else {
                    if let Some(reason) = pass.analysis_hooks(HookKind::Rollout, &status).await? {
                        return pass
                            .hook_failed(&mut status, &target_name, HookKind::Rollout, &reason)
                            .await;
                    }
                    let saved = AnalysisRecord::from_annotations(&canary.metadata.annotations)
                        .and_then(Result::ok);
                    let judgement = self
                        .checks
                        .check(Request {
                            subject: &subject,
                            status: &status,
                            saved: saved.as_ref(),
                            now_ms: unix_ms(now),
                        })
                        .await;
                    if let Some(record) = &judgement.record {
                        // Saved before it is acted on: a pass repeated
                        // after a failed write resumes from this evidence.
                        pass.save(record).await?;
                        if target.resource.group == "serin.dev" {
                            status.analysis = record.decision.clone();
                        }
                    }
                    judgement.verdict
                };
                match verdict {
                    Verdict::Rollback(reason) => {
                        pass.rollback(
                            &mut status,
                            &target_name,
                            &format!("Rolling back {id}: {reason}"),
                        )
                        .await?;
                    }
                    Verdict::Fail(reason) => {
                        status.failed_checks += 1;
                        if status.failed_checks >= i64::from(analysis.threshold()) {
                            let message = format!(
                                "Rolling back {id} failed checks threshold reached {}",
                                status.failed_checks
                            );
                            pass.rollback(&mut status, &target_name, &message).await?;
                        } else {
                            // The reason also goes in the condition, so
                            // `kubectl get canary -o yaml` says why the
                            // canary halts (e.g. a metric not evaluated).
                            let halt = format!("Halt advancement {id} {reason}");
                            pass.promoted(&mut status, "Unknown", "Progressing", &halt);
                            pass.write_status(&status).await?;
                            pass.event("Warning", "Synced", &halt).await?;
                        }
                    }
                    Verdict::Hold(reason) => {
                        // Not a failed check: the weight stays until the
                        // judge has the evidence to pass or fail it.
                        let hold = format!(
                            "Holding {id} at canary weight {}: {reason}",
                            status.canary_weight
                        );
                        pass.promoted(&mut status, "Unknown", "Progressing", &hold);
                        pass.write_status(&status).await?;
                    }
                    Verdict::Pass if analysis.iterations() > 0 => {
                        self.iterate(&pass, &mut status, &deployment).await?;
                    }
                    Verdict::Pass => {
                        let next = analysis.steps().into_iter().find(|step| *step > weight);
                        match next {
                            Some(next) if weight < analysis.max_weight() => {
                                if !pass.confirm_traffic_increase(&mut status).await? {
                                    return Ok(Outcome::Moved("Progressing".into()));
                                }
                                let routes = Routes::at(canary, i64::from(next))?;
                                pass.apply_routes(&routes).await?;
                                status.canary_weight = i64::from(next);
                                // A halt's reason clears once checks pass.
                                pass.promoted(
                                    &mut status,
                                    "Unknown",
                                    "Progressing",
                                    "New revision detected, progressing canary analysis.",
                                );
                                pass.write_status(&status).await?;
                                pass.event(
                                    "Normal",
                                    "Synced",
                                    &format!("Advance {id} canary weight {next}"),
                                )
                                .await?;
                            }
                            _ => {
                                if !pass.confirm_promotion(&mut status).await? {
                                    return Ok(Outcome::Moved("WaitingPromotion".into()));
                                }
                                pass.copy_to_primary(&deployment).await?;
                                status.phase = Some("Promoting".into());
                                pass.write_status(&status).await?;
                            }
                        }
                    }
                }
            }
            "Promoting" => {
                pass.apply_routes(&Routes::primary()).await?;
                status.phase = Some("Finalising".into());
                status.canary_weight = 0;
                pass.write_status(&status).await?;
                pass.event("Normal", "Synced", "Routing all traffic to primary")
                    .await?;
            }
            "Finalising" => {
                pass.scale(&target_name, 0).await?;
                status.phase = Some("Succeeded".into());
                status.last_promoted_spec = status.last_applied_spec.clone();
                pass.promoted(
                    &mut status,
                    "True",
                    "Succeeded",
                    "Canary analysis completed successfully, promotion finished.",
                );
                pass.write_status(&status).await?;
                pass.post_rollout(&status).await?;
                pass.event(
                    "Normal",
                    "Synced",
                    &format!("Promotion completed! Scaling down {id}"),
                )
                .await?;
                let message = "Canary analysis completed successfully, promotion finished.";
                pass.alert(AlertSeverity::Info, message, &status).await?;
            }
            _ => return Ok(Outcome::Idle),
        }
        Ok(Outcome::Moved(status.phase.unwrap_or_default()))
    }
}

/// The requests of one pass.
struct Pass<'a> {
    client: &'a Client,
    subject: &'a Subject<'a>,
    resource: &'a ApiResource,
    namespace: &'a str,
    now: &'a str,
    hooks: &'a Hooks,
    default_provider: &'a str,
}

impl Pass<'_> {
    /// Promotes: copies the target's template to the primary with Flagger's
    /// event, and the whole primary side with it (see
    /// [`Self::promoted_primary`]). Every promotion (weight steps,
    /// iterations, a skipped analysis, a manual `promote`) goes through
    /// this.
    async fn copy_to_primary(&self, deployment: &Deployment) -> Result<(), Error> {
        let message = format!(
            "Copying {} template spec to {}.{}",
            self.id(),
            self.subject.primary_workload_name(),
            self.namespace
        );
        self.event("Normal", "Synced", &message).await?;
        self.apply(&self.promoted_primary(deployment).await?).await
    }

    /// The primary side at a promotion: the target's tracked configs and
    /// autoscaler read afresh, so the copies carry the data the canary was
    /// judged with.
    async fn promoted_primary(&self, deployment: &Deployment) -> Result<Vec<Object>, Error> {
        let canary = self.subject.canary();
        let mut cluster = Cluster {
            target: Some(deployment.clone()),
            ..Cluster::default()
        };
        crate::read::configs(self.client, self.namespace, &mut cluster).await?;
        crate::read::autoscaler(self.client, self.namespace, canary, &mut cluster).await?;
        let subject = Subject::new(canary, &cluster, self.default_provider)?;
        Ok(crate::primary(&subject)?)
    }

    /// Server-side applies each object (create or update in one request).
    async fn apply(&self, objects: &[Object]) -> Result<(), Error> {
        for object in objects {
            let api_version = object.api_version();
            let (group, version) = api_version.rsplit_once('/').unwrap_or(("", &api_version));
            let resource = ApiResource::from_gvk_with_plural(
                &GroupVersionKind::gvk(group, version, object.kind()),
                plural(object.kind()),
            );
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.client.clone(), self.namespace, &resource);
            api.patch(
                object.name(),
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(object.to_value()),
            )
            .await?;
        }
        Ok(())
    }

    /// Flagger's `reconcilePrimaryHpa` on a settled canary: the primary's
    /// autoscaler follows the target's (a changed `maxReplicas`, metrics)
    /// between revisions. Read first and applied only when it differs, so
    /// an idle canary costs no write.
    async fn keep_autoscaler_in_step(&self) -> Result<(), Error> {
        let Some(desired) = crate::workload::primary_autoscaler(self.subject)? else {
            return Ok(());
        };
        let in_step = match &desired {
            Object::Hpa(desired) => {
                let api: Api<HorizontalPodAutoscaler> =
                    Api::namespaced(self.client.clone(), self.namespace);
                let name = desired.metadata.name.as_deref().unwrap_or_default();
                api.get_opt(name)
                    .await?
                    .is_some_and(|current| current.spec == desired.spec)
            }
            Object::ScaledObject(desired) => {
                let api: Api<ScaledObject> = Api::namespaced(self.client.clone(), self.namespace);
                let name = desired.metadata.name.as_deref().unwrap_or_default();
                api.get_opt(name)
                    .await?
                    .is_some_and(|current| current.spec == desired.spec)
            }
            _ => true,
        };
        if !in_step {
            self.apply(&[desired]).await?;
        }
        Ok(())
    }

    /// Applies the Services and the router's objects at `routes`.
    async fn apply_routes(&self, routes: &Routes) -> Result<(), Error> {
        let router = router_for(self.subject.provider())?;
        let mut objects: Vec<Object> =
            crate::services::services(self.subject, router.apex_selects_canary(routes))?
                .into_iter()
                .map(|service| Object::Service(Box::new(service)))
                .collect();
        objects.extend(router.objects(self.subject, routes)?);
        self.apply(&objects).await
    }

    /// Rolls the canary back: `message` (a Warning event), all traffic to
    /// the primary, the canary scaled to zero, phase `Failed`.
    async fn rollback(
        &self,
        status: &mut CanaryStatus,
        target_name: &str,
        message: &str,
    ) -> Result<(), Error> {
        let canary = self.subject.canary();
        let id = format!("{}.{}", canary.name(), self.namespace);
        self.event("Warning", "Synced", message).await?;
        self.apply_routes(&Routes::primary()).await?;
        self.scale(target_name, 0).await?;
        status.phase = Some("Failed".into());
        status.canary_weight = 0;
        self.promoted(
            status,
            "False",
            "Failed",
            "Canary analysis failed, Deployment scaled to zero.",
        );
        self.write_status(status).await?;
        self.event(
            "Warning",
            "Synced",
            &format!("Canary failed! Scaling down {id}"),
        )
        .await?;
        self.alert(AlertSeverity::Error, message, status).await?;
        self.post_rollout(status).await
    }

    /// Keeps serin's analysis in the canary's annotation (a merge patch of
    /// that one key).
    async fn save(&self, record: &AnalysisRecord) -> Result<(), Error> {
        let text = serde_json::to_string(record).map_err(Error::Record)?;
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), self.namespace, self.resource);
        api.patch(
            self.subject.canary().name(),
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {ANALYSIS_ANNOTATION: text}}})),
        )
        .await?;
        Ok(())
    }

    /// Sets the target's replicas. With a KEDA ScaledObject as
    /// `autoscalerRef`, Flagger's `PauseTargetScaler` and
    /// `ResumeTargetScaler` first: the target's scaler is held at zero
    /// replicas (KEDA's `paused-replicas` annotation) before the target is
    /// scaled down, and let go before it is scaled up, or KEDA would undo
    /// the one and fight the other.
    async fn scale(&self, name: &str, replicas: i32) -> Result<(), Error> {
        let canary = self.subject.canary();
        if crate::workload::scaler_kind(canary)? == Some(crate::workload::ScalerKind::ScaledObject)
            && let Some(reference) = canary.spec.autoscaler_ref.as_ref()
        {
            let paused = (replicas == 0).then_some("0");
            let api: Api<ScaledObject> = Api::namespaced(self.client.clone(), self.namespace);
            api.patch(
                &reference.name,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"annotations": {
                    crate::workload::KEDA_PAUSED_REPLICAS: paused
                }}})),
            )
            .await?;
        }
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), self.namespace);
        api.patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": replicas}})),
        )
        .await?;
        Ok(())
    }

    /// Writes the status subresource (a merge patch: idempotent).
    async fn write_status(&self, status: &CanaryStatus) -> Result<(), Error> {
        let mut status = status.clone();
        status.last_transition_time = Some(self.now.to_string());
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), self.namespace, self.resource);
        api.patch_status(
            self.subject.canary().name(),
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await?;
        self.hooks.observe(&status);
        Ok(())
    }

    /// Sets Flagger's `Promoted` condition.
    fn promoted(&self, status: &mut CanaryStatus, value: &str, reason: &str, message: &str) {
        let changed = status
            .conditions
            .iter()
            .find(|condition| condition.condition_type == "Promoted")
            .is_none_or(|condition| condition.status != value);
        let previous = status
            .conditions
            .iter()
            .find(|condition| condition.condition_type == "Promoted")
            .and_then(|condition| condition.last_transition_time.clone());
        status
            .conditions
            .retain(|condition| condition.condition_type != "Promoted");
        status.conditions.push(CanaryCondition {
            condition_type: "Promoted".into(),
            status: value.into(),
            last_update_time: Some(self.now.to_string()),
            last_transition_time: if changed {
                Some(self.now.to_string())
            } else {
                previous
            },
            reason: reason.into(),
            message: Some(message.into()),
        });
    }

    /// Records a core/v1 Event on the canary with Flagger's message.
    async fn event(&self, event_type: &str, reason: &str, message: &str) -> Result<(), Error> {
        let canary = self.subject.canary();
        let name = format!(
            "{}.{}",
            canary.name(),
            crate::hash::fingerprint(&format!("{}{message}", self.now))
        );
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: Some(self.namespace.to_string()),
                ..ObjectMeta::default()
            },
            involved_object: k8s_openapi::api::core::v1::ObjectReference {
                api_version: Some(canary.api_version.clone()),
                kind: Some("Canary".into()),
                name: Some(canary.name().to_string()),
                namespace: Some(self.namespace.to_string()),
                uid: canary.metadata.uid.clone(),
                ..Default::default()
            },
            reason: Some(reason.into()),
            message: Some(message.into()),
            type_: Some(event_type.into()),
            source: Some(k8s_openapi::api::core::v1::EventSource {
                component: Some("serin".into()),
                host: None,
            }),
            first_timestamp: parse_time(self.now).map(Time),
            last_timestamp: parse_time(self.now).map(Time),
            event_time: parse_time(self.now).map(MicroTime),
            reporting_component: Some("serin".into()),
            reporting_instance: Some("serin".into()),
            action: Some(reason.into()),
            count: Some(1),
            ..Event::default()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), self.namespace);
        api.create(&PostParams::default(), &event).await?;
        self.hooks.event(event_type, message).await;
        Ok(())
    }
}

fn parse_time(text: &str) -> Option<k8s_openapi::jiff::Timestamp> {
    text.parse().ok()
}

/// `now` (RFC 3339) in Unix milliseconds; 0 if unreadable (the caller
/// writes it, so it is not).
fn unix_ms(now: &str) -> u64 {
    parse_time(now)
        .and_then(|time| u64::try_from(time.as_millisecond()).ok())
        .unwrap_or(0)
}

/// How long until the canary's next analysis is due: one `interval` after
/// its status was last written. `None` when due (or never written). The
/// controller's own writes bring a canary back at once; this keeps its
/// analysis on Flagger's cadence.
fn not_due(
    status: &CanaryStatus,
    now: &str,
    interval: std::time::Duration,
) -> Option<std::time::Duration> {
    let last = unix_ms(status.last_transition_time.as_deref()?);
    let due = last.saturating_add(u64::try_from(interval.as_millis()).unwrap_or(u64::MAX));
    let now = unix_ms(now);
    (now < due).then(|| std::time::Duration::from_millis(due - now))
}

/// The resource name of a kind serin writes (what its RBAC grants).
pub fn plural(kind: &str) -> &'static str {
    match kind {
        "Deployment" => "deployments",
        "HorizontalPodAutoscaler" => "horizontalpodautoscalers",
        "ScaledObject" => "scaledobjects",
        "ConfigMap" => "configmaps",
        "Secret" => "secrets",
        "Service" => "services",
        "Ingress" => "ingresses",
        "VirtualService" => "virtualservices",
        "DestinationRule" => "destinationrules",
        _ => "httproutes",
    }
}

/// The ApiResource of a canary's group.
pub fn canary_resource(api_version: &str) -> ApiResource {
    let (group, version) = api_version
        .rsplit_once('/')
        .unwrap_or(("flagger.app", "v1beta1"));
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, "Canary"), "canaries")
}

/// The checksums Flagger tracks (`trackedConfigs`), by `kind/name`.
pub type TrackedConfigs = BTreeMap<String, String>;
