//! HTTP/1.1 heads and chunked bodies as bytes: what the fast path reads
//! from clients and upstreams and writes on to the other side, with no
//! I/O. Parsing is `httparse`'s, plus what a proxy must add so that it and
//! the server behind it can never frame one message two ways (RFC 9112
//! §6.3, §11.2): one `Content-Length` of plain digits, `Transfer-Encoding`
//! only as a single final `chunked` and never beside a length or in
//! HTTP/1.0, CRLF line ends only (httparse takes a bare LF), strict chunk
//! sizes. A head is kept as offsets into the buffer it was read into, so
//! forwarding copies each header line once, into the head sent on.

use http::Method;
use std::ops::Range;

/// How a message's body is framed (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Until the connection closes (responses only).
    Close,
}

/// Why a head is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HeadError {
    /// Not a well-formed head, or one whose framing a peer could read
    /// another way: a request is answered 400, a response 502.
    #[error("malformed head: {0}")]
    Malformed(&'static str),
    /// More header lines than allowed (a request: 431).
    #[error("too many header lines")]
    TooManyLines,
}

/// The headers the proxy reads or rewrites; every other line is copied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Other,
    Host,
    ContentLength,
    TransferEncoding,
    Connection,
    KeepAlive,
    Te,
    Upgrade,
    /// `Proxy-*`: hop-by-hop, as nginx and hyper's path treat them.
    Proxy,
    Forwarded,
    XRealIp,
    XForwardedFor,
    XForwardedProto,
    XForwardedHost,
    Expect,
}

// === impl Kind ===

impl Kind {
    fn of(name: &[u8]) -> Kind {
        let is = |known: &str| name.eq_ignore_ascii_case(known.as_bytes());
        // By length first: most names are compared with nothing.
        match name.len() {
            2 if is("te") => Kind::Te,
            4 if is("host") => Kind::Host,
            6 if is("expect") => Kind::Expect,
            7 if is("upgrade") => Kind::Upgrade,
            9 if is("forwarded") => Kind::Forwarded,
            9 if is("x-real-ip") => Kind::XRealIp,
            10 if is("connection") => Kind::Connection,
            10 if is("keep-alive") => Kind::KeepAlive,
            14 if is("content-length") => Kind::ContentLength,
            15 if is("x-forwarded-for") => Kind::XForwardedFor,
            16 if is("x-forwarded-host") => Kind::XForwardedHost,
            17 if is("transfer-encoding") => Kind::TransferEncoding,
            17 if is("x-forwarded-proto") => Kind::XForwardedProto,
            _ if name.len() > 6 && name[..6].eq_ignore_ascii_case(b"proxy-") => Kind::Proxy,
            _ => Kind::Other,
        }
    }

    /// Headers of one connection, never forwarded (RFC 9110 §7.6.1).
    fn hop_by_hop(self) -> bool {
        matches!(
            self,
            Kind::Connection
                | Kind::KeepAlive
                | Kind::Te
                | Kind::TransferEncoding
                | Kind::Upgrade
                | Kind::Proxy
        )
    }
}

/// One header line, as offsets into the buffer its head was read into.
#[derive(Clone, Debug)]
pub(crate) struct Line {
    pub(crate) name: Range<usize>,
    pub(crate) value: Range<usize>,
    pub(crate) kind: Kind,
}

/// What `Connection` said, over all its lines.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Options {
    pub(crate) close: bool,
    pub(crate) keep_alive: bool,
    pub(crate) upgrade: bool,
    /// It names other headers, which go with it.
    pub(crate) lists_others: bool,
}

/// A request head, read whole.
#[derive(Debug)]
pub(crate) struct RequestHead {
    /// Bytes of the head, request line to the empty line included.
    pub(crate) len: usize,
    pub(crate) method: Method,
    pub(crate) target: Range<usize>,
    pub(crate) body: Framing,
    /// The `Content-Length` given, if any (written once upstream however
    /// many identical lines or list items carried it).
    pub(crate) length: Option<u64>,
    pub(crate) connection: Options,
    /// How many `Host` lines, and the value of the first.
    pub(crate) hosts: usize,
    pub(crate) host: Option<Range<usize>>,
    /// The client takes trailers (`TE: trailers`).
    pub(crate) te_trailers: bool,
    /// The client waits for `100 Continue` before sending its body.
    pub(crate) expect_continue: bool,
    /// Why hyper's path serves this request rather than the fast one, if
    /// it does: an upgrade, `Expect`, HTTP/1.0, a target other than a
    /// plain origin form, `CONNECT`.
    pub(crate) hand_off: Option<&'static str>,
}

/// A response head, read whole.
#[derive(Debug)]
pub(crate) struct ResponseHead {
    pub(crate) len: usize,
    pub(crate) status: u16,
    pub(crate) reason: Range<usize>,
    pub(crate) minor: u8,
    /// Framing as sent (before the request's method and the status are
    /// taken into account: see [`ResponseHead::framing`]).
    body: Framing,
    pub(crate) connection: Options,
}

/// Header lines parsed on the stack before falling back to the heap.
const STACK_LINES: usize = 48;

/// Parses a request head at the start of `buf`: `None` while incomplete.
/// `lines` is cleared and filled with its header lines.
pub(crate) fn parse_request(
    buf: &[u8],
    max_lines: usize,
    lines: &mut Vec<Line>,
) -> Result<Option<RequestHead>, HeadError> {
    with_lines(max_lines, |headers| {
        let mut req = httparse::Request::new(headers);
        match req.parse(buf).map_err(head_error)? {
            httparse::Status::Complete(len) => request_head(buf, &req, len, lines).map(Some),
            httparse::Status::Partial => Ok(None),
        }
    })
}

/// Parses a response head at the start of `buf`: `None` while incomplete.
pub(crate) fn parse_response(
    buf: &[u8],
    max_lines: usize,
    lines: &mut Vec<Line>,
) -> Result<Option<ResponseHead>, HeadError> {
    with_lines(max_lines, |headers| {
        let mut res = httparse::Response::new(headers);
        match res.parse(buf).map_err(head_error)? {
            httparse::Status::Complete(len) => response_head(buf, &res, len, lines).map(Some),
            httparse::Status::Partial => Ok(None),
        }
    })
}

/// Runs `parse` with room for [`STACK_LINES`] header lines on the stack,
/// and again with `max_lines` on the heap should those be too few.
fn with_lines<'b, T>(
    max_lines: usize,
    mut parse: impl FnMut(&mut [httparse::Header<'b>]) -> Result<Option<T>, HeadError>,
) -> Result<Option<T>, HeadError> {
    let mut stack = [httparse::EMPTY_HEADER; STACK_LINES];
    match parse(&mut stack) {
        Err(HeadError::TooManyLines) if max_lines > STACK_LINES => {
            let mut heap = vec![httparse::EMPTY_HEADER; max_lines];
            parse(&mut heap)
        }
        other => other,
    }
}

fn head_error(error: httparse::Error) -> HeadError {
    match error {
        httparse::Error::TooManyHeaders => HeadError::TooManyLines,
        error => HeadError::Malformed(describe(error)),
    }
}

fn describe(error: httparse::Error) -> &'static str {
    match error {
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Status => "invalid status",
        httparse::Error::Token => "invalid token",
        httparse::Error::TooManyHeaders => "too many headers",
        httparse::Error::Version => "invalid HTTP version",
    }
}

/// The offset of `part` within `buf` (httparse hands out slices of it).
fn offset(buf: &[u8], part: &[u8]) -> Range<usize> {
    let start = (part.as_ptr() as usize).saturating_sub(buf.as_ptr() as usize);
    start..start + part.len()
}

/// Whether every LF of the head ends a CRLF: httparse also ends lines at
/// a bare LF, which a server behind the proxy may read differently.
fn crlf_only(head: &[u8]) -> bool {
    let mut previous = 0u8;
    for &b in head {
        if b == b'\n' && previous != b'\r' {
            return false;
        }
        previous = b;
    }
    true
}

/// What the header lines say, gathered in one pass.
#[derive(Default)]
struct Seen {
    hosts: usize,
    host: Option<Range<usize>>,
    length: Option<u64>,
    lengths: usize,
    /// `Transfer-Encoding` lines, and whether they name exactly one
    /// `chunked` and nothing else.
    codings: usize,
    chunked_only: bool,
    connection: Options,
    te_trailers: bool,
    /// `Expect` lines, and whether they were all `100-continue`.
    expects: usize,
    continues: usize,
    upgrade: bool,
}

fn gather(
    buf: &[u8],
    headers: &[httparse::Header<'_>],
    lines: &mut Vec<Line>,
) -> Result<Seen, HeadError> {
    lines.clear();
    let mut seen = Seen::default();
    let mut chunked = 0usize;
    let mut other_codings = false;
    for header in headers {
        let kind = Kind::of(header.name.as_bytes());
        let value = header.value;
        match kind {
            Kind::Host => {
                seen.hosts += 1;
                if seen.host.is_none() {
                    seen.host = Some(offset(buf, value));
                }
            }
            Kind::ContentLength => {
                seen.lengths += 1;
                let length =
                    content_length(value).ok_or(HeadError::Malformed("invalid Content-Length"))?;
                if seen.length.is_some_and(|l| l != length) {
                    return Err(HeadError::Malformed("conflicting Content-Length"));
                }
                seen.length = Some(length);
            }
            Kind::TransferEncoding => {
                seen.codings += 1;
                for coding in value.split(|b| *b == b',') {
                    let coding = trim(coding);
                    if coding.eq_ignore_ascii_case(b"chunked") {
                        chunked += 1;
                    } else {
                        other_codings = true;
                    }
                }
            }
            Kind::Connection => {
                for option in value.split(|b| *b == b',') {
                    let option = trim(option);
                    if option.eq_ignore_ascii_case(b"close") {
                        seen.connection.close = true;
                    } else if option.eq_ignore_ascii_case(b"keep-alive") {
                        seen.connection.keep_alive = true;
                    } else if option.eq_ignore_ascii_case(b"upgrade") {
                        seen.connection.upgrade = true;
                    } else if !option.is_empty() && !Kind::of(option).hop_by_hop() {
                        seen.connection.lists_others = true;
                    }
                }
            }
            Kind::Te => {
                seen.te_trailers |= value.split(|b| *b == b',').any(|t| {
                    let t = t.split(|b| *b == b';').next().unwrap_or_default();
                    trim(t).eq_ignore_ascii_case(b"trailers")
                });
            }
            Kind::Expect => {
                seen.expects += 1;
                if trim(value).eq_ignore_ascii_case(b"100-continue") {
                    seen.continues += 1;
                }
            }
            Kind::Upgrade => seen.upgrade = true,
            _ => {}
        }
        lines.push(Line {
            name: offset(buf, header.name.as_bytes()),
            value: offset(buf, value),
            kind,
        });
    }
    seen.chunked_only = chunked == 1 && !other_codings;
    Ok(seen)
}

fn request_head(
    buf: &[u8],
    req: &httparse::Request<'_, '_>,
    len: usize,
    lines: &mut Vec<Line>,
) -> Result<RequestHead, HeadError> {
    let head = buf.get(..len).unwrap_or(buf);
    if !crlf_only(head) {
        return Err(HeadError::Malformed("bare LF"));
    }
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(HeadError::Malformed("incomplete request line"));
    };
    let method = Method::from_bytes(method.as_bytes())
        .map_err(|_| HeadError::Malformed("invalid method"))?;
    let seen = gather(buf, req.headers, lines)?;
    let body = if seen.codings > 0 {
        if seen.lengths > 0 {
            return Err(HeadError::Malformed(
                "Content-Length with Transfer-Encoding",
            ));
        }
        if minor == 0 {
            return Err(HeadError::Malformed("Transfer-Encoding in HTTP/1.0"));
        }
        if !seen.chunked_only {
            return Err(HeadError::Malformed("Transfer-Encoding other than chunked"));
        }
        Framing::Chunked
    } else {
        match seen.length {
            Some(0) | None => Framing::Empty,
            Some(n) => Framing::Length(n),
        }
    };
    let plain_target = target.as_bytes().first() == Some(&b'/')
        && target.bytes().all(|b| b.is_ascii_graphic() && b != b'#');
    let hand_off = if minor == 0 {
        Some("HTTP/1.0")
    } else if method == Method::CONNECT {
        Some("CONNECT")
    } else if !plain_target {
        Some("target not in origin form")
    } else if seen.expects != seen.continues {
        Some("Expect")
    } else if seen.upgrade && seen.connection.upgrade {
        Some("upgrade")
    } else {
        None
    };
    Ok(RequestHead {
        len,
        method,
        target: offset(buf, target.as_bytes()),
        body,
        length: seen.length,
        connection: seen.connection,
        hosts: seen.hosts,
        host: seen.host,
        te_trailers: seen.te_trailers,
        expect_continue: seen.continues > 0,
        hand_off,
    })
}

fn response_head(
    buf: &[u8],
    res: &httparse::Response<'_, '_>,
    len: usize,
    lines: &mut Vec<Line>,
) -> Result<ResponseHead, HeadError> {
    let (Some(status), Some(minor)) = (res.code, res.version) else {
        return Err(HeadError::Malformed("incomplete status line"));
    };
    let reason = res.reason.map_or(0..0, |r| offset(buf, r.as_bytes()));
    let seen = gather(buf, res.headers, lines)?;
    // RFC 9112 §6.3: a coding that does not end in chunked is read to
    // the close; chunked beside a length wins over it.
    let body = if seen.codings > 0 {
        if seen.chunked_only {
            Framing::Chunked
        } else {
            Framing::Close
        }
    } else {
        match seen.length {
            Some(0) => Framing::Empty,
            Some(n) => Framing::Length(n),
            None => Framing::Close,
        }
    };
    Ok(ResponseHead {
        len,
        status,
        reason,
        minor,
        body,
        connection: seen.connection,
    })
}

// === impl ResponseHead ===

impl ResponseHead {
    /// How the body of this answer to a `method` request is framed.
    pub(crate) fn framing(&self, method: &Method) -> Framing {
        if *method == Method::HEAD || self.status == 204 || self.status == 304 || self.status < 200
        {
            return Framing::Empty;
        }
        self.body
    }

    /// Whether the upstream keeps the connection open after this answer.
    pub(crate) fn keeps_alive(&self) -> bool {
        if self.connection.close {
            return false;
        }
        self.minor == 1 || self.connection.keep_alive
    }
}

/// A `Content-Length` value: digits only, or a list of one repeated value
/// (`5, 5`, which some senders write for merged lines).
fn content_length(value: &[u8]) -> Option<u64> {
    let mut length = None;
    for part in value.split(|b| *b == b',') {
        let part = trim(part);
        if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = part.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
        if length.is_some_and(|l| l != n) {
            return None;
        }
        length = Some(n);
    }
    length
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| *b != b' ' && *b != b'\t')
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| *b != b' ' && *b != b'\t')
        .map_or(start, |e| e + 1);
    bytes.get(start..end).unwrap_or_default()
}

/// The names a head's `Connection` lines list beyond its own options,
/// for the rare head that has any.
fn listed(buf: &[u8], lines: &[Line]) -> Vec<Range<usize>> {
    let mut names = Vec::new();
    for line in lines.iter().filter(|l| l.kind == Kind::Connection) {
        let value = buf.get(line.value.clone()).unwrap_or_default();
        let mut at = line.value.start;
        for option in value.split(|b| *b == b',') {
            let trimmed = trim(option);
            if !trimmed.is_empty() {
                let start = at + (trimmed.as_ptr() as usize - option.as_ptr() as usize);
                names.push(start..start + trimmed.len());
            }
            at += option.len() + 1;
        }
    }
    names
}

fn is_listed(buf: &[u8], listed: &[Range<usize>], name: &[u8]) -> bool {
    listed.iter().any(|r| {
        buf.get(r.clone())
            .is_some_and(|listed| listed.eq_ignore_ascii_case(name))
    })
}

/// Who sent a request, for the headers that tell the upstream.
pub(crate) struct Client<'a> {
    /// The peer's address as text.
    pub(crate) ip: &'a [u8],
    /// A proxy in `service.trustedProxies`: its `X-Forwarded-*` are kept.
    pub(crate) trusted: bool,
    /// It came over TLS.
    pub(crate) tls: bool,
}

/// Writes the head sent upstream for `head` (read into `buf`): the same
/// rewrite as [`crate::headers::to_upstream`] on hyper's path, line by
/// line. `base` is the upstream's base path, `host` its `Host`.
pub(crate) fn request_upstream(
    buf: &[u8],
    head: &RequestHead,
    lines: &[Line],
    client: &Client<'_>,
    base: Option<&str>,
    host: &[u8],
    out: &mut Vec<u8>,
) {
    let listed = if head.connection.lists_others {
        listed(buf, lines)
    } else {
        Vec::new()
    };
    let dropped = |line: &Line| {
        line.kind.hop_by_hop()
            || (!listed.is_empty()
                && is_listed(buf, &listed, buf.get(line.name.clone()).unwrap_or_default()))
    };
    out.extend_from_slice(head.method.as_str().as_bytes());
    out.push(b' ');
    if let Some(base) = base {
        out.extend_from_slice(base.as_bytes());
    }
    out.extend_from_slice(buf.get(head.target.clone()).unwrap_or(b"/"));
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(host);
    out.extend_from_slice(b"\r\n");
    let mut forwarded_for: Vec<Range<usize>> = Vec::new();
    let (mut has_proto, mut has_host) = (false, false);
    for line in lines {
        if dropped(line) {
            continue;
        }
        match line.kind {
            Kind::Host | Kind::ContentLength => continue,
            Kind::XForwardedFor => {
                if client.trusted {
                    forwarded_for.push(line.value.clone());
                }
                continue;
            }
            Kind::Forwarded | Kind::XRealIp if !client.trusted => continue,
            Kind::XForwardedProto | Kind::XForwardedHost if !client.trusted => continue,
            Kind::XForwardedProto => has_proto = true,
            Kind::XForwardedHost => has_host = true,
            _ => {}
        }
        out.extend_from_slice(buf.get(line.name.start..line.value.end).unwrap_or_default());
        out.extend_from_slice(b"\r\n");
    }
    if head.body == Framing::Chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    } else if let Some(length) = head.length {
        content_length_line(length, out);
    }
    if head.te_trailers {
        out.extend_from_slice(b"te: trailers\r\n");
    }
    out.extend_from_slice(b"x-forwarded-for: ");
    for value in &forwarded_for {
        out.extend_from_slice(buf.get(value.clone()).unwrap_or_default());
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(client.ip);
    out.extend_from_slice(b"\r\n");
    if !has_proto {
        out.extend_from_slice(if client.tls {
            b"x-forwarded-proto: https\r\n"
        } else {
            b"x-forwarded-proto: http\r\n"
        });
    }
    if !has_host && let Some(host) = &head.host {
        out.extend_from_slice(b"x-forwarded-host: ");
        out.extend_from_slice(buf.get(host.clone()).unwrap_or_default());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes the head sent to the client for an upstream's answer: its own
/// lines without the hop-by-hop ones, framed as `framing` (a body read to
/// the close is sent so too), `Connection: close` when the client's
/// connection ends after it, and the sticky-session cookie.
pub(crate) fn response_client(
    buf: &[u8],
    head: &ResponseHead,
    lines: &[Line],
    framing: Framing,
    close: bool,
    set_cookie: Option<&[u8]>,
    out: &mut Vec<u8>,
) {
    let listed = if head.connection.lists_others {
        listed(buf, lines)
    } else {
        Vec::new()
    };
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status_digits(head.status).as_slice());
    out.push(b' ');
    out.extend_from_slice(buf.get(head.reason.clone()).unwrap_or_default());
    out.extend_from_slice(b"\r\n");
    let mut length_lines = 0;
    for line in lines {
        if line.kind == Kind::ContentLength {
            // One line, whatever the answer repeated: the length framing
            // the body (written below), or the first as it came for an
            // answer without a body (a HEAD's, a 304's); none otherwise.
            length_lines += 1;
            if framing != Framing::Empty || length_lines > 1 {
                continue;
            }
        }
        if line.kind.hop_by_hop()
            || (!listed.is_empty()
                && is_listed(buf, &listed, buf.get(line.name.clone()).unwrap_or_default()))
        {
            continue;
        }
        out.extend_from_slice(buf.get(line.name.start..line.value.end).unwrap_or_default());
        out.extend_from_slice(b"\r\n");
    }
    match framing {
        Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Framing::Length(length) => content_length_line(length, out),
        Framing::Empty | Framing::Close => {}
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    if let Some(cookie) = set_cookie {
        out.extend_from_slice(b"set-cookie: ");
        out.extend_from_slice(cookie);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

fn content_length_line(length: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(b"content-length: ");
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = length;
    loop {
        at -= 1;
        // A digit: below 10.
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
    out.extend_from_slice(b"\r\n");
}

fn status_digits(status: u16) -> [u8; 3] {
    let status = status.clamp(100, 999);
    // Three digits: each below 10 by the clamp.
    [
        b'0' + (status / 100) as u8,
        b'0' + (status / 10 % 10) as u8,
        b'0' + (status % 10) as u8,
    ]
}

/// Writes a response the proxy makes itself (errors): plain text,
/// `connection: close` when the connection ends after it.
pub(crate) fn own_response(status: http::StatusCode, text: &str, close: bool, out: &mut Vec<u8>) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ");
    out.extend_from_slice(text.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(text.as_bytes());
}

/// Why a chunked body is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid chunked body: {0}")]
pub(crate) struct ChunkError(pub(crate) &'static str);

/// Follows a chunked body's framing over the bytes as they come, so they
/// can be passed on unchanged once checked: sizes of hex digits only (at
/// most [`MAX_SIZE_DIGITS`]), extensions and trailer lines of visible characters ended by
/// CRLF, each chunk's data followed by CRLF.
#[derive(Clone, Debug)]
pub(crate) struct Chunked {
    state: State,
    /// Data bytes so far (the body's decoded length).
    pub(crate) data: u64,
    /// Bytes of the current size line or trailer section, bounded.
    line: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// At the first digit of a chunk size.
    SizeStart,
    Size {
        size: u64,
        digits: u8,
    },
    /// After the size: whitespace or `;` extensions until CR.
    Extension {
        size: u64,
    },
    SizeLf {
        size: u64,
    },
    Data {
        left: u64,
    },
    DataCr,
    DataLf,
    /// At the start of a trailer line, or of the final empty line.
    TrailerStart,
    /// In a trailer field's name (a token), or after its colon.
    TrailerName,
    TrailerValue,
    TrailerLf,
    EndLf,
    Done,
}

/// Longest size line (extensions included) or trailer section accepted.
const MAX_LINE: usize = 8 * 1024;

/// Most hex digits of a chunk size: 15 (2^60 bytes) leaves no size that
/// one reader takes whole and another overflows on.
const MAX_SIZE_DIGITS: u8 = 15;

/// A token character (RFC 9110 §5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

// === impl Chunked ===

impl Chunked {
    pub(crate) fn new() -> Self {
        Chunked {
            state: State::SizeStart,
            data: 0,
            line: 0,
        }
    }

    /// Whether the body has ended (the last chunk and its trailers).
    pub(crate) fn done(&self) -> bool {
        self.state == State::Done
    }

    /// Checks the bytes of `buf` that belong to the body, and says how
    /// many that is (fewer than all only once the body has ended).
    pub(crate) fn scan(&mut self, buf: &[u8]) -> Result<usize, ChunkError> {
        let mut at = 0;
        while at < buf.len() && self.state != State::Done {
            if let State::Data { left } = self.state {
                let take = usize::try_from(left)
                    .unwrap_or(usize::MAX)
                    .min(buf.len() - at);
                at += take;
                let left = left - take as u64;
                self.state = if left == 0 {
                    State::DataCr
                } else {
                    State::Data { left }
                };
                continue;
            }
            let b = buf[at];
            at += 1;
            self.state = self.step(b)?;
        }
        Ok(at)
    }

    fn step(&mut self, b: u8) -> Result<State, ChunkError> {
        let line = |me: &mut Self| {
            me.line += 1;
            if me.line > MAX_LINE {
                Err(ChunkError("line too long"))
            } else {
                Ok(())
            }
        };
        Ok(match self.state {
            State::SizeStart => {
                self.line = 1;
                let digit = hex(b).ok_or(ChunkError("chunk size is not hex"))?;
                State::Size {
                    size: u64::from(digit),
                    digits: 1,
                }
            }
            State::Size { size, digits } => {
                line(self)?;
                match hex(b) {
                    Some(digit) => {
                        if digits >= MAX_SIZE_DIGITS {
                            return Err(ChunkError("chunk size too large"));
                        }
                        State::Size {
                            size: size << 4 | u64::from(digit),
                            digits: digits + 1,
                        }
                    }
                    None => self.after_size(size, b)?,
                }
            }
            State::Extension { size } => {
                line(self)?;
                self.after_size(size, b)?
            }
            State::SizeLf { size } => {
                if b != b'\n' {
                    return Err(ChunkError("CR without LF"));
                }
                if size == 0 {
                    self.line = 0;
                    State::TrailerStart
                } else {
                    self.data = self.data.saturating_add(size);
                    State::Data { left: size }
                }
            }
            // Data is taken in bulk by `scan`; one byte at a time is the same.
            State::Data { left } if left > 1 => State::Data { left: left - 1 },
            State::Data { .. } => State::DataCr,
            State::DataCr if b == b'\r' => State::DataLf,
            State::DataLf if b == b'\n' => State::SizeStart,
            State::DataCr | State::DataLf => {
                return Err(ChunkError("chunk data not followed by CRLF"));
            }
            State::TrailerStart if b == b'\r' => State::EndLf,
            State::TrailerStart | State::TrailerName => {
                line(self)?;
                match b {
                    b':' if self.state == State::TrailerName => State::TrailerValue,
                    _ if is_tchar(b) => State::TrailerName,
                    _ => return Err(ChunkError("invalid trailer field name")),
                }
            }
            State::TrailerValue => {
                line(self)?;
                match b {
                    b'\r' => State::TrailerLf,
                    b'\t' | b' '..=b'~' | 0x80..=0xff => State::TrailerValue,
                    _ => return Err(ChunkError("invalid trailer field value")),
                }
            }
            State::TrailerLf if b == b'\n' => State::TrailerStart,
            State::EndLf if b == b'\n' => State::Done,
            State::TrailerLf | State::EndLf => return Err(ChunkError("CR without LF")),
            State::Done => State::Done,
        })
    }

    /// A byte after a chunk size's digits: CR, or `;` and an extension
    /// of field characters, then CR. Nothing else, not even whitespace,
    /// may follow the digits: a server that skips it and one that does not
    /// would read different sizes.
    fn after_size(&self, size: u64, b: u8) -> Result<State, ChunkError> {
        match b {
            b'\r' => Ok(State::SizeLf { size }),
            b';' => Ok(State::Extension { size }),
            b'\t' | b' '..=b'~' | 0x80..=0xff if matches!(self.state, State::Extension { .. }) => {
                Ok(State::Extension { size })
            }
            _ => Err(ChunkError("invalid byte in chunk size line")),
        }
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
