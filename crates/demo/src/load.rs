//! A bounded HTTP load generator: a rate, a duration, a concurrency, and a
//! hard cap on each, so a load loop can never run away.

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

/// The most concurrent workers a load run may use.
pub const MAX_CONCURRENCY: usize = 1_000;
/// The longest a load run may last.
pub const MAX_DURATION: Duration = Duration::from_secs(3_600);
/// The highest request rate a load run may ask for.
pub const MAX_RATE: f64 = 100_000.0;

/// What to send, how fast and for how long.
#[derive(Clone, Debug)]
pub struct LoadSpec {
    /// Target URL (`http://` only).
    pub url: Uri,
    /// Requests per second across all workers; `None` sends as fast as answers come.
    pub rate: Option<f64>,
    /// How long to send for.
    pub duration: Duration,
    /// Concurrent workers.
    pub concurrency: usize,
    /// Headers added to every request.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Stop after this many requests even if time remains.
    pub max_requests: Option<u64>,
    /// Per-request timeout.
    pub timeout: Duration,
}

/// Why a load run could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The URL is not an absolute `http://` URL.
    #[error("url {0}: must be an absolute http:// URL")]
    Url(String),
    /// A bound was exceeded or zero.
    #[error("{field}: {message}")]
    Bound {
        /// The offending setting.
        field: &'static str,
        /// What is allowed.
        message: String,
    },
}

/// What a load run saw.
#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    /// Requests that got an answer or failed.
    pub requests: u64,
    /// Answers with a 5xx status plus transport failures and timeouts.
    pub errors: u64,
    /// Transport failures and timeouts (no status).
    pub transport_errors: u64,
    /// Latency of answered requests.
    pub latency: serin_stats::LatencyHistogram,
    /// Wall time the run took.
    pub elapsed: Duration,
}

// === impl LoadSpec ===

impl LoadSpec {
    /// A spec with sane defaults: 2 workers, 5 s timeout, no headers.
    pub fn new(url: Uri, rate: Option<f64>, duration: Duration) -> Self {
        LoadSpec {
            url,
            rate,
            duration,
            concurrency: 2,
            headers: Vec::new(),
            max_requests: None,
            timeout: Duration::from_secs(5),
        }
    }

    /// Refuses specs outside the hard bounds.
    pub fn check(&self) -> Result<(), LoadError> {
        if self.url.scheme_str() != Some("http") || self.url.host().is_none() {
            return Err(LoadError::Url(self.url.to_string()));
        }
        if self.concurrency == 0 || self.concurrency > MAX_CONCURRENCY {
            return Err(LoadError::Bound {
                field: "concurrency",
                message: format!(
                    "must be between 1 and {MAX_CONCURRENCY}, got {}",
                    self.concurrency
                ),
            });
        }
        if self.duration.is_zero() || self.duration > MAX_DURATION {
            return Err(LoadError::Bound {
                field: "duration",
                message: format!(
                    "must be between 1ms and {}s, got {:?}",
                    MAX_DURATION.as_secs(),
                    self.duration
                ),
            });
        }
        if let Some(rate) = self.rate
            && !(rate > 0.0 && rate <= MAX_RATE)
        {
            return Err(LoadError::Bound {
                field: "rate",
                message: format!("must be above 0 and at most {MAX_RATE}, got {rate}"),
            });
        }
        if self.timeout.is_zero() {
            return Err(LoadError::Bound {
                field: "timeout",
                message: "must be above zero".into(),
            });
        }
        Ok(())
    }
}

// === impl LoadReport ===

impl LoadReport {
    /// Requests per second achieved.
    pub fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.requests as f64 / secs
        } else {
            0.0
        }
    }

    fn merge(&mut self, other: &LoadReport) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.transport_errors += other.transport_errors;
        self.latency.merge(&other.latency);
    }
}

/// Runs the load until the duration or request cap is reached.
pub async fn run(spec: LoadSpec) -> Result<LoadReport, LoadError> {
    spec.check()?;
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build_http();
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + spec.duration;
    let sent = Arc::new(AtomicU64::new(0));
    let spec = Arc::new(spec);
    let mut workers = Vec::with_capacity(spec.concurrency);
    for worker in 0..spec.concurrency {
        let (client, spec, sent) = (client.clone(), spec.clone(), sent.clone());
        workers.push(tokio::spawn(async move {
            work(worker, client, spec, sent, deadline).await
        }));
    }
    let mut report = LoadReport::default();
    for worker in workers {
        // A worker only ends by returning its report; a join error means it
        // panicked, which the other workers' reports must survive.
        if let Ok(part) = worker.await {
            report.merge(&part);
        }
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

async fn work(
    worker: usize,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
    spec: Arc<LoadSpec>,
    sent: Arc<AtomicU64>,
    deadline: tokio::time::Instant,
) -> LoadReport {
    let mut report = LoadReport::default();
    // Each worker sends rate / concurrency requests per second, staggered so
    // workers do not fire in lockstep.
    let mut ticker = spec.rate.map(|rate| {
        let period = Duration::from_secs_f64(spec.concurrency as f64 / rate);
        let offset = period.mul_f64(worker as f64 / spec.concurrency as f64);
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker
    });
    loop {
        if let Some(ticker) = ticker.as_mut() {
            tokio::select! {
                _ = ticker.tick() => {}
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        let number = sent.fetch_add(1, Ordering::Relaxed);
        if spec.max_requests.is_some_and(|max| number >= max) {
            break;
        }
        let mut builder = Request::get(spec.url.clone());
        for (name, value) in &spec.headers {
            builder = builder.header(name, value);
        }
        let Ok(request) = builder.body(Empty::new()) else {
            report.requests += 1;
            report.errors += 1;
            report.transport_errors += 1;
            continue;
        };
        let began = Instant::now();
        let outcome = tokio::time::timeout(spec.timeout, async {
            let response = client.request(request).await?;
            let status = response.status().as_u16();
            // Read the body to its end so the connection returns to the
            // pool, frame by frame: the loadtester points this at any URL,
            // and buffering whole answers would hold `concurrency` of them.
            let mut body = response.into_body();
            while let Some(frame) = body.frame().await {
                if frame.is_err() {
                    break;
                }
            }
            Ok::<u16, hyper_util::client::legacy::Error>(status)
        })
        .await;
        report.requests += 1;
        match outcome {
            Ok(Ok(status)) => {
                report.latency.record(began.elapsed());
                if serin_stats::is_error(status) {
                    report.errors += 1;
                }
            }
            Ok(Err(_)) | Err(_) => {
                report.errors += 1;
                report.transport_errors += 1;
            }
        }
    }
    report
}
