//! `spec.service`: how the generated services and routes look (Flagger), and
//! where serin's built-in proxy listens (serin's extensions).

use std::{collections::BTreeMap, fmt, net::SocketAddr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::{duration::Duration, matching::HttpMatchRequest, matching::StringMatch};

/// `spec.service`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CanaryService {
    /// Name of the generated Kubernetes service (defaults to the target's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Port of the generated service. Required by Flagger's schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    /// Port name (defaults to `http`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_name: Option<String>,
    /// Application protocol of the port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
    /// Kubernetes traffic distribution preference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_distribution: Option<String>,
    /// Container port, by number or name (defaults to `port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<IntOrString>,
    /// Expose every container port.
    #[serde(default)]
    pub port_discovery: bool,
    /// Generate headless services.
    #[serde(default)]
    pub headless: bool,
    /// Request timeout in the generated route (Istio duration text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Backend request timeout (Gateway API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_timeout: Option<String>,
    /// App Mesh mesh name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh_name: Option<String>,
    /// App Mesh backends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<String>,
    /// Hosts of the generated virtual service / route.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Generate an Istio delegate virtual service.
    #[serde(default)]
    pub delegation: bool,
    /// Route match conditions of the generated route.
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    pub match_rules: Vec<HttpMatchRequest>,
    /// Retry policy of the generated route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<HttpRetry>,
    /// URI rewrite of the generated route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<HttpRewrite>,
    /// Gateway API request mirrors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirror: Vec<ServiceMirror>,
    /// Header operations of the generated route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Headers>,
    /// Istio gateways.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    /// Gateway API parent references.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateway_refs: Vec<GatewayRef>,
    /// CORS policy of the generated route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors_policy: Option<CorsPolicy>,
    /// Istio destination rule traffic policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_policy: Option<TrafficPolicy>,
    /// Labels and annotations for the apex service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apex: Option<CustomMetadata>,
    /// Labels and annotations for the primary service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<CustomMetadata>,
    /// Labels and annotations for the canary service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CustomMetadata>,
    /// Labels and annotations Flagger must not overwrite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unmanaged_metadata: Option<UnmanagedMetadata>,

    /// serin: socket address where the built-in proxy accepts user traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// serin: file the built-in proxy appends its JSON-lines access log to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log: Option<String>,
    /// serin: resource limits of the built-in proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<ProxyLimits>,
    /// serin: the proxies in front of the built-in proxy, as addresses or
    /// CIDR ranges (`10.0.0.0/8`, `127.0.0.1`). Their `X-Forwarded-For`,
    /// `-Proto` and `-Host` headers are kept (the first appended to); from
    /// any other peer they are replaced by what serin saw, so a client
    /// cannot pose as another address. Empty (the default): none trusted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<String>,
    /// serin: TLS termination on the built-in proxy's listener: clients get
    /// HTTP/1.1 or HTTP/2 by ALPN, upstreams `X-Forwarded-Proto: https`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ServiceTls>,
}

/// serin: `spec.service.tls`, the listener's certificate. Both files are
/// re-read on SIGHUP and when they change (certbot renews in place); a bad
/// new pair is refused and the old one keeps serving.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceTls {
    /// PEM certificate chain, leaf first (certbot's `fullchain.pem`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<String>,
    /// PEM private key of the leaf certificate (certbot's `privkey.pem`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
}

impl CanaryService {
    /// `listen` parsed as a socket address (`None` when absent or invalid;
    /// validation reports the invalid case).
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen.as_deref()?.trim().parse().ok()
    }
}

/// serin: `spec.service.limits`, the built-in proxy's guards.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyLimits {
    /// Largest request body accepted, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<u64>,
    /// Largest request head (all headers) accepted, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_header_bytes: Option<u64>,
    /// How long to wait for a connection to an upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Duration>,
    /// How long one proxied request may take in total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_timeout: Option<Duration>,
    /// How long an idle client connection is kept open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<Duration>,
    /// How long an upstream may pause between chunks of its response body
    /// before the body is cut (recorded as that version's 504).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_body_timeout: Option<Duration>,
}

/// A Kubernetes int-or-string (`targetPort: 9898` or `targetPort: http`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IntOrString {
    /// A number.
    Int(i64),
    /// A name.
    String(String),
}

impl Serialize for IntOrString {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Int(number) => serializer.serialize_i64(*number),
            Self::String(text) => serializer.serialize_str(text),
        }
    }
}

impl<'de> Deserialize<'de> for IntOrString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl serde::de::Visitor<'_> for Visitor {
            type Value = IntOrString;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port number or name")
            }

            fn visit_u64<E: serde::de::Error>(self, number: u64) -> Result<IntOrString, E> {
                i64::try_from(number)
                    .map(IntOrString::Int)
                    .map_err(|_| E::custom("port number is too large"))
            }

            fn visit_i64<E: serde::de::Error>(self, number: i64) -> Result<IntOrString, E> {
                Ok(IntOrString::Int(number))
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<IntOrString, E> {
                Ok(IntOrString::String(text.to_string()))
            }
        }

        deserializer.deserialize_any(Visitor)
    }
}

/// Istio HTTP retry policy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRetry {
    /// Number of retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<i64>,
    /// Timeout per try (Istio duration text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_try_timeout: Option<String>,
    /// Retry conditions, comma separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_on: Option<String>,
}

/// Istio / Gateway API URI rewrite.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpRewrite {
    /// Replacement path or prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Replacement authority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    /// Gateway API rewrite type (`ReplaceFullPath`, `ReplacePrefixMatch`).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub rewrite_type: Option<String>,
}

/// Gateway API request mirror.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceMirror {
    /// Where mirrored requests go.
    pub backend_ref: BackendRef,
}

/// Gateway API backend reference.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BackendRef {
    /// API group (empty for core).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind (defaults to `Service`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name.
    pub name: String,
    /// Namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
}

/// Gateway API parent reference.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayRef {
    /// API group (defaults to `gateway.networking.k8s.io`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind (defaults to `Gateway`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name.
    pub name: String,
    /// Namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Listener name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    /// Listener port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
}

/// Header operations for requests and responses.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Headers {
    /// Operations on requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<HeaderOperations>,
    /// Operations on responses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<HeaderOperations>,
}

/// Add, set and remove headers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HeaderOperations {
    /// Headers appended.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub add: BTreeMap<String, String>,
    /// Headers overwritten.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, String>,
    /// Headers removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

/// Istio CORS policy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CorsPolicy {
    /// Allow credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_credentials: Option<bool>,
    /// Allowed request headers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_headers: Vec<String>,
    /// Allowed methods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_methods: Vec<String>,
    /// Allowed origins (deprecated form).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_origin: Vec<String>,
    /// Allowed origins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_origins: Vec<StringMatch>,
    /// Headers exposed to the browser.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose_headers: Vec<String>,
    /// How long preflight results are cached (Istio duration text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<String>,
}

/// Istio destination rule traffic policy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficPolicy {
    /// Connection pool settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_pool: Option<ConnectionPool>,
    /// Load balancing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancer>,
    /// Outlier detection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
    /// Upstream TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ClientTls>,
}

/// Istio connection pool settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ConnectionPool {
    /// HTTP settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpConnectionPool>,
}

/// Istio HTTP connection pool settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpConnectionPool {
    /// `DEFAULT`, `DO_NOT_UPGRADE` or `UPGRADE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub h2_upgrade_policy: Option<String>,
    /// Pending HTTP/1 requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http1_max_pending_requests: Option<i64>,
    /// Concurrent HTTP/2 requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2_max_requests: Option<i64>,
    /// Idle timeout (Istio duration text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<String>,
    /// Requests per connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests_per_connection: Option<i64>,
    /// Outstanding retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<i64>,
}

/// Istio load balancer settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancer {
    /// `ROUND_ROBIN`, `LEAST_CONN`, `RANDOM`, `PASSTHROUGH` or `LEAST_REQUEST`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simple: Option<String>,
    /// Consistent hashing (sticky sessions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistent_hash: Option<ConsistentHash>,
    /// Locality-weighted load balancing, kept as free-form data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locality_lb_setting: Option<Value>,
    /// Warm-up duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_duration_secs: Option<String>,
}

/// Istio consistent-hash load balancing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsistentHash {
    /// Hash on a cookie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_cookie: Option<HttpCookie>,
    /// Hash on a header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_header_name: Option<String>,
    /// Hash on a query parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_query_parameter_name: Option<String>,
    /// Ring size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_ring_size: Option<i64>,
    /// Hash on the source address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_source_ip: Option<bool>,
}

/// Cookie used for consistent hashing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpCookie {
    /// Cookie name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Cookie path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Cookie lifetime (Istio duration text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
}

/// Istio outlier detection.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutlierDetection {
    /// Minimum ejection duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_ejection_time: Option<String>,
    /// 5xx errors before ejection.
    #[serde(
        default,
        rename = "consecutive5xxErrors",
        skip_serializing_if = "Option::is_none"
    )]
    pub consecutive_5xx_errors: Option<i64>,
    /// Errors before ejection (deprecated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_errors: Option<i64>,
    /// Gateway errors before ejection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_gateway_errors: Option<i64>,
    /// Local-origin failures before ejection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_local_origin_failures: Option<i64>,
    /// Sweep interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Largest share of hosts ejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ejection_percent: Option<i64>,
    /// Minimum healthy share for detection to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_health_percent: Option<i64>,
    /// Separate local-origin failures from external errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_external_local_origin_errors: Option<bool>,
}

/// Istio client TLS settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientTls {
    /// `DISABLE`, `SIMPLE`, `MUTUAL` or `ISTIO_MUTUAL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// CA certificates file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificates: Option<String>,
    /// Client certificate file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<String>,
    /// Client key file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    /// SNI server name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// Accepted subject alternative names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
}

/// Labels and annotations added to a generated object.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CustomMetadata {
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Label and annotation keys Flagger leaves alone.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UnmanagedMetadata {
    /// Annotation keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<String>,
    /// Label keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
}
