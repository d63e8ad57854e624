//! Confidence sequences.
