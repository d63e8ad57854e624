//! Go-style durations (`500ms`, `30s`, `1m`, `1h30m`, `1.5h`), as Flagger writes them.
//!
//! Flagger feeds these strings to Go's `time.ParseDuration`, so serin accepts the
//! same grammar (minus negative values, which make no sense for an interval) and
//! writes back the text it read, so a round trip does not rewrite a user's file.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A non-negative duration parsed from Go's duration syntax.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Duration {
    value: std::time::Duration,
    text: String,
}

/// Why a duration string was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The string was empty.
    #[error("empty duration; expected a number with a unit, like 30s, 1m or 1h30m")]
    Empty,
    /// A leading minus sign: intervals and timeouts cannot be negative.
    #[error("duration {0:?} is negative")]
    Negative(String),
    /// A number was not followed by a unit (`30` instead of `30s`).
    #[error("duration {0:?} needs a unit (ns, us, ms, s, m or h), like 30s")]
    MissingUnit(String),
    /// The unit is not one of Go's.
    #[error("duration {text:?} has unknown unit {unit:?}; expected ns, us, ms, s, m or h")]
    UnknownUnit {
        /// The whole duration text.
        text: String,
        /// The unit as written.
        unit: String,
    },
    /// Anything else that is not `<number><unit>...`.
    #[error("invalid duration {0:?}; expected a number with a unit, like 30s, 1m or 1h30m")]
    Invalid(String),
    /// More than Go's limit of about 290 years.
    #[error("duration {0:?} is too large")]
    Overflow(String),
}

// === impl Duration ===

impl Duration {
    /// Parses Go's duration syntax: one or more `<decimal><unit>` pairs, or a bare `0`.
    pub fn parse(text: &str) -> Result<Self, DurationError> {
        let value = parse_go_duration(text)?;
        Ok(Self {
            value,
            text: text.to_string(),
        })
    }

    /// A duration of whole seconds, written as `Ns`.
    pub fn from_secs(secs: u64) -> Self {
        Self {
            value: std::time::Duration::from_secs(secs),
            text: format!("{secs}s"),
        }
    }

    /// The duration as a standard library value.
    pub fn as_std(&self) -> std::time::Duration {
        self.value
    }

    /// The duration as the user wrote it.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the duration is zero.
    pub fn is_zero(&self) -> bool {
        self.value.is_zero()
    }
}

impl From<Duration> for std::time::Duration {
    fn from(duration: Duration) -> Self {
        duration.value
    }
}

impl FromStr for Duration {
    type Err = DurationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl serde::de::Visitor<'_> for Visitor {
            type Value = Duration;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration like 30s, 1m or 1h30m")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Duration, E> {
                Duration::parse(text).map_err(E::custom)
            }

            // `interval: 0` is the one number Go accepts without a unit.
            fn visit_u64<E: serde::de::Error>(self, number: u64) -> Result<Duration, E> {
                if number == 0 {
                    return Ok(Duration::from_secs(0));
                }
                Err(E::custom(DurationError::MissingUnit(number.to_string())))
            }

            fn visit_i64<E: serde::de::Error>(self, number: i64) -> Result<Duration, E> {
                match u64::try_from(number) {
                    Ok(number) => self.visit_u64(number),
                    Err(_) => Err(E::custom(DurationError::Negative(number.to_string()))),
                }
            }

            fn visit_f64<E: serde::de::Error>(self, number: f64) -> Result<Duration, E> {
                Err(E::custom(DurationError::MissingUnit(number.to_string())))
            }
        }

        deserializer.deserialize_any(Visitor)
    }
}

/// Nanoseconds per unit, longest unit names first so `ms` wins over `m`.
const UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60 * 1_000_000_000),
    ("h", 3_600 * 1_000_000_000),
];

fn parse_go_duration(text: &str) -> Result<std::time::Duration, DurationError> {
    let invalid = || DurationError::Invalid(text.to_string());
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(DurationError::Empty);
    }
    if rest.starts_with('-') {
        return Err(DurationError::Negative(text.to_string()));
    }
    rest = rest.strip_prefix('+').unwrap_or(rest);
    if rest == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }

    let mut total_nanos: u128 = 0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(invalid());
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        if unit.is_empty() {
            return Err(DurationError::MissingUnit(text.to_string()));
        }
        let Some(&(_, unit_nanos)) = UNITS.iter().find(|(name, _)| *name == unit) else {
            return Err(DurationError::UnknownUnit {
                text: text.to_string(),
                unit: unit.to_string(),
            });
        };

        let overflow = || DurationError::Overflow(text.to_string());
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| overflow())?
        };
        let mut nanos = whole.checked_mul(unit_nanos).ok_or_else(overflow)?;
        // Fractional part: digits beyond nanosecond precision are dropped, as Go does.
        let mut scale = unit_nanos;
        for digit in fraction.chars().filter_map(|c| c.to_digit(10)) {
            scale /= 10;
            if scale == 0 {
                break;
            }
            nanos += u128::from(digit) * scale;
        }
        total_nanos = total_nanos.checked_add(nanos).ok_or_else(overflow)?;
        // Go refuses durations beyond i64 nanoseconds (about 290 years).
        if total_nanos > i64::MAX as u128 {
            return Err(overflow());
        }
        rest = after;
    }

    let secs = u64::try_from(total_nanos / 1_000_000_000).map_err(|_| invalid())?;
    let subsec = u32::try_from(total_nanos % 1_000_000_000).map_err(|_| invalid())?;
    Ok(std::time::Duration::new(secs, subsec))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration as Std;

    #[test]
    fn parses_what_flagger_writes() {
        let cases = [
            ("500ms", Std::from_millis(500)),
            ("30s", Std::from_secs(30)),
            ("1m", Std::from_secs(60)),
            ("1h30m", Std::from_secs(5400)),
            ("1.5h", Std::from_secs(5400)),
            ("2m30.5s", Std::from_millis(150_500)),
            ("10us", Std::from_micros(10)),
            ("0", Std::ZERO),
            (".5s", Std::from_millis(500)),
        ];
        for (text, expected) in cases {
            let parsed = Duration::parse(text).unwrap();
            assert_eq!(parsed.as_std(), expected, "{text}");
            assert_eq!(parsed.to_string(), text);
        }
    }

    #[test]
    fn refuses_nonsense_with_clear_errors() {
        assert_eq!(Duration::parse(""), Err(DurationError::Empty));
        assert!(matches!(
            Duration::parse("30"),
            Err(DurationError::MissingUnit(_))
        ));
        assert!(matches!(
            Duration::parse("-5s"),
            Err(DurationError::Negative(_))
        ));
        assert!(matches!(
            Duration::parse("5 minutes"),
            Err(DurationError::UnknownUnit { .. })
        ));
        assert!(matches!(
            Duration::parse("1..5s"),
            Err(DurationError::Invalid(_))
        ));
        assert!(matches!(
            Duration::parse("s"),
            Err(DurationError::Invalid(_))
        ));
        assert!(matches!(
            Duration::parse("999999999999999999999h"),
            Err(DurationError::Overflow(_))
        ));
        assert_eq!(
            Duration::parse("5d").unwrap_err().to_string(),
            "duration \"5d\" has unknown unit \"d\"; expected ns, us, ms, s, m or h"
        );
    }
}
