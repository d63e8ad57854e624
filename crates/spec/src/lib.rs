//! Canary, MetricTemplate and AlertProvider documents: types, parsing and validation. Pure: no I/O.

#![forbid(unsafe_code)]
