//! The MetricTemplates under docs/templates validate, and the example canary
//! using them maps to a runnable rollout (every template becomes a query).

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
    assert!(files.len() >= 8, "{} files", files.len());
    let catalog = serin_spec::load_files(files.iter().map(|(n, t)| (n.as_str(), t.as_str())))
        .unwrap_or_else(|e| panic!("docs/templates must validate:\n{e}"));
    let names: Vec<&str> = catalog
        .metric_templates()
        .iter()
        .map(|t| t.name())
        .collect();
    for wanted in [
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
