//! Istio-style request matches (A/B testing): a request matching any rule goes
//! to the canary whatever the weight.

use http::{HeaderMap, HeaderName, Method, header::COOKIE, request::Parts};
use regex::Regex;

/// How one string is compared, as Istio's `StringMatch`.
#[derive(Clone, Debug)]
pub enum StringMatch {
    /// The whole value equals this.
    Exact(String),
    /// The value starts with this; `Prefix("")` matches any present value.
    Prefix(String),
    /// The value ends with this.
    Suffix(String),
    /// The regular expression matches the *whole* value (Istio/Envoy RE2
    /// semantics: `.*insider.*`, not `insider`). Patterns are anchored when the
    /// routes are installed, so a `Regex` built directly behaves the same as
    /// one from [`StringMatch::regex`].
    Regex(Regex),
}

/// One A/B rule: it matches when *all* its conditions hold. An empty rule
/// matches every request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MatchRule {
    /// Request header conditions; a missing header does not match. With
    /// several values of one header, any matching value counts.
    pub headers: Vec<(HeaderName, StringMatch)>,
    /// Condition on the path (without the query string), as Istio's `uri`.
    pub uri: Option<StringMatch>,
    /// Condition on the method name (`GET`, `POST`...).
    pub method: Option<StringMatch>,
    /// Query parameter conditions on the raw (not percent-decoded) value; a
    /// parameter without `=` has the empty value.
    pub query_params: Vec<(String, StringMatch)>,
    /// Cookie conditions, by cookie name, on values parsed from `Cookie`.
    pub cookies: Vec<(String, StringMatch)>,
}

// === impl StringMatch ===

impl StringMatch {
    /// A whole-value regular expression match.
    pub fn regex(pattern: &str) -> Result<Self, regex::Error> {
        Regex::new(&anchor(pattern)).map(StringMatch::Regex)
    }

    /// Whether `value` satisfies this match.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            StringMatch::Exact(s) => value == s,
            StringMatch::Prefix(s) => value.starts_with(s.as_str()),
            StringMatch::Suffix(s) => value.ends_with(s.as_str()),
            StringMatch::Regex(re) => re.is_match(value),
        }
    }

    /// The same match with regular expressions anchored to the whole value.
    pub(crate) fn anchored(&self) -> StringMatch {
        match self {
            StringMatch::Regex(re) => {
                let pattern = re.as_str();
                if pattern.starts_with("^(?:") && pattern.ends_with(")$") {
                    return self.clone();
                }
                // Wrapping a valid pattern in a group and anchors keeps it
                // valid; should the size limit still refuse it, the
                // unanchored original is the best remaining behaviour.
                Regex::new(&anchor(pattern))
                    .map(StringMatch::Regex)
                    .unwrap_or_else(|_| self.clone())
            }
            other => other.clone(),
        }
    }
}

fn anchor(pattern: &str) -> String {
    format!("^(?:{pattern})$")
}

impl PartialEq for StringMatch {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (StringMatch::Exact(a), StringMatch::Exact(b))
            | (StringMatch::Prefix(a), StringMatch::Prefix(b))
            | (StringMatch::Suffix(a), StringMatch::Suffix(b)) => a == b,
            (StringMatch::Regex(a), StringMatch::Regex(b)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

// === impl MatchRule ===

impl MatchRule {
    /// Whether the request satisfies every condition of this rule.
    pub fn matches(&self, req: &Parts) -> bool {
        if let Some(m) = &self.method
            && !m.matches(req.method.as_str())
        {
            return false;
        }
        if let Some(m) = &self.uri
            && !m.matches(req.uri.path())
        {
            return false;
        }
        let headers_ok = self.headers.iter().all(|(name, m)| {
            req.headers
                .get_all(name)
                .iter()
                .any(|v| v.to_str().is_ok_and(|v| m.matches(v)))
        });
        if !headers_ok {
            return false;
        }
        let query = req.uri.query().unwrap_or("");
        let query_ok = self
            .query_params
            .iter()
            .all(|(name, m)| query_values(query, name).any(|v| m.matches(v)));
        if !query_ok {
            return false;
        }
        self.cookies
            .iter()
            .all(|(name, m)| cookie_value(&req.headers, name).is_some_and(|v| m.matches(v)))
    }

    pub(crate) fn anchored(&self) -> MatchRule {
        let pairs = |v: &[(String, StringMatch)]| {
            v.iter()
                .map(|(k, m)| (k.clone(), m.anchored()))
                .collect::<Vec<_>>()
        };
        MatchRule {
            headers: self
                .headers
                .iter()
                .map(|(k, m)| (k.clone(), m.anchored()))
                .collect(),
            uri: self.uri.as_ref().map(StringMatch::anchored),
            method: self.method.as_ref().map(StringMatch::anchored),
            query_params: pairs(&self.query_params),
            cookies: pairs(&self.cookies),
        }
    }
}

/// Values of query parameter `name` in a raw query string.
fn query_values<'a>(query: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    query.split('&').filter_map(move |pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })
}

/// The value of cookie `name` in the request's `Cookie` headers (the first
/// one when repeated), without allocating.
pub(crate) fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key.trim() == name).then(|| value.trim().trim_matches('"'))
        })
}

/// Whether `method` is one the proxy can forward a request of.
pub(crate) fn forwardable(method: &Method) -> bool {
    method != Method::CONNECT
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = Request::builder().uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(())
            .map(|r| r.into_parts().0)
            .unwrap_or_else(|e| panic!("bad test request: {e}"))
    }

    #[test]
    fn string_matches() {
        assert!(StringMatch::Exact("a".into()).matches("a"));
        assert!(!StringMatch::Exact("a".into()).matches("ab"));
        assert!(StringMatch::Prefix("/api".into()).matches("/api/v1"));
        assert!(StringMatch::Suffix(".js".into()).matches("/app.js"));
        let re = StringMatch::regex(".*insider.*").unwrap_or_else(|e| panic!("{e}"));
        assert!(re.matches("an insider here"));
        // Whole-value semantics: `insider` alone does not match a longer value.
        let re = StringMatch::regex("insider").unwrap_or_else(|e| panic!("{e}"));
        assert!(!re.matches("an insider"));
        let raw = StringMatch::Regex(Regex::new("insider").unwrap_or_else(|e| panic!("{e}")));
        assert!(raw.matches("an insider"));
        assert!(!raw.anchored().matches("an insider"));
        assert!(raw.anchored().matches("insider"));
    }

    #[test]
    fn rules_need_all_conditions() {
        let rule = MatchRule {
            headers: vec![(
                HeaderName::from_static("x-canary"),
                StringMatch::Exact("insider".into()),
            )],
            uri: Some(StringMatch::Prefix("/api".into())),
            query_params: vec![("beta".into(), StringMatch::Exact("1".into()))],
            cookies: vec![("plan".into(), StringMatch::Exact("pro".into()))],
            ..MatchRule::default()
        };
        let ok = parts(
            "/api/x?a=2&beta=1",
            &[("x-canary", "insider"), ("cookie", "a=b; plan=pro")],
        );
        assert!(rule.matches(&ok));
        let wrong_path = parts(
            "/web?beta=1",
            &[("x-canary", "insider"), ("cookie", "plan=pro")],
        );
        assert!(!rule.matches(&wrong_path));
        let no_cookie = parts("/api?beta=1", &[("x-canary", "insider")]);
        assert!(!rule.matches(&no_cookie));
        assert!(MatchRule::default().matches(&no_cookie));
    }

    #[test]
    fn cookies_are_parsed() {
        let p = parts("/", &[("cookie", "a=1;b = 2 ; c=\"3\""), ("cookie", "d=4")]);
        assert_eq!(cookie_value(&p.headers, "a"), Some("1"));
        assert_eq!(cookie_value(&p.headers, "b"), Some("2"));
        assert_eq!(cookie_value(&p.headers, "c"), Some("3"));
        assert_eq!(cookie_value(&p.headers, "d"), Some("4"));
        assert_eq!(cookie_value(&p.headers, "e"), None);
    }
}
