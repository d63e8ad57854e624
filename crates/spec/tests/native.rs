//! serin's native documents: the brief's example, the catalog, and the helpers
//! other crates read.

use std::time::Duration;

use serin_spec::{
    BuiltinMetric, Catalog, Direction, JudgeKind, MetricSource, StrategyKind, WebhookType,
    load_documents, load_files,
};

const EXAMPLE: &str = "\
apiVersion: serin.dev/v1alpha1
kind: Canary
metadata:
  name: myapp
spec:
  provider: builtin
  service:
    listen: 127.0.0.1:8080          # where the proxy accepts user traffic
    accessLog: /var/log/serin/myapp.jsonl
    limits: {maxBodyBytes: 1048576, requestTimeout: 30s}
  upstreams:
    stable: http://127.0.0.1:9001
    canary: http://127.0.0.1:9002   # set or changed: a rollout starts
    revision: v2
  analysis:
    interval: 1m
    threshold: 5
    maxWeight: 50
    stepWeight: 10
    judge: mann-whitney
    alpha: 0.05
    minRequests: 200
    sessionAffinity:
      cookieName: canary
    match:
    - headers:
        x-canary: {exact: insider}
    metrics:
    - name: request-success-rate    # percent of non-5xx
      thresholdRange: {min: 99}
      interval: 1m
      compare: {maxDelta: 1}
    - name: request-duration        # p99 in milliseconds
      thresholdRange: {max: 500}
      interval: 1m
      compare: {maxRatio: 1.2}
    - name: conversion-rate
      templateRef: {name: conversions}
      thresholdRange: {min: 2}
      direction: higher
    webhooks:
    - name: gate
      type: confirm-promotion
      url: http://127.0.0.1:7000/gate
    - name: load
      url: http://127.0.0.1:7000/
      metadata: {cmd: hey -z 1m http://127.0.0.1:8080/, logCmdOutput: true}
    alerts:
    - name: team
      providerRef: {name: team-chat}
---
apiVersion: serin.dev/v1alpha1
kind: MetricTemplate
metadata:
  name: conversions
spec:
  provider:
    type: web
    address: http://127.0.0.1:7100/conversions
    jsonPath: data.value
  query: version={{ target }}
---
apiVersion: serin.dev/v1alpha1
kind: AlertProvider
metadata:
  name: team-chat
spec:
  type: webhook
  address: http://127.0.0.1:7200/alerts
";

#[test]
fn the_briefs_example_reads_as_written() {
    let documents = load_documents("myapp.yaml", EXAMPLE).unwrap_or_else(|problems| {
        panic!("{}", serin_spec::render_problems("myapp.yaml", &problems))
    });
    assert_eq!(documents.len(), 3);
    let canary = documents[0].as_canary().unwrap();
    assert!(canary.is_builtin());
    assert_eq!(
        canary.listen_addr(),
        Some("127.0.0.1:8080".parse().unwrap())
    );
    assert_eq!(canary.stable_upstream(), Some("http://127.0.0.1:9001"));
    assert_eq!(canary.canary_upstream(), Some("http://127.0.0.1:9002"));
    let limits = canary.spec.service.limits.as_ref().unwrap();
    assert_eq!(
        limits.request_timeout.as_ref().unwrap().as_std(),
        Duration::from_secs(30)
    );

    let analysis = canary.analysis();
    assert_eq!(analysis.steps(), [10, 20, 30, 40, 50]);
    assert_eq!(analysis.interval(), Duration::from_secs(60));
    assert_eq!(analysis.threshold(), 5);
    assert_eq!(analysis.judge(), JudgeKind::MannWhitney);
    assert_eq!(analysis.alpha(), 0.05);
    assert_eq!(analysis.min_requests(), 200);
    assert_eq!(analysis.strategy(), StrategyKind::Canary);
    assert_eq!(
        analysis.session_affinity.as_ref().unwrap().cookie_name,
        "canary"
    );
    let rule = analysis.match_rules[0].headers["x-canary"]
        .compile()
        .unwrap();
    assert!(rule.is_match("insider"));

    let metrics = &analysis.metrics;
    assert_eq!(
        metrics[0].builtin(),
        Some(BuiltinMetric::RequestSuccessRate)
    );
    assert_eq!(metrics[0].compare.unwrap().max_delta, Some(1.0));
    assert_eq!(metrics[1].direction(), Direction::Lower);
    assert_eq!(metrics[2].builtin(), None);
    assert_eq!(metrics[2].direction(), Direction::Higher);

    let gates: Vec<_> = analysis
        .webhooks_of(WebhookType::ConfirmPromotion)
        .collect();
    assert_eq!(gates.len(), 1);
    let load = &analysis.webhooks[1];
    assert_eq!(load.hook_type(), Some(WebhookType::Rollout));
    assert_eq!(load.metadata["logCmdOutput"], "true");
}

#[test]
fn the_catalog_follows_references() {
    let catalog = load_files([("myapp.yaml", EXAMPLE)]).unwrap();
    let canary = catalog.canary("myapp").unwrap();
    let resolved = catalog.resolve_for_run(canary).unwrap();
    assert!(matches!(
        resolved.metrics[0].source,
        MetricSource::Builtin(BuiltinMetric::RequestSuccessRate)
    ));
    let MetricSource::Template(template) = resolved.metrics[2].source else {
        panic!("expected a template");
    };
    assert_eq!(template.spec.provider.provider_type, "web");
    assert_eq!(resolved.alerts[0].provider.spec.provider_type, "webhook");
}

#[test]
fn missing_references_are_reported_only_when_running() {
    let canary_only = EXAMPLE.split("\n---\n").next().unwrap();
    let documents = load_documents("myapp.yaml", canary_only).unwrap();
    let catalog = Catalog::from_documents(documents);
    let canary = catalog.canary("myapp").unwrap();
    let problems = catalog.resolve_for_run(canary).unwrap_err();
    let rendered: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        rendered,
        [
            "spec.analysis.metrics[2].templateRef: MetricTemplate \"conversions\" not found in the given files",
            "spec.analysis.alerts[0].providerRef: AlertProvider \"team-chat\" not found in the given files",
        ]
    );
}

#[test]
fn load_files_reports_every_file() {
    let error = load_files([
        ("a.yaml", "kind: Canary\n"),
        ("b.yaml", "apiVersion: serin.dev/v1alpha1\nkind: Nope\n"),
    ])
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "a.yaml: apiVersion: required field is missing\n\
         b.yaml: kind: unknown kind \"Nope\", expected one of Canary, MetricTemplate, AlertProvider"
    );
}

#[test]
fn iterations_select_ab_testing_or_blue_green() {
    let text = "\
apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: ab}
spec:
  analysis:
    interval: 1m
    threshold: 2
    iterations: 10
    match:
    - headers:
        cookie: {regex: '^(.*?;)?(type=insider)(;.*)?$'}
";
    let documents = load_documents("ab.yaml", text).unwrap();
    let canary = documents[0].as_canary().unwrap();
    assert_eq!(canary.strategy(), StrategyKind::ABTesting);
    assert_eq!(canary.analysis().iterations(), 10);
    assert!(canary.analysis().steps().is_empty());
}

#[test]
fn trusted_proxies_are_addresses_or_ranges() {
    let canary = |proxies: &str| {
        format!(
            "\
apiVersion: serin.dev/v1alpha1
kind: Canary
metadata: {{name: front}}
spec:
  provider: builtin
  service:
    listen: 127.0.0.1:8080
    trustedProxies: {proxies}
    limits: {{responseBodyTimeout: 30s}}
  upstreams: {{stable: http://127.0.0.1:9001}}
  analysis: {{interval: 1m, threshold: 5, maxWeight: 50, stepWeight: 10}}
"
        )
    };
    let good = canary(r#"["10.0.0.0/8", "127.0.0.1", "::1", "fd00::/8", " 192.168.0.0/16 "]"#);
    let documents = load_documents("front.yaml", &good).unwrap_or_else(|problems| {
        panic!("{}", serin_spec::render_problems("front.yaml", &problems))
    });
    let front = documents[0].as_canary().unwrap();
    assert_eq!(front.spec.service.trusted_proxies.len(), 5);
    let limits = front.spec.service.limits.as_ref().unwrap();
    assert_eq!(
        limits.response_body_timeout.as_ref().unwrap().as_std(),
        Duration::from_secs(30)
    );

    let bad = canary(r#"["10.0.0.0/8", "10.0.0.1/8", "localhost", "10.0.0.0/33", "::/x"]"#);
    let problems = load_documents("front.yaml", &bad).unwrap_err();
    let rendered: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        rendered,
        [
            "spec.service.trustedProxies[1]: \"10.0.0.1/8\" has bits set past its /8 prefix; did you mean 10.0.0.0/8?",
            "spec.service.trustedProxies[2]: \"localhost\" is not an IP address or CIDR range; expected e.g. 10.0.0.0/8 or 127.0.0.1",
            "spec.service.trustedProxies[3]: \"10.0.0.0/33\": the prefix length must be a number from 0 to 32",
            "spec.service.trustedProxies[4]: \"::/x\": the prefix length must be a number from 0 to 128",
        ]
    );
}

#[test]
fn pace_is_evidence_or_schedule() {
    let with = |pace: &str| {
        EXAMPLE.replacen(
            "    minRequests: 200\n",
            &format!("    minRequests: 200\n    pace: {pace}\n"),
            1,
        )
    };
    let documents = load_documents("myapp.yaml", &with("schedule")).unwrap();
    let canary = documents[0].as_canary().unwrap();
    assert_eq!(canary.analysis().pace, Some(serin_spec::Pace::Schedule));
    let documents = load_documents("myapp.yaml", EXAMPLE).unwrap();
    assert_eq!(documents[0].as_canary().unwrap().analysis().pace, None);
    let problems = load_documents("myapp.yaml", &with("fast")).unwrap_err();
    let text = serin_spec::render_problems("myapp.yaml", &problems);
    assert!(
        text.contains(
            "spec.analysis.pace: unknown value \"fast\", expected one of evidence, schedule"
        ),
        "{text}"
    );
}

#[test]
fn tls_needs_both_files_and_ca_file_is_not_empty() {
    let canary = |tls: &str, ca: &str| {
        format!(
            "\
apiVersion: serin.dev/v1alpha1
kind: Canary
metadata: {{name: front}}
spec:
  provider: builtin
  service:
    listen: 127.0.0.1:8443
    tls: {tls}
  upstreams: {{stable: https://backend.internal:8443, caFile: {ca:?}}}
  analysis: {{interval: 1m, threshold: 5, maxWeight: 50, stepWeight: 10}}
"
        )
    };
    let good = canary(
        "{certFile: /etc/serin/fullchain.pem, keyFile: /etc/serin/privkey.pem}",
        "/etc/serin/ca.pem",
    );
    let documents = load_documents("front.yaml", &good).unwrap_or_else(|problems| {
        panic!("{}", serin_spec::render_problems("front.yaml", &problems))
    });
    let front = documents[0].as_canary().unwrap();
    let tls = front.spec.service.tls.as_ref().unwrap();
    assert_eq!(tls.cert_file.as_deref(), Some("/etc/serin/fullchain.pem"));
    assert_eq!(tls.key_file.as_deref(), Some("/etc/serin/privkey.pem"));
    let upstreams = front.spec.upstreams.as_ref().unwrap();
    assert_eq!(upstreams.ca_file.as_deref(), Some("/etc/serin/ca.pem"));

    let bad = canary("{certFile: \" \"}", " ");
    let problems = load_documents("front.yaml", &bad).unwrap_err();
    let rendered: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        rendered,
        [
            "spec.service.tls.certFile: must not be empty",
            "spec.service.tls.keyFile: required with service.tls: the file holding the PEM private key",
            "spec.upstreams.caFile: must not be empty; omit it to verify https upstreams against Mozilla's roots",
        ]
    );
}

#[test]
fn tls_is_the_builtin_proxys_only() {
    let text = "\
apiVersion: serin.dev/v1alpha1
kind: Canary
metadata: {name: shop}
spec:
  provider: nginx
  service:
    tls: {certFile: /etc/serin/fullchain.pem, keyFile: /etc/serin/privkey.pem}
  nginx:
    upstream: shop
    configFile: /etc/nginx/serin/shop.conf
    logListen: 127.0.0.1:5140
  upstreams: {stable: 127.0.0.1:9001}
  analysis: {interval: 1m, threshold: 5, maxWeight: 50, stepWeight: 10}
";
    let problems = load_documents("shop.yaml", text).unwrap_err();
    let rendered: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert!(
        rendered.contains(
            &"spec.service.tls: only provider builtin terminates TLS; with HAProxy or nginx, configure TLS there"
                .to_owned()
        ),
        "{rendered:#?}"
    );
}
