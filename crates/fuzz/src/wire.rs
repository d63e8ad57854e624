//! Strict HTTP/1.1 readers for the proxy target: what the upstream is
//! forwarded must be one unambiguous request per message (RFC 9112's rules
//! against request smuggling), and what the client is answered must be
//! well-formed responses.
//!
//! Strict on purpose: where RFC 9112 lets a recipient be lenient (bare LF
//! line ends, folded lines, repeated `Content-Length`), a proxy must not pass
//! the leniency on, so the upstream side refuses all of it.

/// A request read from the bytes an upstream was sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The method token.
    pub method: String,
    /// Bytes the whole message took, head and body.
    pub len: usize,
}

/// What the start of a buffer holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed<T> {
    /// A whole message.
    Complete(T),
    /// The start of one; more bytes are needed.
    Partial,
    /// Bytes no strict reader would accept; why.
    Invalid(String),
}

/// Longest head the readers wait for.
const MAX_HEAD: usize = 256 * 1024;

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A field value's bytes: visible characters, obs-text, space and tab.
fn is_field_byte(b: u8) -> bool {
    b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A head's lines: CRLF only, no bare CR or LF anywhere.
fn head_lines(head: &[u8]) -> Result<Vec<&[u8]>, String> {
    let mut lines = Vec::new();
    let mut rest = head;
    loop {
        let end = find(rest, b"\r\n").unwrap_or(rest.len());
        let line = &rest[..end];
        if let Some(at) = line.iter().position(|b| *b == b'\r' || *b == b'\n') {
            return Err(format!("bare CR or LF in {:?}", show(line, at)));
        }
        lines.push(line);
        if end == rest.len() {
            return Ok(lines);
        }
        rest = &rest[end + 2..];
    }
}

fn show(bytes: &[u8], around: usize) -> String {
    let from = around.saturating_sub(40);
    let to = (around + 40).min(bytes.len());
    String::from_utf8_lossy(&bytes[from..to]).into_owned()
}

/// Header fields of a head, strictly: `token ":" OWS value OWS`, no
/// folding, no space before the colon.
fn fields(lines: &[&[u8]]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut fields = Vec::with_capacity(lines.len());
    for line in lines {
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            return Err(format!(
                "obs-fold (a line starting with whitespace): {:?}",
                show(line, 0)
            ));
        }
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            return Err(format!(
                "a header line without a colon: {:?}",
                show(line, 0)
            ));
        };
        let name = &line[..colon];
        if name.is_empty() || !name.iter().all(|b| is_tchar(*b)) {
            return Err(format!("an invalid header name: {:?}", show(name, 0)));
        }
        let value = &line[colon + 1..];
        if let Some(at) = value.iter().position(|b| !is_field_byte(*b)) {
            return Err(format!(
                "a control character in the value of {}: {:?}",
                String::from_utf8_lossy(name),
                show(value, at)
            ));
        }
        let value = trim_ows(value);
        fields.push((
            String::from_utf8_lossy(name).to_ascii_lowercase(),
            value.to_vec(),
        ));
    }
    Ok(fields)
}

fn trim_ows(mut value: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = value {
        value = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = value {
        value = rest;
    }
    value
}

/// How a message's body is framed.
#[derive(Debug, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked,
    /// Responses only: until the connection closes.
    Close,
}

/// The framing its fields give a message, refusing every ambiguity:
/// several `Content-Length`s, one that is not digits, `Content-Length` with
/// `Transfer-Encoding`, or a `Transfer-Encoding` other than `chunked`.
fn framing(fields: &[(String, Vec<u8>)], request: bool) -> Result<Framing, String> {
    let lengths: Vec<&[u8]> = fields
        .iter()
        .filter(|(n, _)| n == "content-length")
        .map(|(_, v)| v.as_slice())
        .collect();
    let codings: Vec<&[u8]> = fields
        .iter()
        .filter(|(n, _)| n == "transfer-encoding")
        .map(|(_, v)| v.as_slice())
        .collect();
    if !lengths.is_empty() && !codings.is_empty() {
        return Err("Content-Length with Transfer-Encoding".into());
    }
    if lengths.len() > 1 {
        return Err(format!("{} Content-Length fields", lengths.len()));
    }
    if codings.len() > 1 {
        return Err(format!("{} Transfer-Encoding fields", codings.len()));
    }
    if let Some(coding) = codings.first() {
        if !coding.eq_ignore_ascii_case(b"chunked") {
            return Err(format!(
                "Transfer-Encoding {:?}, not chunked",
                String::from_utf8_lossy(coding)
            ));
        }
        return Ok(Framing::Chunked);
    }
    match lengths.first() {
        Some(length) => {
            // `1*DIGIT`: leading zeros are allowed, the value must fit.
            if length.is_empty() || !length.iter().all(u8::is_ascii_digit) {
                return Err(format!(
                    "Content-Length {:?}",
                    String::from_utf8_lossy(length)
                ));
            }
            let significant = std::str::from_utf8(length)
                .unwrap_or_default()
                .trim_start_matches('0');
            let n = match significant {
                "" => 0,
                digits => digits
                    .parse::<u64>()
                    .map_err(|_| "Content-Length out of range")?,
            };
            Ok(Framing::Length(n))
        }
        None if request => Ok(Framing::Length(0)),
        None => Ok(Framing::Close),
    }
}

/// A chunked body at the start of `buf`: its length.
fn chunked(buf: &[u8]) -> Parsed<usize> {
    let mut at = 0;
    loop {
        let Some(end) = find(&buf[at..], b"\r\n") else {
            if buf[at..].contains(&b'\n') || buf.len() - at > 1024 {
                return Parsed::Invalid(format!(
                    "a chunk-size line without CRLF: {:?}",
                    show(&buf[at..], 0)
                ));
            }
            return Parsed::Partial;
        };
        let line = &buf[at..at + end];
        let (size, ext) = match line.iter().position(|b| *b == b';') {
            Some(semi) => (&line[..semi], &line[semi..]),
            None => (line, &b""[..]),
        };
        if size.is_empty() || size.len() > 15 || !size.iter().all(u8::is_ascii_hexdigit) {
            return Parsed::Invalid(format!("chunk size {:?}", String::from_utf8_lossy(line)));
        }
        if ext.iter().any(|b| !is_field_byte(*b)) {
            return Parsed::Invalid("a control character in a chunk extension".into());
        }
        let Some(n) = std::str::from_utf8(size)
            .ok()
            .and_then(|s| usize::from_str_radix(s, 16).ok())
        else {
            return Parsed::Invalid("chunk size out of range".into());
        };
        at += end + 2;
        if n == 0 {
            // Trailer fields, then an empty line.
            let Some(end) = find(&buf[at..], b"\r\n\r\n")
                .map(|e| e + 4)
                .or_else(|| buf[at..].starts_with(b"\r\n").then_some(2))
            else {
                if buf.len() - at > MAX_HEAD {
                    return Parsed::Invalid("endless trailers".into());
                }
                return Parsed::Partial;
            };
            let trailer = &buf[at..at + end - 2];
            if !trailer.is_empty() {
                let trailer = &trailer[..trailer.len() - 2];
                if let Err(why) = head_lines(trailer).and_then(|lines| fields(&lines)) {
                    return Parsed::Invalid(format!("trailer: {why}"));
                }
            }
            return Parsed::Complete(at + end);
        }
        if buf.len() < at.saturating_add(n).saturating_add(2) {
            return Parsed::Partial;
        }
        if &buf[at + n..at + n + 2] != b"\r\n" {
            return Parsed::Invalid("chunk data not followed by CRLF".into());
        }
        at += n + 2;
    }
}

/// The head at the start of `buf`: its lines and length with the empty
/// line.
fn head(buf: &[u8]) -> Parsed<(Vec<&[u8]>, usize)> {
    let Some(end) = find(buf, b"\r\n\r\n") else {
        if buf.len() > MAX_HEAD {
            return Parsed::Invalid("endless head".into());
        }
        // A bare LF is refused as soon as it arrives.
        if let Some(at) = buf.iter().enumerate().position(|(i, b)| {
            (*b == b'\n' && (i == 0 || buf[i - 1] != b'\r'))
                || (*b == b'\r' && buf.get(i + 1).is_some_and(|n| *n != b'\n'))
        }) {
            return Parsed::Invalid(format!("bare CR or LF: {:?}", show(buf, at)));
        }
        return Parsed::Partial;
    };
    match head_lines(&buf[..end]) {
        Ok(lines) => Parsed::Complete((lines, end + 4)),
        Err(why) => Parsed::Invalid(why),
    }
}

/// The request at the start of `buf`, as an upstream must be able to read
/// it without guessing.
pub fn request(buf: &[u8]) -> Parsed<Request> {
    let (lines, head_len) = match head(buf) {
        Parsed::Complete(head) => head,
        Parsed::Partial => return Parsed::Partial,
        Parsed::Invalid(why) => return Parsed::Invalid(why),
    };
    let Some((line, rest)) = lines.split_first() else {
        return Parsed::Invalid("no request line".into());
    };
    let parts: Vec<&[u8]> = line.split(|b| *b == b' ').collect();
    let [method, target, version] = parts.as_slice() else {
        return Parsed::Invalid(format!("request line {:?}", show(line, 0)));
    };
    if method.is_empty() || !method.iter().all(|b| is_tchar(*b)) {
        return Parsed::Invalid(format!("method {:?}", show(method, 0)));
    }
    // Origin form (or `*`): what a proxy sends on, never empty; no space
    // or control character. Bytes past ASCII are let through, as hyper
    // and nginx take them (a UTF-8 path sent raw): they cannot end a
    // request line or a message early.
    let origin = target.starts_with(b"/") || *target == b"*";
    if !origin
        || !target
            .iter()
            .all(|b| (0x21..0x7f).contains(b) || *b >= 0x80)
    {
        return Parsed::Invalid(format!("request target {:?}", show(target, 0)));
    }
    if *version != b"HTTP/1.1" {
        return Parsed::Invalid(format!("version {:?}", show(version, 0)));
    }
    let fields = match fields(rest) {
        Ok(fields) => fields,
        Err(why) => return Parsed::Invalid(why),
    };
    let hosts = fields.iter().filter(|(n, _)| n == "host").count();
    if hosts != 1 {
        return Parsed::Invalid(format!("{hosts} Host fields"));
    }
    let body = match framing(&fields, true) {
        Ok(Framing::Length(n)) => {
            let Some(len) = usize::try_from(n)
                .ok()
                .and_then(|n| head_len.checked_add(n))
            else {
                return Parsed::Invalid("Content-Length out of range".into());
            };
            if buf.len() < len {
                return Parsed::Partial;
            }
            n as usize
        }
        Ok(Framing::Chunked) => match chunked(&buf[head_len..]) {
            Parsed::Complete(n) => n,
            Parsed::Partial => return Parsed::Partial,
            Parsed::Invalid(why) => return Parsed::Invalid(why),
        },
        Ok(Framing::Close) => unreachable!("requests are never close-delimited"),
        Err(why) => return Parsed::Invalid(why),
    };
    Parsed::Complete(Request {
        method: String::from_utf8_lossy(method).into_owned(),
        len: head_len + body,
    })
}

/// A response read from what a client was answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header fields, names in lower case.
    pub fields: Vec<(String, Vec<u8>)>,
}

impl Response {
    /// The first value of a field.
    pub fn field(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }
}

/// Every response in `buf`, all of it, as a client reads a connection to
/// its end. A response to `HEAD` has no body whatever its fields say; the
/// methods are not known here, so a response whose body would not be
/// followed by another response or the end is read as one without.
///
/// # Errors
///
/// Why the bytes are not a sequence of well-formed responses.
pub fn responses(buf: &[u8]) -> Result<Vec<Response>, String> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        let (response, lens) = response(&buf[at..])?;
        // Prefer the body the fields give; without one only when that does
        // not end where another response (or the connection) does.
        let next = lens
            .iter()
            .copied()
            .find(|len| {
                let rest = &buf[at + len..];
                rest.is_empty() || rest.starts_with(b"HTTP/1.")
            })
            .ok_or_else(|| {
                format!(
                    "response {} ({}) is followed by bytes that are no response: {:?}",
                    out.len() + 1,
                    response.status,
                    show(&buf[at..], 0)
                )
            })?;
        out.push(response);
        at += next;
    }
    Ok(out)
}

/// One response: it and the lengths it may take (with its body first, then
/// without, as an answer to `HEAD`).
fn response(buf: &[u8]) -> Result<(Response, Vec<usize>), String> {
    let (lines, head_len) = match head(buf) {
        Parsed::Complete(head) => head,
        Parsed::Partial => return Err(format!("a cut response head: {:?}", show(buf, 0))),
        Parsed::Invalid(why) => return Err(format!("response head: {why}")),
    };
    let Some((line, rest)) = lines.split_first() else {
        return Err("no status line".into());
    };
    let status = match line {
        [
            b'H',
            b'T',
            b'T',
            b'P',
            b'/',
            b'1',
            b'.',
            b'0' | b'1',
            b' ',
            d @ ..,
        ] if d.len() >= 4 && d[..3].iter().all(u8::is_ascii_digit) && d[3] == b' ' => {
            u16::from(d[0] - b'0') * 100 + u16::from(d[1] - b'0') * 10 + u16::from(d[2] - b'0')
        }
        _ => return Err(format!("status line {:?}", show(line, 0))),
    };
    if !(100..=599).contains(&status) {
        return Err(format!("status {status}"));
    }
    let fields = fields(rest).map_err(|why| format!("response {status}: {why}"))?;
    let response = Response { status, fields };
    if status < 200 || status == 204 || status == 304 {
        return Ok((response, vec![head_len]));
    }
    let with_body = match framing(&response.fields, false) {
        Ok(Framing::Length(n)) => {
            let len = usize::try_from(n)
                .ok()
                .and_then(|n| head_len.checked_add(n))
                .filter(|len| *len <= buf.len());
            match len {
                Some(len) => len,
                // Too short for its body: only a response to HEAD.
                None => return Ok((response, vec![head_len])),
            }
        }
        Ok(Framing::Chunked) => match chunked(&buf[head_len..]) {
            Parsed::Complete(n) => head_len + n,
            Parsed::Partial | Parsed::Invalid(_) => return Ok((response, vec![head_len])),
        },
        Ok(Framing::Close) => buf.len(),
        Err(why) => return Err(format!("response {status}: {why}")),
    };
    Ok((response, vec![with_body, head_len]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(bytes: &[u8]) -> bool {
        matches!(request(bytes), Parsed::Invalid(_))
    }

    #[test]
    fn requests_are_read_strictly() {
        let ok = b"GET / HTTP/1.1\r\nhost: a\r\n\r\n";
        assert_eq!(
            request(ok),
            Parsed::Complete(Request {
                method: "GET".into(),
                len: ok.len()
            })
        );
        assert_eq!(request(&ok[..10]), Parsed::Partial);
        let chunked = b"POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        assert!(matches!(request(chunked), Parsed::Complete(r) if r.len == chunked.len()));
        assert_eq!(request(&chunked[..chunked.len() - 1]), Parsed::Partial);
        assert!(invalid(b"GET / HTTP/1.1\nhost: a\r\n\r\n"));
        assert!(invalid(b"GET / HTTP/1.1\r\nhost: a\r\n x\r\n\r\n"));
        assert!(invalid(b"GET / HTTP/1.1\r\nhost : a\r\n\r\n"));
        assert!(invalid(
            b"GET / HTTP/1.1\r\nhost: a\r\ncontent-length: 1\r\ncontent-length: 1\r\n\r\nxx"
        ));
        assert!(invalid(
            b"GET / HTTP/1.1\r\nhost: a\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\n\r\n"
        ));
        assert!(invalid(
            b"GET / HTTP/1.1\r\nhost: a\r\ncontent-length: +1\r\n\r\nx"
        ));
        assert!(invalid(b"GET / HTTP/1.1\r\n\r\n"));
        assert!(invalid(
            b"POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n-1\r\n"
        ));
        assert!(invalid(
            b"POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabcd\r\n"
        ));
        assert!(invalid(b"GET / HTTP/1.1\r\nhost: a\nb\r\n\r\n"));
        assert!(invalid(b"GET  HTTP/1.1\r\nhost: a\r\n\r\n"));
        let zeros =
            b"PUT / HTTP/1.1\r\nhost: a\r\ncontent-length: 0000000000000000000000001\r\n\r\nx";
        assert!(matches!(request(zeros), Parsed::Complete(r) if r.len == zeros.len()));
        assert!(invalid(b"GET ?q HTTP/1.1\r\nhost: a\r\n\r\n"));
    }

    #[test]
    fn responses_are_read_whole() {
        let two = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
        let read = responses(two).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            read.iter().map(|r| r.status).collect::<Vec<_>>(),
            [200, 400]
        );
        // A response to HEAD: its length, no body.
        let head = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(responses(head).map(|r| r.len()), Ok(2));
        assert!(responses(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokx").is_err());
        assert!(responses(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(responses(b"garbage").is_err());
    }
}
