//! Request statistics shared by the proxy and the analysis: counters and
//! mergeable latency histograms, per version, over sliding windows.
//!
//! Memory is constant in the number of requests: a [`Window`] holds a fixed
//! ring of slots and each slot one fixed-size [`LatencyHistogram`].

#![forbid(unsafe_code)]

mod counts;
mod histogram;
mod window;

pub use counts::{Counts, Pair, StatusClasses, UnknownVersion, Version, is_error, status_class};
pub use histogram::{BUCKETS, LatencyHistogram, bucket_bounds, bucket_index};
pub use window::{Recorder, Window};
