//! Replay of request logs (placeholder).

/// Placeholder.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// Placeholder.
    #[error("not implemented")]
    Todo,
}
/// Placeholder.
#[derive(Debug)]
pub struct TickReport;
/// Placeholder.
#[derive(Debug)]
pub enum Outcome {}
/// Placeholder.
pub fn replay() {}
