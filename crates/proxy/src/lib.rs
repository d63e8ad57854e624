//! The built-in reverse proxy: weighted, header- and cookie-matched, sticky and mirrored routing with per-version statistics.

#![forbid(unsafe_code)]
