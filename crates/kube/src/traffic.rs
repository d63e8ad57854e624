//! Both versions' traffic read from Prometheus for serin's own judge: the
//! cumulative request, error and latency-bucket series of the canary and
//! the primary ([`TrafficSeries`]) over a query range, turned into per-step
//! counts (`serin_stats::Pair`), the input `serve` gets from its proxy
//! every second.
//!
//! A query range's points are the counters' values at each step; the
//! difference between consecutive points is what each version served in
//! that step. A counter that went down (a pod restarted, a pod gone from
//! the sum) gives no count for that step rather than a negative or a
//! guessed one. An error series that does not exist yet is zero errors
//! (Istio creates the `5xx` series at the first server error). A latency
//! bucket's requests are spread evenly across the bucket, as
//! `histogram_quantile` interpolates linearly within one.

use std::{collections::BTreeMap, time::Duration};

use bytes::Bytes;
use http::{Method, Uri};
use serde_json::Value;
use serin_providers::metric_http::{HttpSource, excerpt, form_encode};
use serin_stats::{Counts, LatencyHistogram, Pair};

use crate::metrics::TrafficSeries;

/// At most this many points per query: a range longer than this many
/// seconds is read at a coarser step, so an answer stays well under the
/// provider's answer limit (a histogram is one series per bucket).
pub const MAX_POINTS: u64 = 600;

/// Points a latency bucket's requests are spread over, at most.
const SPREAD: u64 = 8;

/// What the counts of one step were, by time (Unix milliseconds of the
/// step's end).
pub type Steps = Vec<(u64, Pair)>;

/// The step of a query range from `from_ms` to `to_ms`: one second, or
/// coarser so the range has at most [`MAX_POINTS`] points.
pub fn step_for(from_ms: u64, to_ms: u64) -> Duration {
    let span_secs = to_ms.saturating_sub(from_ms).div_ceil(1000);
    Duration::from_secs(span_secs.div_ceil(MAX_POINTS).max(1))
}

/// Reads both sides' series from `from_ms` to `to_ms` and returns each
/// step's counts, oldest first. `Err` names the query that failed.
pub async fn read(
    source: &HttpSource,
    endpoint: &str,
    canary: &TrafficSeries,
    primary: &TrafficSeries,
    from_ms: u64,
    to_ms: u64,
) -> Result<Steps, String> {
    let step = step_for(from_ms, to_ms);
    let range = Range {
        source,
        endpoint,
        from_ms,
        to_ms,
        step,
    };
    let canary = range.side(canary).await?;
    let stable = range.side(primary).await?;
    let mut steps: BTreeMap<u64, Pair> = BTreeMap::new();
    for (at, counts) in canary {
        steps.entry(at).or_default().canary = counts;
    }
    for (at, counts) in stable {
        steps.entry(at).or_default().stable = counts;
    }
    Ok(steps.into_iter().collect())
}

/// One query range's bounds and where to send it.
struct Range<'a> {
    source: &'a HttpSource,
    endpoint: &'a str,
    from_ms: u64,
    to_ms: u64,
    step: Duration,
}

// === impl Range ===

impl Range<'_> {
    /// One side's counts per step.
    async fn side(&self, series: &TrafficSeries) -> Result<BTreeMap<u64, Counts>, String> {
        let requests = single(self.query(&series.requests).await?);
        let errors = single(self.query(&series.errors).await?);
        let mut buckets: BTreeMap<u64, Vec<(f64, f64)>> = BTreeMap::new();
        for (labels, points) in self.query(&series.buckets).await? {
            let Some(le) = labels.get("le").and_then(|le| le.parse::<f64>().ok()) else {
                continue;
            };
            for (at, value) in points {
                buckets.entry(at).or_default().push((le, value));
            }
        }
        let mut out = BTreeMap::new();
        let mut previous: Option<(u64, f64, f64)> = None;
        for (&at, &total) in &requests {
            let errors_now = errors.get(&at).copied().unwrap_or(0.0);
            if let Some((before_at, before_total, before_errors)) = previous {
                let served = total - before_total;
                let failed = errors_now - before_errors;
                if served >= 0.0 && failed >= 0.0 {
                    let mut counts = Counts {
                        requests: whole(served),
                        errors: whole(failed).min(whole(served)),
                        ..Counts::default()
                    };
                    counts.classes[4] = counts.errors;
                    counts.classes[1] = counts.requests - counts.errors;
                    if let (Some(now), Some(then)) = (buckets.get(&at), buckets.get(&before_at)) {
                        counts.latency = histogram(now, then, series.bucket_unit_ms);
                    }
                    out.insert(at, counts);
                }
            }
            previous = Some((at, total, errors_now));
        }
        Ok(out)
    }

    /// One `query_range`: each series's labels and points (time in ms).
    async fn query(&self, promql: &str) -> Result<Vec<Series>, String> {
        let seconds = |ms: u64| format!("{}.{:03}", ms / 1000, ms % 1000);
        let url = format!(
            "{}?query={}&start={}&end={}&step={}",
            self.endpoint,
            form_encode(promql),
            seconds(self.from_ms),
            seconds(self.to_ms),
            self.step.as_secs().max(1)
        );
        let uri: Uri = url
            .parse()
            .map_err(|error| format!("query {promql:?} does not fit in a URL: {error}"))?;
        let (status, body) = self
            .source
            .fetch(Method::GET, uri, None, Bytes::new())
            .await
            .map_err(|error| format!("query {promql:?}: {error}"))?;
        let answer: Value = serde_json::from_slice(&body).map_err(|_| {
            format!(
                "query {promql:?}: HTTP {status}: not a Prometheus API answer: {}",
                excerpt(&body)
            )
        })?;
        parse_matrix(&answer)
            .map_err(|message| format!("query {promql:?}: HTTP {status}: {message}"))
    }
}

/// A series's points: value by time (Unix milliseconds).
pub type Points = BTreeMap<u64, f64>;

/// A series of a range answer: its labels and its points.
pub type Series = (BTreeMap<String, String>, Points);

/// The series of a `query_range` answer (`resultType: matrix`).
pub fn parse_matrix(answer: &Value) -> Result<Vec<Series>, String> {
    if answer.get("status").and_then(Value::as_str) != Some("success") {
        let error = answer
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("no error message");
        return Err(error.to_string());
    }
    let data = answer.get("data").ok_or("answer has no data")?;
    if data.get("resultType").and_then(Value::as_str) != Some("matrix") {
        return Err("not a range vector (resultType matrix)".into());
    }
    let series = data
        .get("result")
        .and_then(Value::as_array)
        .ok_or("data.result is not a list")?;
    let mut out = Vec::with_capacity(series.len());
    for entry in series {
        let labels = entry
            .get("metric")
            .and_then(Value::as_object)
            .map(|labels| {
                labels
                    .iter()
                    .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        let mut points = Points::new();
        for sample in entry
            .get("values")
            .and_then(Value::as_array)
            .ok_or("a series without values")?
        {
            let at = sample
                .get(0)
                .and_then(Value::as_f64)
                .ok_or("a sample without a time")?;
            let value = sample
                .get(1)
                .and_then(Value::as_str)
                .and_then(|text| text.parse::<f64>().ok())
                .filter(|value| value.is_finite())
                .ok_or("a sample whose value is not a finite number")?;
            if at >= 0.0 && at.is_finite() {
                // Whole milliseconds: Prometheus's step times are.
                points.insert((at * 1000.0).round() as u64, value);
            }
        }
        out.push((labels, points));
    }
    Ok(out)
}

/// The one series of a summed query (none: no series yet).
fn single(series: Vec<Series>) -> Points {
    series
        .into_iter()
        .next()
        .map(|(_, points)| points)
        .unwrap_or_default()
}

/// A non-negative count as a whole number (counters are; rates are not).
fn whole(value: f64) -> u64 {
    if value.is_finite() && value > 0.0 {
        value.round() as u64
    } else {
        0
    }
}

/// The latency of one step from two readings of cumulative buckets
/// (`le`, count): each bucket's requests spread over it.
fn histogram(now: &[(f64, f64)], then: &[(f64, f64)], unit_ms: f64) -> LatencyHistogram {
    let mut deltas: Vec<(f64, f64)> = now
        .iter()
        .map(|&(le, count)| {
            let before = then
                .iter()
                .find(|(other, _)| *other == le)
                .map_or(0.0, |(_, count)| *count);
            (le, count - before)
        })
        .collect();
    deltas.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut histogram = LatencyHistogram::new();
    let mut lower = 0.0_f64;
    let mut below = 0.0_f64;
    for (le, cumulative) in deltas {
        let in_bucket = whole(cumulative - below);
        below = below.max(cumulative);
        // The +Inf bucket has no upper end: its requests are at its lower one.
        let upper = if le.is_finite() { le } else { lower };
        let points = in_bucket.min(SPREAD);
        for index in 0..points {
            let share = in_bucket / points + u64::from(index < in_bucket % points);
            let at = lower + (upper - lower) * (index as f64 + 0.5) / points as f64;
            let micros = (at * unit_ms * 1000.0).max(0.0);
            histogram.record_n(micros.round() as u64, share);
        }
        if le.is_finite() {
            lower = le;
        }
    }
    histogram
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_step_keeps_the_points_bounded() {
        assert_eq!(step_for(0, 60_000), Duration::from_secs(1));
        assert_eq!(step_for(0, 600_000), Duration::from_secs(1));
        assert_eq!(step_for(0, 3_600_000), Duration::from_secs(6));
        assert_eq!(step_for(5, 5), Duration::from_secs(1));
    }

    #[test]
    fn a_matrix_is_read_and_anything_else_refused() {
        let answer = json!({"status": "success", "data": {"resultType": "matrix", "result": [
            {"metric": {"le": "10"}, "values": [[1764500000, "3"], [1764500001.5, "5"]]}
        ]}});
        let series = parse_matrix(&answer).unwrap();
        assert_eq!(series[0].0.get("le").map(String::as_str), Some("10"));
        assert_eq!(
            series[0].1.iter().collect::<Vec<_>>(),
            vec![(&1_764_500_000_000, &3.0), (&1_764_500_001_500, &5.0)]
        );
        let vector = json!({"status": "success", "data": {"resultType": "vector", "result": []}});
        assert!(parse_matrix(&vector).unwrap_err().contains("matrix"));
        let error = json!({"status": "error", "error": "parse error"});
        assert_eq!(parse_matrix(&error).unwrap_err(), "parse error");
        let nan = json!({"status": "success", "data": {"resultType": "matrix", "result": [
            {"metric": {}, "values": [[1, "NaN"]]}
        ]}});
        assert!(parse_matrix(&nan).is_err());
    }

    #[test]
    fn buckets_become_a_histogram_spread_within_each_bucket() {
        // 10 requests under 10 ms, 10 more under 100 ms, 1 beyond.
        let then = [(10.0, 0.0), (100.0, 0.0), (f64::INFINITY, 0.0)];
        let now = [(10.0, 10.0), (100.0, 20.0), (f64::INFINITY, 21.0)];
        let histogram = histogram(&now, &then, 1.0);
        assert_eq!(histogram.count(), 21);
        let median = histogram.quantile_millis(0.5).unwrap();
        assert!((10.0..=100.0).contains(&median), "{median}");
        assert!(histogram.quantile_millis(0.25).unwrap() <= 10.0);
        // The +Inf bucket's request sits at the last finite bound.
        assert!(histogram.quantile_millis(1.0).unwrap() <= 101.0);
    }
}
