//! A tiny raw HTTP/1.1 client for tests, one request per connection
//! (`Connection: close`).
//!
//! Raw on purpose: the tests see exactly the bytes serin answered (status
//! line, header spelling, the body as sent) and depend on no HTTP client
//! whose own behaviour (redirects, pooling, retries) could hide a bug.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

/// How long connecting may take; on loopback only a dead port is slow.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// How long a peer may stay silent before the answer counts as complete.
const READ_TIMEOUT: Duration = Duration::from_secs(20);
/// How long [`get`] reads an answer.
const GET_TIMEOUT: Duration = Duration::from_secs(2);

/// One answer: its status and the whole text, head and body.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    /// The whole answer as received: status line, headers and body.
    pub raw: String,
}

// === impl Answer ===

impl Answer {
    /// Parses what was read; `None` without a status line.
    fn parse(bytes: &[u8]) -> Option<Answer> {
        let raw = String::from_utf8_lossy(bytes).into_owned();
        let status = raw.split(' ').nth(1)?.parse().ok()?;
        Some(Answer { status, raw })
    }

    /// The body: everything after the head (empty when there is none).
    pub fn body(&self) -> &str {
        self.raw.split_once("\r\n\r\n").map_or("", |(_, body)| body)
    }
}

/// One blocking exchange with `addr`: `method path`, a bearer `token` when
/// given, `body` as JSON. `None` when nothing answered (the server is down
/// or starting), so callers can poll with it.
///
/// A failed write of the body is ignored and whatever was read is kept: a
/// server may answer and close before reading a body it refuses (413).
pub fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> Option<Answer> {
    let mut stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).ok()?;
    stream.set_read_timeout(Some(READ_TIMEOUT)).ok()?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).ok()?;
    let _ = stream.write_all(body);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    Answer::parse(&answer)
}

/// [`exchange`] off the async runtime, for tests on tokio; the status and
/// the body. Panics when nothing answered: the server is expected up.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> (u16, String) {
    let (method, path, token, body) = (
        method.to_owned(),
        path.to_owned(),
        token.map(str::to_owned),
        body.to_vec(),
    );
    tokio::task::spawn_blocking(move || {
        let answer = exchange(addr, &method, &path, token.as_deref(), &body)
            .unwrap_or_else(|| panic!("{method} {path}: no answer from {addr}"));
        (answer.status, answer.body().to_owned())
    })
    .await
    .unwrap()
}

/// A raw async GET on loopback `port`; the whole answer (head and body), or
/// `None` when nothing listens. Reads for at most 2 s.
pub async fn get(port: u16, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(GET_TIMEOUT, stream.read_to_end(&mut answer)).await;
    Some(String::from_utf8_lossy(&answer).into_owned())
}

#[cfg(test)]
mod tests {
    use super::Answer;

    #[test]
    fn answers_parse_status_and_body() {
        let answer = Answer::parse(b"HTTP/1.1 404 Not Found\r\nx: y\r\n\r\nnope").unwrap();
        assert_eq!(answer.status, 404);
        assert_eq!(answer.body(), "nope");
        assert!(Answer::parse(b"").is_none(), "nothing read is no answer");
    }
}
