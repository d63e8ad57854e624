//! `provider: istio`: the VirtualService `APEX` and the DestinationRules
//! `APEX-primary` and `APEX-canary`, as Flagger's Istio router writes them.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serin_spec::{
    HttpMatchRequest, StringMatch,
    service::{HeaderOperations, Headers},
};

use super::{COOKIE, KubeRouter, SET_COOKIE, build_cookie, cookie_regex};
use crate::{
    Error, Object, Result, Routes,
    crds::{
        Destination, DestinationRule, DestinationRuleSpec, IstioHttpRoute, IstioRewrite, L4Match,
        Percent, PortSelector, RouteDestination, TcpRoute, VirtualService, VirtualServiceSpec,
    },
    subject::Subject,
    workload::managed_annotations,
};

/// Flagger's name for the session affinity route.
const STICKY_ROUTE: &str = "sticky-route";

/// The Istio router.
#[derive(Clone, Copy, Debug)]
pub struct Istio;

impl KubeRouter for Istio {
    fn provider(&self) -> &'static str {
        "istio"
    }

    fn objects(&self, subject: &Subject<'_>, routes: &Routes) -> Result<Vec<Object>> {
        let traffic_policy = subject.canary().spec.service.traffic_policy.clone();
        let rule = |host: String| {
            Object::DestinationRule(Box::new(DestinationRule {
                metadata: ObjectMeta {
                    name: Some(host.clone()),
                    namespace: Some(subject.namespace().to_string()),
                    owner_references: subject.owner_references(),
                    ..ObjectMeta::default()
                },
                spec: DestinationRuleSpec {
                    host,
                    traffic_policy: traffic_policy.clone(),
                },
            }))
        };
        Ok(vec![
            rule(subject.canary_name()),
            rule(subject.primary_name()),
            Object::VirtualService(Box::new(virtual_service(subject, routes)?)),
        ])
    }
}

fn virtual_service(subject: &Subject<'_>, routes: &Routes) -> Result<VirtualService> {
    let service = &subject.canary().spec.service;
    let apex = subject.apex_name().to_string();
    if service.delegation && (!service.hosts.is_empty() || !service.gateways.is_empty()) {
        return Err(Error::field(
            "spec.service.delegation",
            "a delegate VirtualService cannot have hosts or gateways",
        ));
    }
    let mut hosts = service.hosts.clone();
    if !hosts.iter().any(|host| *host == apex || host == "*") {
        hosts.push(apex.clone());
    }
    let mut gateways = service.gateways.clone();
    if gateways.is_empty() {
        gateways.push("mesh".into());
    }
    if service.delegation {
        hosts.clear();
        gateways.clear();
    }
    let metadata = ObjectMeta {
        name: Some(apex),
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
    };
    let mut spec = VirtualServiceSpec {
        hosts,
        gateways,
        ..VirtualServiceSpec::default()
    };
    if service
        .app_protocol
        .as_deref()
        .is_some_and(|protocol| protocol.eq_ignore_ascii_case("tcp"))
    {
        spec.tcp = vec![TcpRoute {
            match_rules: service
                .match_rules
                .iter()
                .map(|rule| L4Match { port: rule.port })
                .collect(),
            route: destinations(subject, routes.primary, routes.canary),
        }];
    } else {
        spec.http = http_routes(subject, routes);
    }
    Ok(VirtualService { metadata, spec })
}

/// The HTTP routes at `routes` (Flagger's `SetRoutes`).
fn http_routes(subject: &Subject<'_>, routes: &Routes) -> Vec<IstioHttpRoute> {
    let canary = subject.canary();
    let analysis = canary.analysis();
    let service = &canary.spec.service;
    let base = |match_rules: Vec<HttpMatchRequest>, route: Vec<RouteDestination>| IstioHttpRoute {
        match_rules,
        rewrite: service.rewrite.as_ref().map(|rewrite| IstioRewrite {
            uri: rewrite.uri.clone(),
            authority: rewrite.authority.clone(),
        }),
        timeout: service.timeout.clone(),
        retries: service.retries.clone(),
        cors_policy: service.cors_policy.clone(),
        headers: service.headers.clone(),
        route,
        ..IstioHttpRoute::default()
    };

    // A/B testing: matched requests get the weights, the rest the primary.
    if !analysis.match_rules.is_empty() {
        return vec![
            base(
                merge_matches(&analysis.match_rules, &service.match_rules),
                destinations(subject, routes.primary, routes.canary),
            ),
            // Flagger writes the primary weight of the matched route here
            // (0 during the analysis); Istio ignores the weight of a lone
            // destination, so 100 routes the same and says what happens.
            base(
                service.match_rules.clone(),
                vec![destination(subject, subject.primary_name(), 100)],
            ),
        ];
    }

    let mut weighted = base(
        service.match_rules.clone(),
        destinations(subject, routes.primary, routes.canary),
    );
    let mut http = Vec::new();
    if let Some(affinity) = &analysis.session_affinity {
        let mut sticky = weighted.clone();
        sticky.name = Some(STICKY_ROUTE.into());
        match (&routes.cookie, &routes.previous_cookie) {
            (Some(cookie), _) if routes.canary > 0 => {
                for route in &mut weighted.route {
                    if route.destination.host == subject.canary_name() {
                        route.headers = Some(set_cookie(build_cookie(affinity, cookie)));
                    }
                }
                sticky.match_rules = merge_matches(&[cookie_match(cookie)], &service.match_rules);
                sticky.route = destinations(subject, 0, 100);
                http.push(sticky);
            }
            (_, Some(previous)) if routes.canary == 0 => {
                sticky.match_rules = merge_matches(&[cookie_match(previous)], &service.match_rules);
                let headers = sticky.headers.get_or_insert_with(Headers::default);
                headers
                    .response
                    .get_or_insert_with(HeaderOperations::default)
                    .add
                    .insert(SET_COOKIE.into(), format!("{previous}; Max-Age=-1"));
                http.push(sticky);
            }
            _ => {}
        }
        if let Some(primary_cookie) = affinity
            .primary_cookie_name
            .as_deref()
            .filter(|name| !name.is_empty())
            && routes.canary > 0
            && let Some(cookie) = &routes.cookie
        {
            // Users served by the primary during the run stay there.
            let value = cookie.split_once('=').map_or("", |(_, value)| value);
            let primary_value = format!("{primary_cookie}={value}");
            for route in &mut weighted.route {
                if route.destination.host == subject.primary_name() {
                    route.headers = Some(set_cookie(build_cookie(affinity, &primary_value)));
                }
            }
            let mut primary_sticky = weighted.clone();
            primary_sticky.name = Some(format!("{STICKY_ROUTE}-primary"));
            primary_sticky.match_rules =
                merge_matches(&[cookie_match(&primary_value)], &service.match_rules);
            primary_sticky.route = destinations(subject, 100, 0);
            http.push(primary_sticky);
        }
    }
    if routes.mirrored {
        weighted.mirror = Some(Destination {
            host: subject.canary_name(),
            port: None,
        });
        if analysis.mirror_weight.is_some_and(|weight| weight > 0) {
            weighted.mirror_percentage = Some(Percent {
                value: f64::from(analysis.mirror_weight()),
            });
        }
    }
    http.push(weighted);
    http
}

fn set_cookie(value: String) -> Headers {
    Headers {
        request: None,
        response: Some(HeaderOperations {
            add: BTreeMap::from([(SET_COOKIE.to_string(), value)]),
            ..HeaderOperations::default()
        }),
    }
}

fn cookie_match(cookie: &str) -> HttpMatchRequest {
    HttpMatchRequest {
        headers: BTreeMap::from([(
            COOKIE.to_string(),
            StringMatch {
                regex: Some(cookie_regex(cookie)),
                ..StringMatch::default()
            },
        )]),
        ..HttpMatchRequest::default()
    }
}

/// Flagger's `mergeMatchConditions`: each analysis rule combined with each
/// service rule, the analysis rule's headers and source labels winning.
pub(crate) fn merge_matches(
    analysis: &[HttpMatchRequest],
    service: &[HttpMatchRequest],
) -> Vec<HttpMatchRequest> {
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
            if !rule.source_labels.is_empty() {
                combined.source_labels = rule.source_labels.clone();
            }
            merged.push(combined);
        }
    }
    merged
}

fn destinations(subject: &Subject<'_>, primary: u8, canary: u8) -> Vec<RouteDestination> {
    vec![
        destination(subject, subject.primary_name(), primary),
        destination(subject, subject.canary_name(), canary),
    ]
}

/// Flagger's `makeDestination`: the port is named when port discovery is on
/// and an ingress gateway (or delegation) routes to the service.
fn destination(subject: &Subject<'_>, host: String, weight: u8) -> RouteDestination {
    let service = &subject.canary().spec.service;
    let with_port = service.port_discovery
        && (service
            .gateways
            .first()
            .is_some_and(|gateway| gateway != "mesh")
            || service.delegation);
    RouteDestination {
        destination: Destination {
            host,
            port: with_port.then(|| PortSelector {
                number: u32::try_from(subject.port()).unwrap_or_default(),
            }),
        },
        weight: i32::from(weight),
        headers: None,
    }
}
