//! The reconciler's side of manual actions ([`crate::manual`]): the
//! `serin.dev/action` and `serin.dev/paused` annotations honoured at the
//! next pass, before the interval is due, so a person is answered at once.
//!
//! An action is carried out before its annotation is removed: a pass
//! failing in between repeats it, and a repeated action finds its work
//! done (a promotion under way, a rollback finished) and is dropped with
//! an event saying so.

use kube::{
    Api,
    api::{DynamicObject, Patch, PatchParams},
};
use serde_json::json;

use super::{Error, Outcome, Pass, TrackedConfigs};
use k8s_openapi::api::apps::v1::Deployment;

use crate::{
    manual::{ACTION_ANNOTATION, PAUSED_ANNOTATION},
    resource::CanaryStatus,
};

// === impl Pass ===

impl Pass<'_> {
    /// The one-shot action asked, if any.
    fn action(&self) -> Option<&str> {
        self.subject
            .canary()
            .metadata
            .annotations
            .get(ACTION_ANNOTATION)
            .map(String::as_str)
    }

    /// Whether the rollout is paused.
    fn paused(&self) -> bool {
        self.subject
            .canary()
            .metadata
            .annotations
            .get(PAUSED_ANNOTATION)
            .is_some_and(|value| value.trim().eq_ignore_ascii_case("true"))
    }

    /// Removes the one-shot action (a merge patch of that key).
    async fn clear_action(&self) -> Result<(), Error> {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), self.namespace, self.resource);
        api.patch(
            self.subject.canary().name(),
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {ACTION_ANNOTATION: null}}})),
        )
        .await?;
        Ok(())
    }

    /// Drops an action that cannot apply in `phase`, saying why.
    pub(super) async fn drop_action(&self, phase: &str) -> Result<(), Error> {
        let Some(action) = self.action() else {
            return Ok(());
        };
        let id = self.id();
        let message = match action {
            "promote" | "abort" => format!(
                "{ACTION_ANNOTATION} {action} ignored: {id} has no rollout in progress (phase {phase})"
            ),
            other => unknown(other),
        };
        self.event("Warning", "Synced", &message).await?;
        self.clear_action().await
    }

    /// A new revision not started yet: `abort` marks it failed (it is
    /// never started), a pause keeps it from starting. `promote` waits
    /// for the rollout to start.
    pub(super) async fn manual_pending(
        &self,
        status: &mut CanaryStatus,
        target_name: &str,
        hash: &str,
        tracked: &TrackedConfigs,
    ) -> Result<Option<Outcome>, Error> {
        match self.action() {
            Some("abort") => {
                // The aborted revision is the template and the tracked
                // configs' data: both are recorded, or a revision made by
                // a config change would be seen as new again at the next
                // pass and started once the annotation is gone.
                status.last_applied_spec = Some(hash.to_string());
                status.tracked_configs = tracked.clone();
                let message = format!("Rolling back {}: aborted by {ACTION_ANNOTATION}", self.id());
                self.rollback(status, target_name, &message).await?;
                self.clear_action().await?;
                return Ok(Some(Outcome::Moved("Failed".into())));
            }
            Some("promote") | None => {}
            Some(other) => {
                self.event("Warning", "Synced", &unknown(other)).await?;
                self.clear_action().await?;
            }
        }
        Ok(self.paused().then_some(Outcome::Idle))
    }

    /// A rollout under analysis: `abort` rolls back, `promote` promotes
    /// now, a pause holds the weight (written and recorded once).
    pub(super) async fn manual_progressing(
        &self,
        status: &mut CanaryStatus,
        target_name: &str,
        deployment: &Deployment,
    ) -> Result<Option<Outcome>, Error> {
        let id = self.id();
        match self.action() {
            Some("abort") => {
                let message = format!("Rolling back {id}: aborted by {ACTION_ANNOTATION}");
                self.rollback(status, target_name, &message).await?;
                self.clear_action().await?;
                return Ok(Some(Outcome::Moved("Failed".into())));
            }
            Some("promote") => {
                self.event(
                    "Normal",
                    "Synced",
                    &format!("Promoting {id} now: {ACTION_ANNOTATION} promote skips the remaining analysis"),
                )
                .await?;
                // The promotion's whole primary side, as an analysis's own
                // promotion writes it: a progressing pass reads no configs,
                // so a primary Deployment built from it alone would lose
                // the `-primary` copies of its tracked configs (and the
                // primary autoscaler would miss the revision).
                self.copy_to_primary(deployment).await?;
                status.phase = Some("Promoting".into());
                self.write_status(status).await?;
                self.clear_action().await?;
                return Ok(Some(Outcome::Moved("Promoting".into())));
            }
            Some(other) => {
                self.event("Warning", "Synced", &unknown(other)).await?;
                self.clear_action().await?;
            }
            None => {}
        }
        if !self.paused() {
            return Ok(None);
        }
        let hold = format!(
            "Paused by {PAUSED_ANNOTATION}: holding {id} at canary weight {}",
            status.canary_weight
        );
        let already = status.conditions.iter().any(|condition| {
            condition.condition_type == "Promoted" && condition.message.as_deref() == Some(&hold)
        });
        if already {
            // Written once: nothing to do until resumed.
            return Ok(Some(Outcome::Idle));
        }
        self.promoted(status, "Unknown", "Progressing", &hold);
        self.write_status(status).await?;
        self.event("Normal", "Synced", &hold).await?;
        Ok(Some(Outcome::Moved(
            status.phase.clone().unwrap_or_default(),
        )))
    }
}

/// The event for an action serin does not know.
fn unknown(action: &str) -> String {
    format!("{ACTION_ANNOTATION} {action:?} ignored: not an action (promote or abort)")
}
