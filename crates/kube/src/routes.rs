//! Where traffic stands: the weights, mirroring and session cookies a
//! router is set to, and how `serin render --weight N` maps to them.

use serin_spec::{Canary, StrategyKind};

use crate::{Error, Result};

/// The traffic position a router holds (Flagger's `SetRoutes` arguments
/// plus the session affinity cookies it keeps in the canary's status).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Routes {
    /// Percent of (unmatched) traffic to the primary.
    pub primary: u8,
    /// Percent of traffic to the canary; for A/B canaries, any value above
    /// zero sends matched requests to the canary.
    pub canary: u8,
    /// Whether requests are mirrored to the canary.
    pub mirrored: bool,
    /// The session affinity cookie of this run (`NAME=VALUE`), set while
    /// the canary takes traffic.
    pub cookie: Option<String>,
    /// The cookie of the previous run, expired once the canary is at zero.
    pub previous_cookie: Option<String>,
}

/// A point of a rollout, for `serin render`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Position {
    /// The canary at this weight (0: initialised, or after promotion).
    Weight(u8),
}

// === impl Routes ===

impl Routes {
    /// All traffic on the primary: after initialisation, promotion and rollback.
    pub fn primary() -> Self {
        Self {
            primary: 100,
            ..Self::default()
        }
    }

    /// What the router holds during an A/B or blue/green analysis: matched
    /// requests to the canary (A/B), or all on the primary, mirrored to the
    /// canary with `mirror: true` (blue/green). Any weight strictly between
    /// 0 and 100 is that position for these strategies (see [`Routes::at`]).
    pub fn iteration(canary: &Canary) -> Result<Self> {
        Self::at(canary, 50)
    }

    /// Blue/green's switch after the last iteration: all traffic on the
    /// canary, unmirrored (A/B: as during its iterations).
    pub fn switched(canary: &Canary) -> Result<Self> {
        Self::at(canary, 100)
    }

    /// What the router holds for `canary` at canary weight `weight`, as
    /// Flagger's scheduler sets it for the canary's strategy:
    ///
    /// - progressive canary: `100 - N` / `N`;
    /// - A/B testing (`iterations` with `match`): any `N > 0` is the
    ///   analysis, matched requests go to the canary, the rest to the primary;
    /// - blue/green (`iterations` without `match`, or the `kubernetes`
    ///   provider): `0 < N < 100` is the analysis, all traffic on the
    ///   primary (mirrored to the canary with `mirror: true`), and `N = 100`
    ///   is the switch to the canary before promotion.
    ///
    /// With session affinity, a weight above zero carries a cookie derived
    /// from the canary (Flagger draws it at random; a render is reproducible).
    pub fn at(canary: &Canary, weight: i64) -> Result<Self> {
        let weight = u8::try_from(weight)
            .ok()
            .filter(|weight| *weight <= 100)
            .ok_or_else(|| {
                Error::field(
                    "--weight",
                    format!("must be between 0 and 100, got {weight}"),
                )
            })?;
        let analysis = canary.analysis();
        let mut routes = match canary.strategy() {
            _ if weight == 0 => Self::primary(),
            StrategyKind::Canary => Self {
                primary: 100 - weight,
                canary: weight,
                ..Self::default()
            },
            StrategyKind::ABTesting => Self {
                primary: 0,
                canary: 100,
                ..Self::default()
            },
            StrategyKind::BlueGreen if weight == 100 => Self {
                primary: 0,
                canary: 100,
                ..Self::default()
            },
            StrategyKind::BlueGreen => Self {
                primary: 100,
                canary: 0,
                mirrored: analysis.mirror,
                ..Self::default()
            },
        };
        if routes.canary > 0
            && let Some(affinity) = &analysis.session_affinity
        {
            routes.cookie = Some(format!(
                "{}={}",
                affinity.cookie_name,
                crate::hash::letters(&format!(
                    "{}/{}",
                    canary.metadata.namespace.as_deref().unwrap_or("default"),
                    canary.name()
                ))
            ));
        }
        Ok(routes)
    }
}
