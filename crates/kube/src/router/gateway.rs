//! `provider: gatewayapi:v1` / `gatewayapi:v1beta1`: the HTTPRoute `APEX`,
//! as Flagger's Gateway API router writes it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serin_spec::{HttpMatchRequest, StringMatch};

use super::{COOKIE, KubeRouter, SET_COOKIE, build_cookie, cookie_regex};
use crate::{
    Error, Object, Result, Routes,
    crds::{
        BackendObjectRef, HeaderFilter, HttpBackendRef, HttpHeader, HttpPathMatch, HttpRoute,
        HttpRouteFilter, HttpRouteMatch, HttpRouteRule, HttpRouteSpec, HttpRouteTimeouts,
        NameMatch, ParentRef, PathModifier, RequestMirror, UrlRewrite,
    },
    subject::Subject,
    workload::managed_annotations,
};

/// The Gateway API router, in the API version the provider names.
#[derive(Clone, Copy, Debug)]
pub enum GatewayApi {
    /// `gateway.networking.k8s.io/v1`.
    V1,
    /// `gateway.networking.k8s.io/v1beta1`.
    V1Beta1,
}

impl KubeRouter for GatewayApi {
    fn provider(&self) -> &'static str {
        match self {
            Self::V1 => "gatewayapi:v1",
            Self::V1Beta1 => "gatewayapi:v1beta1",
        }
    }

    fn objects(&self, subject: &Subject<'_>, routes: &Routes) -> Result<Vec<Object>> {
        let version = match self {
            Self::V1 => "v1",
            Self::V1Beta1 => "v1beta1",
        };
        Ok(vec![Object::HttpRoute(
            Box::new(http_route(subject, routes)?),
            version,
        )])
    }
}

fn http_route(subject: &Subject<'_>, routes: &Routes) -> Result<HttpRoute> {
    let canary = subject.canary();
    let service = &canary.spec.service;
    let analysis = canary.analysis();
    if service.gateway_refs.is_empty() {
        return Err(Error::field(
            "spec.service.gatewayRefs",
            "required with the Gateway API provider",
        ));
    }
    let mut matches = map_matches(&service.match_rules, "spec.service.match")?;
    if matches.is_empty() {
        matches.push(HttpRouteMatch {
            path: Some(HttpPathMatch {
                match_type: "PathPrefix".into(),
                value: "/".into(),
            }),
            ..HttpRouteMatch::default()
        });
    }
    let timeouts = service.timeout.as_ref().map(|timeout| HttpRouteTimeouts {
        request: Some(timeout.clone()),
    });
    let port = i64::from(subject.port());
    let backend = |name: String, weight: u8| HttpBackendRef {
        backend: BackendObjectRef {
            group: Some(String::new()),
            kind: Some("Service".into()),
            name,
            namespace: None,
            port: Some(port),
        },
        weight: Some(i32::from(weight)),
        filters: Vec::new(),
    };
    let mut weighted = HttpRouteRule {
        matches: matches.clone(),
        filters: filters(subject),
        backend_refs: vec![
            backend(subject.primary_name(), routes.primary),
            backend(subject.canary_name(), routes.canary),
        ],
        timeouts: timeouts.clone(),
    };
    // Blue/green mirroring: a RequestMirror filter to the canary.
    if routes.mirrored && analysis.iterations() > 0 {
        weighted.filters.push(HttpRouteFilter {
            filter_type: "RequestMirror".into(),
            request_mirror: Some(RequestMirror {
                backend_ref: BackendObjectRef {
                    group: Some(String::new()),
                    kind: Some("Service".into()),
                    name: subject.canary_name(),
                    namespace: None,
                    port: Some(port),
                },
            }),
            ..HttpRouteFilter::default()
        });
    }
    let mut rules = Vec::new();
    if let Some(affinity) = &analysis.session_affinity {
        let cookie_rule = |cookie: &str| -> Result<Vec<HttpRouteMatch>> {
            let cookie_match = HttpRouteMatch {
                headers: vec![NameMatch {
                    match_type: "RegularExpression".into(),
                    name: COOKIE.into(),
                    value: cookie_regex(cookie),
                }],
                ..HttpRouteMatch::default()
            };
            let service_matches = map_matches(&service.match_rules, "spec.service.match")?;
            Ok(merge_matches(&[cookie_match], &service_matches))
        };
        match (&routes.cookie, &routes.previous_cookie) {
            (Some(cookie), _) if routes.canary > 0 => {
                let mut sticky = weighted.clone();
                for backend_ref in &mut weighted.backend_refs {
                    if backend_ref.backend.name == subject.canary_name() {
                        backend_ref
                            .filters
                            .push(set_cookie(build_cookie(affinity, cookie)));
                    }
                }
                sticky.matches = cookie_rule(cookie)?;
                sticky.backend_refs = vec![
                    backend(subject.primary_name(), 0),
                    backend(subject.canary_name(), 100),
                ];
                rules.push(sticky);
            }
            (_, Some(previous)) if routes.canary == 0 => {
                let mut sticky = weighted.clone();
                sticky.matches = cookie_rule(previous)?;
                sticky
                    .filters
                    .push(set_cookie(format!("{previous}; Max-Age=-1")));
                rules.push(sticky);
            }
            _ => {}
        }
    }
    rules.push(weighted);

    // A/B testing: the analysis matches get the weights, the rest the primary.
    if !analysis.match_rules.is_empty() {
        let analysis_matches = map_matches(&analysis.match_rules, "spec.analysis.match")?;
        if let Some(first) = rules.first_mut() {
            first.matches = merge_matches(&analysis_matches, &matches);
        }
        rules.push(HttpRouteRule {
            matches,
            filters: filters(subject),
            backend_refs: vec![backend(subject.primary_name(), 100)],
            timeouts,
        });
    }

    Ok(HttpRoute {
        metadata: ObjectMeta {
            name: Some(subject.apex_name().to_string()),
            namespace: Some(subject.namespace().to_string()),
            labels: service
                .apex
                .as_ref()
                .map(|meta| meta.labels.clone())
                .filter(|labels| !labels.is_empty()),
            annotations: Some(managed_annotations(
                service.apex.as_ref().map(|meta| &meta.annotations),
            )),
            owner_references: subject.owner_references(),
            ..ObjectMeta::default()
        },
        spec: HttpRouteSpec {
            parent_refs: service
                .gateway_refs
                .iter()
                .map(|gateway| ParentRef {
                    group: gateway.group.clone(),
                    kind: gateway.kind.clone(),
                    namespace: gateway.namespace.clone(),
                    name: gateway.name.clone(),
                    section_name: gateway.section_name.clone(),
                    port: gateway.port,
                })
                .collect(),
            hostnames: service.hosts.clone(),
            rules,
        },
    })
}

fn set_cookie(value: String) -> HttpRouteFilter {
    HttpRouteFilter {
        filter_type: "ResponseHeaderModifier".into(),
        response_header_modifier: Some(HeaderFilter {
            add: vec![HttpHeader {
                name: SET_COOKIE.into(),
                value,
            }],
            ..HeaderFilter::default()
        }),
        ..HttpRouteFilter::default()
    }
}

/// Flagger's `mapRouteMatches`: Istio-style matches as Gateway API ones.
/// The Gateway API has no prefix or suffix header matches; those are
/// refused naming the field.
fn map_matches(rules: &[HttpMatchRequest], path: &str) -> Result<Vec<HttpRouteMatch>> {
    let mut matches = Vec::new();
    for (index, rule) in rules.iter().enumerate() {
        let at = |field: &str| format!("{path}[{index}].{field}");
        let mut route_match = HttpRouteMatch::default();
        if let Some(uri) = &rule.uri {
            let (match_type, value) = match uri {
                StringMatch {
                    regex: Some(value), ..
                } => ("RegularExpression", value),
                StringMatch {
                    exact: Some(value), ..
                } => ("Exact", value),
                StringMatch {
                    prefix: Some(value),
                    ..
                } => ("PathPrefix", value),
                _ => {
                    return Err(Error::field(
                        at("uri"),
                        "the Gateway API matches paths by exact, prefix or regex only",
                    ));
                }
            };
            route_match.path = Some(HttpPathMatch {
                match_type: match_type.into(),
                value: value.clone(),
            });
        }
        if let Some(method) = &rule.method {
            let Some(exact) = &method.exact else {
                return Err(Error::field(
                    at("method"),
                    "the Gateway API matches methods exactly only",
                ));
            };
            route_match.method = Some(exact.clone());
        }
        for (name, value) in &rule.headers {
            route_match
                .headers
                .push(name_match(value, name, || at(&format!("headers.{name}")))?);
        }
        for (name, value) in &rule.query_params {
            route_match.query_params.push(name_match(value, name, || {
                at(&format!("queryParams.{name}"))
            })?);
        }
        if route_match != HttpRouteMatch::default() {
            matches.push(route_match);
        }
    }
    Ok(matches)
}

fn name_match(value: &StringMatch, name: &str, at: impl Fn() -> String) -> Result<NameMatch> {
    let (match_type, text) = match value {
        StringMatch {
            exact: Some(text), ..
        } => ("Exact", text),
        StringMatch {
            regex: Some(text), ..
        } => ("RegularExpression", text),
        _ => {
            return Err(Error::field(
                at(),
                "the Gateway API matches exact values or regular expressions only",
            ));
        }
    };
    Ok(NameMatch {
        match_type: match_type.into(),
        name: name.to_string(),
        value: text.clone(),
    })
}

/// Flagger's Gateway API `mergeMatchConditions`.
fn merge_matches(analysis: &[HttpRouteMatch], service: &[HttpRouteMatch]) -> Vec<HttpRouteMatch> {
    if analysis.is_empty() {
        return service.to_vec();
    }
    if service.is_empty() {
        return analysis.to_vec();
    }
    let mut merged = Vec::with_capacity(analysis.len() * service.len());
    for rule in analysis {
        for default in service {
            let mut combined = default.clone();
            if !rule.headers.is_empty() {
                combined.headers = rule.headers.clone();
            }
            if !rule.query_params.is_empty() {
                combined.query_params = rule.query_params.clone();
            }
            merged.push(combined);
        }
    }
    merged
}

/// Flagger's `makeFilters`: header operations, rewrite, service mirrors.
fn filters(subject: &Subject<'_>) -> Vec<HttpRouteFilter> {
    let service = &subject.canary().spec.service;
    let mut filters = Vec::new();
    let header_filter = |operations: &serin_spec::service::HeaderOperations| HeaderFilter {
        add: operations
            .add
            .iter()
            .map(|(name, value)| HttpHeader {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
        set: operations
            .set
            .iter()
            .map(|(name, value)| HttpHeader {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
        remove: operations.remove.clone(),
    };
    if let Some(headers) = &service.headers {
        if let Some(request) = &headers.request {
            filters.push(HttpRouteFilter {
                filter_type: "RequestHeaderModifier".into(),
                request_header_modifier: Some(header_filter(request)),
                ..HttpRouteFilter::default()
            });
        }
        if let Some(response) = &headers.response {
            filters.push(HttpRouteFilter {
                filter_type: "ResponseHeaderModifier".into(),
                response_header_modifier: Some(header_filter(response)),
                ..HttpRouteFilter::default()
            });
        }
    }
    if let Some(rewrite) = &service.rewrite {
        let path = rewrite
            .uri
            .as_ref()
            .filter(|uri| !uri.is_empty())
            .map(|uri| {
                if rewrite.rewrite_type.as_deref() == Some("ReplaceFullPath") {
                    PathModifier {
                        modifier_type: "ReplaceFullPath".into(),
                        replace_full_path: Some(uri.clone()),
                        replace_prefix_match: None,
                    }
                } else {
                    PathModifier {
                        modifier_type: "ReplacePrefixMatch".into(),
                        replace_full_path: None,
                        replace_prefix_match: Some(uri.clone()),
                    }
                }
            });
        filters.push(HttpRouteFilter {
            filter_type: "URLRewrite".into(),
            url_rewrite: Some(UrlRewrite {
                hostname: rewrite.authority.clone().filter(|host| !host.is_empty()),
                path,
            }),
            ..HttpRouteFilter::default()
        });
    }
    for mirror in &service.mirror {
        let reference = &mirror.backend_ref;
        filters.push(HttpRouteFilter {
            filter_type: "RequestMirror".into(),
            request_mirror: Some(RequestMirror {
                backend_ref: BackendObjectRef {
                    group: reference.group.clone(),
                    kind: reference.kind.clone(),
                    name: reference.name.clone(),
                    namespace: reference.namespace.clone(),
                    port: reference.port,
                },
            }),
            ..HttpRouteFilter::default()
        });
    }
    filters
}
