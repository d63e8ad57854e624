//! Semantic rules: everything the types alone cannot say.
//!
//! Every rule adds to one list instead of returning early, so a file with five
//! mistakes gets five lines, not five round trips.
//!
//! Flagger's documentation is full of fragments (a `Canary` with only
//! `spec.service`, a `MetricTemplate` without `query`); those must validate, so
//! fields Flagger's schema requires are only demanded of documents serin will
//! run itself: the native `serin.dev/v1alpha1` ones and any `provider: builtin`
//! canary. What is present is always checked.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::{
    alert::{ALERT_PROVIDER_TYPES, AlertProvider},
    builtin::BuiltinMetric,
    canary::{Analysis, Canary, Metric, SessionAffinity, Webhook, WebhookType},
    document::{Document, SERIN_API_VERSION},
    matching::{HttpMatchRequest, StringMatch, compile_full_match},
    meta::{ObjectMeta, is_dns1123_subdomain},
    problem::{Path, Problem},
    service::{CanaryService, IntOrString},
    suggest,
    template::{METRIC_PROVIDER_TYPES, MetricTemplate},
    upstream::UpstreamUrl,
};

/// Flagger's traffic providers (its CRD enum), for "did you mean builtin?".
const FLAGGER_PROVIDERS: &[&str] = &[
    "apisix",
    "appmesh",
    "appmesh:v1beta2",
    "contour",
    "gatewayapi",
    "gatewayapi:v1",
    "gatewayapi:v1beta1",
    "gloo",
    "istio",
    "knative",
    "kubernetes",
    "kuma",
    "linkerd",
    "nginx",
    "osm",
    "skipper",
    "smi",
    "smi:v1alpha1",
    "smi:v1alpha2",
    "smi:v1alpha3",
    "traefik",
];

/// Validates documents of one file. With more than one document, paths start
/// with `documents[N].`, as in [`crate::parse_collecting`].
pub fn validate_documents(documents: &[Document]) -> Vec<Problem> {
    let many = documents.len() > 1;
    documents
        .iter()
        .enumerate()
        .flat_map(|(index, document)| {
            let prefix = format!("documents[{index}]");
            validate(document).into_iter().map(move |problem| {
                if many {
                    problem.prefixed(&prefix)
                } else {
                    problem
                }
            })
        })
        .collect()
}

/// Validates one document, returning every problem found.
pub fn validate(document: &Document) -> Vec<Problem> {
    match document {
        Document::Canary(canary) => validate_canary(canary),
        Document::MetricTemplate(template) => validate_metric_template(template),
        Document::AlertProvider(provider) => validate_alert_provider(provider),
    }
}

/// Validates a `Canary`.
pub fn validate_canary(canary: &Canary) -> Vec<Problem> {
    let mut check = Checker::default();
    let strict = canary.api_version == SERIN_API_VERSION || canary.is_runnable();
    let root = Path::root();
    check.metadata(&root.key("metadata"), &canary.metadata, strict);

    let spec = root.key("spec");
    if let Some(provider) = &canary.spec.provider {
        check.provider(&spec.key("provider"), provider);
    }
    if let Some(seconds) = canary.spec.progress_deadline_seconds
        && seconds < 1
    {
        check.push(
            spec.key("progressDeadlineSeconds"),
            format!("must be at least 1, got {seconds}"),
        );
    }
    check.service(&spec.key("service"), &canary.spec.service);
    if canary.is_haproxy() {
        let upstreams = canary.spec.upstreams.as_ref();
        check.problems.extend(crate::haproxy::validate(
            &spec.key("haproxy"),
            canary.spec.haproxy.as_ref(),
            &spec.key("upstreams"),
            upstreams.and_then(|u| u.stable.as_deref()),
            upstreams.and_then(|u| u.canary.as_deref()),
        ));
        check.haproxy_routing(&spec.key("analysis"), &canary.analysis());
    } else if canary.is_nginx() {
        let upstreams = canary.spec.upstreams.as_ref();
        check.problems.extend(crate::nginx::validate(
            &spec.key("nginx"),
            canary.spec.nginx.as_ref(),
            &spec.key("upstreams"),
            upstreams.and_then(|u| u.stable.as_deref()),
            upstreams.and_then(|u| u.canary.as_deref()),
        ));
        check.weights_only_routing(&spec.key("analysis"), &canary.analysis(), "nginx");
    } else if canary.is_alb() {
        let upstreams = canary.spec.upstreams.as_ref();
        check.problems.extend(crate::alb::validate(
            &spec.key("alb"),
            canary.spec.alb.as_ref(),
            &spec.key("upstreams"),
            upstreams.and_then(|u| u.stable.as_deref()),
            upstreams.and_then(|u| u.canary.as_deref()),
        ));
        check.alb_routing(&spec.key("analysis"), &canary.analysis());
    } else if let Some(upstreams) = &canary.spec.upstreams {
        let path = spec.key("upstreams");
        if let Some(stable) = &upstreams.stable {
            check.upstream_url(&path.key("stable"), stable);
        }
        if let Some(canary_url) = &upstreams.canary {
            check.upstream_url(&path.key("canary"), canary_url);
        }
        if let Some(revision) = &upstreams.revision
            && revision.trim().is_empty()
        {
            check.push(path.key("revision"), "must not be empty");
        }
        if let Some(ca_file) = &upstreams.ca_file
            && ca_file.trim().is_empty()
        {
            check.push(
                path.key("caFile"),
                "must not be empty; omit it to verify https upstreams against Mozilla's roots",
            );
        }
    }
    if (canary.is_haproxy() || canary.is_nginx()) && canary.spec.service.tls.is_some() {
        check.push(
            spec.key("service").key("tls"),
            "only provider builtin terminates TLS; with HAProxy or nginx, configure TLS there",
        );
    }
    if canary.is_builtin() {
        if canary.spec.service.listen.is_none() {
            check.push(
                spec.key("service").key("listen"),
                "required by provider builtin: the address the proxy listens on, e.g. 127.0.0.1:8080",
            );
        }
        if canary
            .spec
            .upstreams
            .as_ref()
            .and_then(|upstreams| upstreams.stable.as_ref())
            .is_none()
        {
            check.push(
                spec.key("upstreams").key("stable"),
                "required by provider builtin: the URL of the stable version",
            );
        }
    }
    match &canary.spec.analysis {
        Some(analysis) => check.analysis(&spec.key("analysis"), analysis),
        None if canary.is_runnable() => {
            check.push(
                spec.key("analysis"),
                format!(
                    "required by provider {}",
                    canary.spec.provider.as_deref().unwrap_or_default()
                ),
            );
        }
        None => {}
    }
    check.problems
}

/// Validates a `MetricTemplate`.
pub fn validate_metric_template(template: &MetricTemplate) -> Vec<Problem> {
    let mut check = Checker::default();
    let strict = template.api_version == SERIN_API_VERSION;
    let root = Path::root();
    check.metadata(&root.key("metadata"), &template.metadata, strict);

    let spec = root.key("spec");
    let provider = &template.spec.provider;
    let provider_path = spec.key("provider");
    check.one_of(
        &provider_path.key("type"),
        &provider.provider_type,
        METRIC_PROVIDER_TYPES,
        "metric provider type",
    );
    match &provider.address {
        // Placeholders (`{{ version }}`) are filled in before the request.
        Some(address) => check.http_url(
            &provider_path.key("address"),
            &without_placeholders(address),
        ),
        None if provider.provider_type == "web" => {
            check.push(provider_path.key("address"), "required by the web provider");
        }
        None => {}
    }
    for name in provider.headers.keys() {
        if name.trim().is_empty() {
            check.push(
                provider_path.key("headers"),
                "header names must not be empty",
            );
        }
    }
    if let Some(secret) = &provider.secret_ref
        && secret.name.trim().is_empty()
    {
        check.push(
            provider_path.key("secretRef").key("name"),
            "must not be empty",
        );
    }
    if let Some(path) = &provider.json_path
        && let Err(reason) = crate::template::parse_json_path(path)
    {
        check.push(provider_path.key("jsonPath"), format!("{path:?}: {reason}"));
    }
    if let Some(file) = &provider.bearer_token_file
        && file.trim().is_empty()
    {
        check.push(provider_path.key("bearerTokenFile"), "must not be empty");
    }
    if let Some(basic) = &provider.basic_auth {
        let basic_path = provider_path.key("basicAuth");
        if basic.username.trim().is_empty() {
            check.push(basic_path.key("username"), "must not be empty");
        }
        if basic.password_file.trim().is_empty() {
            check.push(basic_path.key("passwordFile"), "must not be empty");
        }
        if provider.bearer_token_file.is_some() {
            check.push(basic_path, "set basicAuth or bearerTokenFile, not both");
        }
    }
    if let Some(file) = &provider.ca_file
        && file.trim().is_empty()
    {
        check.push(provider_path.key("caFile"), "must not be empty");
    }
    if provider.timeout.as_ref().is_some_and(|t| t.is_zero()) {
        check.push(provider_path.key("timeout"), "must be longer than 0s");
    }
    match &template.spec.query {
        Some(query) if query.trim().is_empty() => {
            check.push(spec.key("query"), "must not be empty");
        }
        // The web provider's request is its address; a query is optional.
        None if strict && provider.provider_type != "web" => {
            check.push(spec.key("query"), "required field is missing")
        }
        _ => {}
    }
    check.problems
}

/// `text` with every `{{ … }}` replaced by `x`, so an address with template
/// placeholders can be checked as a URL.
fn without_placeholders(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        match rest[open..].find("}}") {
            Some(close) => {
                out.push('x');
                rest = &rest[open + close + 2..];
            }
            None => {
                rest = &rest[open..];
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Validates an `AlertProvider`.
pub fn validate_alert_provider(provider: &AlertProvider) -> Vec<Problem> {
    let mut check = Checker::default();
    let strict = provider.api_version == SERIN_API_VERSION;
    let root = Path::root();
    check.metadata(&root.key("metadata"), &provider.metadata, strict);

    let spec = root.key("spec");
    check.one_of(
        &spec.key("type"),
        &provider.spec.provider_type,
        ALERT_PROVIDER_TYPES,
        "alert provider type",
    );
    if let Some(address) = &provider.spec.address {
        check.http_url(&spec.key("address"), address);
    }
    if let Some(proxy) = &provider.spec.proxy {
        check.http_url(&spec.key("proxy"), proxy);
    }
    if provider.spec.address.is_none() && provider.spec.secret_ref.is_none() {
        check.push(
            spec.key("address"),
            "set address (the webhook URL) or secretRef (a secret holding it)",
        );
    }
    check.problems
}

/// Accumulates problems while walking a document.
#[derive(Default)]
struct Checker {
    problems: Vec<Problem>,
}

// === impl Checker ===

impl Checker {
    fn push(&mut self, path: Path, message: impl Into<String>) {
        self.problems.push(Problem::new(path, message));
    }

    fn metadata(&mut self, path: &Path, metadata: &ObjectMeta, strict: bool) {
        match &metadata.name {
            Some(name) if !is_dns1123_subdomain(name) => self.push(
                path.key("name"),
                format!(
                    "{name:?} is not a valid name: use lower-case letters, digits, '-' and '.', \
                     starting and ending with a letter or digit (at most 253 characters)"
                ),
            ),
            None if strict => self.push(path.key("name"), "required field is missing"),
            _ => {}
        }
        if let Some(namespace) = &metadata.namespace
            && (!is_dns1123_subdomain(namespace) || namespace.contains('.') || namespace.len() > 63)
        {
            self.push(
                path.key("namespace"),
                format!(
                    "{namespace:?} is not a valid namespace: use lower-case letters, digits and '-' \
                     (at most 63 characters)"
                ),
            );
        }
    }

    fn provider(&mut self, path: &Path, provider: &str) {
        if provider.trim().is_empty() {
            self.push(path.clone(), "must not be empty");
            return;
        }
        let known = provider == crate::canary::BUILTIN_PROVIDER
            || provider == crate::haproxy::HAPROXY_PROVIDER
            || provider == crate::alb::ALB_PROVIDER
            || FLAGGER_PROVIDERS.contains(&provider)
            || provider.contains(':');
        if !known && suggest::nearest(provider, &[crate::canary::BUILTIN_PROVIDER]).is_some() {
            self.push(
                path.clone(),
                format!("unknown provider {provider:?}, did you mean builtin?"),
            );
        }
    }

    fn one_of(&mut self, path: &Path, value: &str, known: &[&str], what: &str) {
        if value.is_empty() {
            self.push(
                path.clone(),
                format!("required: one of {}", known.join(", ")),
            );
        } else if !known.contains(&value) {
            let message = match suggest::nearest(value, known) {
                Some(suggestion) => format!(
                    "unknown {what} {value:?}, did you mean {suggestion}? (expected one of {})",
                    known.join(", ")
                ),
                None => format!(
                    "unknown {what} {value:?}, expected one of {}",
                    known.join(", ")
                ),
            };
            self.push(path.clone(), message);
        }
    }

    fn service(&mut self, path: &Path, service: &CanaryService) {
        if let Some(port) = service.port {
            self.port(&path.key("port"), port);
        }
        if let Some(IntOrString::Int(port)) = service.target_port {
            self.port(&path.key("targetPort"), port);
        }
        if let Some(listen) = &service.listen
            && listen.trim().parse::<SocketAddr>().is_err()
        {
            self.push(
                path.key("listen"),
                format!("{listen:?} is not a socket address; expected IP:PORT, e.g. 127.0.0.1:8080 or [::1]:8080"),
            );
        }
        if let Some(tls) = &service.tls {
            let tls_path = path.key("tls");
            for (field, value, what) in [
                ("certFile", &tls.cert_file, "the PEM certificate chain"),
                ("keyFile", &tls.key_file, "the PEM private key"),
            ] {
                match value {
                    None => self.push(
                        tls_path.key(field),
                        format!("required with service.tls: the file holding {what}"),
                    ),
                    Some(file) if file.trim().is_empty() => {
                        self.push(tls_path.key(field), "must not be empty");
                    }
                    Some(_) => {}
                }
            }
        }
        if let Some(access_log) = &service.access_log
            && access_log.trim().is_empty()
        {
            self.push(path.key("accessLog"), "must not be empty");
        }
        if let Some(limits) = &service.limits {
            let limits_path = path.key("limits");
            for (field, value) in [
                ("maxBodyBytes", limits.max_body_bytes),
                ("maxHeaderBytes", limits.max_header_bytes),
            ] {
                if value == Some(0) {
                    self.push(limits_path.key(field), "must be at least 1");
                }
            }
            for (field, value) in [
                ("connectTimeout", &limits.connect_timeout),
                ("requestTimeout", &limits.request_timeout),
                ("idleTimeout", &limits.idle_timeout),
                ("responseBodyTimeout", &limits.response_body_timeout),
            ] {
                if value.as_ref().is_some_and(|duration| duration.is_zero()) {
                    self.push(limits_path.key(field), "must be longer than 0s");
                }
            }
        }
        for (index, range) in service.trusted_proxies.iter().enumerate() {
            if let Err(message) = ip_range(range) {
                self.push(path.key("trustedProxies").index(index), message);
            }
        }
        for (index, rule) in service.match_rules.iter().enumerate() {
            self.match_rule(&path.key("match").index(index), rule);
        }
        if let Some(cors) = &service.cors_policy {
            for (index, origin) in cors.allow_origins.iter().enumerate() {
                self.string_match(
                    &path.key("corsPolicy").key("allowOrigins").index(index),
                    origin,
                );
            }
        }
    }

    fn port(&mut self, path: &Path, port: i64) {
        if !(1..=65535).contains(&port) {
            self.push(
                path.clone(),
                format!("must be between 1 and 65535, got {port}"),
            );
        }
    }

    fn weight(&mut self, path: &Path, weight: i64) {
        if !(1..=100).contains(&weight) {
            self.push(
                path.clone(),
                format!("must be between 1 and 100, got {weight}"),
            );
        }
    }

    fn analysis(&mut self, path: &Path, analysis: &Analysis) {
        if analysis
            .interval
            .as_ref()
            .is_some_and(|interval| interval.is_zero())
        {
            self.push(path.key("interval"), "must be longer than 0s");
        }
        if let Some(threshold) = analysis.threshold
            && threshold < 1
        {
            self.push(
                path.key("threshold"),
                format!("must be at least 1, got {threshold}"),
            );
        }
        if let Some(iterations) = analysis.iterations
            && iterations < 1
        {
            self.push(
                path.key("iterations"),
                format!("must be at least 1, got {iterations}"),
            );
        }
        for (field, value) in [
            ("maxWeight", analysis.max_weight),
            ("stepWeight", analysis.step_weight),
            ("stepWeightPromotion", analysis.step_weight_promotion),
            ("mirrorWeight", analysis.mirror_weight),
        ] {
            if let Some(weight) = value {
                self.weight(&path.key(field), weight);
            }
        }
        for (field, value) in [
            ("primaryReadyThreshold", analysis.primary_ready_threshold),
            ("canaryReadyThreshold", analysis.canary_ready_threshold),
        ] {
            if let Some(percent) = value
                && !(0..=100).contains(&percent)
            {
                self.push(
                    path.key(field),
                    format!("must be between 0 and 100, got {percent}"),
                );
            }
        }
        let steps_path = path.key("stepWeights");
        for (index, weight) in analysis.step_weights.iter().enumerate() {
            self.weight(&steps_path.index(index), *weight);
        }
        for (index, pair) in analysis.step_weights.windows(2).enumerate() {
            if let [previous, next] = pair
                && next <= previous
            {
                self.push(
                    steps_path.index(index + 1),
                    format!("must be larger than the previous step {previous}, got {next}"),
                );
            }
        }
        if let (Some(step), Some(max), true) = (
            analysis.step_weight,
            analysis.max_weight,
            analysis.step_weights.is_empty(),
        ) && step > max
        {
            self.push(
                path.key("stepWeight"),
                format!("must not be larger than maxWeight {max}, got {step}"),
            );
        }

        // Flagger's schema: exactly one of iterations, stepWeight, stepWeights.
        let strategies: Vec<&str> = [
            ("iterations", analysis.iterations.is_some()),
            ("stepWeight", analysis.step_weight.is_some()),
            ("stepWeights", !analysis.step_weights.is_empty()),
        ]
        .into_iter()
        .filter_map(|(field, set)| set.then_some(field))
        .collect();
        match strategies.as_slice() {
            [] => self.push(
                path.clone(),
                "set one of stepWeight, stepWeights (progressive canary) or iterations (A/B testing, blue/green)",
            ),
            [_] => {}
            several => self.push(
                path.clone(),
                format!("set only one of {}; they select different strategies", several.join(", ")),
            ),
        }

        for (index, rule) in analysis.match_rules.iter().enumerate() {
            self.match_rule(&path.key("match").index(index), rule);
        }
        if let Some(affinity) = &analysis.session_affinity {
            self.session_affinity(&path.key("sessionAffinity"), affinity);
        }
        for (index, metric) in analysis.metrics.iter().enumerate() {
            self.metric(&path.key("metrics").index(index), metric);
        }
        for (index, webhook) in analysis.webhooks.iter().enumerate() {
            self.webhook(&path.key("webhooks").index(index), webhook);
        }
        for (index, alert) in analysis.alerts.iter().enumerate() {
            let alert_path = path.key("alerts").index(index);
            if alert.name.trim().is_empty() {
                self.push(alert_path.key("name"), "required field is missing");
            }
            if let Some(severity) = &alert.severity
                && !["", "info", "warn", "error"].contains(&severity.as_str())
            {
                self.push(
                    alert_path.key("severity"),
                    format!("unknown severity {severity:?}, expected one of info, warn, error"),
                );
            }
            if alert.provider_ref.name.trim().is_empty() {
                self.push(
                    alert_path.key("providerRef").key("name"),
                    "must not be empty",
                );
            }
        }
        if let Some(alpha) = analysis.alpha
            && !(alpha > 0.0 && alpha <= 0.5)
        {
            self.push(
                path.key("alpha"),
                format!("must be above 0 and at most 0.5, got {alpha}"),
            );
        }
    }

    fn session_affinity(&mut self, path: &Path, affinity: &SessionAffinity) {
        if affinity.cookie_name.trim().is_empty() {
            self.push(path.key("cookieName"), "required field is missing");
        } else if !is_cookie_name(&affinity.cookie_name) {
            self.push(
                path.key("cookieName"),
                format!("{:?} is not a valid cookie name", affinity.cookie_name),
            );
        }
        if let Some(primary) = &affinity.primary_cookie_name {
            if !is_cookie_name(primary) {
                self.push(
                    path.key("primaryCookieName"),
                    format!("{primary:?} is not a valid cookie name"),
                );
            } else if *primary == affinity.cookie_name {
                self.push(
                    path.key("primaryCookieName"),
                    "must differ from cookieName, or users could not be told apart",
                );
            }
        }
        if let Some(max_age) = affinity.max_age
            && max_age < 0
        {
            self.push(
                path.key("maxAge"),
                format!("must not be negative, got {max_age}"),
            );
        }
        if let Some(same_site) = &affinity.same_site
            && !["Strict", "Lax", "None"].contains(&same_site.as_str())
        {
            self.push(
                path.key("sameSite"),
                format!("unknown value {same_site:?}, expected one of Strict, Lax, None"),
            );
        }
    }

    fn match_rule(&mut self, path: &Path, rule: &HttpMatchRequest) {
        let mut conditions = 0;
        for (field, condition) in [
            ("uri", &rule.uri),
            ("scheme", &rule.scheme),
            ("method", &rule.method),
            ("authority", &rule.authority),
        ] {
            if let Some(condition) = condition {
                conditions += 1;
                self.string_match(&path.key(field), condition);
            }
        }
        for (field, map) in [
            ("headers", &rule.headers),
            ("queryParams", &rule.query_params),
            ("withoutHeaders", &rule.without_headers),
        ] {
            for (name, condition) in map {
                conditions += 1;
                let condition_path = path.key(field).key(name);
                if name.trim().is_empty() {
                    self.push(condition_path.clone(), "names must not be empty");
                }
                self.string_match(&condition_path, condition);
            }
        }
        conditions += rule.source_labels.len()
            + usize::from(rule.port.is_some())
            + usize::from(rule.source_namespace.is_some())
            + rule.gateways.len();
        if let Some(port) = rule.port {
            self.port(&path.key("port"), port);
        }
        if conditions == 0 {
            self.push(
                path.clone(),
                "a match rule needs at least one condition (headers, uri, queryParams, …)",
            );
        }
    }

    fn string_match(&mut self, path: &Path, condition: &StringMatch) {
        if condition.conditions_set() > 1 {
            self.push(
                path.clone(),
                "set only one of exact, prefix, suffix or regex",
            );
        }
        if let Some(pattern) = &condition.regex
            && let Err(error) = compile_full_match(pattern)
        {
            let reason = error.to_string();
            let reason = reason.lines().last().unwrap_or_default().trim().to_string();
            self.push(
                path.key("regex"),
                format!("invalid regex {pattern:?}: {reason}"),
            );
        }
    }

    fn metric(&mut self, path: &Path, metric: &Metric) {
        if metric.name.trim().is_empty() {
            self.push(path.key("name"), "must not be empty");
        }
        if metric
            .interval
            .as_ref()
            .is_some_and(|interval| interval.is_zero())
        {
            self.push(path.key("interval"), "must be longer than 0s");
        }
        let builtin = metric.builtin();
        if builtin.is_none() && metric.template_ref.is_none() && metric.query.is_none() {
            let names: Vec<&str> = BuiltinMetric::ALL
                .iter()
                .map(|metric| metric.name())
                .collect();
            let message = match suggest::nearest(&metric.name, &names) {
                Some(suggestion) => format!(
                    "{:?} is not a built-in metric (did you mean {suggestion}?); other metrics need templateRef",
                    metric.name
                ),
                None => format!(
                    "{:?} is not a built-in metric ({}); other metrics need templateRef",
                    metric.name,
                    names.join(", ")
                ),
            };
            self.push(path.key("templateRef"), message);
        }
        if let Some(template_ref) = &metric.template_ref
            && template_ref.name.trim().is_empty()
        {
            self.push(path.key("templateRef").key("name"), "must not be empty");
        }
        if let Some(query) = &metric.query
            && query.trim().is_empty()
        {
            self.push(path.key("query"), "must not be empty");
        }
        if let Some(threshold) = metric.threshold
            && !threshold.is_finite()
        {
            self.push(path.key("threshold"), "must be a finite number");
        }
        if let Some(range) = &metric.threshold_range {
            let range_path = path.key("thresholdRange");
            match (range.min, range.max) {
                (None, None) => self.push(range_path, "set min, max or both"),
                (Some(min), Some(max)) if min > max => {
                    self.push(range_path, format!("min {min} is above max {max}"));
                }
                _ => {
                    for (field, value) in [("min", range.min), ("max", range.max)] {
                        if value.is_some_and(|value| !value.is_finite()) {
                            self.push(range_path.key(field), "must be a finite number");
                        }
                    }
                }
            }
        }
        if let Some(compare) = &metric.compare {
            let compare_path = path.key("compare");
            match (compare.max_delta, compare.max_ratio) {
                (None, None) => self.push(compare_path.clone(), "set maxDelta, maxRatio or both"),
                (delta, ratio) => {
                    if let Some(delta) = delta
                        && !(delta.is_finite() && delta >= 0.0)
                    {
                        self.push(
                            compare_path.key("maxDelta"),
                            format!("must be 0 or more, got {delta}"),
                        );
                    }
                    if let Some(ratio) = ratio
                        && !(ratio.is_finite() && ratio >= 1.0)
                    {
                        self.push(
                            compare_path.key("maxRatio"),
                            format!("must be 1 or more, got {ratio}"),
                        );
                    }
                }
            }
        }
        if let (Some(builtin), Some(direction)) = (builtin, metric.direction)
            && builtin.direction() != direction
        {
            self.push(
                path.key("direction"),
                format!(
                    "{} is a built-in metric where {} is better; remove direction or set it to {}",
                    builtin.name(),
                    builtin.direction(),
                    builtin.direction()
                ),
            );
        }
    }

    fn webhook(&mut self, path: &Path, webhook: &Webhook) {
        if webhook.name.trim().is_empty() {
            self.push(path.key("name"), "required field is missing");
        }
        if webhook.hook_type().is_none() {
            let names: Vec<&str> = WebhookType::ALL.iter().map(|hook| hook.name()).collect();
            let type_name = webhook.type_name.as_deref().unwrap_or_default();
            let message = match suggest::nearest(type_name, &names) {
                Some(suggestion) => format!(
                    "unknown webhook type {type_name:?}, did you mean {suggestion}? (expected one of {})",
                    names.join(", ")
                ),
                None => format!(
                    "unknown webhook type {type_name:?}, expected one of {}",
                    names.join(", ")
                ),
            };
            self.push(path.key("type"), message);
        }
        if webhook.url.trim().is_empty() {
            self.push(path.key("url"), "required field is missing");
        } else {
            self.http_url(&path.key("url"), &webhook.url);
        }
        if webhook
            .timeout
            .as_ref()
            .is_some_and(|timeout| timeout.is_zero())
        {
            self.push(path.key("timeout"), "must be longer than 0s");
        }
        if let Some(retries) = webhook.retries
            && retries < 0
        {
            self.push(
                path.key("retries"),
                format!("must not be negative, got {retries}"),
            );
        }
    }

    /// An absolute `http` or `https` URL with a host. Loose on the characters of
    /// the host, because Flagger's documentation uses placeholders such as
    /// `https://api.<REALM>.signalfx.com`; the HTTP client checks the rest.
    fn http_url(&mut self, path: &Path, url: &str) {
        if let Err(reason) = check_loose_http_url(url) {
            self.push(path.clone(), format!("{url:?} {reason}"));
        }
    }

    /// An upstream of the built-in proxy: strictly what the proxy can
    /// forward to ([`UpstreamUrl`], the rule every caller shares).
    /// What HAProxy's server weights cannot express: A/B matches, sticky
    /// sessions and mirroring need rules in HAProxy's configuration, which
    /// serin does not write.
    fn haproxy_routing(&mut self, path: &Path, analysis: &Analysis) {
        self.weights_only_routing(path, analysis, "haproxy");
    }

    /// What an ALB forward action cannot express: header/cookie matches
    /// belong in listener rules (which serin does not write) and an ALB
    /// cannot mirror. Session affinity is the target group stickiness of the
    /// forward action, with the ALB's own cookie (`AWSALBTG`).
    fn alb_routing(&mut self, path: &Path, analysis: &Analysis) {
        let unsupported = "not supported by provider alb (serin sets the forward action's weights and stickiness only)";
        if !analysis.match_rules.is_empty() {
            self.push(path.key("match"), unsupported);
        }
        if analysis.mirror {
            self.push(path.key("mirror"), unsupported);
        }
        if let Some(affinity) = &analysis.session_affinity
            && let Some(max_age) = affinity.max_age
            && !(1..=crate::alb::MAX_STICKINESS_SECONDS).contains(&max_age)
        {
            self.push(
                path.key("sessionAffinity").key("maxAge"),
                format!(
                    "{max_age} is outside what an ALB accepts for stickiness: 1 to {} seconds (7 days)",
                    crate::alb::MAX_STICKINESS_SECONDS
                ),
            );
        }
    }

    /// What a router that only sets server weights cannot express.
    fn weights_only_routing(&mut self, path: &Path, analysis: &Analysis, provider: &str) {
        let unsupported =
            format!("not supported by provider {provider} (serin sets server weights only)");
        if !analysis.match_rules.is_empty() {
            self.push(path.key("match"), unsupported.clone());
        }
        if analysis.session_affinity.is_some() {
            self.push(path.key("sessionAffinity"), unsupported.clone());
        }
        if analysis.mirror {
            self.push(path.key("mirror"), unsupported);
        }
    }

    fn upstream_url(&mut self, path: &Path, url: &str) {
        if let Err(reason) = UpstreamUrl::parse(url) {
            self.push(path.clone(), format!("{url:?}: {reason}"));
        }
    }
}

fn check_loose_http_url(url: &str) -> Result<(), &'static str> {
    let url = url.trim();
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err("is not an absolute URL; expected e.g. http://example.com/path");
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err("must use http or https");
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    if host.is_empty() || host.starts_with(':') {
        return Err("has no host");
    }
    if url.chars().any(char::is_whitespace) {
        return Err("must not contain spaces");
    }
    Ok(())
}

/// RFC 6265 cookie names: visible ASCII except separators.
fn is_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|byte| byte.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&byte))
}

/// Checks one `service.trustedProxies` entry: an IP address, or a CIDR range
/// with no bits set past its prefix (`10.0.0.1/8` is refused with a
/// suggestion rather than read as `10.0.0.0/8`). The proxy parses the same
/// text the same way.
fn ip_range(text: &str) -> Result<(), String> {
    let trimmed = text.trim();
    let (addr, prefix) = match trimmed.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (trimmed, None),
    };
    let Ok(addr) = addr.parse::<IpAddr>() else {
        return Err(format!(
            "{text:?} is not an IP address or CIDR range; expected e.g. 10.0.0.0/8 or 127.0.0.1"
        ));
    };
    let (bits, width) = match addr {
        IpAddr::V4(v4) => (u128::from(v4.to_bits()), 32u8),
        IpAddr::V6(v6) => (v6.to_bits(), 128u8),
    };
    let Some(prefix) = prefix else {
        return Ok(());
    };
    let prefix = match prefix.parse::<u8>() {
        Ok(n) if n <= width && prefix.bytes().all(|b| b.is_ascii_digit()) => n,
        _ => {
            return Err(format!(
                "{text:?}: the prefix length must be a number from 0 to {width}"
            ));
        }
    };
    let host_bits = u32::from(width - prefix);
    let network = bits
        .checked_shr(host_bits)
        .and_then(|b| b.checked_shl(host_bits))
        .unwrap_or(0);
    if network == bits {
        return Ok(());
    }
    let network = match addr {
        // The masked bits of an IPv4 address fit in 32.
        IpAddr::V4(_) => IpAddr::from(Ipv4Addr::from_bits(
            u32::try_from(network).unwrap_or_default(),
        )),
        IpAddr::V6(_) => IpAddr::from(Ipv6Addr::from_bits(network)),
    };
    Err(format!(
        "{text:?} has bits set past its /{prefix} prefix; did you mean {network}/{prefix}?"
    ))
}
