//! A/B testing and blue/green: Flagger's iteration phases (`runAB`,
//! `runBlueGreen` in `pkg/controller/scheduler.go`), walked one passed
//! analysis per pass.
//!
//! - A/B (`iterations` with `match`): each iteration applies the canary
//!   route (matched requests to the canary, the rest to the primary) and
//!   counts `status.iterations`; after the last, promotion.
//! - Blue/green (`iterations` without `match`): all traffic stays on the
//!   primary, mirrored to the canary with `mirror: true` (not on the
//!   `kubernetes` provider, which has no mirror); after the last iteration
//!   all traffic is switched to the canary (again not on `kubernetes`,
//!   whose Services move only at promotion) and counted as one more
//!   iteration, whose analysis passes before promotion.
//!
//! `status.canaryWeight` stays 0, as Flagger leaves it; a failed check
//! halts or rolls back as for weight steps.
//!
//! Once the iterations are done, the `confirm-promotion` gate is asked
//! before the blue/green switch and before the promotion, as Flagger does.

use k8s_openapi::api::apps::v1::Deployment;
use serin_spec::StrategyKind;

use super::{Checks, Error, Pass, Reconciler};
use crate::{Routes, resource::CanaryStatus};

impl<C: Checks> Reconciler<C> {
    /// One passed analysis of an A/B or blue/green canary.
    pub(super) async fn iterate(
        &self,
        pass: &Pass<'_>,
        status: &mut CanaryStatus,
        deployment: &Deployment,
    ) -> Result<(), Error> {
        let subject = pass.subject;
        let canary = subject.canary();
        let namespace = pass.namespace;
        let id = format!("{}.{namespace}", canary.name());
        let analysis = canary.analysis();
        let total = i64::from(analysis.iterations());
        let done = status.iterations;
        let blue_green = canary.strategy() == StrategyKind::BlueGreen;
        let kubernetes = subject.provider() == "kubernetes";

        if done < total {
            // A/B: the matched requests to the canary each iteration (a
            // route drifted meanwhile is put back). Blue/green moves
            // nothing but the mirror.
            if !blue_green || (analysis.mirror && !kubernetes) {
                pass.apply_routes(&Routes::iteration(canary)?).await?;
            }
            return self.count(pass, status, &id, total).await;
        }
        // Flagger's `runAB` and `runBlueGreen` ask the `confirm-promotion`
        // gate once the iterations are done, before the blue/green switch
        // and again before the promotion: closed, the canary waits in
        // `WaitingPromotion` as with weight steps.
        if !pass.confirm_promotion(status).await? {
            return Ok(());
        }
        if blue_green && done == total {
            if !kubernetes {
                let message = if analysis.mirror {
                    "Stop traffic mirroring and route all traffic to canary"
                } else {
                    "Routing all traffic to canary"
                };
                pass.event("Normal", "Synced", message).await?;
                pass.apply_routes(&Routes::switched(canary)?).await?;
            }
            return self.count(pass, status, &id, total).await;
        }
        pass.copy_to_primary(deployment).await?;
        status.phase = Some("Promoting".into());
        pass.write_status(status).await
    }

    /// Counts one more iteration (Flagger's `SetStatusIterations` and its
    /// event).
    async fn count(
        &self,
        pass: &Pass<'_>,
        status: &mut CanaryStatus,
        id: &str,
        total: i64,
    ) -> Result<(), Error> {
        status.iterations += 1;
        // A halt's reason clears once checks pass, as for weight steps.
        pass.promoted(
            status,
            "Unknown",
            "Progressing",
            "New revision detected, progressing canary analysis.",
        );
        pass.write_status(status).await?;
        pass.event(
            "Normal",
            "Synced",
            &format!(
                "Advance {id} canary iteration {}/{total}",
                status.iterations
            ),
        )
        .await
    }
}
