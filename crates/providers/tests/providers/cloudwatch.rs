//! The CloudWatch metrics against a real moto_server on loopback, through
//! the official SDK: datapoints put with `PutMetricData`, read back by a
//! `cloudwatch` MetricTemplate and by the built-in metrics of an ALB.

use aws_sdk_cloudwatch::{
    config::Credentials,
    primitives::DateTime,
    types::{Dimension, MetricDatum},
};
use serin_providers::{
    cloudwatch::{AlbBuiltinQuery, AlbMetric, CloudWatchQuery},
    metric_http::TemplateVars,
};
use serin_rollout::{
    Timestamp,
    ports::{MetricQuery, PortError},
};
use serin_spec::{AlbSpec, MetricProvider};
use serin_stats::Version;
use serin_testkit::moto::{Moto, REGION};
use std::time::{Duration, SystemTime};

const LISTENER: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/shop/50dc6c495c0c9188/f2f7dc8efc522ab2";
const STABLE: &str =
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/shop-v1/73e2d6bc24d8a067";
const CANARY: &str =
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/shop-v2/83e2d6bc24d8a067";

async fn config(moto: &Moto) -> aws_config::SdkConfig {
    serin_providers::aws::loader(REGION, Some(&moto.endpoint))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
        .load()
        .await
}

/// Puts one datapoint, timestamped now.
async fn put(moto: &Moto, namespace: &str, name: &str, dimensions: &[(&str, &str)], value: f64) {
    let client = aws_sdk_cloudwatch::Client::new(&config(moto).await);
    let mut datum = MetricDatum::builder()
        .metric_name(name)
        .value(value)
        .timestamp(DateTime::from(SystemTime::now()));
    for (name, value) in dimensions {
        datum = datum.dimensions(Dimension::builder().name(*name).value(*value).build());
    }
    client
        .put_metric_data()
        .namespace(namespace)
        .metric_data(datum.build())
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_cloudwatch_template_reads_the_newest_datapoint_per_version() {
    let moto = Moto::start().await;
    put(
        &moto,
        "Shop",
        "checkout_errors",
        &[("version", "canary")],
        7.0,
    )
    .await;
    put(
        &moto,
        "Shop",
        "checkout_errors",
        &[("version", "stable")],
        2.0,
    )
    .await;
    let provider = MetricProvider {
        provider_type: "cloudwatch".into(),
        region: Some(REGION.into()),
        ..MetricProvider::default()
    };
    let query = r#"[{"Id":"errors","MetricStat":{"Metric":{"Namespace":"Shop","MetricName":"checkout_errors","Dimensions":[{"Name":"version","Value":"{{ version }}"}]},"Period":60,"Stat":"Sum"},"ReturnData":true}]"#;
    let metric = CloudWatchQuery::new(
        "checkout-errors",
        &provider,
        query,
        &TemplateVars::default(),
        Duration::from_secs(60),
    )
    .unwrap()
    .with_config(&config(&moto).await);
    let now = Timestamp::from_millis(0);
    assert_eq!(metric.query(Version::Canary, now).await.unwrap(), Some(7.0));
    assert_eq!(metric.query(Version::Stable, now).await.unwrap(), Some(2.0));

    let nothing = query.replace("checkout_errors", "refunds");
    let empty = CloudWatchQuery::new(
        "refunds",
        &provider,
        &nothing,
        &TemplateVars::default(),
        Duration::from_secs(60),
    )
    .unwrap()
    .with_config(&config(&moto).await);
    let missing = empty.query(Version::Canary, now).await.unwrap_err();
    assert!(
        matches!(&missing, PortError::NoValue(m) if m.contains("no datapoint yet")),
        "{missing}"
    );

    let bad = CloudWatchQuery::new(
        "x",
        &provider,
        "sum(rate(x[1m]))",
        &TemplateVars::default(),
        Duration::from_secs(60),
    )
    .unwrap_err();
    assert!(bad.to_string().starts_with("spec.query:"), "{bad}");
    let no_region = CloudWatchQuery::new(
        "x",
        &MetricProvider {
            provider_type: "cloudwatch".into(),
            ..MetricProvider::default()
        },
        query,
        &TemplateVars::default(),
        Duration::from_secs(60),
    )
    .unwrap_err();
    assert!(
        no_region.to_string().starts_with("spec.provider.region:"),
        "{no_region}"
    );
}

#[tokio::test]
async fn an_albs_success_rate_comes_from_its_target_groups() {
    let moto = Moto::start().await;
    let lb = "app/shop/50dc6c495c0c9188";
    let canary_tg = "targetgroup/shop-v2/83e2d6bc24d8a067";
    let dims = [("TargetGroup", canary_tg), ("LoadBalancer", lb)];
    put(&moto, "AWS/ApplicationELB", "RequestCount", &dims, 200.0).await;
    put(
        &moto,
        "AWS/ApplicationELB",
        "HTTPCode_Target_5XX_Count",
        &dims,
        4.0,
    )
    .await;
    let alb = AlbSpec {
        listener_arn: LISTENER.into(),
        rule_arn: None,
        stable_target_group_arn: STABLE.into(),
        region: REGION.into(),
        endpoint: Some(moto.endpoint.clone()),
    };
    let rate = AlbBuiltinQuery::new(
        "request-success-rate",
        AlbMetric::RequestSuccessRate,
        &alb,
        Some(CANARY),
        Duration::from_secs(60),
    )
    .unwrap()
    .with_config(&config(&moto).await);
    let now = Timestamp::from_millis(0);
    assert_eq!(rate.query(Version::Canary, now).await.unwrap(), Some(98.0));
    // The stable group has served nothing this minute: a hold, not a failure.
    let stable = rate.query(Version::Stable, now).await.unwrap_err();
    match &stable {
        PortError::NoValue(message) => {
            assert!(
                message.contains("no datapoint yet for this minute"),
                "{message}"
            )
        }
        other => panic!("expected no value, got {other}"),
    }

    let duration = AlbBuiltinQuery::new(
        "request-duration",
        AlbMetric::RequestDuration,
        &alb,
        Some(CANARY),
        Duration::from_secs(90),
    )
    .unwrap();
    let queries = duration.queries(canary_tg);
    let stat = queries[0].metric_stat().unwrap();
    assert_eq!(stat.stat(), Some("p99"));
    assert_eq!(stat.period(), Some(60));
    let metric = stat.metric().unwrap();
    assert_eq!(metric.metric_name(), Some("TargetResponseTime"));
    let mut dimensions: Vec<(&str, &str)> = metric
        .dimensions()
        .iter()
        .map(|d| (d.name().unwrap(), d.value().unwrap()))
        .collect();
    dimensions.sort();
    assert_eq!(
        dimensions,
        [("LoadBalancer", lb), ("TargetGroup", canary_tg)]
    );
}
