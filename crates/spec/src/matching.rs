//! Istio-style request matches (`match:` in `spec.service` and `spec.analysis`),
//! used for A/B testing: which requests go to the canary.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One match rule; a request matches when every condition given here holds.
/// A list of rules matches when any rule does (Istio's semantics).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpMatchRequest {
    /// A name for the rule, for logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Match on the request path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<StringMatch>,
    /// Match on the URI scheme.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<StringMatch>,
    /// Match on the HTTP method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<StringMatch>,
    /// Match on the authority (`Host`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<StringMatch>,
    /// Match on request headers, by lower-case header name (`cookie`, `x-canary`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, StringMatch>,
    /// Match on query parameters.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub query_params: BTreeMap<String, StringMatch>,
    /// Requests must NOT carry headers matching these.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub without_headers: BTreeMap<String, StringMatch>,
    /// Compare the URI case-insensitively.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_uri_case: Option<bool>,
    /// Match on the port the request was addressed to (mesh only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    /// Match on the labels of the calling workload (mesh only).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub source_labels: BTreeMap<String, String>,
    /// Match on the namespace of the calling workload (mesh only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_namespace: Option<String>,
    /// Gateways the rule applies to (mesh only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
}

/// A condition on a string: exactly one of `exact`, `prefix`, `suffix`, `regex`.
/// Istio also allows an empty match, which matches any present value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StringMatch {
    /// The value equals this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    /// The value starts with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// The value ends with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
    /// The whole value matches this RE2-style regular expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
}

/// The single condition of a [`StringMatch`], once validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StringMatchRule<'a> {
    /// Equal to the text.
    Exact(&'a str),
    /// Starts with the text.
    Prefix(&'a str),
    /// Ends with the text.
    Suffix(&'a str),
    /// Matches the whole value against the regular expression.
    Regex(&'a str),
    /// No condition: any value (Istio's empty match).
    Any,
}

/// A [`StringMatch`] ready to test values (regexes compiled once).
#[derive(Clone, Debug)]
pub enum CompiledStringMatch {
    /// Equal to the text.
    Exact(String),
    /// Starts with the text.
    Prefix(String),
    /// Ends with the text.
    Suffix(String),
    /// Matches the whole value.
    Regex(regex::Regex),
    /// Any value.
    Any,
}

// === impl StringMatch ===

impl StringMatch {
    /// The condition, or `None` when more than one kind is set (a validation error).
    pub fn rule(&self) -> Option<StringMatchRule<'_>> {
        match (&self.exact, &self.prefix, &self.suffix, &self.regex) {
            (Some(text), None, None, None) => Some(StringMatchRule::Exact(text)),
            (None, Some(text), None, None) => Some(StringMatchRule::Prefix(text)),
            (None, None, Some(text), None) => Some(StringMatchRule::Suffix(text)),
            (None, None, None, Some(text)) => Some(StringMatchRule::Regex(text)),
            (None, None, None, None) => Some(StringMatchRule::Any),
            _ => None,
        }
    }

    /// How many of `exact`, `prefix`, `suffix`, `regex` are set.
    pub fn conditions_set(&self) -> usize {
        [&self.exact, &self.prefix, &self.suffix, &self.regex]
            .iter()
            .filter(|field| field.is_some())
            .count()
    }

    /// Compiles the condition. Regexes match the whole value, as in Istio (RE2 full match).
    pub fn compile(&self) -> Result<CompiledStringMatch, StringMatchError> {
        match self.rule() {
            None => Err(StringMatchError::Ambiguous),
            Some(StringMatchRule::Exact(text)) => Ok(CompiledStringMatch::Exact(text.to_string())),
            Some(StringMatchRule::Prefix(text)) => {
                Ok(CompiledStringMatch::Prefix(text.to_string()))
            }
            Some(StringMatchRule::Suffix(text)) => {
                Ok(CompiledStringMatch::Suffix(text.to_string()))
            }
            Some(StringMatchRule::Regex(pattern)) => compile_full_match(pattern)
                .map(CompiledStringMatch::Regex)
                .map_err(|error| StringMatchError::Regex(error.to_string())),
            Some(StringMatchRule::Any) => Ok(CompiledStringMatch::Any),
        }
    }
}

/// Compiles `pattern` anchored at both ends, with a size limit so a hostile
/// pattern cannot take much memory.
pub(crate) fn compile_full_match(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(1 << 20)
        .dfa_size_limit(1 << 20)
        .build()
}

/// Why a [`StringMatch`] could not be compiled.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StringMatchError {
    /// More than one of exact/prefix/suffix/regex was set.
    #[error("set only one of exact, prefix, suffix or regex")]
    Ambiguous,
    /// The regular expression does not compile.
    #[error("invalid regex: {0}")]
    Regex(String),
}

// === impl CompiledStringMatch ===

impl CompiledStringMatch {
    /// Whether `value` satisfies the condition.
    pub fn is_match(&self, value: &str) -> bool {
        match self {
            Self::Exact(text) => value == text,
            Self::Prefix(text) => value.starts_with(text.as_str()),
            Self::Suffix(text) => value.ends_with(text.as_str()),
            Self::Regex(regex) => regex.is_match(value),
            Self::Any => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regexes_match_the_whole_value() {
        let cookie = StringMatch {
            regex: Some("^(.*?;)?(canary=always)(;.*)?$".to_string()),
            ..Default::default()
        };
        let compiled = cookie.compile().unwrap();
        assert!(compiled.is_match("a=b; canary=always; c=d".replace(' ', "").as_str()));
        assert!(!compiled.is_match("canary=never"));

        let firefox = StringMatch {
            regex: Some("Firefox".to_string()),
            ..Default::default()
        };
        assert!(!firefox.compile().unwrap().is_match("Mozilla Firefox/1"));
    }

    #[test]
    fn more_than_one_condition_is_ambiguous() {
        let both = StringMatch {
            exact: Some("a".to_string()),
            prefix: Some("b".to_string()),
            ..Default::default()
        };
        assert_eq!(both.rule(), None);
        assert_eq!(both.compile().unwrap_err(), StringMatchError::Ambiguous);
    }
}
