//! Canary analysis: judges that compare canary with stable and with fixed bounds, and offline replay. Pure.

#![forbid(unsafe_code)]
