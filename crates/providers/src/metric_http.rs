//! What the Prometheus and JSON/HTTP metric providers share: the query
//! template with its placeholders, credentials read from files, and one
//! bounded HTTP exchange (timeout, answer size cap).

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use serin_rollout::ports::PortError;
use serin_spec::MetricProvider;
use serin_stats::Version;
use std::{collections::BTreeMap, time::Duration};

/// Used when a template gives no `spec.provider.timeout`.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Answers larger than this are refused: a metric is one number, and a
/// runaway query must not fill serin's memory.
pub const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// Credentials longer than this are refused (a token file pointing at the
/// wrong, huge file).
const MAX_CREDENTIAL_BYTES: u64 = 64 * 1024;

/// Why a metric provider could not be built from its template.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The query or address names a placeholder serin does not know.
    #[error(
        "{field}: unknown placeholder {{{{ {name} }}}}; known: namespace, name, target, service, interval, version, variables.NAME"
    )]
    UnknownPlaceholder {
        /// The template field (`spec.query`, `spec.provider.address`).
        field: &'static str,
        /// The placeholder as written.
        name: String,
    },
    /// `{{ variables.NAME }}` without a value in the metric's `templateVariables`.
    #[error(
        "{field}: {{{{ variables.{name} }}}} has no value: set templateVariables.{name} on the metric"
    )]
    MissingVariable {
        /// The template field.
        field: &'static str,
        /// The variable's name.
        name: String,
    },
    /// `{{` without a matching `}}`.
    #[error("{field}: {{{{ at character {at} is not closed with }}}}")]
    Unclosed {
        /// The template field.
        field: &'static str,
        /// 1-based character position.
        at: usize,
    },
    /// A credential file could not be read.
    #[error("spec.provider.{field}: cannot read {path:?}: {reason}")]
    Credential {
        /// `bearerTokenFile` or `basicAuth.passwordFile`.
        field: &'static str,
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// A header name or value HTTP does not allow.
    #[error("spec.provider.headers.{name}: {reason}")]
    Header {
        /// The header.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// TLS could not be set up (an unreadable CA file, no usable certificate).
    #[error("{reason}")]
    Tls {
        /// What went wrong, naming the field.
        reason: String,
    },
    /// `spec.provider.jsonPath` cannot be parsed.
    #[error("spec.provider.jsonPath: {path:?}: {reason}")]
    JsonPath {
        /// The path as written.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A field of the template (or of the canary it serves) is missing or
    /// wrong: a CloudWatch query that is not JSON, a region not given.
    #[error("{field}: {reason}")]
    Field {
        /// The field, e.g. `spec.query`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The address is not an http URL serin can dial.
    #[error("spec.provider.address: {address:?} {reason}")]
    Address {
        /// The address as written.
        address: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// The values placeholders take, fixed for one metric of one canary.
#[derive(Clone, Debug, Default)]
pub struct TemplateVars {
    /// `{{ namespace }}`: the canary's namespace (`default` outside Kubernetes).
    pub namespace: String,
    /// `{{ name }}`: the canary's name.
    pub name: String,
    /// `{{ target }}`: `spec.targetRef.name`, else the canary's name.
    pub target: String,
    /// `{{ service }}`: `spec.service.name`, else the target.
    pub service: String,
    /// `{{ interval }}`: the metric's interval as written (`1m` by default).
    pub interval: String,
    /// `{{ variables.NAME }}`: the metric's `templateVariables`.
    pub variables: BTreeMap<String, String>,
}

/// A template with every placeholder but `{{ version }}` filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryTemplate {
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    Version,
}

// === impl QueryTemplate ===

impl QueryTemplate {
    /// Fills in `text`'s placeholders. Go-template spacing is free
    /// (`{{target}}`, `{{ target }}`) and a leading dot is accepted
    /// (`{{ .namespace }}`). `field` names the template field for errors.
    pub fn compile(
        text: &str,
        vars: &TemplateVars,
        field: &'static str,
    ) -> Result<Self, SetupError> {
        let mut parts = Vec::new();
        let mut text_part = String::new();
        let mut rest = text;
        let mut consumed = 0usize;
        while let Some(open) = rest.find("{{") {
            text_part.push_str(&rest[..open]);
            let after = &rest[open + 2..];
            let Some(close) = after.find("}}") else {
                return Err(SetupError::Unclosed {
                    field,
                    at: text[..consumed + open].chars().count() + 1,
                });
            };
            let inner = after[..close].trim();
            let inner = inner.strip_prefix('.').unwrap_or(inner);
            let value = match inner {
                "namespace" => Some(vars.namespace.as_str()),
                "name" => Some(vars.name.as_str()),
                "target" => Some(vars.target.as_str()),
                "service" => Some(vars.service.as_str()),
                "interval" => Some(vars.interval.as_str()),
                "version" => None,
                other => match other.strip_prefix("variables.") {
                    Some(name) => Some(vars.variables.get(name).map(String::as_str).ok_or_else(
                        || SetupError::MissingVariable {
                            field,
                            name: name.to_owned(),
                        },
                    )?),
                    None => {
                        return Err(SetupError::UnknownPlaceholder {
                            field,
                            name: other.to_owned(),
                        });
                    }
                },
            };
            match value {
                Some(value) => text_part.push_str(value),
                None => {
                    if !text_part.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text_part)));
                    }
                    parts.push(Part::Version);
                }
            }
            let advance = open + 2 + close + 2;
            consumed += advance;
            rest = &rest[advance..];
        }
        text_part.push_str(rest);
        if !text_part.is_empty() {
            parts.push(Part::Text(text_part));
        }
        Ok(QueryTemplate { parts })
    }

    /// Whether the template tells the versions apart. Without
    /// `{{ version }}` both versions would get the same number, so only the
    /// canary is queried and the stable side reports no value.
    pub fn per_version(&self) -> bool {
        self.parts.contains(&Part::Version)
    }

    /// The text for one version (`{{ version }}` is `canary` or `stable`).
    pub fn render(&self, version: Version) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Version => out.push_str(version.as_str()),
            }
        }
        out
    }
}

/// One provider endpoint: headers and credentials, a client, a timeout.
#[derive(Clone, Debug)]
pub struct HttpSource {
    /// Names the provider in messages (`prometheus at http://…`).
    pub system: String,
    headers: HeaderMap,
    timeout: Duration,
    client: Client<Connector, Full<Bytes>>,
}

#[cfg(feature = "tls")]
type Connector = crate::tls::Connector;
#[cfg(not(feature = "tls"))]
type Connector = HttpConnector;

// === impl HttpSource ===

impl HttpSource {
    /// Headers, credentials (read now, from their files) and timeout of `provider`.
    pub fn new(system: String, provider: &MetricProvider) -> Result<Self, SetupError> {
        let mut headers = HeaderMap::new();
        for (name, values) in &provider.headers {
            let header_name =
                HeaderName::from_bytes(name.as_bytes()).map_err(|e| SetupError::Header {
                    name: name.clone(),
                    reason: e.to_string(),
                })?;
            for value in values {
                let value = HeaderValue::from_str(value).map_err(|e| SetupError::Header {
                    name: name.clone(),
                    reason: e.to_string(),
                })?;
                headers.append(header_name.clone(), value);
            }
        }
        if let Some(file) = &provider.bearer_token_file {
            let token = read_credential("bearerTokenFile", file)?;
            let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                SetupError::Credential {
                    field: "bearerTokenFile",
                    path: file.clone(),
                    reason: "the token holds characters a header cannot carry".into(),
                }
            })?;
            value.set_sensitive(true);
            headers.insert(header::AUTHORIZATION, value);
        }
        if let Some(basic) = &provider.basic_auth {
            let password = read_credential("basicAuth.passwordFile", &basic.password_file)?;
            let encoded = base64(format!("{}:{password}", basic.username).as_bytes());
            let mut value = HeaderValue::from_str(&format!("Basic {encoded}")).map_err(|_| {
                SetupError::Credential {
                    field: "basicAuth.passwordFile",
                    path: basic.password_file.clone(),
                    reason: "cannot be sent in a header".into(),
                }
            })?;
            value.set_sensitive(true);
            headers.insert(header::AUTHORIZATION, value);
        }
        let timeout = provider
            .timeout
            .as_ref()
            .map(serin_spec::Duration::as_std)
            .filter(|t| !t.is_zero())
            .unwrap_or(DEFAULT_QUERY_TIMEOUT);
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        #[cfg(feature = "tls")]
        let connector = {
            // The TLS layer dials https through this connector.
            connector.enforce_http(false);
            crate::tls::connector(
                connector,
                provider.ca_file.as_deref(),
                provider.insecure_skip_verify,
            )?
        };
        Ok(HttpSource {
            system,
            headers,
            timeout,
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }

    /// Sends one request and reads the answer, both within the timeout and
    /// the answer within [`MAX_ANSWER_BYTES`]. Returns the status and body.
    pub async fn fetch(
        &self,
        method: Method,
        uri: Uri,
        content_type: Option<&'static str>,
        body: Bytes,
    ) -> Result<(http::StatusCode, Bytes), PortError> {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(map) = request.headers_mut() {
            map.extend(self.headers.clone());
            map.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
            if let Some(content_type) = content_type {
                map.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            }
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| PortError::Unsupported(format!("{}: bad request: {e}", self.system)))?;
        let exchange = async {
            let response =
                self.client
                    .request(request)
                    .await
                    .map_err(|e| PortError::Unavailable {
                        system: self.system.clone(),
                        message: error_chain(&e),
                    })?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|e| PortError::Refused {
                    system: self.system.clone(),
                    message: format!(
                        "answer unreadable or larger than {MAX_ANSWER_BYTES} bytes: {e}"
                    ),
                })?
                .to_bytes();
            Ok((status, body))
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(PortError::Timeout {
                system: self.system.clone(),
                after: self.timeout,
            }),
        }
    }

    /// A refusal from this provider.
    pub fn refused(&self, message: impl Into<String>) -> PortError {
        PortError::Refused {
            system: self.system.clone(),
            message: message.into(),
        }
    }
}

/// Checks that `address` is an http (or, with the `tls` feature, https) URL
/// serin can dial.
pub fn check_address(address: &str) -> Result<Uri, SetupError> {
    let fail = |reason: &str| SetupError::Address {
        address: address.to_owned(),
        reason: reason.to_owned(),
    };
    let uri: Uri = address
        .trim()
        .parse()
        .map_err(|e: http::uri::InvalidUri| fail(&e.to_string()))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") if cfg!(feature = "tls") => {}
        Some("https") => {
            return Err(fail(
                "uses https, which this build of serin (without the tls feature) does not speak to metric providers; use an http address (e.g. a local TLS-terminating proxy)",
            ));
        }
        _ => return Err(fail("must be an absolute http:// or https:// URL")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(fail("has no host"));
    }
    Ok(uri)
}

/// A short excerpt of an answer for messages.
pub fn excerpt(body: &[u8]) -> String {
    const MAX: usize = 200;
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Percent-encodes `value` for a URL query or form body.
pub fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3 / 2);
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(byte))
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

fn read_credential(field: &'static str, path: &str) -> Result<String, SetupError> {
    let fail = |reason: String| SetupError::Credential {
        field,
        path: path.to_owned(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| fail(e.to_string()))?;
    if meta.len() > MAX_CREDENTIAL_BYTES {
        return Err(fail(format!(
            "{} bytes; a credential file holds at most {MAX_CREDENTIAL_BYTES}",
            meta.len()
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    let text = text.trim_end_matches(['\n', '\r']).to_owned();
    if text.is_empty() {
        return Err(fail("the file is empty".into()));
    }
    Ok(text)
}

/// Standard base64 with padding (RFC 4648), for basic authentication.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        // Each index is masked to 6 bits, so it is below 64.
        let sextet = |shift: u32| char::from(ALPHABET[((n >> shift) & 63) as usize]);
        out.push(sextet(18));
        out.push(sextet(12));
        out.push(if chunk.len() > 1 { sextet(6) } else { '=' });
        out.push(if chunk.len() > 2 { sextet(0) } else { '=' });
    }
    out
}

/// An error with its causes, for messages (`connection refused` sits deep).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> TemplateVars {
        TemplateVars {
            namespace: "shop".into(),
            name: "web".into(),
            target: "web-deploy".into(),
            service: "web-svc".into(),
            interval: "1m".into(),
            variables: [("direction".to_owned(), "inbound".to_owned())].into(),
        }
    }

    #[test]
    fn placeholders_are_filled_and_version_kept_for_later() {
        let t = QueryTemplate::compile(
            "rate(x{ns=\"{{ namespace }}\",t=\"{{target}}\",v=\"{{ version }}\",d=\"{{ variables.direction }}\"}[{{ .interval }}])",
            &vars(),
            "spec.query",
        )
        .unwrap();
        assert!(t.per_version());
        assert_eq!(
            t.render(Version::Canary),
            "rate(x{ns=\"shop\",t=\"web-deploy\",v=\"canary\",d=\"inbound\"}[1m])"
        );
        assert_eq!(
            t.render(Version::Stable),
            "rate(x{ns=\"shop\",t=\"web-deploy\",v=\"stable\",d=\"inbound\"}[1m])"
        );
        let plain =
            QueryTemplate::compile("up{job=\"{{ name }}-{{ service }}\"}", &vars(), "q").unwrap();
        assert!(!plain.per_version());
        assert_eq!(plain.render(Version::Canary), "up{job=\"web-web-svc\"}");
    }

    #[test]
    fn bad_placeholders_name_the_field() {
        let e = QueryTemplate::compile("x{{ nope }}", &vars(), "spec.query").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("spec.query: unknown placeholder {{ nope }}"),
            "{e}"
        );
        let e = QueryTemplate::compile("{{ variables.zone }}", &vars(), "spec.query").unwrap_err();
        assert_eq!(
            e.to_string(),
            "spec.query: {{ variables.zone }} has no value: set templateVariables.zone on the metric"
        );
        let e = QueryTemplate::compile("ab {{ target", &vars(), "spec.query").unwrap_err();
        assert_eq!(
            e.to_string(),
            "spec.query: {{ at character 4 is not closed with }}"
        );
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, output) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), output);
        }
    }

    #[test]
    fn form_encoding_and_addresses() {
        assert_eq!(
            form_encode("sum(x{a=\"b c\"})"),
            "sum%28x%7Ba%3D%22b%20c%22%7D%29"
        );
        assert!(check_address("http://127.0.0.1:9090/prom").is_ok());
        assert_eq!(check_address("https://prom").is_ok(), cfg!(feature = "tls"));
        assert!(check_address("prom:9090").is_err());
    }

    #[test]
    fn credentials_come_from_files() {
        let dir = std::env::temp_dir().join(format!("serin-cred-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let token = dir.join("token");
        std::fs::write(&token, "s3cret\n").unwrap();
        let provider = MetricProvider {
            provider_type: "prometheus".into(),
            bearer_token_file: Some(token.display().to_string()),
            ..Default::default()
        };
        let source = HttpSource::new("p".into(), &provider).unwrap();
        assert_eq!(source.headers[header::AUTHORIZATION], "Bearer s3cret");
        let provider = MetricProvider {
            bearer_token_file: Some(dir.join("missing").display().to_string()),
            ..provider
        };
        let e = HttpSource::new("p".into(), &provider)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("spec.provider.bearerTokenFile: cannot read"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
