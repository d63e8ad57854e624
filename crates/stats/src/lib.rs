//! Request statistics shared by the proxy and the analysis: counters and mergeable latency histograms.

#![forbid(unsafe_code)]
