use super::*;
use http::{HeaderMap, HeaderValue};

fn request(raw: &str) -> Result<Option<RequestHead>, HeadError> {
    let mut lines = Vec::new();
    parse_request(raw.as_bytes(), 100, &mut lines)
}

fn complete(raw: &str) -> RequestHead {
    match request(raw) {
        Ok(Some(head)) => head,
        other => panic!("{raw:?}: {other:?}"),
    }
}

fn malformed(raw: &str) {
    assert!(
        matches!(request(raw), Err(HeadError::Malformed(_))),
        "{raw:?} was not refused: {:?}",
        request(raw)
    );
}

#[test]
fn a_plain_request_is_read_in_place() {
    let raw = "GET /a?b HTTP/1.1\r\nHost: example\r\nAccept: */*\r\n\r\nnext";
    let head = complete(raw);
    assert_eq!(head.len, raw.len() - 4);
    assert_eq!(head.method, Method::GET);
    assert_eq!(&raw[head.target.clone()], "/a?b");
    assert_eq!(head.body, Framing::Empty);
    assert_eq!(head.hosts, 1);
    assert_eq!(head.host.map(|h| &raw[h]), Some("example"));
    assert!(head.hand_off.is_none());
    assert!(matches!(request("GET / HTTP/1.1\r\nHost: x\r\n"), Ok(None)));
}

#[test]
fn bodies_are_framed_by_one_length_or_chunked_alone() {
    let length = complete("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n");
    assert_eq!(length.body, Framing::Length(12));
    let same =
        complete("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5, 5\r\n\r\n");
    assert_eq!(same.body, Framing::Length(5));
    let chunked = complete("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n");
    assert_eq!(chunked.body, Framing::Chunked);
}

#[test]
fn every_ambiguous_framing_is_refused() {
    for raw in [
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 6\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x5\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
        "GET / HTTP/1.1\nHost: x\n\n",
        "GET / HTTP/1.1\r\nHost: x\nContent-Length: 5\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nContent Length: 5\r\n\r\n",
        "GET / HTTP/1.1\r\nHost : x\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\0y\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\ry\r\n\r\n",
    ] {
        malformed(raw);
    }
}

#[test]
fn what_hyper_serves_is_handed_on() {
    for (raw, why) in [
        (
            "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            "upgrade",
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nExpect: something\r\nContent-Length: 1\r\n\r\n",
            "Expect",
        ),
        ("GET / HTTP/1.0\r\n\r\n", "HTTP/1.0"),
        (
            "GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n",
            "target not in origin form",
        ),
        (
            "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
            "target not in origin form",
        ),
        ("CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n", "CONNECT"),
    ] {
        assert_eq!(complete(raw).hand_off, Some(why), "{raw:?}");
    }
    let continues =
        complete("POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n");
    assert!(continues.hand_off.is_none() && continues.expect_continue);
    // An `Upgrade` the client does not list in `Connection` is not asked
    // for: it is dropped as hop-by-hop, the request served here.
    assert_eq!(
        complete("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\n\r\n").hand_off,
        None
    );
}

#[test]
fn more_lines_than_allowed_are_too_many() {
    let mut raw = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
    for i in 0..150 {
        raw.push_str(&format!("x-{i}: 1\r\n"));
    }
    raw.push_str("\r\n");
    assert!(matches!(request(&raw), Err(HeadError::TooManyLines)));
    let mut lines = Vec::new();
    let head = parse_request(raw.as_bytes(), 2048, &mut lines);
    assert!(matches!(head, Ok(Some(_))));
    assert_eq!(lines.len(), 151);
}

/// Headers as a sorted list of lowercase names and values: what an
/// upstream reads, whatever the order of different names.
fn fields(pairs: impl Iterator<Item = (String, Vec<u8>)>) -> Vec<(String, Vec<u8>)> {
    let mut fields: Vec<_> = pairs.collect();
    // Values of one name keep their order (a stable sort by name).
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    fields
}

fn rewritten_here(raw: &str, trusted: bool, tls: bool) -> (String, Vec<(String, Vec<u8>)>) {
    let mut lines = Vec::new();
    let head = match parse_request(raw.as_bytes(), 100, &mut lines) {
        Ok(Some(head)) => head,
        other => panic!("{raw:?}: {other:?}"),
    };
    let mut out = Vec::new();
    let client = Client {
        ip: b"10.0.0.9",
        trusted,
        tls,
    };
    request_upstream(
        raw.as_bytes(),
        &head,
        &lines,
        &client,
        Some("/base"),
        b"up:81",
        &mut out,
    );
    let mut parsed = Vec::new();
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    assert!(
        matches!(req.parse(&out), Ok(httparse::Status::Complete(n)) if n == out.len()),
        "{:?}",
        String::from_utf8_lossy(&out)
    );
    for h in req.headers.iter() {
        parsed.push((h.name.to_ascii_lowercase(), h.value.to_vec()));
    }
    let line = format!("{} {}", req.method.unwrap_or(""), req.path.unwrap_or(""));
    (line, fields(parsed.into_iter()))
}

fn rewritten_by_hyper_path(raw: &str, trusted: bool, tls: bool) -> Vec<(String, Vec<u8>)> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    assert!(matches!(
        req.parse(raw.as_bytes()),
        Ok(httparse::Status::Complete(_))
    ));
    let mut map = HeaderMap::new();
    for h in req.headers.iter() {
        let name =
            http::HeaderName::from_bytes(h.name.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let value = HeaderValue::from_bytes(h.value).unwrap_or_else(|e| panic!("{e}"));
        map.append(name, value);
    }
    crate::headers::to_upstream(
        &mut map,
        &HeaderValue::from_static("10.0.0.9"),
        trusted,
        tls,
        None,
        &HeaderValue::from_static("up:81"),
    );
    fields(
        map.iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec())),
    )
}

#[test]
fn the_upstream_head_is_the_one_hypers_path_sends() {
    let heads = [
        "GET /a?b HTTP/1.1\r\nHost: front\r\nAccept: */*\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: front\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: front\r\nX-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: a.example\r\nForwarded: for=1.1.1.1\r\nX-Real-IP: 1.1.1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: front\r\nTE: trailers, deflate;q=0.5\r\nProxy-Authorization: x\r\nProxy-Foo: y\r\nUpgrade: h2c\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: front\r\nTE: deflate\r\nConnection: close\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: front\r\nConnection: x-forwarded-for\r\nX-Forwarded-For: 3.3.3.3\r\n\r\n",
        "POST /p HTTP/1.1\r\nHost: front:8080\r\nContent-Length: 3\r\nContent-Type: text/plain\r\n\r\n",
    ];
    for raw in heads {
        for trusted in [false, true] {
            for tls in [false, true] {
                let (line, here) = rewritten_here(raw, trusted, tls);
                let target =
                    &raw[raw.find(' ').map_or(0, |i| i + 1)..raw.find(" HTTP/").unwrap_or(0)];
                assert_eq!(
                    line,
                    format!("{} /base{target}", &raw[..raw.find(' ').unwrap_or(0)])
                );
                assert_eq!(
                    here,
                    rewritten_by_hyper_path(raw, trusted, tls),
                    "{raw:?} trusted {trusted} tls {tls}"
                );
            }
        }
    }
}

#[test]
fn a_length_goes_up_once() {
    let (_, here) = rewritten_here(
        "POST / HTTP/1.1\r\nHost: front\r\nContent-Length: 3\r\nContent-Length: 3, 3\r\n\r\n",
        false,
        false,
    );
    let lengths: Vec<_> = here.iter().filter(|(n, _)| n == "content-length").collect();
    assert_eq!(lengths, [&("content-length".to_owned(), b"3".to_vec())]);
    let raw =
        "HTTP/1.1 200 OK\r\nContent-Length: 12345678901\r\nContent-Length: 12345678901\r\n\r\n";
    let (head, lines) = response(raw);
    let mut out = Vec::new();
    let framing = head.framing(&Method::GET);
    response_client(
        raw.as_bytes(),
        &head,
        &lines,
        framing,
        false,
        None,
        &mut out,
    );
    assert_eq!(
        String::from_utf8_lossy(&out),
        "HTTP/1.1 200 OK\r\ncontent-length: 12345678901\r\n\r\n"
    );
    let (head, lines) =
        response("HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\n");
    out.clear();
    let raw = "HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\n";
    response_client(
        raw.as_bytes(),
        &head,
        &lines,
        Framing::Empty,
        false,
        None,
        &mut out,
    );
    assert_eq!(
        String::from_utf8_lossy(&out),
        "HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n"
    );
}

#[test]
fn a_chunked_request_goes_up_chunked() {
    let (_, here) = rewritten_here(
        "POST / HTTP/1.1\r\nHost: front\r\nTransfer-Encoding: chunked\r\n\r\n",
        false,
        false,
    );
    assert!(here.contains(&("transfer-encoding".to_owned(), b"chunked".to_vec())));
}

fn response(raw: &str) -> (ResponseHead, Vec<Line>) {
    let mut lines = Vec::new();
    match parse_response(raw.as_bytes(), 100, &mut lines) {
        Ok(Some(head)) => (head, lines),
        other => panic!("{raw:?}: {other:?}"),
    }
}

#[test]
fn answers_are_framed_by_method_status_and_headers() {
    let (ok, _) = response("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n");
    assert_eq!(ok.framing(&Method::GET), Framing::Length(2));
    assert_eq!(ok.framing(&Method::HEAD), Framing::Empty);
    assert!(ok.keeps_alive());
    let (chunked, _) =
        response("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(chunked.framing(&Method::GET), Framing::Chunked);
    let (gzip, _) = response("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n");
    assert_eq!(gzip.framing(&Method::GET), Framing::Close);
    let (none, _) = response("HTTP/1.1 200 OK\r\n\r\n");
    assert_eq!(none.framing(&Method::GET), Framing::Close);
    let (empty, _) = response("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n");
    assert_eq!(empty.framing(&Method::GET), Framing::Empty);
    let (old, _) = response("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
    assert!(!old.keeps_alive());
    let (closing, _) =
        response("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
    assert!(!closing.keeps_alive());
    let mut lines = Vec::new();
    assert!(
        parse_response(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            100,
            &mut lines
        )
        .is_err()
    );
}

#[test]
fn the_client_gets_the_answer_without_hop_by_hop_headers() {
    let raw = "HTTP/1.1 200 Fine\r\nContent-Length: 5\r\nConnection: keep-alive, X-Internal\r\nX-Internal: 1\r\nKeep-Alive: timeout=5\r\nTrailer: grpc-status\r\nX-App: a\r\n\r\n";
    let (head, lines) = response(raw);
    let mut out = Vec::new();
    response_client(
        raw.as_bytes(),
        &head,
        &lines,
        Framing::Length(5),
        false,
        Some(b"c=1"),
        &mut out,
    );
    assert_eq!(
        String::from_utf8_lossy(&out),
        "HTTP/1.1 200 Fine\r\nTrailer: grpc-status\r\nX-App: a\r\ncontent-length: 5\r\nset-cookie: c=1\r\n\r\n"
    );
    let raw = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n";
    let (head, lines) = response(raw);
    out.clear();
    response_client(
        raw.as_bytes(),
        &head,
        &lines,
        Framing::Chunked,
        true,
        None,
        &mut out,
    );
    assert_eq!(
        String::from_utf8_lossy(&out),
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    );
}

fn scan_all(body: &[u8]) -> Result<(usize, bool, u64), ChunkError> {
    let mut chunked = Chunked::new();
    let used = chunked.scan(body)?;
    Ok((used, chunked.done(), chunked.data))
}

#[test]
fn chunked_bodies_end_where_their_last_chunk_says() {
    let body = b"5;ext=1\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\nx-sum: 9\r\n\r\nGET /next";
    assert_eq!(scan_all(body), Ok((body.len() - 9, true, 21)));
    // Byte by byte, the same.
    let mut chunked = Chunked::new();
    let mut used = 0;
    for b in body.iter() {
        used += chunked
            .scan(std::slice::from_ref(b))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(used, body.len() - 9);
    assert!(chunked.done());
    assert_eq!(scan_all(b"3\r\nab"), Ok((5, false, 3)));
}

#[test]
fn bad_chunk_framing_is_refused() {
    for body in [
        &b"zz\r\n"[..],
        b"-1\r\n",
        b"0x5\r\nhello\r\n0\r\n\r\n",
        b"1000000000000000\r\n",
        b"5 \r\nhello\r\n0\r\n\r\n",
        b"5\nhello\r\n0\r\n\r\n",
        b"5\r\nhelloX\r\n0\r\n\r\n",
        b"5\r\nhello\n0\r\n\r\n",
        b"\r\n",
        b"5;a\x01\r\n",
        b"0\r\nbad trailer\r\n\r\n",
        b"0\r\nx: \x01\r\n\r\n",
        b"0\r\n\n",
    ] {
        assert!(
            scan_all(body).is_err(),
            "{:?}",
            String::from_utf8_lossy(body)
        );
    }
    // Fifteen digits are accepted (a size no reader overflows on).
    assert!(scan_all(b"00000000000000f\r\n").is_ok());
}

#[test]
fn own_answers_are_complete_responses() {
    let mut out = Vec::new();
    own_response(
        http::StatusCode::BAD_GATEWAY,
        "upstream unavailable\n",
        true,
        &mut out,
    );
    assert_eq!(
        String::from_utf8_lossy(&out),
        "HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 21\r\nconnection: close\r\n\r\nupstream unavailable\n"
    );
}
