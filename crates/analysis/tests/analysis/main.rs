//! serin-analysis's integration tests, one binary.

mod decisions;
mod no_panic;
