//! Reading a cron expression's text into its fields, with errors that name the field and token.

use std::fmt;

use super::pattern::Pattern;

/// Why a cron expression was refused: the field and the token at fault, and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronSyntaxError {
    /// The whole expression, as given.
    pub expression: String,
    /// `"second"`, `"minute"`, `"hour"`, `"day-of-month"`, `"month"`, `"day-of-week"`, or
    /// `"expression"` when the expression as a whole is wrong (field count, unknown macro).
    pub field: &'static str,
    /// The offending token: one comma-separated item of the field, the whole field, or the
    /// whole expression.
    pub token: String,
    /// What is wrong with the token.
    pub reason: String,
}

impl fmt::Display for CronSyntaxError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field == EXPRESSION {
            write!(
                formatter,
                "invalid cron expression {:?}: {}",
                self.expression, self.reason
            )
        } else {
            write!(
                formatter,
                "invalid cron expression {:?}: {} field {:?}: {}",
                self.expression, self.field, self.token, self.reason
            )
        }
    }
}

impl std::error::Error for CronSyntaxError {}

const EXPRESSION: &str = "expression";

/// One comma-separated item of a field, as written (after names became numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item {
    /// `*` or `?`, with a step (1 when none).
    Every {
        /// The step.
        step: u32,
    },
    /// `a`, `a-b`, `a-b/s` or `a/s` (from `a` to the field's maximum).
    Range {
        /// First value.
        start: u32,
        /// Last value.
        end: u32,
        /// The step (1 when none).
        step: u32,
    },
    /// `L` or `L-n` in day-of-month: `n` days before the last day of the month.
    LastDay {
        /// `n`, 0 for `L`.
        offset: u32,
    },
    /// `w#n` in day-of-week: the `n`th weekday `w` of the month.
    NthWeekday {
        /// 0 = Sunday … 6 = Saturday.
        weekday: u32,
        /// 1–5.
        nth: u32,
    },
    /// `wL` in day-of-week: the last weekday `w` of the month.
    LastWeekday {
        /// 0 = Sunday … 6 = Saturday.
        weekday: u32,
    },
}

/// A field as parsed: its text and items.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Field {
    /// The field's text as written.
    pub text: String,
    /// Its items, in the order written.
    pub items: Vec<Item>,
}

/// A parsed expression: the six fields (the second is `0` for five-field expressions), and the
/// pattern they make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// second, minute, hour, day-of-month, month, day-of-week.
    pub fields: [Field; 6],
    /// Whether the expression gave the seconds field.
    pub has_seconds: bool,
    /// The macro the expression was written as (`"@daily"`, lower-cased), if any.
    pub macro_name: Option<String>,
    /// The matching values.
    pub pattern: Pattern,
}

struct Spec {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MONTH_NAMES: &[&str] = &[
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAY_NAMES: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

const SECOND: Spec = Spec {
    name: "second",
    min: 0,
    max: 59,
    names: &[],
};
const MINUTE: Spec = Spec {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: Spec = Spec {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
};
const DAY_OF_MONTH: Spec = Spec {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: Spec = Spec {
    name: "month",
    min: 1,
    max: 12,
    names: MONTH_NAMES,
};
// 7 is Sunday too; it becomes 0 once the items are read.
const DAY_OF_WEEK: Spec = Spec {
    name: "day-of-week",
    min: 0,
    max: 7,
    names: WEEKDAY_NAMES,
};
const SPECS: [&Spec; 6] = [&SECOND, &MINUTE, &HOUR, &DAY_OF_MONTH, &MONTH, &DAY_OF_WEEK];

/// Expressions longer than this are refused before any work: no valid one comes close.
const MAX_LENGTH: usize = 1024;

/// The five-field form of each macro.
fn expand_macro(name: &str) -> Option<&'static str> {
    Some(match name {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        _ => return None,
    })
}

/// Parses a cron expression: five fields (minute hour day-of-month month day-of-week), six with
/// the seconds first, or a macro such as `@daily`.
///
/// # Errors
///
/// A `CronSyntaxError` naming the field and token when the text is not a valid expression, or
/// when it can never fire (such as `0 0 30 2 *`).
pub fn parse(expression: &str) -> Result<Parsed, CronSyntaxError> {
    let whole_error = |reason: String| CronSyntaxError {
        expression: expression.to_owned(),
        field: EXPRESSION,
        token: expression.to_owned(),
        reason,
    };
    if expression.len() > MAX_LENGTH {
        return Err(whole_error(format!("longer than {MAX_LENGTH} bytes")));
    }
    let trimmed = expression.trim();
    let (text, macro_name) = if trimmed.starts_with('@') {
        let name = trimmed.to_ascii_lowercase();
        let Some(text) = expand_macro(&name) else {
            return Err(whole_error(format!(
                "unknown macro {trimmed:?} (known: @yearly, @annually, @monthly, @weekly, \
                 @daily, @midnight, @hourly)"
            )));
        };
        (text, Some(name))
    } else {
        (trimmed, None)
    };
    let mut texts: Vec<&str> = text.split_ascii_whitespace().collect();
    let has_seconds = match texts.len() {
        5 => {
            texts.insert(0, "0");
            false
        }
        6 => true,
        count => {
            return Err(whole_error(format!(
                "has {count} field{}; expected 5 (minute hour day-of-month month day-of-week) \
                 or 6 (second first)",
                if count == 1 { "" } else { "s" }
            )))
        }
    };
    let mut fields: [Field; 6] = Default::default();
    for ((spec, text), parsed) in SPECS.iter().zip(&texts).zip(&mut fields) {
        let items = parse_field(spec, text).map_err(|(token, reason)| CronSyntaxError {
            expression: expression.to_owned(),
            field: spec.name,
            token,
            reason,
        })?;
        *parsed = Field {
            text: (*text).to_owned(),
            items,
        };
    }
    let pattern = build_pattern(&fields);
    if !pattern.can_match() {
        let (field, text) = if pattern.day_of_month_star {
            (&DAY_OF_WEEK, &fields[5].text)
        } else {
            (&DAY_OF_MONTH, &fields[3].text)
        };
        return Err(CronSyntaxError {
            expression: expression.to_owned(),
            field: field.name,
            token: text.clone(),
            reason: format!(
                "never matches a day of the months {:?}, so it can never fire",
                fields[4].text
            ),
        });
    }
    Ok(Parsed {
        fields,
        has_seconds,
        macro_name,
        pattern,
    })
}

type ItemError = (String, String);

fn parse_field(spec: &Spec, text: &str) -> Result<Vec<Item>, ItemError> {
    text.split(',')
        .map(|token| parse_item(spec, token).map_err(|reason| (token.to_owned(), reason)))
        .collect()
}

fn parse_item(spec: &Spec, token: &str) -> Result<Item, String> {
    if token.is_empty() {
        return Err("empty item (two commas in a row, or a comma at an end)".to_owned());
    }
    let upper = token.to_ascii_uppercase();
    let is_day_field = spec.name == DAY_OF_MONTH.name || spec.name == DAY_OF_WEEK.name;
    if spec.name == DAY_OF_MONTH.name && upper.starts_with('L') {
        return parse_last_day(&upper);
    }
    if spec.name == DAY_OF_WEEK.name {
        if let Some((weekday, nth)) = upper.split_once('#') {
            let weekday = weekday_value(spec, weekday)?;
            let nth = number(nth)
                .filter(|nth| (1..=5).contains(nth))
                .ok_or_else(|| {
                    format!(
                        "{nth:?} after '#' is not an occurrence 1-5 of the weekday in the month"
                    )
                })?;
            return Ok(Item::NthWeekday { weekday, nth });
        }
        if let Some(weekday) = upper.strip_suffix('L') {
            if weekday.is_empty() {
                return Err(
                    "'L' alone is not supported in day-of-week; write e.g. 5L for the last Friday"
                        .to_owned(),
                );
            }
            return Ok(Item::LastWeekday {
                weekday: weekday_value(spec, weekday)?,
            });
        }
    }
    if spec.name == DAY_OF_MONTH.name && upper.ends_with('W') {
        return Err("'W' (nearest weekday) is not supported".to_owned());
    }
    let (range, step) = match upper.split_once('/') {
        Some((range, step)) => {
            let step = number(step)
                .filter(|step| (1..=spec.max - spec.min + 1).contains(step))
                .ok_or_else(|| {
                    format!(
                        "step {step:?} is not a number 1-{}",
                        spec.max - spec.min + 1
                    )
                })?;
            (range, Some(step))
        }
        None => (upper.as_str(), None),
    };
    if range == "*" || (range == "?" && is_day_field) {
        if range == "?" && step.is_some() {
            return Err("'?' takes no step".to_owned());
        }
        return Ok(Item::Every {
            step: step.unwrap_or(1),
        });
    }
    let (start, end) = if let Some((start, end)) = range.split_once('-') {
        let (start, end) = (value(spec, start)?, value(spec, end)?);
        if start > end {
            return Err(format!(
                "range runs backwards ({start} > {end}); write it as two items, e.g. \
                 {start}-{},{}-{end}",
                spec.max, spec.min
            ));
        }
        (start, end)
    } else {
        // `a/s` runs from `a` to the field's end; a bare value is itself.
        let start = value(spec, range)?;
        (start, if step.is_some() { spec.max } else { start })
    };
    Ok(Item::Range {
        start,
        end,
        step: step.unwrap_or(1),
    })
}

fn parse_last_day(upper: &str) -> Result<Item, String> {
    match upper {
        "L" => Ok(Item::LastDay { offset: 0 }),
        "LW" => Err("'LW' (last weekday of the month) is not supported".to_owned()),
        _ => {
            let offset = upper
                .strip_prefix("L-")
                .and_then(number)
                .filter(|offset| *offset <= 30)
                .ok_or_else(|| {
                    "expected L (last day of the month) or L-n with n 0-30 (n days before it)"
                        .to_owned()
                })?;
            Ok(Item::LastDay { offset })
        }
    }
}

fn weekday_value(spec: &Spec, text: &str) -> Result<u32, String> {
    value(spec, text).map(|weekday| weekday % 7)
}

/// A value of the field: a number within its range, or one of its three-letter names.
fn value(spec: &Spec, text: &str) -> Result<u32, String> {
    if let Some(index) = spec.names.iter().position(|name| *name == text) {
        // Month names start at 1, weekday names at 0 (Sunday); there are at most 12.
        #[allow(clippy::cast_possible_truncation)]
        return Ok(index as u32 + spec.min);
    }
    let named = if spec.names.is_empty() {
        String::new()
    } else {
        format!(" or a name such as {}", spec.names[1])
    };
    let number = number(text).ok_or_else(|| format!("{text:?} is not a number{named}"))?;
    if !(spec.min..=spec.max).contains(&number) {
        return Err(format!(
            "{number} is out of range {}-{}",
            spec.min, spec.max
        ));
    }
    Ok(number)
}

/// A decimal number of at most 9 digits (no sign, no spaces).
fn number(text: &str) -> Option<u32> {
    if text.is_empty() || text.len() > 9 || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn bits_of(items: &[Item], spec: &Spec) -> u64 {
    let mut bits = 0u64;
    for item in items {
        let (start, end, step) = match *item {
            Item::Every { step } => (spec.min, spec.max, step),
            Item::Range { start, end, step } => (start, end, step),
            _ => continue,
        };
        let mut value = start;
        while value <= end {
            bits |= 1 << value;
            value += step;
        }
    }
    bits
}

fn build_pattern(fields: &[Field; 6]) -> Pattern {
    let [second, minute, hour, day, month, weekday] = fields;
    let mut last_day_offsets = 0u32;
    for item in &day.items {
        if let Item::LastDay { offset } = item {
            last_day_offsets |= 1 << offset;
        }
    }
    let mut nth_weekdays = [0u8; 7];
    let mut last_weekdays = 0u8;
    for item in &weekday.items {
        match *item {
            Item::NthWeekday { weekday, nth } => nth_weekdays[weekday as usize] |= 1 << nth,
            Item::LastWeekday { weekday } => last_weekdays |= 1 << weekday,
            _ => {}
        }
    }
    let weekday_bits = bits_of(&weekday.items, &DAY_OF_WEEK);
    // Fold Sunday-as-7 into 0.
    let weekday_bits = (weekday_bits | (weekday_bits >> 7)) & 0x7f;
    let star = |field: &Field| field.text.starts_with('*') || field.text.starts_with('?');
    let follows_real_time = hour.text.contains('*') || hour.text.contains('/');
    // Each bitset was filled only with values of its field's range.
    #[allow(clippy::cast_possible_truncation)]
    Pattern::new(
        bits_of(&second.items, &SECOND),
        bits_of(&minute.items, &MINUTE),
        bits_of(&hour.items, &HOUR) as u32,
        bits_of(&day.items, &DAY_OF_MONTH) as u32,
        last_day_offsets,
        bits_of(&month.items, &MONTH) as u16,
        weekday_bits as u8,
        nth_weekdays,
        last_weekdays,
        (star(day), star(weekday)),
        follows_real_time,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(expression: &str) -> CronSyntaxError {
        parse(expression).expect_err(expression)
    }

    #[test]
    fn five_and_six_fields_names_and_steps() {
        let parsed = parse("*/15 9-17 * jan,Mar mon-FRI").unwrap();
        assert!(!parsed.has_seconds);
        assert_eq!(parsed.pattern.seconds, 1);
        assert_eq!(parsed.pattern.minutes, 1 | 1 << 15 | 1 << 30 | 1 << 45);
        assert_eq!(parsed.pattern.hours, 0b11_1111_1110_0000_0000);
        assert_eq!(parsed.pattern.months, 1 << 1 | 1 << 3);
        assert_eq!(parsed.pattern.weekdays, 0b011_1110);
        let parsed = parse("30 0 0 * * 7").unwrap();
        assert!(parsed.has_seconds);
        assert_eq!(parsed.pattern.seconds, 1 << 30);
        assert_eq!(parsed.pattern.weekdays, 1);
        assert_eq!(parse("0 0 * * 5-7").unwrap().pattern.weekdays, 0b110_0001);
        assert_eq!(
            parse("5/20 * * * *").unwrap().pattern.minutes,
            1 << 5 | 1 << 25 | 1 << 45
        );
    }

    #[test]
    fn macros_expand_in_any_case() {
        assert_eq!(
            parse("@DAILY").unwrap().pattern,
            parse("0 0 * * *").unwrap().pattern
        );
        assert_eq!(
            parse(" @annually ").unwrap().pattern,
            parse("0 0 1 1 *").unwrap().pattern
        );
        assert_eq!(
            parse("@weekly").unwrap().macro_name.as_deref(),
            Some("@weekly")
        );
        assert!(parse("@hourly").unwrap().pattern.follows_real_time);
        assert!(!parse("@midnight").unwrap().pattern.follows_real_time);
    }

    #[test]
    fn extensions_are_read() {
        let parsed = parse("0 0 L,L-2,15 * 5L,1#2").unwrap();
        assert_eq!(parsed.pattern.last_day_offsets, 0b101);
        assert_eq!(parsed.pattern.last_weekdays, 1 << 5);
        assert_eq!(parsed.pattern.nth_weekdays[1], 1 << 2);
        assert_eq!(
            parse("0 0 ? * FRI#3").unwrap().pattern.nth_weekdays[5],
            1 << 3
        );
    }

    #[test]
    fn errors_name_the_field_and_token() {
        let bad = error("0 0 1 13 *");
        assert_eq!((bad.field, bad.token.as_str()), ("month", "13"));
        assert!(bad.to_string().contains("out of range 1-12"), "{bad}");
        let bad = error("1,,2 * * * *");
        assert_eq!((bad.field, bad.token.as_str()), ("minute", ""));
        let bad = error("* * * * MON-SUNDAY");
        assert_eq!(
            (bad.field, bad.token.as_str()),
            ("day-of-week", "MON-SUNDAY")
        );
        let bad = error("*/0 * * * *");
        assert_eq!((bad.field, bad.token.as_str()), ("minute", "*/0"));
        let bad = error("* * * *");
        assert_eq!(bad.field, "expression");
        assert!(bad.to_string().contains("has 4 fields"), "{bad}");
        assert_eq!(error("@reboot").field, "expression");
        assert_eq!(error("0 0 * * 1#6").token, "1#6");
        assert_eq!(error("0 17-9 * * *").field, "hour");
        assert_eq!(error("0 0 LW * *").token, "LW");
        assert_eq!(error("0 0 15W * *").token, "15W");
        assert_eq!(error("0 0 * * L").token, "L");
        assert_eq!(error("0 0 L-31 * *").token, "L-31");
        assert_eq!(error("? * * * *").field, "minute");
        assert_eq!(error("0 0 ?/2 * *").token, "?/2");
        assert_eq!(error("-1 * * * *").token, "-1");
        assert_eq!(error("99999999999 * * * *").field, "minute");
        assert_eq!(error(&"* ".repeat(600)).field, "expression");
    }

    #[test]
    fn expressions_that_never_fire_are_errors() {
        let bad = error("0 0 30 2 *");
        assert_eq!((bad.field, bad.token.as_str()), ("day-of-month", "30"));
        assert!(bad.to_string().contains("never fire"), "{bad}");
        assert_eq!(error("0 0 31 4,6,9,11 *").field, "day-of-month");
        assert_eq!(error("0 0 */31 * 5#5").field, "day-of-week");
        parse("0 0 29 2 *").unwrap();
        parse("0 0 * 2 1#5").unwrap();
        // Both restricted: either matches, so Mondays rescue February 30th.
        parse("0 0 30 2 1").unwrap();
    }
}
