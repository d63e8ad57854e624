//! The Prometheus provider against a real Prometheus that scrapes itself.

use serin_providers::PrometheusQuery;
use serin_rollout::{Timestamp, ports::MetricQuery};
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

    // Nothing matches: no data.
    let none = query(&prometheus, "up{job=\"nothing-here\"}");
    assert_eq!(none.query(Version::Canary, now).await.unwrap(), None);

    // 0/0.
    let nan = query(&prometheus, "sum(up) * 0 / 0");
    let e = nan
        .query(Version::Canary, now)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("NaN") && e.contains("prometheus at http://127.0.0.1:"),
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
