//! Sample stable and canary backends and a bounded HTTP load generator for demos and tests.

#![forbid(unsafe_code)]
