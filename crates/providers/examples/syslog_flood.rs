//! The syslog receiver under a steady flood on loopback: sends HAProxy
//! request-log lines over UDP at a fixed rate for a fixed time to a real
//! [`SyslogReceiver`] and reports how many were recorded, dropped by reason,
//! or lost before the receiver read them. `bench/syslog/run.sh` runs it;
//! the results are in `bench/syslog/RESULTS.md`.
//!
//! ```sh
//! cargo run --release -p serin-providers --example syslog_flood -- 20000 10
//! ```

#![allow(clippy::print_stdout)] // A benchmark prints its report.

use serin_providers::SyslogReceiver;
use serin_spec::HaproxyServers;
use serin_stats::Recorder;
use std::{
    net::{SocketAddr, UdpSocket},
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

/// At most this many lines a second and this many seconds: the flood is
/// bounded whatever the arguments say.
const MAX_RATE: u64 = 1_000_000;
const MAX_SECONDS: u64 = 120;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let rate: u64 = args.next().map_or(Ok(20_000), |a| a.parse())?;
    let seconds: u64 = args.next().map_or(Ok(10), |a| a.parse())?;
    let (rate, seconds) = (rate.clamp(1, MAX_RATE), seconds.clamp(1, MAX_SECONDS));
    let recorder = Arc::new(Recorder::new(Duration::from_secs(60)));
    let servers = HaproxyServers {
        stable: "stable".into(),
        canary: "canary".into(),
    };
    let receiver = SyslogReceiver::bind(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        servers,
        recorder.clone(),
    )
    .await?;
    let target = receiver.local_addr();
    let counters = receiver.counters();
    let sender = std::thread::spawn(move || -> std::io::Result<(u64, Duration)> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.connect(target)?;
        let total = rate * seconds;
        let began = Instant::now();
        let mut sent = 0u64;
        // Paced by the millisecond: each tick sends what the rate allows
        // so far, so the flood is steady, not one burst.
        while sent < total {
            let due = (began.elapsed().as_micros() as u64 * rate / 1_000_000).min(total);
            while sent < due {
                let server = if sent.is_multiple_of(10) {
                    "canary"
                } else {
                    "stable"
                };
                let line = format!(
                    r#"<134>Nov 26 10:00:00 haproxy[42]: {{"ts":1764150000.{:03},"server":"{server}","status":200,"tr":{}}}"#,
                    sent % 1000,
                    sent % 50
                );
                socket.send(line.as_bytes())?;
                sent += 1;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok((sent, began.elapsed()))
    });
    let (sent, took) = tokio::task::spawn_blocking(move || sender.join())
        .await?
        .map_err(|_| "the sender panicked")??;
    // Let the receiver drain its socket (bounded).
    let mut last = u64::MAX;
    for _ in 0..50 {
        let now = counters.recorded.load(Ordering::Relaxed) + counters.dropped();
        if now == last {
            break;
        }
        last = now;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recorded = counters.recorded.load(Ordering::Relaxed);
    let dropped = counters.dropped();
    let lost = sent.saturating_sub(recorded + dropped);
    let totals = recorder.totals();
    println!(
        "sent {sent} lines in {:.2} s ({:.0} lines/s); recorded {recorded} (stable {}, canary {}); dropped {dropped}; lost before reading {lost} ({:.4} %)",
        took.as_secs_f64(),
        sent as f64 / took.as_secs_f64(),
        totals.stable.requests,
        totals.canary.requests,
        lost as f64 * 100.0 / sent.max(1) as f64,
    );
    receiver.stop().await;
    Ok(())
}
