//! Webhooks over https: a real TLS receiver (Python's `http.server` wrapped
//! in `ssl`, with a certificate from a test CA), called with certificate
//! verification and, for Flagger's `disableTLS`, without.

use super::secured::certificates;
use serin_providers::HttpWebhooks;
use serin_rollout::{
    HookKind,
    ports::{HookContext, Webhooks},
};
use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
};

const SERVER: &str = r#"
import http.server, ssl
class Answer(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Answer)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain("server.crt", "server.key")
server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

/// A TLS receiver answering 200 to every POST, stopped on drop.
struct Receiver {
    child: Child,
    port: u16,
}

impl Receiver {
    fn start(dir: &Path) -> Receiver {
        let mut child = Command::new("python3")
            .args(["-c", SERVER])
            .current_dir(dir)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let port = line.trim().parse().expect("the receiver prints its port");
        Receiver { child, port }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn webhooks(port: u16, disable_tls: bool) -> std::sync::Arc<HttpWebhooks> {
    let yaml = format!(
        "apiVersion: serin.dev/v1alpha1
kind: Canary
metadata: {{name: shop}}
spec:
  provider: builtin
  service: {{listen: 127.0.0.1:8080}}
  upstreams: {{stable: http://127.0.0.1:9001}}
  analysis:
    interval: 1m
    stepWeight: 10
    webhooks:
    - name: acceptance
      type: pre-rollout
      url: https://127.0.0.1:{port}/
      timeout: 5s
      disableTLS: {disable_tls}
"
    );
    let documents = serin_spec::load_documents("shop.yaml", &yaml).unwrap();
    let canary = documents
        .into_iter()
        .find_map(|d| d.as_canary().cloned())
        .unwrap();
    HttpWebhooks::from_canary(&canary)
}

#[tokio::test]
async fn https_webhooks_verify_certificates_unless_disable_tls() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let receiver = Receiver::start(dir.path());
    let context = HookContext::default();

    // The test CA is not among Mozilla's roots: verification refuses it.
    let verified = webhooks(receiver.port, false)
        .hook(HookKind::PreRollout, &context)
        .await;
    assert!(!verified.ok);
    let error = verified.calls[0].error.clone().unwrap_or_default();
    assert!(error.to_lowercase().contains("certificate"), "{error}");

    // disableTLS: the same receiver is called and answers.
    let unverified = webhooks(receiver.port, true)
        .hook(HookKind::PreRollout, &context)
        .await;
    assert!(unverified.ok, "{:?}", unverified.calls);
    assert_eq!(unverified.calls[0].status, Some(200));
}
