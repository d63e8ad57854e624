//! Placeholder while the judge is written.

use crate::{
    config::AnalysisConfig,
    decision::{Decision, Verdict},
    input::TickInput,
    judge::Judge,
};

/// Not yet implemented: holds.
#[derive(Debug)]
pub struct MannWhitneyJudge;

impl MannWhitneyJudge {
    /// A judge for `config`.
    pub fn new(_config: &AnalysisConfig) -> Self {
        MannWhitneyJudge
    }
}

impl Judge for MannWhitneyJudge {
    fn evaluate(&mut self, at_ms: u64, _input: &TickInput) -> Decision {
        Decision {
            verdict: Verdict::Hold,
            at_ms,
            metrics: Vec::new(),
            reasons: vec!["not implemented".into()],
        }
    }
}
