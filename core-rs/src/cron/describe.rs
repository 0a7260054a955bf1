//! An English description of a parsed cron expression, such as
//! "every 15 minutes, hours 9 through 17, on Monday through Friday (Europe/Berlin)".

use std::fmt::Write as _;

use super::parse::{Field, Item, Parsed};

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// Describes `parsed` in English, ending with the time zone's name in parentheses.
#[must_use]
pub fn describe(parsed: &Parsed, zone_name: &str) -> String {
    let [second, minute, hour, day, month, weekday] = &parsed.fields;
    let mut parts = vec![time_phrase(second, minute, hour, parsed.has_seconds)];
    parts.push(day_phrase(day, weekday));
    if !is_every(month) {
        parts.push(format!(
            "in {}",
            join(month.items.iter().map(|item| month_item(*item)))
        ));
    }
    let mut text = parts.join(", ");
    let _ = write!(text, " ({zone_name})");
    text
}

fn is_every(field: &Field) -> bool {
    field.items.contains(&Item::Every { step: 1 })
}

/// The single values of a field, when every item is one.
fn single_values(field: &Field) -> Option<Vec<u32>> {
    field
        .items
        .iter()
        .map(|item| match *item {
            Item::Range { start, end, .. } if start == end => Some(start),
            _ => None,
        })
        .collect()
}

fn time_phrase(second: &Field, minute: &Field, hour: &Field, has_seconds: bool) -> String {
    if let (Some(seconds), Some(minutes), Some(mut hours)) = (
        single_values(second),
        single_values(minute),
        single_values(hour),
    ) {
        if seconds.len() == 1 && minutes.len() == 1 && hours.len() <= 6 {
            hours.sort_unstable();
            hours.dedup();
            let times = hours.iter().map(|hour| {
                if has_seconds && seconds[0] != 0 {
                    format!("{hour:02}:{:02}:{:02}", minutes[0], seconds[0])
                } else {
                    format!("{hour:02}:{:02}", minutes[0])
                }
            });
            return format!("at {}", join(times));
        }
    }
    let mut parts = Vec::new();
    if has_seconds && single_values(second).as_deref() != Some(&[0]) {
        parts.push(numeric_phrase(second, "second"));
    }
    if !(has_seconds && is_every(second) && is_every(minute)) {
        parts.push(numeric_phrase(minute, "minute"));
    }
    if !is_every(hour) {
        let phrase = numeric_phrase(hour, "hour");
        parts.push(
            phrase
                .strip_prefix("at ")
                .map_or(phrase.clone(), |hours| format!("during {hours}")),
        );
    }
    parts.join(", ")
}

/// "every minute", "every 15 minutes", "at minute 5", "at minutes 0 and 30", …
fn numeric_phrase(field: &Field, unit: &str) -> String {
    match field.items.as_slice() {
        [Item::Every { step: 1 }] => format!("every {unit}"),
        [Item::Every { step }] => format!("every {step} {unit}s"),
        [Item::Range {
            start,
            end,
            step: 1,
        }] if start == end => format!("at {unit} {start}"),
        items => format!(
            "at {unit}s {}",
            join(items.iter().map(|item| numeric_item(*item, unit)))
        ),
    }
}

fn numeric_item(item: Item, unit: &str) -> String {
    match item {
        Item::Every { step } => format!("every {step} {unit}s"),
        Item::Range {
            start,
            end,
            step: 1,
        } if start == end => start.to_string(),
        Item::Range {
            start,
            end,
            step: 1,
        } => format!("{start} through {end}"),
        Item::Range { start, end, step } => {
            format!("every {step} {unit}s from {start} through {end}")
        }
        // Only day fields have these; they are described by `day_item` and `weekday_item`.
        Item::LastDay { .. } | Item::NthWeekday { .. } | Item::LastWeekday { .. } => String::new(),
    }
}

fn day_phrase(day: &Field, weekday: &Field) -> String {
    let by_day = || format!("on {}", join(day.items.iter().map(|item| day_item(*item))));
    let by_weekday = || {
        format!(
            "on {}",
            join(weekday.items.iter().map(|item| weekday_item(*item)))
        )
    };
    let day_star = day.text.starts_with(['*', '?']);
    let weekday_star = weekday.text.starts_with(['*', '?']);
    match (
        is_every(day) && day.items.len() == 1,
        is_every(weekday) && weekday.items.len() == 1,
    ) {
        (true, true) => "every day".to_owned(),
        (true, false) => by_weekday(),
        (false, true) => by_day(),
        // Vixie cron: a field that starts with '*' narrows the other one; otherwise either will do.
        (false, false) if day_star || weekday_star => {
            format!("{} if it is {}", by_day(), &by_weekday()[3..])
        }
        (false, false) => format!("{} or {}", by_day(), by_weekday()),
    }
}

fn day_item(item: Item) -> String {
    match item {
        Item::Every { step: 1 } => "every day of the month".to_owned(),
        Item::Every { step } => format!("every {step} days of the month from the 1st"),
        Item::Range {
            start,
            end,
            step: 1,
        } if start == end => format!("the {} of the month", ordinal(start)),
        Item::Range {
            start,
            end,
            step: 1,
        } => {
            format!(
                "the {} through the {} of the month",
                ordinal(start),
                ordinal(end)
            )
        }
        Item::Range { start, end, step } => {
            format!(
                "every {step} days from the {} through the {} of the month",
                ordinal(start),
                ordinal(end)
            )
        }
        Item::LastDay { offset: 0 } => "the last day of the month".to_owned(),
        Item::LastDay { offset: 1 } => "the day before the last day of the month".to_owned(),
        Item::LastDay { offset } => format!("{offset} days before the last day of the month"),
        Item::NthWeekday { .. } | Item::LastWeekday { .. } => String::new(),
    }
}

fn weekday_item(item: Item) -> String {
    let name = |weekday: u32| WEEKDAYS[weekday as usize % 7];
    match item {
        Item::Every { step: 1 } => "every day of the week".to_owned(),
        Item::Every { step } => format!("every {step} days of the week from Sunday"),
        Item::Range { start, end, step } => named_range(start, end, step, "days of the week", name),
        Item::NthWeekday { weekday, nth } => {
            format!("the {} {} of the month", ordinal(nth), name(weekday))
        }
        Item::LastWeekday { weekday } => format!("the last {} of the month", name(weekday)),
        Item::LastDay { .. } => String::new(),
    }
}

fn month_item(item: Item) -> String {
    let name = |month: u32| MONTHS[(month as usize).clamp(1, 12) - 1];
    match item {
        Item::Every { step } => format!("every {step} months from January"),
        Item::Range { start, end, step } => named_range(start, end, step, "months", name),
        Item::LastDay { .. } | Item::NthWeekday { .. } | Item::LastWeekday { .. } => String::new(),
    }
}

/// A range of a field whose values have names (weekdays, months): one name, `A through B`, or
/// `every N <unit> from A through B`.
fn named_range(
    start: u32,
    end: u32,
    step: u32,
    unit: &str,
    name: impl Fn(u32) -> &'static str,
) -> String {
    match step {
        1 if start == end => name(start).to_owned(),
        1 => format!("{} through {}", name(start), name(end)),
        _ => format!(
            "every {step} {unit} from {} through {}",
            name(start),
            name(end)
        ),
    }
}

fn ordinal(number: u32) -> String {
    let suffix = match (number % 10, number % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{number}{suffix}")
}

/// "a", "a and b", "a, b and c".
fn join(items: impl Iterator<Item = String>) -> String {
    let items: Vec<String> = items.collect();
    match items.as_slice() {
        [] => String::new(),
        [only] => only.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse::parse;
    use super::describe;

    fn text(expression: &str) -> String {
        describe(&parse(expression).unwrap(), "UTC")
    }

    #[test]
    fn describes_common_expressions() {
        assert_eq!(text("0 9 * * *"), "at 09:00, every day (UTC)");
        assert_eq!(text("@hourly"), "at minute 0, every day (UTC)");
        assert_eq!(
            text("*/15 9-17 * * MON-FRI"),
            "every 15 minutes, during hours 9 through 17, on Monday through Friday (UTC)"
        );
        assert_eq!(text("30 8,17 * * *"), "at 08:30 and 17:30, every day (UTC)");
        assert_eq!(text("15 30 6 * * *"), "at 06:30:15, every day (UTC)");
        assert_eq!(
            text("* * * * * *"),
            "every second (UTC)".replace(" (UTC)", ", every day (UTC)")
        );
        assert_eq!(
            text("0 0 1 1 *"),
            "at 00:00, on the 1st of the month, in January (UTC)"
        );
        assert_eq!(
            text("0 0 L * *"),
            "at 00:00, on the last day of the month (UTC)"
        );
        assert_eq!(
            text("0 0 * * 5L,1#2"),
            "at 00:00, on the last Friday of the month and the 2nd Monday of the month (UTC)"
        );
        assert_eq!(
            text("0 0 1,15 * 1"),
            "at 00:00, on the 1st of the month and the 15th of the month or on Monday (UTC)"
        );
        assert_eq!(
            text("0 0 */2 * 1"),
            "at 00:00, on every 2 days of the month from the 1st if it is Monday (UTC)"
        );
        assert_eq!(
            text("0 12 * 3-5 *"),
            "at 12:00, every day, in March through May (UTC)"
        );
    }
}
