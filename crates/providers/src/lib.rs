//! Edge adapters: metric providers and traffic routers that implement the core's ports.

#![forbid(unsafe_code)]
