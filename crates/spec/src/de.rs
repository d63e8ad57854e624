//! A serde deserializer over a parsed YAML tree that knows where it is.
//!
//! serde's derived code stops at the first error and silently drops unknown
//! fields. serin wants the opposite: every unknown field reported with its path
//! and a suggestion, and every wrong value reported, not just the first. So the
//! YAML is first read into a [`serde_json::Value`] tree, and the typed structs are
//! deserialized from that tree with this deserializer, which
//!
//! - tracks the field path of every value it hands out, so errors name it;
//! - compares each mapping against the field list serde gives `deserialize_struct`
//!   and records unknown keys (free-form maps go through `deserialize_map` and are
//!   left alone);
//! - lets [`deserialize_collecting`] drop a bad value and try again, so that one
//!   wrong value does not hide the next.

use std::{cell::RefCell, fmt};

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};
use serde_json::Value;

use crate::{
    problem::{Path, Problem, Segment},
    suggest,
};

/// How many bad values one document may have before the parser stops retrying.
/// Each retry re-reads the document, so this bounds the work on hostile input.
const MAX_VALUE_ERRORS: usize = 32;

/// Deserializes `T` from `value`, reporting every unknown field and, by dropping
/// each offending value in turn, as many wrong values as possible.
///
/// Returns the value when it could be built (possibly with problems to report)
/// and all problems found.
pub(crate) fn deserialize_collecting<T: DeserializeOwned>(mut value: Value) -> Collected<T> {
    let mut value_problems = Vec::new();
    let mut last_removed: Option<Path> = None;
    loop {
        let unknown = UnknownFields::default();
        let result = T::deserialize(ValueDeserializer::new(&value, Path::root(), &unknown));
        match result {
            Ok(typed) => {
                let values_intact = value_problems.is_empty();
                value_problems.extend(unknown.into_problems());
                return Collected {
                    value: Some(typed),
                    problems: value_problems,
                    values_intact,
                };
            }
            Err(error) => {
                let path = error.path.clone().unwrap_or_default();
                // A required field we removed ourselves: already reported.
                let already_reported = error.missing_field.is_some()
                    && last_removed
                        .as_ref()
                        .is_some_and(|removed| *removed == path);
                if !already_reported {
                    value_problems.push(Problem::new(&path, error.message.clone()));
                }
                let give_up = error.missing_field.is_some()
                    || value_problems.len() >= MAX_VALUE_ERRORS
                    || !remove_at(&mut value, &path);
                if give_up {
                    value_problems.extend(unknown.into_problems());
                    return Collected {
                        value: None,
                        problems: value_problems,
                        values_intact: false,
                    };
                }
                last_removed = Some(removed_path(&path));
            }
        }
    }
}

/// What [`deserialize_collecting`] found.
pub(crate) struct Collected<T> {
    /// The typed value, if it could be built.
    pub(crate) value: Option<T>,
    /// Unknown fields and wrong values.
    pub(crate) problems: Vec<Problem>,
    /// Whether no value had to be dropped: only then does the typed value say
    /// what the user wrote, and only then are further checks meaningful.
    pub(crate) values_intact: bool,
}

/// The path that [`remove_at`] actually removes: the nearest mapping key.
fn removed_path(path: &Path) -> Path {
    let segments = path.segments();
    let last_key = segments
        .iter()
        .rposition(|segment| matches!(segment, Segment::Key(_)));
    let mut removed = Path::root();
    for segment in segments.iter().take(last_key.map_or(0, |k| k + 1)) {
        removed = match segment {
            Segment::Key(key) => removed.key(key),
            Segment::Index(index) => removed.index(*index),
        };
    }
    removed
}

/// Removes the value at `path`, or, when the path ends inside a sequence, the whole
/// sequence (removing one element would shift the indices of later errors).
/// Returns whether something was removed.
fn remove_at(root: &mut Value, path: &Path) -> bool {
    let segments = path.segments();
    let Some(last_key) = segments
        .iter()
        .rposition(|segment| matches!(segment, Segment::Key(_)))
    else {
        return false;
    };
    let (parents, rest) = segments.split_at(last_key);
    let Some(Segment::Key(key)) = rest.first() else {
        return false;
    };
    let mut node = root;
    for segment in parents {
        node = match (segment, node) {
            (Segment::Key(key), Value::Object(map)) => match map.get_mut(key) {
                Some(child) => child,
                None => return false,
            },
            (Segment::Index(index), Value::Array(items)) => match items.get_mut(*index) {
                Some(child) => child,
                None => return false,
            },
            _ => return false,
        };
    }
    match node {
        Value::Object(map) => map.remove(key).is_some(),
        _ => false,
    }
}

/// Unknown fields met during one deserialization pass.
#[derive(Default)]
pub(crate) struct UnknownFields {
    problems: RefCell<Vec<Problem>>,
}

impl UnknownFields {
    fn record(&self, path: &Path, key: &str, known: &'static [&'static str]) {
        let message = match suggest::nearest(key, known) {
            Some(suggestion) => format!("unknown field, did you mean {suggestion}?"),
            None if known.len() <= 12 => {
                format!("unknown field; expected one of {}", known.join(", "))
            }
            None => "unknown field".to_string(),
        };
        self.problems
            .borrow_mut()
            .push(Problem::new(path.key(key), message));
    }

    fn into_problems(self) -> Vec<Problem> {
        self.problems.into_inner()
    }
}

/// The error type of [`ValueDeserializer`]: a message and, once known, the path.
#[derive(Debug, Clone)]
pub(crate) struct Error {
    path: Option<Path>,
    missing_field: Option<&'static str>,
    message: String,
}

// === impl Error ===

impl Error {
    /// Attaches `path` unless a deeper deserializer already did.
    fn at(mut self, path: &Path) -> Self {
        if self.path.is_none() {
            self.path = Some(match self.missing_field {
                Some(field) => path.key(field),
                None => path.clone(),
            });
        }
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(message: T) -> Self {
        Self {
            path: None,
            missing_field: None,
            message: message.to_string(),
        }
    }

    fn invalid_type(unexpected: de::Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        Self::custom(format!(
            "expected {}, got {}",
            describe_expected(&expected.to_string()),
            describe_unexpected(&unexpected)
        ))
    }

    fn invalid_value(unexpected: de::Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        Self::custom(format!(
            "expected {}, got {}",
            describe_expected(&expected.to_string()),
            describe_unexpected(&unexpected)
        ))
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        let listed = expected.join(", ");
        match suggest::nearest(variant, expected) {
            Some(suggestion) => Self::custom(format!(
                "unknown value {variant:?}, did you mean {suggestion}? (expected one of {listed})"
            )),
            None => Self::custom(format!(
                "unknown value {variant:?}, expected one of {listed}"
            )),
        }
    }

    fn missing_field(field: &'static str) -> Self {
        Self {
            path: None,
            missing_field: Some(field),
            message: "required field is missing".to_string(),
        }
    }
}

/// What a value is, in serde's terms, for type errors.
fn unexpected(value: &Value) -> de::Unexpected<'_> {
    match value {
        Value::Null => de::Unexpected::Unit,
        Value::Bool(flag) => de::Unexpected::Bool(*flag),
        Value::Number(number) => match (number.as_u64(), number.as_i64()) {
            (Some(unsigned), _) => de::Unexpected::Unsigned(unsigned),
            (None, Some(signed)) => de::Unexpected::Signed(signed),
            (None, None) => de::Unexpected::Float(number.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(text) => de::Unexpected::Str(text),
        Value::Array(_) => de::Unexpected::Seq,
        Value::Object(_) => de::Unexpected::Map,
    }
}

/// Turns serde's "expected" wording (`struct Analysis`, `u8`) into YAML words.
fn describe_expected(expected: &str) -> String {
    if expected.starts_with("struct ") || expected == "a map" {
        return "a mapping".to_string();
    }
    match expected {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a non-negative whole number".to_string(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number".to_string(),
        "f32" | "f64" => "a number".to_string(),
        "a boolean" => "true or false".to_string(),
        other => other.to_string(),
    }
}

fn describe_unexpected(unexpected: &de::Unexpected<'_>) -> String {
    match unexpected {
        de::Unexpected::Unit => "nothing (null)".to_string(),
        de::Unexpected::Map => "a mapping".to_string(),
        de::Unexpected::Seq => "a sequence".to_string(),
        de::Unexpected::Str(text) => format!("the string {text:?}"),
        de::Unexpected::Float(number) => format!("the number {number}"),
        de::Unexpected::Signed(number) => format!("the number {number}"),
        de::Unexpected::Unsigned(number) => format!("the number {number}"),
        de::Unexpected::Bool(flag) => format!("{flag}"),
        other => other.to_string(),
    }
}

/// A deserializer for one node of the tree, knowing its path.
pub(crate) struct ValueDeserializer<'a> {
    value: &'a Value,
    path: Path,
    unknown: &'a UnknownFields,
}

// === impl ValueDeserializer ===

impl<'a> ValueDeserializer<'a> {
    pub(crate) fn new(value: &'a Value, path: Path, unknown: &'a UnknownFields) -> Self {
        Self {
            value,
            path,
            unknown,
        }
    }
}

impl<'de> de::Deserializer<'de> for ValueDeserializer<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let result = match self.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(flag) => visitor.visit_bool(*flag),
            Value::Number(number) => {
                if let Some(unsigned) = number.as_u64() {
                    visitor.visit_u64(unsigned)
                } else if let Some(signed) = number.as_i64() {
                    visitor.visit_i64(signed)
                } else {
                    visitor.visit_f64(number.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(text) => visitor.visit_str(text),
            Value::Array(items) => visitor.visit_seq(SeqDeserializer {
                items: items.iter().enumerate(),
                path: &self.path,
                unknown: self.unknown,
            }),
            Value::Object(map) => visitor.visit_map(MapDeserializer {
                entries: map.iter(),
                known: None,
                pending: None,
                path: &self.path,
                unknown: self.unknown,
            }),
        };
        result.map_err(|error| error.at(&self.path))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => {
                let path = self.path.clone();
                visitor.visit_some(self).map_err(|error| error.at(&path))
            }
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        let path = self.path.clone();
        visitor
            .visit_newtype_struct(self)
            .map_err(|error| error.at(&path))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        // serde's derived structs also accept sequences (`[1, 2]` as a struct of
        // two fields); in a YAML document that is always a mistake.
        let Value::Object(map) = self.value else {
            return Err(
                <Error as de::Error>::invalid_type(unexpected(self.value), &"a mapping")
                    .at(&self.path),
            );
        };
        for key in map.keys() {
            if !fields.contains(&key.as_str()) {
                self.unknown.record(&self.path, key, fields);
            }
        }
        visitor
            .visit_map(MapDeserializer {
                entries: map.iter(),
                known: Some(fields),
                pending: None,
                path: &self.path,
                unknown: self.unknown,
            })
            .map_err(|error| error.at(&self.path))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.value {
            Value::String(text) => {
                let variant: de::value::StrDeserializer<'_, Error> =
                    text.as_str().into_deserializer();
                visitor
                    .visit_enum(variant)
                    .map_err(|error| error.at(&self.path))
            }
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map identifier
    }
}

struct SeqDeserializer<'a, 'p> {
    items: std::iter::Enumerate<std::slice::Iter<'a, Value>>,
    path: &'p Path,
    unknown: &'a UnknownFields,
}

impl<'de> SeqAccess<'de> for SeqDeserializer<'_, '_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        match self.items.next() {
            None => Ok(None),
            Some((index, value)) => seed
                .deserialize(ValueDeserializer::new(
                    value,
                    self.path.index(index),
                    self.unknown,
                ))
                .map(Some),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct MapDeserializer<'a, 'p> {
    entries: serde_json::map::Iter<'a>,
    /// For structs: the known field names; other keys were reported and are skipped.
    known: Option<&'static [&'static str]>,
    pending: Option<(&'a String, &'a Value)>,
    path: &'p Path,
    unknown: &'a UnknownFields,
}

impl<'de> MapAccess<'de> for MapDeserializer<'_, '_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        for (key, value) in self.entries.by_ref() {
            if let Some(known) = self.known
                && !known.contains(&key.as_str())
            {
                continue;
            }
            self.pending = Some((key, value));
            let key_deserializer: de::value::StrDeserializer<'_, Error> =
                key.as_str().into_deserializer();
            return seed
                .deserialize(key_deserializer)
                .map(Some)
                .map_err(|error| error.at(&self.path.key(key)));
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        match self.pending.take() {
            Some((key, value)) => seed.deserialize(ValueDeserializer::new(
                value,
                self.path.key(key),
                self.unknown,
            )),
            None => Err(de::Error::custom("value requested before its key")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[allow(dead_code)]
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Inner {
        step_weight: Option<u8>,
        max_weight: Option<u8>,
        #[serde(default)]
        labels: std::collections::BTreeMap<String, String>,
    }

    #[allow(dead_code)]
    #[derive(Debug, Deserialize)]
    struct Outer {
        name: String,
        inner: Option<Inner>,
        #[serde(default)]
        list: Vec<Inner>,
    }

    #[test]
    fn reports_unknown_fields_with_paths_and_suggestions() {
        let value = serde_json::json!({
            "name": "x",
            "inner": {"stepWeigth": 5, "labels": {"free": "form"}},
            "list": [{}, {"maxWeigh": 1}],
        });
        let collected = deserialize_collecting::<Outer>(value);
        assert!(collected.value.is_some());
        assert!(collected.values_intact);
        let rendered: Vec<String> = collected.problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            rendered,
            [
                "inner.stepWeigth: unknown field, did you mean stepWeight?",
                "list[1].maxWeigh: unknown field, did you mean maxWeight?",
            ]
        );
    }

    #[test]
    fn reports_every_bad_value_not_just_the_first() {
        let value = serde_json::json!({
            "name": "x",
            "inner": {"stepWeight": "ten", "maxWeight": 300},
        });
        let collected = deserialize_collecting::<Outer>(value);
        assert!(collected.value.is_some());
        assert!(!collected.values_intact);
        let rendered: Vec<String> = collected.problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            rendered,
            [
                "inner.maxWeight: expected a non-negative whole number, got the number 300",
                "inner.stepWeight: expected a non-negative whole number, got the string \"ten\"",
            ]
        );
    }

    #[test]
    fn structs_are_not_read_from_sequences() {
        let value = serde_json::json!({"name": "x", "inner": [1, 2]});
        let collected = deserialize_collecting::<Outer>(value);
        assert_eq!(
            collected.problems[0].to_string(),
            "inner: expected a mapping, got a sequence"
        );
    }

    #[test]
    fn reports_missing_required_fields_at_their_path() {
        let collected = deserialize_collecting::<Outer>(serde_json::json!({"inner": {}}));
        assert!(collected.value.is_none());
        assert_eq!(
            collected.problems[0].to_string(),
            "name: required field is missing"
        );
    }
}
