//! What people may do to a rollout, and where its upstreams point: the rules
//! the runtime and the daemon apply without a rollout at hand (a status, a
//! saved placement), stated once here and used by the machine too.

use crate::{
    action::Action,
    error::{Error, Result},
    event::Event,
    state::Phase,
};
use serde::{Deserialize, Serialize};

/// What a person can ask of a rollout in progress (Argo Rollouts' manual
/// gates).
///
/// They apply before promotion only: once the canary was copied to the
/// primary there is no older version left to hold or to go back to. The
/// machine refuses them otherwise with the error [`Manual::check`] gives,
/// so whoever asks on a person's behalf can refuse them the same way
/// before asking.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Manual {
    /// Hold the current weight; analysis continues ([`Event::Pause`]).
    Pause,
    /// Let a paused rollout advance again ([`Event::Resume`]).
    Resume,
    /// Promote now, skipping the remaining steps ([`Event::PromoteNow`]).
    PromoteNow,
    /// Roll back now ([`Event::Abort`]).
    Abort,
}

// === impl Manual ===

impl Manual {
    /// The event that carries it to the machine.
    pub fn event(self) -> Event {
        match self {
            Manual::Pause => Event::Pause,
            Manual::Resume => Event::Resume,
            Manual::PromoteNow => Event::PromoteNow,
            Manual::Abort => Event::Abort,
        }
    }

    /// Its name in messages ([`Event::name`]).
    pub fn name(self) -> &'static str {
        self.event().name()
    }

    /// Whether it applies to a rollout in `phase` (`paused` or not): the
    /// rule the machine applies to its event, refused with the same error.
    pub fn check(self, phase: Phase, paused: bool) -> Result<()> {
        before_promotion(phase, self.name())?;
        match self {
            Manual::Pause if paused => Err(Error::AlreadyPaused),
            Manual::Resume if !paused => Err(Error::NotPaused),
            _ => Ok(()),
        }
    }
}

/// Whether `event` (a person's, a rollback webhook's, decisive harm) may
/// still change a rollout in `phase`: only before promotion.
pub(crate) fn before_promotion(phase: Phase, event: &'static str) -> Result<()> {
    if phase.is_before_promotion() {
        Ok(())
    } else if phase.is_promoting() {
        Err(Error::PromotionUnderway { phase, event })
    } else {
        Err(Error::NotInProgress { phase, event })
    }
}

/// Where a rollout's upstreams point, saved with its state so a restarted
/// runtime routes to the same places: after a promotion the stable side is
/// the old canary, whatever the canary file still says.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// The stable upstream, when it differs from the canary file's (after a
    /// promotion); `None` means "as the file says".
    pub stable: Option<String>,
    /// The canary upstream of the revision last started.
    pub canary: Option<String>,
}

// === impl Placement ===

impl Placement {
    /// Follows the actions of one event, before they are carried out (the
    /// placement is saved with the state they came from). The one rule:
    /// [`Action::Promote`] makes the canary the stable version.
    pub fn follow(&mut self, actions: &[Action]) {
        if actions
            .iter()
            .any(|action| matches!(action, Action::Promote))
        {
            self.stable.clone_from(&self.canary);
        }
    }

    /// The stable upstream now: the promoted one, or else the file's.
    pub fn stable_or<'a>(&'a self, file_stable: &'a str) -> &'a str {
        self.stable.as_deref().unwrap_or(file_stable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn people_act_before_promotion_only() {
        let all = [
            Manual::Pause,
            Manual::Resume,
            Manual::PromoteNow,
            Manual::Abort,
        ];
        for phase in [Phase::Waiting, Phase::Progressing, Phase::WaitingPromotion] {
            assert_eq!(Manual::Pause.check(phase, false), Ok(()));
            assert_eq!(Manual::Pause.check(phase, true), Err(Error::AlreadyPaused));
            assert_eq!(Manual::Resume.check(phase, true), Ok(()));
            assert_eq!(Manual::Resume.check(phase, false), Err(Error::NotPaused));
            assert_eq!(Manual::PromoteNow.check(phase, true), Ok(()));
            assert_eq!(Manual::Abort.check(phase, false), Ok(()));
        }
        for manual in all {
            for phase in [Phase::Promoting, Phase::Finalising] {
                assert_eq!(
                    manual.check(phase, false),
                    Err(Error::PromotionUnderway {
                        phase,
                        event: manual.name()
                    })
                );
            }
            for phase in [
                Phase::Initializing,
                Phase::Initialized,
                Phase::Succeeded,
                Phase::Failed,
            ] {
                assert_eq!(
                    manual.check(phase, true),
                    Err(Error::NotInProgress {
                        phase,
                        event: manual.name()
                    })
                );
            }
        }
    }

    #[test]
    fn promotion_makes_the_canary_stable() {
        let mut placement = Placement {
            stable: None,
            canary: Some("http://canary".into()),
        };
        placement.follow(&[Action::Finalise]);
        assert_eq!(placement.stable_or("http://file"), "http://file");
        placement.follow(&[Action::Promote, Action::Finalise]);
        assert_eq!(placement.stable.as_deref(), Some("http://canary"));
        assert_eq!(placement.stable_or("http://file"), "http://canary");
    }
}
