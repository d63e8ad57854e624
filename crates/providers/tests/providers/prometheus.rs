//! The Prometheus provider against a real Prometheus that scrapes itself.

use serin_providers::PrometheusQuery;
use serin_rollout::{
    Timestamp,
    ports::{MetricQuery, PortError},
};
use serin_spec::MetricProvider;
use serin_stats::Version;
use serin_testkit::Prometheus;
use std::time::Duration;

fn query(prometheus: &Prometheus, promql: &str) -> PrometheusQuery {
    let provider = MetricProvider {
        provider_type: "prometheus".into(),
        address: Some(format!("{}/", prometheus.url)),
        ..MetricProvider::default()
    };
    let vars = serin_providers::metric_http::TemplateVars {
        target: "prometheus".into(),
        interval: "30s".into(),
        ..Default::default()
    };
    PrometheusQuery::new("q", &provider, promql, &vars).expect("valid template")
}

/// Waits (bounded) until Prometheus has scraped itself at least twice.
async fn scraped(prometheus: &Prometheus) {
    let q = query(prometheus, "count_over_time(up{job=\"{{ target }}\"}[1m])");
    for _ in 0..100 {
        if let Ok(Some(n)) = q.query(Version::Canary, Timestamp::from_millis(0)).await
            && n >= 2.0
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("prometheus did not scrape itself within 20s");
}

#[tokio::test]
async fn instant_queries_and_their_edge_cases() {
    let prometheus =
        Prometheus::start("- job_name: prometheus\n  static_configs:\n  - targets: ['{self}']\n")
            .await;
    scraped(&prometheus).await;
    let now = Timestamp::from_millis(0);

    // One series, placeholders filled, `{{ version }}` per side.
    let up = query(
        &prometheus,
        "sum(up{job=\"{{ target }}\"}) + 0 * count(label_replace(vector(1), \"v\", \"{{ version }}\", \"\", \"\"))",
    );
    assert_eq!(up.query(Version::Canary, now).await.unwrap(), Some(1.0));
    assert_eq!(up.query(Version::Stable, now).await.unwrap(), Some(1.0));
    assert!(up.promql(Version::Stable).contains("\"stable\""));

    // A scalar.
    let s = query(&prometheus, "scalar(sum(up))");
    assert_eq!(s.query(Version::Canary, now).await.unwrap(), Some(1.0));

    // Nothing matches: no value, and the message says why and what to do.
    let none = query(&prometheus, "up{job=\"nothing-here\"}").with_template("up-check");
    let e = none.query(Version::Canary, now).await.unwrap_err();
    assert!(matches!(e, PortError::NoValue(_)), "{e:?}");
    assert_eq!(
        e.to_string(),
        "q (template up-check, canary): the query returned no series — Prometheus returns nothing rather than 0 when no series match (e.g. no 5xx yet); append \"or vector(0)\" to the query to read 0 (in a ratio, to its numerator: (sum(...) or vector(0)) / sum(...)); if a value was expected, check that the selectors match what Prometheus holds for canary; query: up{job=\"nothing-here\"}"
    );

    // 0/0: no traffic in the window.
    let nan = query(&prometheus, "sum(up) * 0 / 0");
    let e = nan.query(Version::Canary, now).await.unwrap_err();
    assert!(matches!(e, PortError::NoValue(_)), "{e:?}");
    let e = e.to_string();
    assert!(
        e.starts_with(
            "q (inline query, canary): the query returned NaN — no traffic in the window"
        ),
        "{e}"
    );

    // Several series.
    let many = query(
        &prometheus,
        "up or label_replace(up, \"job\", \"copy\", \"\", \"\")",
    );
    let e = many
        .query(Version::Canary, now)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("2 series returned") && e.contains("sum(...)"),
        "{e}"
    );

    // Bad PromQL: Prometheus's own message.
    let bad = query(&prometheus, "sum(rate(up[{{ interval }}]");
    let e = bad
        .query(Version::Canary, now)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("bad_data"), "{e}");

    // A range vector.
    let range = query(&prometheus, "up[{{ interval }}]");
    let e = range
        .query(Version::Canary, now)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("range vector"), "{e}");
}

/// An error rate over Prometheus's own HTTP requests with a status no handler
/// of it ever answers (599): the numerator matches no series at all. (`5..`
/// would not do: a query that reaches Prometheus before it is ready is
/// answered 503, and that series then exists with a rate of 0.) Without `or vector(0)` there is no
/// value, explained; with it, 0. A ratio over requests that never happened
/// is NaN, explained as no traffic, never 0.
#[tokio::test]
async fn an_error_rate_without_errors_reads_0_with_or_vector_0() {
    let prometheus =
        Prometheus::start("- job_name: prometheus\n  static_configs:\n  - targets: ['{self}']\n")
            .await;
    scraped(&prometheus).await;
    let now = Timestamp::from_millis(0);
    let errors = "sum(rate(prometheus_http_requests_total{job=\"{{ target }}\", code=\"599\"}[{{ interval }}]))";
    let all = "sum(rate(prometheus_http_requests_total{job=\"{{ target }}\"}[{{ interval }}]))";

    let bare = query(&prometheus, &format!("{errors} / {all} * 100")).with_template("error-rate");
    let zero = query(
        &prometheus,
        &format!("({errors} or vector(0)) / {all} * 100"),
    );
    // Prometheus's rates need two scrapes of the window, and a loaded machine
    // may answer a first query before they are in: ask again, bounded.
    let mut last = String::new();
    let mut settled = false;
    for _ in 0..100 {
        let e = match bare.query(Version::Canary, now).await {
            Err(e) => e.to_string(),
            Ok(v) => format!("a value: {v:?}"),
        };
        let z = zero.query(Version::Canary, now).await;
        if e.starts_with("q (template error-rate, canary): the query returned no series")
            && e.contains("append \"or vector(0)\" to the query to read 0")
            && matches!(z, Ok(Some(v)) if v == 0.0)
        {
            settled = true;
            break;
        }
        last = format!("{e} / {z:?}");
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert!(settled, "{last}");

    // Nothing at all in the window: the fallback on both sides gives 0/0.
    let idle = |promql: &str| promql.replace("{{ target }}", "idle");
    let nan = query(
        &prometheus,
        &format!(
            "({} or vector(0)) / ({} or vector(0)) * 100",
            idle(errors),
            idle(all)
        ),
    );
    let e = nan
        .query(Version::Canary, now)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("NaN — no traffic in the window"), "{e}");
    // The fallback on the numerator only: the empty denominator is named.
    let empty = query(
        &prometheus,
        &format!("({} or vector(0)) / {}", idle(errors), idle(all)),
    );
    let e = empty
        .query(Version::Canary, now)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("although it has an \"or vector(0)\" fallback"),
        "{e}"
    );
}
