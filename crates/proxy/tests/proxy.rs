//! Integration tests of the built-in proxy: real sockets on loopback, real
//! HTTP backends started in each test. One binary, as ripgrep does.

mod bodies;
mod failures;
mod fast_path;
mod forwarding;
mod heads;
mod http2;
mod logging;
mod mirroring;
mod pki;
mod routing;
mod smuggling;
mod support;
mod timeouts;
mod tls;
mod upstream_tls;
mod upstreams;
mod websocket;
mod workers;
