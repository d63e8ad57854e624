//! A headless Chromium and a minimal DevTools-protocol client.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use serin_testkit::{free_port, http};
use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite::Message};

/// A headless Chromium, killed on drop.
pub struct Chromium {
    child: Child,
    _profile: tempfile::TempDir,
    port: u16,
}

impl Chromium {
    pub async fn start() -> Chromium {
        let binary = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .expect(
                "chromium is not installed: apt-get install -y chromium (scripts/test.sh does)",
            );
        let profile = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Command::new(binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--window-size=1280,1500",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!("--remote-debugging-port={port}"))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromium");
        Chromium {
            child,
            _profile: profile,
            port,
        }
    }

    /// Connects to the first page, waiting (bounded) for the browser to listen.
    pub async fn page(&self) -> Page {
        for _ in 0..150 {
            if let Some(list) = http::get(self.port, "/json/list").await
                && let Some(body) = list.split("\r\n\r\n").nth(1)
                && let Ok(targets) = serde_json::from_str::<Value>(body)
                && let Some(url) = targets.as_array().and_then(|targets| {
                    targets
                        .iter()
                        .find(|t| t["type"] == "page")
                        .and_then(|t| t["webSocketDebuggerUrl"].as_str())
                })
            {
                // Chromium names itself `localhost`, which may resolve to ::1
                // while it listens on 127.0.0.1.
                let url = url.replace("ws://localhost:", "ws://127.0.0.1:");
                let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
                return Page { ws, next_id: 0 };
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("chromium's DevTools endpoint did not come up within 30s");
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser tab.
pub struct Page {
    ws: WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>,
    next_id: u64,
}

impl Page {
    /// Calls a DevTools method and returns its result (events are skipped).
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let message = json!({"id": id, "method": method, "params": params}).to_string();
        self.ws.send(Message::Text(message.into())).await.unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(message) = self.ws.next().await {
                if let Ok(Message::Text(text)) = message
                    && let Ok(value) = serde_json::from_str::<Value>(&text)
                    && value["id"] == id
                {
                    return value;
                }
            }
            panic!("devtools connection closed");
        })
        .await
        .expect("devtools answer within 30s");
        assert!(answer.get("error").is_none(), "{method}: {answer}");
        answer["result"].clone()
    }

    /// Evaluates `expression` in the page and returns its value.
    pub async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        assert!(
            result.get("exceptionDetails").is_none(),
            "{expression}: {result}"
        );
        result["result"]["value"].clone()
    }

    /// Polls `expression` every 100 ms until `done` accepts its value, for at most `within`.
    pub async fn wait_for(
        &mut self,
        expression: &str,
        within: Duration,
        mut done: impl FnMut(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let value = self.eval(expression).await;
            if done(&value) {
                return value;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("{expression}: still {value} after {within:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A PNG of the page.
    pub async fn screenshot(&mut self) -> Vec<u8> {
        let result = self
            .call(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": true}),
            )
            .await;
        base64_decode(result["data"].as_str().unwrap())
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let digits: Vec<u32> = text.bytes().filter_map(value).collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, d)| n | d << (18 - 6 * i));
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..chunk.len().saturating_sub(1)]);
    }
    out
}
