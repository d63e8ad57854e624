//! `serin status --kubernetes` against a loopback stand-in for the API
//! server, reached through a kubeconfig as a user's would be.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpListener,
    thread,
};

use crate::support::{output, serin, stdout};

const CANARY: &str = r#"{"apiVersion":"flagger.app/v1beta1","kind":"Canary","metadata":{"name":"podinfo","namespace":"test","annotations":{"serin.dev/analysis":"{\"revision\":\"5f7c9d8b6\",\"observedUntil\":1796039999000,\"weight\":20,\"evidence\":\"{}\",\"decision\":{\"verdict\":\"hold\",\"at_ms\":1796040000000,\"metrics\":[{\"name\":\"request-success-rate\",\"status\":\"inconclusive\",\"canary\":99.2,\"stable\":99.9,\"canary_requests\":412,\"stable_requests\":1650,\"range\":[99.0,null],\"interval\":{\"low\":98.5,\"high\":99.9},\"margin\":null,\"e_value\":2.5,\"p_value\":null,\"reason\":\"request-success-rate canary 99.2 %\"}],\"reasons\":[\"holding\"]}}"}},"spec":{},"status":{"phase":"Progressing","canaryWeight":20,"failedChecks":0,"iterations":0,"lastAppliedSpec":"5f7c9d8b6"}}"#;

const NOT_FOUND: &str = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","reason":"NotFound","code":404}"#;

/// Answers `requests` requests: the flagger.app canary, 404 for the rest.
fn api_server(requests: usize) -> (String, thread::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handle = thread::spawn(move || {
        let mut seen = Vec::new();
        for _ in 0..requests {
            let (mut stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let path = line
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_string();
            // The rest of the head (a GET has no body).
            let mut header = String::new();
            while reader.read_line(&mut header).unwrap_or(0) > 2 {
                header.clear();
            }
            let (status, body) =
                if path == "/apis/flagger.app/v1beta1/namespaces/test/canaries/podinfo" {
                    ("200 OK", CANARY)
                } else {
                    ("404 Not Found", NOT_FOUND)
                };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.flush();
            let mut rest = [0u8; 16];
            let _ = stream.read(&mut rest);
            seen.push(path);
        }
        seen
    });
    (url, handle)
}

#[test]
fn status_reads_the_canary_and_serins_evidence_from_the_cluster() {
    let (url, server) = api_server(2);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("config");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: '{url}'}}\nusers:\n- name: u\n  user: {{}}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u, namespace: default}}\ncurrent-context: x\n"
        ),
    )
    .unwrap();
    let out = output(
        serin()
            .env("KUBECONFIG", &kubeconfig)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .args([
                "status",
                "podinfo",
                "--kubernetes",
                "--namespace",
                "test",
                "--json",
            ]),
    );
    assert!(out.status.success(), "{out:?}");
    let shown: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(shown["name"], "podinfo");
    assert_eq!(shown["phase"], "Progressing");
    assert_eq!(shown["canaryWeight"], 20);
    assert_eq!(shown["failedChecks"], 0);
    assert_eq!(shown["iterations"], 0);
    let metric = &shown["analysis"]["decision"]["metrics"][0];
    assert_eq!(metric["canary"], 99.2);
    assert_eq!(metric["interval"]["low"], 98.5);
    assert_eq!(metric["e_value"], 2.5);
    assert_eq!(shown["analysis"]["current"], true);
    assert_eq!(
        server.join().unwrap(),
        [
            "/apis/flagger.app/v1beta1/namespaces/test/canaries/podinfo",
            "/apis/serin.dev/v1alpha1/namespaces/test/canaries/podinfo"
        ]
    );
}

#[test]
fn status_kubernetes_refuses_wait_and_names_a_missing_cluster() {
    let out = output(serin().args(["status", "podinfo", "--kubernetes", "--wait"]));
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let dir = tempfile::tempdir().unwrap();
    let out = output(
        serin()
            .env("KUBECONFIG", dir.path().join("absent"))
            .env("HOME", dir.path())
            .env_remove("KUBERNETES_SERVICE_HOST")
            .args(["status", "--kubernetes"]),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no Kubernetes API"), "{stderr}");
}

/// One request as the server saw it: method, path and body.
type Seen = (String, String, String);

/// Answers one request per entry of `answers` in order (status line and
/// body); returns what each request was.
fn recording_api_server(
    answers: Vec<(&'static str, &'static str)>,
) -> (String, thread::JoinHandle<Vec<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handle = thread::spawn(move || {
        let mut seen = Vec::new();
        for (status, body) in answers {
            let (mut stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let mut words = line.split_whitespace();
            let method = words.next().unwrap_or_default().to_string();
            let path = words.next().unwrap_or_default().to_string();
            let mut length = 0usize;
            let mut header = String::new();
            while reader.read_line(&mut header).unwrap_or(0) > 2 {
                if let Some((name, value)) = header.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap_or(0);
                }
                header.clear();
            }
            // Bounded: a merge patch of one annotation.
            let mut request_body = vec![0u8; length.min(64 * 1024)];
            reader.read_exact(&mut request_body).unwrap();
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.flush();
            seen.push((
                method,
                path,
                String::from_utf8_lossy(&request_body).into_owned(),
            ));
        }
        seen
    });
    (url, handle)
}

/// `serin pause|resume|promote|abort --kubernetes` write the request as an
/// annotation on the Canary (a merge patch), in Flagger's group or else
/// serin's, for `serin controller` to carry out.
#[test]
fn manual_actions_annotate_the_canary_in_the_cluster() {
    for (verb, annotations) in [
        ("pause", r#"{"serin.dev/paused":"true"}"#),
        ("resume", r#"{"serin.dev/paused":null}"#),
        ("promote", r#"{"serin.dev/action":"promote"}"#),
        ("abort", r#"{"serin.dev/action":"abort"}"#),
    ] {
        let (url, server) =
            recording_api_server(vec![("404 Not Found", NOT_FOUND), ("200 OK", CANARY)]);
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("config");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: '{url}'}}\nusers:\n- name: u\n  user: {{}}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u, namespace: test}}\ncurrent-context: x\n"
            ),
        )
        .unwrap();
        let out = output(
            serin()
                .env("KUBECONFIG", &kubeconfig)
                .env_remove("KUBERNETES_SERVICE_HOST")
                .args([verb, "podinfo", "--kubernetes"]),
        );
        assert!(out.status.success(), "{verb}: {out:?}");
        assert!(
            stdout(&out).starts_with("podinfo.test: "),
            "{}",
            stdout(&out)
        );
        let seen = server.join().unwrap();
        let body = format!(r#"{{"metadata":{{"annotations":{annotations}}}}}"#);
        assert_eq!(
            seen,
            [
                (
                    "PATCH".to_string(),
                    "/apis/flagger.app/v1beta1/namespaces/test/canaries/podinfo?".to_string(),
                    body.clone()
                ),
                (
                    "PATCH".to_string(),
                    "/apis/serin.dev/v1alpha1/namespaces/test/canaries/podinfo?".to_string(),
                    body
                ),
            ],
            "{verb}"
        );
    }
}
