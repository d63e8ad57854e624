//! Upgraded connections (WebSocket and any other `Upgrade`): the request
//! goes to the version it was routed to like any other, and once that
//! upstream answers 101 both connections are taken from hyper and spliced
//! byte for byte, both ways, until either side closes, nothing moves for
//! the idle timeout, or the proxy closes what is left after its grace.

use crate::{
    connection::{CLOSING, Held},
    headers,
};
use http::{
    HeaderMap, HeaderValue, Request, Response,
    header::{CONNECTION, UPGRADE},
};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use std::{
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::Instant,
};

/// An HTTP/1.1 request asking to switch protocols: an `Upgrade` header
/// and `upgrade` among its `Connection` options (RFC 9110 §7.8). HTTP/2
/// has no such requests (RFC 9113 §8.6).
pub(crate) fn requested<B>(req: &Request<B>) -> Option<HeaderValue> {
    if req.version() != http::Version::HTTP_11 {
        return None;
    }
    let upgrade = req.headers().get(UPGRADE)?;
    let listed = req.headers().get_all(CONNECTION).iter().any(|value| {
        value.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|option| option.trim().eq_ignore_ascii_case("upgrade"))
        })
    });
    listed.then(|| upgrade.clone())
}

/// Puts the upgrade back on a head whose hop-by-hop headers were removed:
/// it is the one hop-by-hop request the next hop must see.
pub(crate) fn ask(headers: &mut HeaderMap, protocol: HeaderValue) {
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(UPGRADE, protocol);
}

/// The client's half of a 101: the upstream's head without its
/// hop-by-hop headers but the switch itself.
pub(crate) fn answer<B>(response: &mut Response<B>) {
    let protocol = response.headers().get(UPGRADE).cloned();
    headers::remove_hop_by_hop(response.headers_mut());
    if let Some(protocol) = protocol {
        ask(response.headers_mut(), protocol);
    }
}

/// Splices the client's and the upstream's upgraded connections once hyper
/// has handed them over (the client's after its 101 went out). Holds the
/// client connection's `held` so it still counts as open, and drains.
pub(crate) fn spawn(client: OnUpgrade, upstream: OnUpgrade, idle: Duration, held: Arc<Held>) {
    tokio::spawn(async move {
        let (client, upstream) = match tokio::join!(client, upstream) {
            (Ok(client), Ok(upstream)) => (client, upstream),
            (client, upstream) => {
                tracing::debug!(
                    client = ?client.err(),
                    upstream = ?upstream.err(),
                    "upgrade did not complete"
                );
                return;
            }
        };
        let mut state = held.state.clone();
        let closing = async move {
            if state.wait_for(|now| *now >= CLOSING).await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        splice(TokioIo::new(client), TokioIo::new(upstream), idle, closing).await;
        drop(held);
    });
}

/// Copies both ways until either side closes (as nginx does: what it sent
/// is passed on whole, then both connections are closed; a peer that has
/// gone cannot be written to anyway), nothing has moved for `idle`, or
/// `closing` completes.
async fn splice<A, B>(a: A, b: B, idle: Duration, closing: impl std::future::Future<Output = ()>)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let start = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let mut a = Active {
        inner: a,
        start,
        last: last.clone(),
    };
    let mut b = Active {
        inner: b,
        start,
        last: last.clone(),
    };
    let (mut a_read, mut a_write) = tokio::io::split(&mut a);
    let (mut b_read, mut b_write) = tokio::io::split(&mut b);
    let a_to_b = tokio::io::copy(&mut a_read, &mut b_write);
    let b_to_a = tokio::io::copy(&mut b_read, &mut a_write);
    tokio::pin!(a_to_b);
    tokio::pin!(b_to_a);
    tokio::pin!(closing);
    let timer = tokio::time::sleep(idle);
    tokio::pin!(timer);
    loop {
        tokio::select! {
            result = &mut a_to_b => {
                if let Err(error) = result {
                    tracing::debug!(%error, "upgraded connection: client side ended with an error");
                }
                return;
            }
            result = &mut b_to_a => {
                if let Err(error) = result {
                    tracing::debug!(%error, "upgraded connection: upstream side ended with an error");
                }
                return;
            }
            () = &mut closing => return,
            () = &mut timer => {
                let due = start + Duration::from_millis(last.load(Ordering::Relaxed)) + idle;
                if Instant::now() >= due {
                    tracing::debug!(?idle, "upgraded connection idle; closing it");
                    return;
                }
                timer.as_mut().reset(due);
            }
        }
    }
}

/// An I/O object that notes when bytes last moved through it.
struct Active<T> {
    inner: T,
    start: Instant,
    /// Milliseconds from `start`, shared by both sides of a splice.
    last: Arc<AtomicU64>,
}

impl<T> Active<T> {
    fn moved(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms, Ordering::Relaxed);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Active<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.moved();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Active<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.moved();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http1_requests_naming_the_upgrade_in_connection_ask_for_one() {
        let req = |version, pairs: &[(&str, &str)]| {
            let mut b = Request::builder().version(version);
            for (k, v) in pairs {
                b = b.header(*k, *v);
            }
            b.body(()).unwrap_or_else(|e| panic!("{e}"))
        };
        let v11 = http::Version::HTTP_11;
        let ws = [
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
        ];
        assert_eq!(
            requested(&req(v11, &ws)),
            Some(HeaderValue::from_static("websocket"))
        );
        assert_eq!(requested(&req(v11, &[("upgrade", "websocket")])), None);
        assert_eq!(requested(&req(v11, &[("connection", "upgrade")])), None);
        assert_eq!(requested(&req(http::Version::HTTP_10, &ws)), None);
        assert_eq!(requested(&req(http::Version::HTTP_2, &ws)), None);
    }

    #[tokio::test]
    async fn a_close_on_either_side_ends_the_splice_after_what_it_sent() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (a, mut a_peer) = tokio::io::duplex(64);
        let (b, mut b_peer) = tokio::io::duplex(64);
        let task = tokio::spawn(splice(
            a,
            b,
            Duration::from_secs(60),
            std::future::pending(),
        ));
        b_peer
            .write_all(b"last words")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        drop(b_peer);
        let mut got = Vec::new();
        a_peer
            .read_to_end(&mut got)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got, b"last words");
        task.await.unwrap_or_else(|e| panic!("{e}"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_splice_with_nothing_moving_ends_after_the_idle_timeout() {
        let (a, _a_peer) = tokio::io::duplex(64);
        let (b, _b_peer) = tokio::io::duplex(64);
        let started = Instant::now();
        splice(a, b, Duration::from_secs(30), std::future::pending()).await;
        assert_eq!(started.elapsed(), Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn traffic_keeps_a_splice_open() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (a, mut a_peer) = tokio::io::duplex(64);
        let (b, mut b_peer) = tokio::io::duplex(64);
        let started = Instant::now();
        let task = tokio::spawn(splice(
            a,
            b,
            Duration::from_secs(30),
            std::future::pending(),
        ));
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_secs(20)).await;
            a_peer
                .write_all(b"ping")
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let mut got = [0u8; 4];
            b_peer
                .read_exact(&mut got)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(&got, b"ping");
        }
        task.await.unwrap_or_else(|e| panic!("{e}"));
        // Open through 60 s of traffic, closed 30 s after the last.
        assert_eq!(started.elapsed(), Duration::from_secs(90));
    }
}
