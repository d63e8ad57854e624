//! A new revision of the target during an analysis (Flagger's
//! `hasCanaryRevisionChanged`): the analysis restarts on it rather than
//! judging pods it was not started for. All traffic goes back to the
//! primary and the counts start again; the judge's record, kept per
//! revision, starts afresh too.
//!
//! The pod template is compared at every pass; a tracked config's new
//! data is seen when the canary next settles (configs are read where the
//! primary is written or a new revision looked for).

use super::{Checks, Error, Pass, Reconciler};
use crate::{Routes, resource::CanaryStatus};

impl<C: Checks> Reconciler<C> {
    /// Restarts the analysis on the template whose fingerprint is `hash`.
    pub(super) async fn restart(
        &self,
        pass: &Pass<'_>,
        status: &mut CanaryStatus,
        hash: String,
    ) -> Result<(), Error> {
        let subject = pass.subject;
        pass.event(
            "Normal",
            "Synced",
            &format!(
                "New revision detected! Restarting analysis for {}.{}",
                subject.target_name(),
                pass.namespace
            ),
        )
        .await?;
        pass.apply_routes(&Routes::primary()).await?;
        status.phase = Some("Progressing".into());
        status.canary_weight = 0;
        status.failed_checks = 0;
        status.iterations = 0;
        status.last_applied_spec = Some(hash);
        pass.promoted(
            status,
            "Unknown",
            "Progressing",
            "New revision detected, progressing canary analysis.",
        );
        pass.write_status(status).await
    }
}
