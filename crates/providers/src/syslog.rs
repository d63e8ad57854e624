//! HAProxy's request log as a traffic source: a UDP syslog receiver that
//! turns each log line into one request of the version whose server line
//! served it, recorded into the same per-version [`Recorder`] the built-in
//! proxy fills. So `request-success-rate`, `request-duration` and every
//! judge work unchanged behind HAProxy, without Prometheus.
//!
//! HAProxy sends RFC 3164 (`log ADDR local0`, its default) or RFC 5424
//! (`log ADDR format rfc5424 local0`) frames; the message is serin's log
//! format `{"ts":%Ts.%ms,"server":"%s","status":%ST,"tr":%Tr}`. A line that
//! is not that, or names another server, is counted by reason and dropped:
//! a log is input, and never stops a rollout.

use serin_spec::HaproxyServers;
use serin_stats::{Recorder, Version};
use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// The largest datagram read whole; serin's log line is under 200 bytes, so
/// a longer one is not ours (and is counted as `oversized`).
const MAX_DATAGRAM: usize = 8 * 1024;

/// Why a datagram was not recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Dropped {
    /// Not a syslog frame: no `<PRI>`, or an RFC 5424 header cut short.
    #[error("not a syslog frame")]
    Frame,
    /// A syslog frame whose message is not serin's JSON log format.
    #[error("message is not serin's log format")]
    Message,
    /// A request served by no server serin drives (`<NOSRV>`, another backend).
    #[error("server is neither the stable nor the canary server")]
    ForeignServer,
    /// A datagram larger than any line of serin's format.
    #[error("datagram too large")]
    Oversized,
}

/// What the receiver did with the datagrams it got, by reason. Monotonic.
#[derive(Debug, Default)]
pub struct LogCounters {
    /// Requests recorded, either version.
    pub recorded: AtomicU64,
    /// Dropped: not a syslog frame.
    pub bad_frame: AtomicU64,
    /// Dropped: not serin's log format.
    pub bad_message: AtomicU64,
    /// Dropped: another server.
    pub foreign_server: AtomicU64,
    /// Dropped: too large.
    pub oversized: AtomicU64,
}

// === impl LogCounters ===

impl LogCounters {
    fn count(&self, outcome: Result<(), Dropped>) {
        let counter = match outcome {
            Ok(()) => &self.recorded,
            Err(Dropped::Frame) => &self.bad_frame,
            Err(Dropped::Message) => &self.bad_message,
            Err(Dropped::ForeignServer) => &self.foreign_server,
            Err(Dropped::Oversized) => &self.oversized,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Every dropped datagram, all reasons.
    pub fn dropped(&self) -> u64 {
        [
            &self.bad_frame,
            &self.bad_message,
            &self.foreign_server,
            &self.oversized,
        ]
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .sum()
    }
}

/// One request as HAProxy logged it.
#[derive(Clone, Debug, PartialEq)]
pub struct LogLine {
    /// `%s`: the server that served it.
    pub server: String,
    /// `%ST`: the HTTP status sent to the client.
    pub status: u16,
    /// `%Tr`: milliseconds the server took to send its response head;
    /// `None` when HAProxy got none (`-1`).
    pub tr_ms: Option<u64>,
}

#[derive(serde::Deserialize)]
struct Message {
    #[allow(dead_code)] // Checked for presence: a line without it is not ours.
    ts: f64,
    server: String,
    status: i64,
    tr: i64,
}

/// The message of an RFC 3164 or RFC 5424 frame.
pub fn syslog_message(frame: &str) -> Result<&str, Dropped> {
    let rest = frame.strip_prefix('<').ok_or(Dropped::Frame)?;
    let (pri, rest) = rest.split_once('>').ok_or(Dropped::Frame)?;
    if pri.is_empty() || pri.len() > 3 || pri.parse::<u8>().map_or(true, |p| p > 191) {
        return Err(Dropped::Frame);
    }
    let message = match rest.strip_prefix("1 ") {
        Some(header) => rfc5424_message(header)?,
        // RFC 3164: `TIMESTAMP [HOST] TAG[PID]: MSG`; HAProxy omits the
        // host, relays add one. The tag ends at the first ": ".
        None => rest.split_once(": ").ok_or(Dropped::Frame)?.1,
    };
    Ok(message.trim_start_matches('\u{feff}').trim_end())
}

/// `TIMESTAMP HOST APP PROCID MSGID SD [MSG]` after `<PRI>1 `.
fn rfc5424_message(header: &str) -> Result<&str, Dropped> {
    let mut rest = header;
    for _ in 0..5 {
        rest = rest.split_once(' ').ok_or(Dropped::Frame)?.1;
    }
    if let Some(after) = rest.strip_prefix('-') {
        return Ok(after.strip_prefix(' ').unwrap_or(after));
    }
    // Structured data: `[id k="v" ...]` elements, `\]` and `\"` escaped.
    let bytes = rest.as_bytes();
    let mut index = 0;
    while bytes.get(index) == Some(&b'[') {
        let mut quoted = false;
        index += 1;
        loop {
            match bytes.get(index) {
                None => return Err(Dropped::Frame),
                Some(b'\\') => index += 1,
                Some(b'"') => quoted = !quoted,
                Some(b']') if !quoted => break,
                Some(_) => {}
            }
            index += 1;
        }
        index += 1;
    }
    if index == 0 {
        return Err(Dropped::Frame);
    }
    let after = rest.get(index..).ok_or(Dropped::Frame)?;
    Ok(after.strip_prefix(' ').unwrap_or(after))
}

/// One datagram as a request, if it is one of serin's log lines.
pub fn parse_datagram(datagram: &[u8]) -> Result<LogLine, Dropped> {
    let frame = std::str::from_utf8(datagram).map_err(|_| Dropped::Frame)?;
    parse_message(syslog_message(frame)?)
}

/// One HAProxy message (a frame's payload) as a request.
fn parse_message(message: &str) -> Result<LogLine, Dropped> {
    let message: Message = serde_json::from_str(message).map_err(|_| Dropped::Message)?;
    let status = u16::try_from(message.status)
        .ok()
        .filter(|s| (100..=599).contains(s))
        .ok_or(Dropped::Message)?;
    Ok(LogLine {
        server: message.server,
        status,
        tr_ms: u64::try_from(message.tr).ok(),
    })
}

/// One logged request, attributed to a version.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoggedRequest {
    /// The version that served it.
    pub version: Version,
    /// The HTTP status sent to the client.
    pub status: u16,
    /// How long it took.
    pub latency: Duration,
}

/// How the message of one syslog frame becomes one request of a version:
/// the balancer's log format, and how it names the versions.
pub trait LogFormat: Send + Sync + 'static {
    /// The request `message` logs, or why it is not one of serin's.
    fn request(&self, message: &str) -> Result<LoggedRequest, Dropped>;
}

/// HAProxy's lines (`{"ts":%Ts.%ms,"server":"%s","status":%ST,"tr":%Tr}`),
/// versions told apart by server line name.
#[derive(Clone, Debug)]
pub struct HaproxyFormat(pub HaproxyServers);

impl LogFormat for HaproxyFormat {
    fn request(&self, message: &str) -> Result<LoggedRequest, Dropped> {
        let line = parse_message(message)?;
        let version = if line.server == self.0.canary {
            Version::Canary
        } else if line.server == self.0.stable {
            Version::Stable
        } else {
            return Err(Dropped::ForeignServer);
        };
        Ok(LoggedRequest {
            version,
            status: line.status,
            latency: Duration::from_millis(line.tr_ms.unwrap_or(0)),
        })
    }
}

/// Receives a balancer's log on a UDP socket and records each request; stops
/// when dropped.
#[derive(Debug)]
pub struct SyslogReceiver {
    local_addr: SocketAddr,
    counters: Arc<LogCounters>,
    /// The receiving task (`None` once stopped).
    task: Option<tokio::task::JoinHandle<()>>,
}

// === impl SyslogReceiver ===

impl SyslogReceiver {
    /// Binds `addr` and records every line naming `servers.stable` or
    /// `servers.canary` into `recorder`.
    pub async fn bind(
        addr: SocketAddr,
        servers: HaproxyServers,
        recorder: Arc<Recorder>,
    ) -> std::io::Result<SyslogReceiver> {
        Self::bind_format(addr, Arc::new(HaproxyFormat(servers)), recorder).await
    }

    /// Binds `addr` and records every line `format` attributes to a version
    /// into `recorder`.
    pub async fn bind_format(
        addr: SocketAddr,
        format: Arc<dyn LogFormat>,
        recorder: Arc<Recorder>,
    ) -> std::io::Result<SyslogReceiver> {
        let socket = std::net::UdpSocket::bind(addr)?;
        socket.set_nonblocking(true)?;
        let socket = tokio::net::UdpSocket::from_std(socket)?;
        let local_addr = socket.local_addr()?;
        let counters = Arc::new(LogCounters::default());
        let task = tokio::spawn(receive(socket, format, recorder, counters.clone()));
        Ok(SyslogReceiver {
            local_addr,
            counters,
            task: Some(task),
        })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// What it recorded and dropped.
    pub fn counters(&self) -> Arc<LogCounters> {
        self.counters.clone()
    }

    /// Stops receiving and waits until the socket is closed, so the
    /// address can be bound again at once (dropping stops it too, the
    /// socket closing a moment later).
    pub async fn stop(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            // Cancelled (or, had it panicked, ended): either way the task's
            // socket is dropped once this returns.
            let _ = task.await;
        }
    }
}

impl Drop for SyslogReceiver {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

async fn receive(
    socket: tokio::net::UdpSocket,
    format: Arc<dyn LogFormat>,
    recorder: Arc<Recorder>,
    counters: Arc<LogCounters>,
) {
    // One fixed buffer: memory does not grow with traffic.
    let mut buffer = vec![0u8; MAX_DATAGRAM];
    loop {
        let length = match socket.recv(&mut buffer).await {
            Ok(length) => length,
            Err(error) => {
                // ICMP errors and the like: the socket stays usable.
                tracing::debug!(%error, "syslog socket");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let outcome = if length >= MAX_DATAGRAM {
            Err(Dropped::Oversized)
        } else {
            record(&buffer[..length], format.as_ref(), &recorder)
        };
        counters.count(outcome);
    }
}

/// Records one datagram into its version's statistics. The request counts
/// when its line arrives (HAProxy logs at the end of a request), as the
/// built-in proxy counts a request when its response ends.
fn record(datagram: &[u8], format: &dyn LogFormat, recorder: &Recorder) -> Result<(), Dropped> {
    let frame = std::str::from_utf8(datagram).map_err(|_| Dropped::Frame)?;
    let request = format.request(syslog_message(frame)?)?;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    recorder.record(request.version, now_ms, request.status, request.latency);
    Ok(())
}

#[cfg(test)]
mod garbage {
    //! The receiver's one rule under hostile input: whatever arrives, a
    //! datagram is recorded as exactly one request or dropped with a
    //! reason, never a panic; and only a whole line of serin's format is
    //! recorded.
    use super::*;
    use proptest::prelude::*;

    const LINE: &str = r#"<134>Nov 26 10:00:00 haproxy[1]: {"ts":1764150000.1,"server":"canary","status":200,"tr":5}"#;
    const NGINX: &str = r#"<190>Nov 26 10:00:00 web serin: {"ts":1764150000.123,"upstream":"127.0.0.1:9002","status":200,"request_time":0.005}"#;

    fn haproxy() -> HaproxyFormat {
        HaproxyFormat(HaproxyServers {
            stable: "stable".into(),
            canary: "canary".into(),
        })
    }

    fn nginx() -> crate::nginx::NginxFormat {
        let addrs = crate::desired::DesiredCell::new(crate::desired::Desired {
            stable: SocketAddr::from(([127, 0, 0, 1], 9001)),
            canary: Some(SocketAddr::from(([127, 0, 0, 1], 9002))),
            canary_weight: 50,
        });
        crate::nginx::NginxFormat(Arc::new(addrs))
    }

    /// Records `datagram` with both formats; checks that the recorder
    /// moved by one request exactly when the outcome is `Ok`.
    fn recorded_once_or_dropped(datagram: &[u8]) {
        let formats: [&dyn LogFormat; 2] = [&haproxy(), &nginx()];
        for format in formats {
            let recorder = Recorder::new(Duration::from_secs(60));
            let outcome = record(datagram, format, &recorder);
            let totals = recorder.totals();
            let requests = totals.stable.requests + totals.canary.requests;
            assert_eq!(requests, u64::from(outcome.is_ok()), "{outcome:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn arbitrary_bytes_are_recorded_once_or_dropped(bytes in proptest::collection::vec(any::<u8>(), 0..2_048)) {
            recorded_once_or_dropped(&bytes);
        }

        #[test]
        fn arbitrary_text_is_recorded_once_or_dropped(text in ".{0,512}") {
            recorded_once_or_dropped(text.as_bytes());
        }

        #[test]
        fn a_line_cut_short_is_never_recorded(line in prop::sample::select(vec![LINE, NGINX]), keep in 0usize..200) {
            let keep = keep.min(line.len() - 1);
            let recorder = Recorder::new(Duration::from_secs(60));
            let formats: [&dyn LogFormat; 2] = [&haproxy(), &nginx()];
            for format in formats {
                let cut = &line.as_bytes()[..keep];
                prop_assert!(record(cut, format, &recorder).is_err());
            }
            let totals = recorder.totals();
            prop_assert_eq!(totals.stable.requests + totals.canary.requests, 0);
        }

        #[test]
        fn a_line_with_bytes_flipped_is_recorded_once_or_dropped(
            line in prop::sample::select(vec![LINE, NGINX]),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        ) {
            let mut bytes = line.as_bytes().to_vec();
            for (at, byte) in flips {
                let at = at.index(bytes.len());
                bytes[at] = byte;
            }
            recorded_once_or_dropped(&bytes);
        }
    }

    #[test]
    fn the_whole_lines_are_recorded() {
        let recorder = Recorder::new(Duration::from_secs(60));
        assert_eq!(record(LINE.as_bytes(), &haproxy(), &recorder), Ok(()));
        assert_eq!(record(NGINX.as_bytes(), &nginx(), &recorder), Ok(()));
        assert_eq!(recorder.totals().canary.requests, 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: &str = r#"{"ts":1764150000.123,"server":"canary","status":503,"tr":12}"#;

    #[test]
    fn both_framings_carry_the_message() {
        let rfc3164 = format!("<134>Nov 26 10:00:00 haproxy[42]: {JSON}\n");
        let relayed = format!("<134>Nov 26 10:00:00 lb1 haproxy[42]: {JSON}");
        let rfc5424 = format!("<134>1 2025-11-26T10:00:00.123Z lb1 haproxy 42 - - {JSON}\n");
        let with_sd = format!(
            "<134>1 2025-11-26T10:00:00Z lb1 haproxy 42 - [x@1 a=\"b]\\\"c\"][y@1] \u{feff}{JSON}"
        );
        for frame in [rfc3164, relayed, rfc5424, with_sd] {
            assert_eq!(
                parse_datagram(frame.as_bytes()),
                Ok(LogLine {
                    server: "canary".into(),
                    status: 503,
                    tr_ms: Some(12)
                }),
                "{frame}"
            );
        }
    }

    #[test]
    fn malformed_lines_are_dropped_by_reason() {
        let cases: [(&[u8], Dropped); 7] = [
            (b"hello", Dropped::Frame),
            (b"<999>Nov 26 10:00:00 haproxy[1]: {}", Dropped::Frame),
            (b"<134>1 2025 host", Dropped::Frame),
            (b"<134>1 2025 h a p m [unclosed", Dropped::Frame),
            (b"\xff\xfe", Dropped::Frame),
            (b"<134>Nov 26 10:00:00 haproxy[1]: GET / 200", Dropped::Message),
            (
                br#"<134>Nov 26 10:00:00 haproxy[1]: {"ts":1.0,"server":"canary","status":-1,"tr":-1}"#,
                Dropped::Message,
            ),
        ];
        for (datagram, reason) in cases {
            assert_eq!(parse_datagram(datagram), Err(reason), "{datagram:?}");
        }
        let no_answer =
            br#"<134>Nov 26 10:00:00 haproxy[1]: {"ts":1.0,"server":"stable","status":503,"tr":-1}"#;
        assert_eq!(parse_datagram(no_answer).map(|l| l.tr_ms), Ok(None));
    }

    #[test]
    fn lines_are_recorded_for_the_server_they_name() {
        let servers = HaproxyServers {
            stable: "stable".into(),
            canary: "canary".into(),
        };
        let servers = HaproxyFormat(servers);
        let recorder = Recorder::new(Duration::from_secs(60));
        let line = |server: &str, status: u16| {
            format!(
                r#"<134>Nov 26 10:00:00 haproxy[1]: {{"ts":1.0,"server":"{server}","status":{status},"tr":5}}"#
            )
        };
        assert_eq!(
            record(line("canary", 500).as_bytes(), &servers, &recorder),
            Ok(())
        );
        assert_eq!(
            record(line("stable", 200).as_bytes(), &servers, &recorder),
            Ok(())
        );
        assert_eq!(
            record(line("<NOSRV>", 503).as_bytes(), &servers, &recorder),
            Err(Dropped::ForeignServer)
        );
        let totals = recorder.totals();
        assert_eq!(
            (
                totals.get(Version::Canary).requests,
                totals.get(Version::Canary).errors
            ),
            (1, 1)
        );
        assert_eq!(
            (
                totals.get(Version::Stable).requests,
                totals.get(Version::Stable).errors
            ),
            (1, 0)
        );
    }
}
