//! The MetricTemplates under docs/templates validate, the example canary
//! using them maps to a runnable rollout (every template becomes a query),
//! and every template serin ships, there and in the Markdown docs, returns a
//! number from a real Prometheus.

use serin_spec::Catalog;
use std::path::PathBuf;

fn templates_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/templates")
}

#[test]
fn every_documented_template_validates_and_runs() {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(templates_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            files.push((path.display().to_string(), text));
        }
    }
    files.sort();
    assert!(files.len() >= 10, "{} files", files.len());
    let catalog = serin_spec::load_files(files.iter().map(|(n, t)| (n.as_str(), t.as_str())))
        .unwrap_or_else(|e| panic!("docs/templates must validate:\n{e}"));
    let names: Vec<&str> = catalog
        .metric_templates()
        .iter()
        .map(|t| t.name())
        .collect();
    for wanted in [
        "error-rate",
        "process-cpu",
        "process-memory",
        "container-cpu",
        "container-memory",
        "conversion-rate",
        "cart-abandonment",
        "average-order-value",
        "orders-per-minute",
    ] {
        assert!(names.contains(&wanted), "{wanted} in {names:?}");
    }
    // Every query fills its placeholders and tells the versions apart.
    let canary = catalog.canary("shop").unwrap();
    for template in catalog.metric_templates() {
        let metric = serin_spec::canary::Metric {
            name: template.name().to_owned(),
            ..Default::default()
        };
        let vars = serin_providers::metrics::vars_for(canary, &metric);
        let text = match template.spec.provider.provider_type.as_str() {
            "web" => template.spec.provider.address.clone().unwrap(),
            _ => template.spec.query.clone().unwrap(),
        };
        let compiled =
            serin_providers::metric_http::QueryTemplate::compile(&text, &vars, "spec.query")
                .unwrap_or_else(|e| panic!("{}: {e}", template.name()));
        assert!(
            compiled.per_version(),
            "{} uses {{{{ version }}}}",
            template.name()
        );
    }
    // The example canary runs: mapping and query construction succeed.
    let prepared = serin_server::Prepared::from_catalog(&catalog, Some("shop"), "canary.yaml")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(prepared.metrics.0.len(), 5);
    let directions: Vec<_> = prepared
        .analysis
        .metrics
        .iter()
        .map(|m| (m.name.as_str(), m.direction))
        .collect();
    assert!(directions.contains(&("conversion-rate", serin_analysis::Direction::HigherIsBetter)));
    assert!(directions.contains(&("cart-abandonment", serin_analysis::Direction::LowerIsBetter)));
}

/// Every `kind: MetricTemplate` YAML block of the Markdown docs (README.md,
/// docs/*.md), as `(file, block)`.
fn markdown_templates() -> Vec<(String, String)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            files.push(path);
        }
    }
    files.sort();
    let mut blocks = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let mut rest = text.as_str();
        while let Some(start) = rest.find("```yaml\n") {
            let body = &rest[start + "```yaml\n".len()..];
            let end = body.find("```").unwrap();
            if body[..end].contains("kind: MetricTemplate") {
                blocks.push((file.display().to_string(), body[..end].to_owned()));
            }
            rest = &body[end + 3..];
        }
    }
    blocks
}

/// A real HTTP server on loopback answering every request with `answer(path,
/// seconds since start)`: a Prometheus exporter's `/metrics`, a JSON endpoint.
async fn serve_text(
    answer: fn(&str, f64) -> String,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let started = std::time::Instant::now();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 65_536 {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&request);
                let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
                let body = answer(&path, started.elapsed().as_secs_f64());
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    (addr, task)
}

/// The series the CPU, memory and business templates read, for a service
/// `shop` whose canary has sold nothing yet: no checkout and no order
/// series for it. And, for the `web` template, a JSON answer.
fn exporter(path: &str, seconds: f64) -> String {
    if path.starts_with("/stats/") {
        return r#"{"data": {"ordersPerMinute": 12.5}}"#.to_owned();
    }
    let mut text = String::new();
    for version in ["stable", "canary"] {
        let v = format!("version=\"{version}\"");
        let app = format!("app=\"shop\",{v}");
        let container =
            format!("container_label_app=\"shop\",container_label_version=\"{version}\"");
        let per_second = |rate: f64| format!("{:.3}", 1000.0 + rate * seconds);
        text.push_str(&format!(
            "process_cpu_seconds_total{{{v}}} {}\n\
             process_resident_memory_bytes{{{v}}} 52428800\n\
             container_cpu_usage_seconds_total{{{container}}} {}\n\
             container_memory_working_set_bytes{{{container}}} 104857600\n\
             shop_sessions_total{{{app}}} {}\n\
             shop_carts_created_total{{{app}}} {}\n",
            per_second(0.25),
            per_second(0.5),
            per_second(20.0),
            per_second(8.0),
        ));
        if version == "stable" {
            text.push_str(&format!(
                "shop_checkouts_total{{{app}}} {}\n\
                 shop_order_value_sum{{{app}}} {}\n\
                 shop_order_value_count{{{app}}} {}\n",
                per_second(2.0),
                per_second(90.0),
                per_second(2.0),
            ));
        }
    }
    text
}

/// Every MetricTemplate serin ships, run against a real Prometheus that
/// scrapes serin's own `/metrics` (a real proxy before two healthy
/// backends, under load: no 5xx at all) and an exporter of the series the
/// other templates read. Each returns a number; where a version has
/// counted nothing (no 5xx, no checkout) that number is 0, thanks to
/// `or vector(0)`; a version without any order has no average order value,
/// explained as no traffic. The Grafana dashboard's error-rate panels read
/// 0 too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_templates_return_numbers_from_a_real_prometheus() {
    use serin_demo::{Backend, Behaviour, LoadSpec, load};
    use serin_proxy::{Limits, Proxy, ProxyConfig, Routes};
    use serin_rollout::{Timestamp, ports::MetricQuery};
    use serin_stats::{Recorder, Version};
    use std::{sync::Arc, time::Duration};

    // serin's /metrics: a proxy splitting 50/50 between healthy backends.
    let local = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let stable = Backend::start(local, Behaviour::healthy("stable"))
        .await
        .unwrap();
    let canary = Backend::start(local, Behaviour::healthy("canary"))
        .await
        .unwrap();
    let recorder = Arc::new(Recorder::new(Duration::from_secs(60)));
    let mut routes = Routes::stable_only(stable.url().parse().unwrap());
    routes.canary = Some(canary.url().parse().unwrap());
    routes.canary_weight = 50;
    let config = ProxyConfig {
        listen: local,
        limits: Limits::default(),
        access_log: None,
        trusted_proxies: Default::default(),
        tls: None,
        upstream_ca_file: None,
    };
    let proxy = Proxy::bind(config, routes, recorder.clone()).await.unwrap();
    let listen = proxy.handle().local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(proxy.serve(async move {
        let _ = stopped.await;
    }));
    let telemetry = serin_telemetry::Telemetry::new();
    telemetry.add_traffic("shop", recorder);
    let metrics = serin_telemetry::serve(local, telemetry).await.unwrap();
    let (exporter_addr, exporter_task) = serve_text(exporter).await;

    // Bounded load: 40 requests/s for at most 60 s.
    let mut spec = LoadSpec::new(
        format!("http://{listen}/").parse().unwrap(),
        Some(40.0),
        Duration::from_secs(60),
    );
    spec.max_requests = Some(2_400);
    let load = tokio::spawn(load::run(spec));

    let prometheus = serin_testkit::Prometheus::start(&format!(
        "- job_name: serin\n  static_configs:\n  - targets: ['{}']\n- job_name: shop\n  static_configs:\n  - targets: ['{exporter_addr}']\n",
        metrics.local_addr()
    ))
    .await;
    let provider = serin_spec::MetricProvider {
        provider_type: "prometheus".into(),
        address: Some(prometheus.url.clone()),
        ..Default::default()
    };
    let now = Timestamp::from_millis(0);

    // The canary of docs/templates gives the placeholders their values.
    let mut files = Vec::new();
    for entry in std::fs::read_dir(templates_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            files.push((
                path.display().to_string(),
                std::fs::read_to_string(&path).unwrap(),
            ));
        }
    }
    let catalog = serin_spec::load_files(files.iter().map(|(n, t)| (n.as_str(), t.as_str())))
        .unwrap_or_else(|e| panic!("{e}"));
    let shop = catalog.canary("shop").unwrap();
    let build = |name: &str, query: &str| {
        let metric = serin_spec::canary::Metric {
            name: name.to_owned(),
            ..Default::default()
        };
        let mut vars = serin_providers::metrics::vars_for(shop, &metric);
        vars.interval = "20s".into();
        serin_providers::PrometheusQuery::new(name, &provider, query, &vars)
            .unwrap()
            .with_template(name)
    };

    // Ready when both jobs have been scraped a few times with traffic.
    let ready = build(
        "ready",
        "min(count_over_time(up[20s])) + 0 * sum(rate(http_requests_total{canary=\"{{ name }}\", version=\"{{ version }}\"}[20s]))",
    );
    let mut scrapes = 0.0;
    for _ in 0..150 {
        if let Ok(Some(n)) = ready.query(Version::Canary, now).await {
            scrapes = n;
            if n >= 5.0 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        scrapes >= 5.0,
        "prometheus scraped {scrapes} times within 30 s"
    );

    // Every template of docs/templates and of the Markdown docs.
    let mut templates: Vec<(String, serin_spec::MetricTemplate)> = catalog
        .metric_templates()
        .iter()
        .map(|t| (templates_dir().display().to_string(), t.clone()))
        .collect();
    for (file, block) in markdown_templates() {
        let documents =
            serin_spec::load_documents(&file, &block).unwrap_or_else(|e| panic!("{file}: {e:?}"));
        for template in Catalog::from_documents(documents).metric_templates() {
            templates.push((file.clone(), template.clone()));
        }
    }
    let from_markdown = templates.iter().filter(|(f, _)| f.ends_with(".md")).count();
    assert!(
        from_markdown >= 1,
        "the error-rate example of docs/metrics.md"
    );
    let mut answered = Vec::new();
    for (file, template) in &templates {
        let name = template.name();
        match template.spec.provider.provider_type.as_str() {
            "prometheus" => {
                let query = build(name, template.spec.query.as_deref().unwrap());
                for version in Version::ALL {
                    let answer = query.query(version, now).await;
                    match (name, version) {
                        // Nothing sold by the canary: no average, explained.
                        ("average-order-value", Version::Canary) => {
                            let e = answer.unwrap_err().to_string();
                            assert!(
                                e.starts_with("average-order-value (template average-order-value, canary): the query returned NaN — no traffic in the window"),
                                "{e}"
                            );
                        }
                        _ => {
                            let value = answer
                                .unwrap_or_else(|e| panic!("{file}: {name} ({version}): {e}"))
                                .unwrap_or_else(|| panic!("{name} ({version}): no value"));
                            answered.push((name.to_owned(), version, value));
                        }
                    }
                }
            }
            "web" => {
                let mut provider = template.spec.provider.clone();
                let address = provider.address.take().unwrap();
                provider.address =
                    Some(address.replace("127.0.0.1:8500", &exporter_addr.to_string()));
                let metric = serin_spec::canary::Metric {
                    name: name.to_owned(),
                    ..Default::default()
                };
                let vars = serin_providers::metrics::vars_for(shop, &metric);
                let query = serin_providers::WebQuery::new(name, &provider, None, &vars).unwrap();
                for version in Version::ALL {
                    let value = query.query(version, now).await.unwrap();
                    assert_eq!(value, Some(12.5), "{name} ({version})");
                }
            }
            other => panic!("{file}: {name}: provider {other}"),
        }
    }
    let value = |name: &str, version: Version| {
        answered
            .iter()
            .find(|(n, v, _)| n == name && *v == version)
            .map(|(_, _, value)| *value)
            .unwrap_or_else(|| panic!("{name} ({version}) answered: {answered:?}"))
    };
    // No 5xx anywhere: 0 %, not "no data".
    for version in Version::ALL {
        assert_eq!(value("error-rate", version), 0.0);
    }
    // No checkout yet for the canary: 0 % conversion, every cart abandoned.
    assert_eq!(value("conversion-rate", Version::Canary), 0.0);
    assert!((value("cart-abandonment", Version::Canary) - 100.0).abs() < 1e-9);
    assert!(value("conversion-rate", Version::Stable) > 0.0);
    assert!((value("process-memory", Version::Canary) - 50.0).abs() < 1e-9);
    assert!(value("process-cpu", Version::Stable) > 0.0);

    // The docs' error-rate template without its fallback: no value, and
    // the message names the metric, the template, the version and the fix.
    let docs_error_rate = &templates
        .iter()
        .find(|(f, t)| f.ends_with("metrics.md") && t.name() == "error-rate")
        .unwrap()
        .1;
    let file_error_rate = catalog
        .metric_templates()
        .iter()
        .find(|t| t.name() == "error-rate")
        .unwrap();
    assert_eq!(
        docs_error_rate.spec.query, file_error_rate.spec.query,
        "docs/metrics.md and docs/templates/error-rate.yaml show the same query"
    );
    let bare = docs_error_rate
        .spec
        .query
        .as_deref()
        .unwrap()
        .replace(" or vector(0)", "")
        .replace("(sum(", "sum(")
        .replace("])))", "]))");
    assert!(!bare.contains("vector("), "{bare}");
    let e = build("error-rate", &bare)
        .query(Version::Canary, now)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("error-rate (template error-rate, canary): the query returned no series — Prometheus returns nothing rather than 0 when no series match (e.g. no 5xx yet); append \"or vector(0)\" to the query to read 0"),
        "{e}"
    );

    // The Grafana dashboard's error-rate panels draw 0, not "No data".
    let resolved = catalog.resolve_for_run(shop).unwrap();
    let dashboard = serin_telemetry::grafana::dashboard(&resolved);
    let panel = &dashboard["panels"][0];
    assert_eq!(panel["title"], "Error Rate");
    for target in panel["targets"].as_array().unwrap() {
        let expr = target["expr"]
            .as_str()
            .unwrap()
            .replace("$__rate_interval", "20s");
        let q = build("grafana-error-rate", &expr);
        assert_eq!(
            q.query(Version::Canary, now).await.unwrap(),
            Some(0.0),
            "{expr}"
        );
    }

    load.abort();
    exporter_task.abort();
    let _ = stop.send(());
    let _ = serving.await;
}
