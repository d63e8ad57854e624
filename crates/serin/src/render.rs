//! `serin render FILE`: prints the objects a canary's router holds at a
//! canary weight. Kubernetes routers come from `serin-kube`; each router
//! outside Kubernetes is one arm of [`render_external`].

use crate::commands::{EXIT_OK, EXIT_TROUBLE};
use anyhow::Result;
use serin_spec::Canary;
use std::{path::Path, process::ExitCode};

/// Prints the objects of the canary in `file` at `weight`, or every problem
/// (file and field path) with exit status 2.
pub fn render(file: &Path, weight: i64, name: Option<&str>, provider: &str) -> Result<ExitCode> {
    let trouble = || Ok(ExitCode::from(EXIT_TROUBLE));
    let file_name = file.display().to_string();
    if !(0..=100).contains(&weight) {
        eprintln!("--weight: must be between 0 and 100, got {weight}");
        return trouble();
    }
    let text = match serin_spec::read_file(file) {
        Ok(text) => text,
        Err(problem) => {
            eprintln!("{}", problem.in_file(file_name));
            return trouble();
        }
    };
    let split = match serin_kube::documents::split(&text) {
        Ok(split) => split,
        Err(errors) => {
            for error in errors {
                eprintln!("{file_name}: {error}");
            }
            return trouble();
        }
    };
    let loaded = match serin_spec::load_texts([(file_name.as_str(), split.spec_text.as_str())]) {
        Ok(loaded) => loaded,
        Err(diagnostics) => {
            for diagnostic in diagnostics {
                eprintln!("{diagnostic}");
            }
            return trouble();
        }
    };
    let catalog = &loaded.catalog;
    let canary = match (name, catalog.canaries()) {
        (Some(name), _) => catalog.canary(name),
        (None, [one]) => Some(one),
        (None, _) => None,
    };
    let Some(canary) = canary else {
        eprintln!(
            "{file_name}: {}",
            match name {
                Some(name) => format!("metadata.name: no canary named {name:?}"),
                None if catalog.canaries().is_empty() => "kind: no Canary document found".into(),
                None => "metadata.name: several canaries: name one with --name".into(),
            }
        );
        return trouble();
    };
    let provider = canary
        .spec
        .provider
        .as_deref()
        .filter(|provider| !provider.is_empty())
        .unwrap_or(provider);
    if provider == serin_spec::canary::BUILTIN_PROVIDER {
        return builtin(canary, weight, &file_name);
    }
    if let Some(code) = render_external(canary, provider, weight, &file_name) {
        return Ok(code);
    }
    let cluster = split.cluster_for(canary);
    let subject = match serin_kube::Subject::new(canary, &cluster, provider) {
        Ok(subject) => subject,
        Err(error) => {
            eprintln!("{file_name}: {error}");
            return trouble();
        }
    };
    let objects = serin_kube::Routes::at(canary, weight)
        .and_then(|routes| serin_kube::build(&subject, &routes));
    match objects {
        Ok(objects) => {
            print!("{}", serin_kube::documents::to_yaml(&objects));
            Ok(ExitCode::from(EXIT_OK))
        }
        Err(error) => {
            eprintln!("{file_name}: {error}");
            trouble()
        }
    }
}

/// The routers outside Kubernetes. `None`: a Kubernetes router, rendered
/// by `serin-kube`. Each external router is one arm here, printing one
/// YAML document built by the router's own code (`serin_providers::render`):
/// the nginx upstream file as the text serin writes, the HAProxy runtime
/// API commands in the order serin sends them, the ALB forward action as the
/// Elastic Load Balancing API spells it.
fn render_external(
    canary: &Canary,
    provider: &str,
    weight: i64,
    file_name: &str,
) -> Option<ExitCode> {
    use serin_providers::render;
    let weight = u8::try_from(weight.clamp(0, 100)).unwrap_or(0);
    let document = match provider {
        "haproxy" => render::haproxy(canary, weight).map(|commands| {
            let spec = canary.spec.haproxy.as_ref();
            serde_json::json!({
                                "runtimeApi": spec.map(|s| s.runtime_api.clone()),
                "backend": spec.map(|s| s.backend.clone()),
                "canaryWeight": weight,
                "commands": commands.lines().collect::<Vec<_>>(),
            })
        }),
        "nginx" if canary.spec.ingress_ref.is_none() => render::nginx(canary, weight).map(|file| {
            let spec = canary.spec.nginx.as_ref();
            serde_json::json!({
                                "path": spec.map(|s| s.config_file.clone()),
                "upstream": spec.map(|s| s.upstream.clone()),
                "canaryWeight": weight,
                "content": file,
            })
        }),
        "alb" => render::alb(canary, weight).map(|action| {
            let spec = canary.spec.alb.as_ref();
            let mut document = serde_json::json!({
                                "listenerArn": spec.map(|s| s.listener_arn.clone()),
                "canaryWeight": weight,
                "action": action,
            });
            if let Some(rule) = spec.and_then(|s| s.rule_arn.clone()) {
                document["ruleArn"] = serde_json::Value::String(rule);
            }
            document
        }),
        _ => return None,
    };
    let kind = match provider {
        "haproxy" => "HAProxyRuntimeCommands",
        "nginx" => "NginxUpstreamFile",
        _ => "ALBForwardAction",
    };
    let printed = document
        .map_err(|error| error.to_string())
        .and_then(|state| {
            let document = RouterDocument {
                kind,
                metadata: Metadata {
                    name: canary.name(),
                },
                state,
            };
            serde_saphyr::to_string(&document).map_err(|e| e.to_string())
        });
    match printed {
        Ok(text) => {
            print!("{text}");
            Some(ExitCode::from(EXIT_OK))
        }
        Err(error) => {
            eprintln!("{file_name}: {error}");
            Some(ExitCode::from(EXIT_TROUBLE))
        }
    }
}

/// The built-in proxy's route table at `weight`: the upstreams, the split
/// (by the same strategy rules as the Kubernetes routers), the A/B matches,
/// mirroring and the session affinity cookie.
fn builtin(canary: &Canary, weight: i64, file_name: &str) -> Result<ExitCode> {
    let routes = match serin_kube::Routes::at(canary, weight) {
        Ok(routes) => routes,
        Err(error) => {
            eprintln!("{file_name}: {error}");
            return Ok(ExitCode::from(EXIT_TROUBLE));
        }
    };
    let analysis = canary.analysis();
    let upstreams = canary.spec.upstreams.clone().unwrap_or_default();
    let mut table = serde_json::json!({
        "name": canary.name(),
        "listen": canary.spec.service.listen,
        "upstreams": {"stable": upstreams.stable, "canary": upstreams.canary},
        "weights": {"stable": routes.primary, "canary": routes.canary},
    });
    if !analysis.match_rules.is_empty() {
        // Matched requests take the split above; the rest go to stable.
        table["match"] = serde_json::to_value(&analysis.match_rules)?;
    }
    if routes.mirrored {
        table["mirror"] = serde_json::json!({"percent": analysis.mirror_weight()});
    }
    if let Some(cookie) = &routes.cookie {
        table["sessionAffinity"] = serde_json::json!({"cookie": cookie});
    }
    print!("{}", serde_saphyr::to_string(&table)?);
    Ok(ExitCode::from(EXIT_OK))
}

/// One router's state as a YAML document: `kind` and `metadata.name` first,
/// as in the Kubernetes documents render prints, then the router's fields.
#[derive(serde::Serialize)]
struct RouterDocument<'a> {
    kind: &'a str,
    metadata: Metadata<'a>,
    #[serde(flatten)]
    state: serde_json::Value,
}

/// The canary the document belongs to.
#[derive(serde::Serialize)]
struct Metadata<'a> {
    name: &'a str,
}
