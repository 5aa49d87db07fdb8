//! Bounded durations: humantime text (`30s`, `5m`, `4h`, `1d`) within a range, for a key of the file or an
//! argument of the command line. Every such value goes through [`Bounded`], so they parse and are bounded
//! alike; each place keeps its own words for a value it refuses (its examples, and what it says of a value
//! out of bounds). The file's message names the key and quotes the value; the command line's leaves the
//! argument's name to clap, which prints it before the message.

use std::ops::RangeInclusive;
use std::time::Duration;

/// The examples most duration keys of the file offer when a value is not a duration.
pub(super) const KEY_EXAMPLES: &str = "\"30s\", \"5m\", \"4h\"";

/// Why a text is not a duration a place accepts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Refused {
    /// Not a humantime duration; humantime's reason.
    NotADuration(humantime::DurationError),
    /// A duration outside the bounds.
    OutOfBounds(Duration),
}

/// A duration within `range`, and how one place words a value it refuses.
pub(crate) struct Bounded<'a> {
    range: RangeInclusive<Duration>,
    /// What a valid value looks like, offered when the text is not a duration.
    examples: &'a str,
    /// What the place says of a duration outside `range`.
    out_of_bounds: &'a dyn Fn(Duration) -> String,
}

impl<'a> Bounded<'a> {
    /// The durations in `range` (both ends included), refused in one place's words: `examples` offered for a
    /// text that is not a duration, `out_of_bounds` saying what is wrong with a duration outside `range`.
    pub(crate) fn new(
        range: RangeInclusive<Duration>,
        examples: &'a str,
        out_of_bounds: &'a dyn Fn(Duration) -> String,
    ) -> Bounded<'a> {
        Bounded { range, examples, out_of_bounds }
    }

    /// `text` as a humantime duration, if it is within the bounds.
    pub(crate) fn parse(&self, text: &str) -> Result<Duration, Refused> {
        let duration = humantime::parse_duration(text).map_err(Refused::NotADuration)?;
        if self.range.contains(&duration) { Ok(duration) } else { Err(Refused::OutOfBounds(duration)) }
    }

    /// An argument of the command line (a clap value parser): `"TEXT" is not a duration (REASON); e.g.
    /// EXAMPLES`, or what the place says of a value out of bounds.
    pub(crate) fn arg(&self, text: &str) -> Result<Duration, String> {
        self.parse(text).map_err(|refused| match refused {
            Refused::NotADuration(e) => format!("\"{text}\" is not a duration ({e}); e.g. {}", self.examples),
            Refused::OutOfBounds(duration) => (self.out_of_bounds)(duration),
        })
    }

    /// The value of a key of the file: `KEY = "TEXT" is not a duration (REASON): expected e.g. EXAMPLES`, or
    /// what the place says of a value out of bounds, is added to `problems`.
    pub(crate) fn key(&self, key: &str, text: &str, problems: &mut Vec<String>) -> Option<Duration> {
        self.parse(text)
            .map_err(|refused| {
                problems.push(match refused {
                    Refused::NotADuration(e) => {
                        format!("{key} = \"{text}\" is not a duration ({e}): expected e.g. {}", self.examples)
                    }
                    Refused::OutOfBounds(duration) => (self.out_of_bounds)(duration),
                })
            })
            .ok()
    }

    /// [`Bounded::key`], or `default` when the key is absent (a default is not checked: each is within its bounds).
    pub(crate) fn key_or(
        &self,
        key: &str,
        value: Option<&str>,
        default: Duration,
        problems: &mut Vec<String>,
    ) -> Option<Duration> {
        value.map_or(Some(default), |text| self.key(key, text, problems))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);
    const MINUTE: Duration = Duration::from_secs(60);

    fn one_to_ten_minutes(out_of_bounds: &dyn Fn(Duration) -> String, test: impl FnOnce(&Bounded<'_>)) {
        test(&Bounded::new(MINUTE..=10 * MINUTE, "5m", out_of_bounds));
    }

    fn outside(d: Duration) -> String {
        format!("{} is outside 1m..=10m", humantime::format_duration(d))
    }

    #[test]
    fn bounds_are_inclusive_at_both_ends() {
        one_to_ten_minutes(&outside, |b| {
            assert_eq!(b.parse("1m"), Ok(MINUTE));
            assert_eq!(b.parse("10m"), Ok(10 * MINUTE));
            assert_eq!(b.parse("4m 30s"), Ok(4 * MINUTE + 30 * SECOND));
            assert_eq!(b.parse("59s"), Err(Refused::OutOfBounds(59 * SECOND)));
            assert_eq!(b.parse("10m1s"), Err(Refused::OutOfBounds(10 * MINUTE + SECOND)));
        });
    }

    #[test]
    fn text_that_is_not_a_duration_keeps_humantimes_reason() {
        one_to_ten_minutes(&outside, |b| {
            assert!(matches!(b.parse("soon"), Err(Refused::NotADuration(_))));
            assert!(matches!(b.parse(""), Err(Refused::NotADuration(_))));
            assert!(matches!(b.parse("5"), Err(Refused::NotADuration(_))));
        });
    }

    #[test]
    fn a_duration_too_large_to_represent_is_not_a_duration() {
        one_to_ten_minutes(&outside, |b| {
            assert!(matches!(b.parse("1000000000000000000000d"), Err(Refused::NotADuration(_))));
        });
    }

    #[test]
    fn an_argument_is_worded_for_clap_which_names_it() {
        one_to_ten_minutes(&outside, |b| {
            assert_eq!(b.arg("2m"), Ok(2 * MINUTE));
            assert_eq!(b.arg("soon"), Err("\"soon\" is not a duration (expected number at 0); e.g. 5m".to_string()));
            assert_eq!(b.arg("11m"), Err("11m is outside 1m..=10m".to_string()));
        });
    }

    #[test]
    fn a_key_names_itself_and_quotes_its_value() {
        one_to_ten_minutes(&|_| "[x] wait must be between 1m and 10m".into(), |b| {
            let mut problems = Vec::new();
            assert_eq!(b.key("[x] wait", "2m", &mut problems), Some(2 * MINUTE));
            assert_eq!(b.key("[x] wait", "soon", &mut problems), None);
            assert_eq!(b.key("[x] wait", "30s", &mut problems), None);
            assert_eq!(
                problems,
                [
                    "[x] wait = \"soon\" is not a duration (expected number at 0): expected e.g. 5m",
                    "[x] wait must be between 1m and 10m",
                ]
            );
        });
    }

    #[test]
    fn an_absent_key_is_its_default() {
        one_to_ten_minutes(&outside, |b| {
            let mut problems = Vec::new();
            assert_eq!(b.key_or("[x] wait", None, 3 * MINUTE, &mut problems), Some(3 * MINUTE));
            assert_eq!(b.key_or("[x] wait", Some("4m"), 3 * MINUTE, &mut problems), Some(4 * MINUTE));
            assert_eq!(b.key_or("[x] wait", Some("20m"), 3 * MINUTE, &mut problems), None);
            assert_eq!(problems, ["20m is outside 1m..=10m"]);
        });
    }
}
