//! The HTTP/1.1 fast path: plain HTTP/1.1 requests served without hyper.
//!
//! Most of what a request cost on hyper's path was its machinery rather
//! than the proxy's work (`bench/proxy/RESULTS.md`: hyper, header maps and
//! per-head allocations were about 24,000 of 39,000 instructions a
//! request). Here a request head is parsed in place with `httparse`, its
//! header lines copied once into the head sent upstream, the answer's
//! likewise, over plain upstream connections this path pools itself,
//! with the buffers of one connection reused from request to request.
//!
//! The path refuses every request-smuggling shape before anything is
//! forwarded or handed on (`wire.rs`), and serves only what it serves
//! completely; the rest (upgrades, an `Expect` other than `100-continue`, HTTP/1.0, targets other than
//! an origin form, mirroring, `https://` upstreams) is handed, with the
//! bytes read so far, to hyper's path, which serves the connection from
//! then on.

mod rewind;
mod serve;
mod wire;

pub(crate) use rewind::Rewind;
pub(crate) use serve::{Ended, serve};
