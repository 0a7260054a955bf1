//! The two pattern syntaxes: splitting patterns and names into segments, and validating them.

use std::fmt;
use std::str::FromStr;

use crate::CoreError;

/// How names and patterns are split, and which characters are wildcards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Syntax {
    /// Dot-separated event names (`order.paid`); `*` is one segment, `#` zero or more.
    Event,
    /// `/`-separated MQTT topics (`sport/tennis`); `+` is one level, `#` the remaining levels.
    Mqtt,
}

impl Syntax {
    /// The character between segments: `.` or `/`.
    #[must_use]
    pub const fn separator(self) -> char {
        match self {
            Self::Event => '.',
            Self::Mqtt => '/',
        }
    }

    /// The wildcard that matches exactly one segment: `*` or `+`.
    #[must_use]
    pub const fn single_wildcard(self) -> char {
        match self {
            Self::Event => '*',
            Self::Mqtt => '+',
        }
    }

    /// The wildcard that matches any number of segments: `#` in both syntaxes.
    #[must_use]
    pub const fn multi_wildcard(self) -> char {
        '#'
    }

    /// The name of the syntax, as Python passes it: `"event"` or `"mqtt"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Event => "event",
            Self::Mqtt => "mqtt",
        }
    }

    fn is_wildcard(self, character: char) -> bool {
        character == self.single_wildcard() || character == self.multi_wildcard()
    }
}

impl fmt::Display for Syntax {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl FromStr for Syntax {
    type Err = CoreError;

    fn from_str(syntax: &str) -> Result<Self, Self::Err> {
        match syntax {
            "event" => Ok(Self::Event),
            "mqtt" => Ok(Self::Mqtt),
            _ => Err(CoreError::InvalidArgument(format!(
                "syntax must be 'event' or 'mqtt', not {syntax:?}"
            ))),
        }
    }
}

/// One segment of a parsed pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Segment<'pattern> {
    /// Matches exactly this segment of a name.
    Exact(&'pattern str),
    /// `*` (event) or `+` (MQTT): any one segment.
    Single,
    /// `#`: zero or more segments.
    Multi,
}

/// `pattern` split into segments, or [`CoreError::InvalidPattern`] saying what is wrong with it.
///
/// Event syntax: no empty pattern, no empty segment (`a..b`, `.a`, `a.`), and `*`/`#` only as a
/// whole segment (`a*` is refused, not read literally). `#` may appear several times (`#.a.#`).
///
/// MQTT syntax (3.1.1 §4.7): not empty, no U+0000, `+` and `#` only as a whole level, `#` only as
/// the last level. Empty levels are allowed, as in MQTT (`/a` has the levels `""` and `"a"`).
///
/// # Errors
///
/// [`CoreError::InvalidPattern`] naming the pattern and the problem.
pub fn parse_pattern(syntax: Syntax, pattern: &str) -> Result<Vec<Segment<'_>>, CoreError> {
    let invalid = |problem: String| CoreError::InvalidPattern {
        pattern: pattern.to_owned(),
        problem,
    };
    if pattern.is_empty() {
        return Err(invalid("a pattern must not be empty".to_owned()));
    }
    if syntax == Syntax::Mqtt && pattern.contains('\0') {
        return Err(invalid(
            "an MQTT topic filter must not contain U+0000".to_owned(),
        ));
    }
    let separator = syntax.separator();
    let single = syntax.single_wildcard().to_string();
    let multi = syntax.multi_wildcard().to_string();
    let mut segments = Vec::new();
    let mut levels = pattern.split(separator).peekable();
    while let Some(segment) = levels.next() {
        if segment == single {
            segments.push(Segment::Single);
        } else if segment == multi {
            if syntax == Syntax::Mqtt && levels.peek().is_some() {
                return Err(invalid(
                    "'#' must be the last level of an MQTT topic filter (as in 'sport/#')"
                        .to_owned(),
                ));
            }
            segments.push(Segment::Multi);
        } else if segment
            .chars()
            .any(|character| syntax.is_wildcard(character))
        {
            return Err(invalid(format!(
                "segment {segment:?} mixes a wildcard with other characters: '{single}' and \
                 '{multi}' must stand alone between '{separator}'s"
            )));
        } else if segment.is_empty() && syntax == Syntax::Event {
            return Err(invalid(
                "empty segment: two dots in a row, or a dot at the start or end".to_owned(),
            ));
        } else {
            segments.push(Segment::Exact(segment));
        }
    }
    Ok(segments)
}

/// Checks that `name` is something a pattern can be matched against.
///
/// A name must not be empty, and must not contain the syntax's wildcards (`*`, `#` for events; `+`,
/// `#` for MQTT, where publishing to such a topic is a protocol error): a name with wildcards is
/// almost always a pattern passed where a name was meant. Event names must not have empty segments
/// either, since no event pattern has one; MQTT topics may (and must not contain U+0000).
///
/// # Errors
///
/// [`CoreError::InvalidName`] naming the name and the problem.
pub fn check_name(syntax: Syntax, name: &str) -> Result<(), CoreError> {
    let invalid = |problem: String| CoreError::InvalidName {
        name: name.to_owned(),
        problem,
    };
    if name.is_empty() {
        return Err(invalid("a name must not be empty".to_owned()));
    }
    if let Some(wildcard) = name
        .chars()
        .find(|character| syntax.is_wildcard(*character))
    {
        return Err(invalid(format!(
            "a name must not contain the wildcard '{wildcard}' (patterns may, names may not)"
        )));
    }
    match syntax {
        Syntax::Event if name.split('.').any(str::is_empty) => Err(invalid(
            "empty segment: two dots in a row, or a dot at the start or end".to_owned(),
        )),
        Syntax::Mqtt if name.contains('\0') => {
            Err(invalid("an MQTT topic must not contain U+0000".to_owned()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::{check_name, parse_pattern, Segment, Syntax};
    use crate::CoreError;

    fn problem(syntax: Syntax, pattern: &str) -> String {
        match parse_pattern(syntax, pattern) {
            Err(CoreError::InvalidPattern {
                pattern: named,
                problem,
            }) => {
                assert_eq!(named, pattern);
                problem
            }
            other => panic!("{pattern:?} should be invalid, got {other:?}"),
        }
    }

    #[test]
    fn event_patterns_split_on_dots() {
        use Segment::{Exact, Multi, Single};
        assert_eq!(
            parse_pattern(Syntax::Event, "order.*.#").unwrap(),
            [Exact("order"), Single, Multi]
        );
        assert_eq!(parse_pattern(Syntax::Event, "#").unwrap(), [Multi]);
        assert_eq!(
            parse_pattern(Syntax::Event, "#.paid.#").unwrap(),
            [Multi, Exact("paid"), Multi]
        );
        // `+` and `/` are ordinary characters in event names.
        assert_eq!(
            parse_pattern(Syntax::Event, "a+b/c").unwrap(),
            [Exact("a+b/c")]
        );
    }

    #[test]
    fn mqtt_patterns_split_on_slashes_and_keep_empty_levels() {
        use Segment::{Exact, Multi, Single};
        assert_eq!(
            parse_pattern(Syntax::Mqtt, "sport/+/#").unwrap(),
            [Exact("sport"), Single, Multi]
        );
        assert_eq!(
            parse_pattern(Syntax::Mqtt, "/finance").unwrap(),
            [Exact(""), Exact("finance")]
        );
        assert_eq!(
            parse_pattern(Syntax::Mqtt, "+/+").unwrap(),
            [Single, Single]
        );
        assert_eq!(
            parse_pattern(Syntax::Mqtt, "a*.b").unwrap(),
            [Exact("a*.b")]
        );
    }

    #[test]
    fn invalid_event_patterns_say_why() {
        assert!(problem(Syntax::Event, "").contains("empty"));
        for pattern in ["a..b", ".a", "a.", "."] {
            assert!(problem(Syntax::Event, pattern).contains("empty segment"));
        }
        for pattern in ["a*", "a.b#", "**", "#a.b", "order.*x"] {
            assert!(problem(Syntax::Event, pattern).contains("mixes a wildcard"));
        }
    }

    #[test]
    fn invalid_mqtt_patterns_say_why() {
        assert!(problem(Syntax::Mqtt, "").contains("empty"));
        for pattern in ["sport/#/ranking", "#/a", "#/"] {
            assert!(problem(Syntax::Mqtt, pattern).contains("last level"));
        }
        for pattern in ["sport+", "sport/tennis#", "a/+b", "##"] {
            assert!(problem(Syntax::Mqtt, pattern).contains("mixes a wildcard"));
        }
        assert!(problem(Syntax::Mqtt, "a\0b").contains("U+0000"));
    }

    #[test]
    fn names_must_not_hold_wildcards() {
        for name in ["", "a.*", "#", "a..b", ".a", "a."] {
            assert!(matches!(
                check_name(Syntax::Event, name),
                Err(CoreError::InvalidName { .. })
            ));
        }
        for name in ["", "a/+", "#", "a\0"] {
            assert!(check_name(Syntax::Mqtt, name).is_err(), "{name:?}");
        }
        assert!(check_name(Syntax::Event, "order.paid:v2-x_y").is_ok());
        assert!(check_name(Syntax::Event, "a/b+c").is_ok());
        assert!(check_name(Syntax::Mqtt, "/a//b/").is_ok());
        assert!(check_name(Syntax::Mqtt, "$SYS/broker").is_ok());
        assert!(check_name(Syntax::Mqtt, "a*.b").is_ok());
    }

    #[test]
    fn syntax_parses_from_its_name() {
        assert_eq!("event".parse::<Syntax>().unwrap(), Syntax::Event);
        assert_eq!("mqtt".parse::<Syntax>().unwrap(), Syntax::Mqtt);
        assert_eq!(Syntax::Mqtt.to_string(), "mqtt");
        let error = "amqp".parse::<Syntax>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "syntax must be 'event' or 'mqtt', not \"amqp\""
        );
    }
}
