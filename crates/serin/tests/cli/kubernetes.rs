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
