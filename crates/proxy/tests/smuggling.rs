//! Request smuggling, end to end: a proxy and the upstream behind it that
//! frame one message differently (one reads a body where the other reads a
//! second request) let a client hide a request from the proxy, to reach the
//! upstream unrouted, unlimited and unrecorded, or be answered to another
//! client. So every ambiguous HTTP/1 framing is answered 400 (or, found
//! only in the body, never 2xx), its connection is closed, and nothing of
//! the request hidden in it reaches the upstream, whichever HTTP/1 parser
//! serves the connection.

use crate::support::*;
use serin_proxy::Routes;
use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// The longest any read in these tests waits.
const WAIT: Duration = Duration::from_secs(5);

/// The request a client hides inside another.
const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";

/// What the recording upstream answers every request it can frame.
const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

/// An upstream that speaks raw bytes: it records every byte each accepted
/// connection sends and answers [`OK`] to each request it frames (its head
/// up to `\r\n\r\n`, then `Content-Length` bytes or a chunked body up to
/// `0\r\n\r\n`).
struct Recording {
    addr: SocketAddr,
    /// Every byte each connection sent, one entry per connection.
    connections: Arc<Mutex<Vec<Vec<u8>>>>,
    /// Each request framed and answered, whole, in order.
    requests: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Recording {
    async fn start() -> Recording {
        let listener = must(TcpListener::bind("127.0.0.1:0").await);
        let addr = must(listener.local_addr());
        let connections: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let requests: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let (conns, reqs) = (connections.clone(), requests.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let index = {
                    let mut all = must(conns.lock());
                    all.push(Vec::new());
                    all.len() - 1
                };
                tokio::spawn(record(stream, index, conns.clone(), reqs.clone()));
            }
        });
        Recording {
            addr,
            connections,
            requests,
        }
    }

    fn uri(&self) -> http::Uri {
        must(format!("http://{}", self.addr).parse())
    }

    /// Every byte received, all connections in the order they were accepted.
    fn received(&self) -> Vec<u8> {
        must(self.connections.lock()).concat()
    }

    fn requests(&self) -> Vec<Vec<u8>> {
        must(self.requests.lock()).clone()
    }
}

/// Records one upstream connection and answers each request it frames.
async fn record(
    mut stream: TcpStream,
    index: usize,
    connections: Arc<Mutex<Vec<Vec<u8>>>>,
    requests: Arc<Mutex<Vec<Vec<u8>>>>,
) {
    let mut pending = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = match tokio::time::timeout(WAIT * 2, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return,
        };
        let bytes = &buf[..n];
        if let Some(conn) = must(connections.lock()).get_mut(index) {
            conn.extend_from_slice(bytes);
        }
        pending.extend_from_slice(bytes);
        while let Some(len) = frame(&pending) {
            let request: Vec<u8> = pending.drain(..len).collect();
            must(requests.lock()).push(request);
            if stream.write_all(OK).await.is_err() {
                return;
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    find(haystack, needle).is_some()
}

/// The length of the first whole request in `buf`, if it holds one.
fn frame(buf: &[u8]) -> Option<usize> {
    let head = find(buf, b"\r\n\r\n")? + 4;
    let text = String::from_utf8_lossy(&buf[..head]).to_ascii_lowercase();
    let mut length = 0;
    let mut chunked = false;
    for line in text.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        match name {
            "content-length" => length = value.trim().parse().ok()?,
            "transfer-encoding" => chunked = value.contains("chunked"),
            _ => {}
        }
    }
    if !chunked {
        return (buf.len() >= head + length).then_some(head + length);
    }
    let body = &buf[head..];
    if body.starts_with(b"0\r\n\r\n") {
        return Some(head + 5);
    }
    find(body, b"\r\n0\r\n\r\n").map(|end| head + end + 7)
}

/// A recorded request's body: `Content-Length` bytes or a decoded chunked
/// body (chunk extensions and trailers aside).
fn body_of(request: &[u8]) -> Vec<u8> {
    let Some(head) = find(request, b"\r\n\r\n").map(|p| p + 4) else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&request[..head]).to_ascii_lowercase();
    let mut rest = &request[head..];
    if !text.contains("\r\ntransfer-encoding: chunked\r\n") {
        return rest.to_vec();
    }
    let mut body = Vec::new();
    while let Some(line) = find(rest, b"\r\n") {
        let size = must(usize::from_str_radix(
            &String::from_utf8_lossy(&rest[..line]),
            16,
        ));
        if size == 0 {
            break;
        }
        body.extend_from_slice(&rest[line + 2..line + 2 + size]);
        rest = &rest[line + 2 + size + 2..];
    }
    body
}

/// How a client connection ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// The proxy closed it: a read returned 0.
    Closed,
    /// The proxy reset it.
    Reset,
    /// Still open when the wait ran out.
    Open,
}

/// What came back on one client connection.
struct Answer {
    bytes: Vec<u8>,
    end: End,
}

impl Answer {
    fn closed(&self) -> bool {
        matches!(self.end, End::Closed | End::Reset)
    }

    /// How many responses it holds (status lines).
    fn responses(&self) -> usize {
        self.bytes.windows(7).filter(|w| w == b"HTTP/1.").count()
    }

    fn any_2xx(&self) -> bool {
        contains(&self.bytes, b"HTTP/1.1 2") || contains(&self.bytes, b"HTTP/1.0 2")
    }
}

/// Sends `request` on a new connection and reads until the proxy closes it
/// or [`WAIT`] passes.
async fn exchange(addr: SocketAddr, request: &[u8]) -> Answer {
    let mut stream = must(TcpStream::connect(addr).await);
    must(stream.write_all(request).await);
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + WAIT;
    let end = loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) => break End::Closed,
            Ok(Ok(n)) => bytes.extend_from_slice(&buf[..n]),
            Ok(Err(_)) => break End::Reset,
            Err(_) => break End::Open,
        }
    };
    Answer { bytes, end }
}

/// A recording upstream and a proxy sending everything to it.
async fn start() -> (Recording, TestProxy) {
    let upstream = Recording::start().await;
    let proxy = TestProxy::start(Routes::stable_only(upstream.uri())).await;
    (upstream, proxy)
}

/// Lets whatever the proxy might still send the upstream arrive.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(100)).await;
}

fn describe(request: &[u8], answer: &Answer, received: &[u8]) -> String {
    format!(
        "sent {:?}\nanswered {:?} ({:?})\nupstream received {:?}",
        String::from_utf8_lossy(request),
        String::from_utf8_lossy(&answer.bytes),
        answer.end,
        String::from_utf8_lossy(received),
    )
}

/// A request refused at its head: one `400` answer, the connection closed,
/// and not a byte sent upstream.
async fn refused_at_head(request: &[u8]) {
    let (upstream, proxy) = start().await;
    let answer = exchange(proxy.addr, request).await;
    settle().await;
    let received = upstream.received();
    let what = describe(request, &answer, &received);
    assert!(answer.bytes.starts_with(b"HTTP/1.1 400 "), "{what}");
    assert_eq!(answer.responses(), 1, "{what}");
    assert!(answer.closed(), "{what}");
    assert!(received.is_empty(), "{what}");
}

/// A request whose body is found bad only once read: no 2xx for it, the
/// connection closed, and nothing of the request hidden after it upstream.
async fn refused_in_body(request: &[u8]) {
    let (upstream, proxy) = start().await;
    let answer = exchange(proxy.addr, request).await;
    settle().await;
    let received = upstream.received();
    let what = describe(request, &answer, &received);
    assert!(!answer.any_2xx(), "{what}");
    assert!(
        answer.bytes.is_empty() || answer.bytes.starts_with(b"HTTP/1.1 400 "),
        "{what}"
    );
    assert!(answer.responses() <= 1, "{what}");
    assert!(answer.closed(), "{what}");
    assert!(!contains(&received, b"/smuggled"), "{what}");
    // What went upstream of the bad body never ends as a whole request,
    // and the upstream connection it was cut on is not used again: a
    // request sent on it would be read as the rest of that body.
    let after = exchange(
        proxy.addr,
        b"GET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let text = String::from_utf8_lossy(&after.bytes);
    assert!(
        text.starts_with("HTTP/1.1 200 OK\r\n"),
        "{what}\nthen {text}"
    );
    let requests = upstream.requests();
    assert_eq!(requests.len(), 1, "{what}\nthen {text}");
    assert!(
        requests[0].starts_with(b"GET /after HTTP/1.1\r\n"),
        "{what}\nthen {text}"
    );
}

/// A chunked POST whose body is `chunks`, the smuggled request after it.
fn chunked(chunks: &str) -> Vec<u8> {
    format!("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{chunks}{SMUGGLED}")
        .into_bytes()
}

/// A POST with `headers` whose body, in a chunked reading, ends before the
/// smuggled request and, in a `Content-Length: 40` reading, holds it.
fn chunked_end_then_smuggled(headers: &str) -> Vec<u8> {
    format!("POST / HTTP/1.1\r\nHost: x\r\n{headers}\r\n0\r\n\r\n{SMUGGLED}").into_bytes()
}

/// A POST with `headers` then `hello` and the smuggled request.
fn hello_then_smuggled(headers: &str) -> Vec<u8> {
    format!("POST / HTTP/1.1\r\nHost: x\r\n{headers}\r\nhello{SMUGGLED}").into_bytes()
}

// --- 1. Content-Length given twice ---

#[tokio::test]
async fn conflicting_content_lengths_are_refused() {
    // Read as 0, the body is empty and the smuggled request follows; read
    // as 35, the smuggled request is the body.
    assert_eq!(SMUGGLED.len(), 35);
    refused_at_head(
        format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 35\r\n\r\n{SMUGGLED}"
        )
        .as_bytes(),
    )
    .await;
}

#[tokio::test]
async fn a_content_length_list_of_different_values_is_refused() {
    refused_at_head(&hello_then_smuggled("Content-Length: 5, 6\r\n")).await;
}

// --- 2. Content-Length and Transfer-Encoding together ---

#[tokio::test]

async fn content_length_then_chunked_is_refused() {
    refused_at_head(&chunked_end_then_smuggled(
        "Content-Length: 40\r\nTransfer-Encoding: chunked\r\n",
    ))
    .await;
}

#[tokio::test]

async fn chunked_then_content_length_is_refused() {
    refused_at_head(&chunked_end_then_smuggled(
        "Transfer-Encoding: chunked\r\nContent-Length: 40\r\n",
    ))
    .await;
}

// --- 3. Transfer-Encoding other than exactly a final `chunked` ---

#[tokio::test]
async fn chunked_then_identity_is_refused() {
    refused_at_head(&chunked_end_then_smuggled(
        "Transfer-Encoding: chunked, identity\r\n",
    ))
    .await;
}

#[tokio::test]
async fn identity_transfer_encoding_is_refused() {
    refused_at_head(&chunked_end_then_smuggled(
        "Transfer-Encoding: identity\r\n",
    ))
    .await;
}

#[tokio::test]
async fn an_unknown_coding_named_like_chunked_is_refused() {
    refused_at_head(&chunked_end_then_smuggled(
        "Transfer-Encoding: xchunked\r\n",
    ))
    .await;
}

#[tokio::test]

async fn chunked_in_two_transfer_encoding_headers_is_refused() {
    refused_at_head(&chunked_end_then_smuggled(
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
    ))
    .await;
}

#[tokio::test]
async fn chunked_after_a_vertical_tab_is_refused() {
    // A parser that trims any whitespace reads `chunked`; one that trims
    // only spaces and tabs reads an unknown coding.
    refused_at_head(&chunked_end_then_smuggled(
        "Transfer-Encoding:\x0bchunked\r\n",
    ))
    .await;
}

#[tokio::test]
async fn transfer_encoding_with_a_space_before_the_colon_is_refused() {
    // A parser that ignores the malformed line reads 40 bytes of body; one
    // that tolerates the space reads a chunked body ending before them.
    refused_at_head(&chunked_end_then_smuggled(
        "Transfer-Encoding : chunked\r\nContent-Length: 40\r\n",
    ))
    .await;
}

// --- 4. Transfer-Encoding in HTTP/1.0 ---

#[tokio::test]
async fn chunked_in_an_http10_request_is_refused() {
    refused_at_head(
        format!(
            "POST / HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{SMUGGLED}"
        )
        .as_bytes(),
    )
    .await;
}

// --- 5. obs-fold ---

#[tokio::test]
async fn a_header_folded_with_a_space_is_refused() {
    // Unfolded, `Transfer-Encoding: chunked` is part of `X-Note`'s value;
    // read line by line, it is a header of its own.
    refused_at_head(&chunked_end_then_smuggled(
        "Content-Length: 40\r\nX-Note: a\r\n Transfer-Encoding: chunked\r\n",
    ))
    .await;
}

#[tokio::test]
async fn a_header_folded_with_a_tab_is_refused() {
    refused_at_head(&chunked_end_then_smuggled(
        "Content-Length: 40\r\nX-Note: a\r\n\tTransfer-Encoding: chunked\r\n",
    ))
    .await;
}

// --- 6. Bad chunk sizes (found only once the body is read) ---

#[tokio::test]
async fn a_chunk_size_that_is_not_hex_is_refused() {
    refused_in_body(&chunked("zz\r\nhello\r\n0\r\n\r\n")).await;
}

#[tokio::test]
async fn a_negative_chunk_size_is_refused() {
    refused_in_body(&chunked("-1\r\nhello\r\n0\r\n\r\n")).await;
}

#[tokio::test]
async fn a_chunk_size_overflowing_u64_is_refused() {
    refused_in_body(&chunked("ffffffffffffffffff\r\nhello\r\n0\r\n\r\n")).await;
}

#[tokio::test]
async fn a_chunk_size_wrapping_to_a_small_one_is_refused() {
    // 2^64 + 5: a size parsed with wrapping arithmetic reads 5, and the
    // body then ends before the smuggled request.
    refused_in_body(&chunked("10000000000000005\r\nhello\r\n0\r\n\r\n")).await;
}

#[tokio::test]
async fn a_chunk_size_with_a_0x_prefix_is_refused() {
    refused_in_body(&chunked("0x5\r\nhello\r\n0\r\n\r\n")).await;
}

#[tokio::test]
async fn chunk_data_longer_than_its_size_is_refused() {
    refused_in_body(&chunked("3\r\nhello\r\n0\r\n\r\n")).await;
}

#[tokio::test]
async fn chunk_data_without_its_crlf_is_refused() {
    refused_in_body(&chunked("5\r\nhello0\r\n\r\n")).await;
}

#[tokio::test]
async fn a_bare_lf_in_chunked_framing_is_refused() {
    // Read with LF as a line end, the body is `hello` and ends before the
    // smuggled request.
    refused_in_body(&chunked("5\nhello\n0\n\n")).await;
}

// --- 7. Line endings other than CRLF in the head ---

#[tokio::test]

async fn bare_lf_line_endings_are_refused() {
    refused_at_head(format!("GET / HTTP/1.1\nHost: x\n\n{SMUGGLED}").as_bytes()).await;
}

#[tokio::test]

async fn a_bare_lf_hiding_a_content_length_is_refused() {
    // Split on CRLF only, `Content-Length` is part of `Host`'s value and
    // the smuggled request follows an empty body; split on LF as well, it
    // is the body.
    refused_at_head(
        format!("POST / HTTP/1.1\r\nHost: x\nContent-Length: 35\r\n\r\n{SMUGGLED}").as_bytes(),
    )
    .await;
}

#[tokio::test]
async fn a_bare_cr_is_refused() {
    refused_at_head(
        format!("POST / HTTP/1.1\r\nHost: x\rContent-Length: 35\r\n\r\n{SMUGGLED}").as_bytes(),
    )
    .await;
}

// --- 8. Whitespace in or after a header name ---

#[tokio::test]
async fn a_space_inside_a_header_name_is_refused() {
    refused_at_head(
        format!("POST / HTTP/1.1\r\nHost: x\r\nContent Length: 35\r\n\r\n{SMUGGLED}").as_bytes(),
    )
    .await;
}

#[tokio::test]
async fn a_tab_inside_a_header_name_is_refused() {
    refused_at_head(
        format!("POST / HTTP/1.1\r\nHost: x\r\nContent\tLength: 35\r\n\r\n{SMUGGLED}").as_bytes(),
    )
    .await;
}

#[tokio::test]
async fn a_space_before_the_colon_is_refused() {
    refused_at_head(format!("GET / HTTP/1.1\r\nHost : x\r\n\r\n{SMUGGLED}").as_bytes()).await;
}

#[tokio::test]
async fn a_tab_before_the_colon_is_refused() {
    refused_at_head(
        format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length\t: 35\r\n\r\n{SMUGGLED}").as_bytes(),
    )
    .await;
}

// --- 9. Content-Length not a plain decimal ---

#[tokio::test]
async fn a_content_length_with_a_plus_sign_is_refused() {
    refused_at_head(&hello_then_smuggled("Content-Length: +5\r\n")).await;
}

#[tokio::test]
async fn a_content_length_with_a_fraction_is_refused() {
    refused_at_head(&hello_then_smuggled("Content-Length: 5.0\r\n")).await;
}

#[tokio::test]
async fn a_hexadecimal_content_length_is_refused() {
    refused_at_head(&hello_then_smuggled("Content-Length: 0x5\r\n")).await;
}

#[tokio::test]
async fn an_empty_content_length_is_refused() {
    refused_at_head(&hello_then_smuggled("Content-Length:\r\n")).await;
}

#[tokio::test]
async fn a_content_length_overflowing_u64_is_refused() {
    // 2^64 + 5: read with wrapping arithmetic, 5.
    refused_at_head(&hello_then_smuggled(
        "Content-Length: 18446744073709551621\r\n",
    ))
    .await;
}

// --- 10. Control characters ---

#[tokio::test]
async fn nul_in_a_header_value_is_refused() {
    refused_at_head(
        format!("GET / HTTP/1.1\r\nHost: x\r\nX-Note: a\0b\r\n\r\n{SMUGGLED}").as_bytes(),
    )
    .await;
}

#[tokio::test]
async fn other_control_characters_in_a_header_value_are_refused() {
    for c in ['\x01', '\x1b', '\x7f'] {
        refused_at_head(
            format!("GET / HTTP/1.1\r\nHost: x\r\nX-Note: a{c}b\r\n\r\n{SMUGGLED}").as_bytes(),
        )
        .await;
    }
}

#[tokio::test]
async fn nul_in_the_request_target_is_refused() {
    refused_at_head(format!("GET /a\0b HTTP/1.1\r\nHost: x\r\n\r\n{SMUGGLED}").as_bytes()).await;
}

#[tokio::test]
async fn other_control_characters_in_the_request_target_are_refused() {
    for c in ['\x01', '\x1b', '\x7f'] {
        refused_at_head(format!("GET /a{c}b HTTP/1.1\r\nHost: x\r\n\r\n{SMUGGLED}").as_bytes())
            .await;
    }
}

// --- The control: well-framed requests pass, whole ---

/// Sends a well-framed POST and a GET pipelined after it on one connection;
/// both are answered 200 and reach the upstream whole, the POST's body as
/// `body`.
async fn passes_whole(post: &[u8], body: &[u8]) {
    let (upstream, proxy) = start().await;
    let mut request = post.to_vec();
    request.extend_from_slice(b"GET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let answer = exchange(proxy.addr, &request).await;
    let received = upstream.received();
    let what = describe(&request, &answer, &received);
    let text = String::from_utf8_lossy(&answer.bytes);
    assert_eq!(answer.responses(), 2, "{what}");
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{what}");
    assert_eq!(text.matches("HTTP/1.1 200 OK\r\n").count(), 2, "{what}");
    assert_eq!(text.matches("\r\n\r\nok").count(), 2, "{what}");
    assert!(text.ends_with("\r\n\r\nok"), "{what}");
    assert_eq!(answer.end, End::Closed, "{what}");
    let requests = upstream.requests();
    assert_eq!(requests.len(), 2, "{what}");
    assert!(
        requests[0].starts_with(b"POST /post HTTP/1.1\r\n"),
        "{what}"
    );
    assert_eq!(body_of(&requests[0]), body, "{what}");
    assert!(requests[1].starts_with(b"GET /next HTTP/1.1\r\n"), "{what}");
    assert_eq!(body_of(&requests[1]), b"", "{what}");
}

#[tokio::test]
async fn a_chunked_post_and_a_get_after_it_reach_the_upstream_whole() {
    passes_whole(
        b"POST /post HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        b"hello world",
    )
    .await;
}

#[tokio::test]
async fn a_content_length_post_and_a_get_after_it_reach_the_upstream_whole() {
    passes_whole(
        b"POST /post HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world",
        b"hello world",
    )
    .await;
}
