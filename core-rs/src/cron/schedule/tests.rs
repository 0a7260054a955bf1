use jiff::tz::TimeZone;

use super::super::civil::Civil;
use super::Schedule;
use crate::error::CoreError;

/// Seconds since the epoch of a UTC date-time.
fn utc(year: i32, month: u8, day: u8, hour: u8, minute: u8) -> i64 {
    Civil {
        year,
        month,
        day,
        hour,
        minute,
        second: 0,
    }
    .to_seconds()
}

fn schedule(expression: &str, zone: &str) -> Schedule {
    Schedule::new(expression, zone).unwrap()
}

/// The next `count` fire times after `start`, as (timestamp, fold) pairs.
fn next(schedule: &Schedule, start: i64, count: usize) -> Vec<(i64, bool)> {
    let mut fires = Vec::new();
    let mut at = start;
    for _ in 0..count {
        let fire = schedule.next_after(at).expect("a fire time");
        fires.push((fire.timestamp, fire.fold));
        at = fire.timestamp;
    }
    fires
}

/// The previous `count` fire times before `start`, latest first.
fn previous(schedule: &Schedule, start: i64, count: usize) -> Vec<(i64, bool)> {
    let mut fires = Vec::new();
    let mut at = start;
    for _ in 0..count {
        let fire = schedule.previous_before(at).expect("a fire time");
        fires.push((fire.timestamp, fire.fold));
        at = fire.timestamp;
    }
    fires
}

fn plain(timestamps: &[i64]) -> Vec<(i64, bool)> {
    timestamps
        .iter()
        .map(|&timestamp| (timestamp, false))
        .collect()
}

#[test]
fn jiff_transitions_are_strictly_after_and_before() {
    let zone = TimeZone::get("America/New_York").unwrap();
    let spring = jiff::Timestamp::from_second(utc(2024, 3, 10, 7, 0)).unwrap();
    let after = zone.following(spring).next().unwrap().timestamp();
    assert!(after > spring);
    let before = zone.preceding(spring).next().unwrap().timestamp();
    assert!(before < spring);
}

#[test]
fn fire_times_are_strictly_after_the_start() {
    let every_quarter = schedule("*/15 * * * *", "UTC");
    let noon = utc(2024, 5, 1, 12, 0);
    assert_eq!(
        next(&every_quarter, noon, 2),
        plain(&[noon + 900, noon + 1800])
    );
    assert_eq!(next(&every_quarter, noon - 1, 1), plain(&[noon]));
    assert_eq!(
        previous(&every_quarter, noon, 2),
        plain(&[noon - 900, noon - 1800])
    );
    assert_eq!(previous(&every_quarter, noon + 1, 1), plain(&[noon]));
    assert!(every_quarter.matches(noon));
    assert!(!every_quarter.matches(noon + 60));
}

#[test]
fn leap_days_month_ends_and_year_rollover() {
    let leap = schedule("0 0 29 2 *", "UTC");
    assert_eq!(
        next(&leap, utc(2024, 3, 1, 0, 0), 1),
        plain(&[utc(2028, 2, 29, 0, 0)])
    );
    // 2100 is no leap year.
    assert_eq!(
        next(&leap, utc(2096, 3, 1, 0, 0), 1),
        plain(&[utc(2104, 2, 29, 0, 0)])
    );
    assert_eq!(
        previous(&leap, utc(2104, 2, 29, 0, 0), 1),
        plain(&[utc(2096, 2, 29, 0, 0)])
    );
    let thirty_first = schedule("0 0 31 * *", "UTC");
    assert_eq!(
        next(&thirty_first, utc(2024, 1, 31, 0, 0), 2),
        plain(&[utc(2024, 3, 31, 0, 0), utc(2024, 5, 31, 0, 0)])
    );
    let new_year = schedule("@yearly", "UTC");
    assert_eq!(
        next(&new_year, utc(2023, 12, 31, 23, 59) + 59, 1),
        plain(&[utc(2024, 1, 1, 0, 0)])
    );
    assert_eq!(
        previous(&new_year, utc(2024, 1, 1, 0, 0), 1),
        plain(&[utc(2023, 1, 1, 0, 0)])
    );
}

#[test]
fn day_of_month_or_day_of_week_when_both_are_restricted() {
    // Friday the 13th in Vixie cron means "the 13th, and every Friday".
    let friday_or_13th = schedule("0 0 13 * 5", "UTC");
    assert_eq!(
        next(&friday_or_13th, utc(2024, 9, 1, 0, 0), 3),
        plain(&[
            utc(2024, 9, 6, 0, 0),
            utc(2024, 9, 13, 0, 0),
            utc(2024, 9, 20, 0, 0)
        ])
    );
    // A field starting with '*' counts as unrestricted, so the two narrow each other.
    let odd_mondays = schedule("0 0 */2 * 1", "UTC");
    assert_eq!(
        next(&odd_mondays, utc(2024, 9, 1, 0, 0), 2),
        plain(&[utc(2024, 9, 9, 0, 0), utc(2024, 9, 23, 0, 0)])
    );
    let sundays = schedule("0 0 * * 7", "UTC");
    assert_eq!(
        next(&sundays, utc(2024, 9, 2, 0, 0), 1),
        plain(&[utc(2024, 9, 8, 0, 0)])
    );
}

#[test]
fn last_and_nth_extensions() {
    let last_day = schedule("0 0 L * *", "UTC");
    assert_eq!(
        next(&last_day, utc(2023, 1, 31, 0, 0), 1),
        plain(&[utc(2023, 2, 28, 0, 0)])
    );
    assert_eq!(
        next(&last_day, utc(2024, 1, 31, 0, 0), 1),
        plain(&[utc(2024, 2, 29, 0, 0)])
    );
    let third_last = schedule("0 0 L-2 2 *", "UTC");
    assert_eq!(
        next(&third_last, utc(2024, 1, 1, 0, 0), 1),
        plain(&[utc(2024, 2, 27, 0, 0)])
    );
    let last_friday = schedule("0 0 * * 5L", "UTC");
    assert_eq!(
        next(&last_friday, utc(2024, 9, 1, 0, 0), 2),
        plain(&[utc(2024, 9, 27, 0, 0), utc(2024, 10, 25, 0, 0)])
    );
    let second_friday = schedule("0 0 * * FRI#2", "UTC");
    assert_eq!(
        next(&second_friday, utc(2024, 9, 1, 0, 0), 2),
        plain(&[utc(2024, 9, 13, 0, 0), utc(2024, 10, 11, 0, 0)])
    );
    let fifth_monday_of_february = schedule("0 0 * 2 1#5", "UTC");
    assert_eq!(
        next(&fifth_monday_of_february, utc(2000, 1, 1, 0, 0), 1),
        plain(&[utc(2016, 2, 29, 0, 0)])
    );
}

#[test]
fn spring_forward_fixed_hour_jobs_fire_once_at_the_end_of_the_gap() {
    // New York, 2024-03-10: 02:00 EST (07:00Z) jumps to 03:00 EDT.
    let gap_end = utc(2024, 3, 10, 7, 0);
    let half_past_two = schedule("30 2 * * *", "America/New_York");
    assert_eq!(
        next(&half_past_two, utc(2024, 3, 9, 12, 0), 2),
        plain(&[gap_end, utc(2024, 3, 11, 6, 30)])
    );
    assert_eq!(
        previous(&half_past_two, utc(2024, 3, 11, 6, 30), 2),
        plain(&[gap_end, utc(2024, 3, 9, 7, 30)])
    );
    let quarters_of_two = schedule("*/15 2 * * *", "America/New_York");
    assert_eq!(
        next(&quarters_of_two, utc(2024, 3, 10, 6, 0), 2),
        plain(&[gap_end, utc(2024, 3, 11, 6, 0)])
    );
    // 03:00 itself matches too: still one fire.
    let two_and_three = schedule("0 2,3 * * *", "America/New_York");
    assert_eq!(
        next(&two_and_three, utc(2024, 3, 10, 6, 0), 2),
        plain(&[gap_end, utc(2024, 3, 10, 8, 0) + 3600 * 22])
    );
    assert!(half_past_two.matches(gap_end));
    assert!(!half_past_two.matches(gap_end + 1800));
}

#[test]
fn spring_forward_wildcard_hour_jobs_follow_real_time() {
    let half_past_every_hour = schedule("30 * * * *", "America/New_York");
    assert_eq!(
        next(&half_past_every_hour, utc(2024, 3, 10, 6, 0), 2),
        plain(&[utc(2024, 3, 10, 6, 30), utc(2024, 3, 10, 7, 30)])
    );
    let every_two_hours = schedule("0 */2 * * *", "America/New_York");
    // 00:00 EST, then 02:00 never happens, then 04:00 EDT.
    assert_eq!(
        next(&every_two_hours, utc(2024, 3, 10, 4, 0), 2),
        plain(&[utc(2024, 3, 10, 5, 0), utc(2024, 3, 10, 8, 0)])
    );
}

#[test]
fn fall_back_fixed_hour_jobs_fire_once_at_the_first_occurrence() {
    // New York, 2024-11-03: 02:00 EDT (06:00Z) falls back to 01:00 EST; 01:xx happens twice.
    let half_past_one = schedule("30 1 * * *", "America/New_York");
    assert_eq!(
        next(&half_past_one, utc(2024, 11, 3, 4, 0), 2),
        plain(&[utc(2024, 11, 3, 5, 30), utc(2024, 11, 4, 6, 30)])
    );
    assert_eq!(
        previous(&half_past_one, utc(2024, 11, 4, 6, 30), 2),
        plain(&[utc(2024, 11, 3, 5, 30), utc(2024, 11, 2, 5, 30)])
    );
    // Starting inside the second occurrence: the next fire is the next day's.
    assert_eq!(
        next(&half_past_one, utc(2024, 11, 3, 6, 10), 1),
        plain(&[utc(2024, 11, 4, 6, 30)])
    );
    assert!(!half_past_one.matches(utc(2024, 11, 3, 6, 30)));
}

#[test]
fn fall_back_wildcard_hour_jobs_fire_in_both_occurrences() {
    let half_past_every_hour = schedule("30 * * * *", "America/New_York");
    let expected = vec![
        (utc(2024, 11, 3, 4, 30), false),
        (utc(2024, 11, 3, 5, 30), false),
        (utc(2024, 11, 3, 6, 30), true),
        (utc(2024, 11, 3, 7, 30), false),
    ];
    assert_eq!(
        next(&half_past_every_hour, utc(2024, 11, 3, 4, 0), 4),
        expected
    );
    let mut reversed = expected.clone();
    reversed.reverse();
    assert_eq!(
        previous(&half_past_every_hour, utc(2024, 11, 3, 8, 0), 4),
        reversed
    );
}

/// A tiny deterministic generator, so the property tests need no extra crate.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, bound: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        usize::try_from(self.0 >> 33).unwrap() % bound
    }
}

#[test]
fn real_time_jobs_match_a_minute_by_minute_scan_across_dst() {
    let expressions = [
        "*/7 * * * *",
        "0,30 * * * *",
        "15 */3 * * *",
        "*/20 1-3 * * *",
    ];
    for zone_name in [
        "America/New_York",
        "Europe/Berlin",
        "Australia/Lord_Howe",
        "Asia/Kolkata",
    ] {
        let zone = TimeZone::get(zone_name).unwrap();
        for expression in expressions {
            let schedule = schedule(expression, zone_name);
            if !schedule.parsed().pattern.follows_real_time {
                continue;
            }
            for window_start in [
                utc(2024, 3, 9, 0, 0),
                utc(2024, 3, 30, 0, 0),
                utc(2024, 10, 5, 0, 0),
                utc(2024, 10, 26, 0, 0),
                utc(2024, 11, 2, 0, 0),
            ] {
                let mut expected = Vec::new();
                for minute in 1..=(3 * 24 * 60) {
                    let at = window_start + minute * 60;
                    let offset = i64::from(
                        zone.to_offset(jiff::Timestamp::from_second(at).unwrap())
                            .seconds(),
                    );
                    if schedule
                        .parsed()
                        .pattern
                        .matches(Civil::from_seconds(at + offset))
                    {
                        expected.push(at);
                    }
                }
                let found: Vec<i64> = next(&schedule, window_start, expected.len())
                    .iter()
                    .map(|fire| fire.0)
                    .collect();
                assert_eq!(
                    found, expected,
                    "{expression} in {zone_name} from {window_start}"
                );
            }
        }
    }
}

#[test]
fn next_and_previous_are_inverse_on_random_schedules() {
    let expressions = [
        "30 2 * * *",
        "*/15 2 * * *",
        "0 0 L * *",
        "0 12 13 * 5",
        "0 0 * * 5#3",
        "15 1 * * *",
        "0 */2 * * *",
        "0 0 29 2 *",
        "0 3 * * 0L",
        "5 4 * * *",
        "0 0 1 */3 *",
        "30 0 0 * * *",
    ];
    let zones = [
        "UTC",
        "America/New_York",
        "Europe/London",
        "Australia/Lord_Howe",
        "America/Santiago",
        "Pacific/Apia",
    ];
    let mut random = Lcg(7);
    for _ in 0..600 {
        let expression = expressions[random.below(expressions.len())];
        let zone = zones[random.below(zones.len())];
        let schedule = schedule(expression, zone);
        let start = utc(1990, 1, 1, 0, 0) + i64::try_from(random.below(60 * 365 * 86_400)).unwrap();
        let fire = schedule.next_after(start).unwrap();
        assert!(fire.timestamp > start);
        let back = schedule.previous_before(fire.timestamp).unwrap();
        assert!(
            back.timestamp <= start,
            "{expression} {zone} {start}: {back:?} {fire:?}"
        );
        assert_eq!(
            schedule.next_after(back.timestamp),
            Some(fire),
            "{expression} {zone} {start}"
        );
        assert!(schedule.matches(fire.timestamp));
        assert!(!schedule.matches(fire.timestamp - 1));
    }
}

#[test]
fn searches_stop_at_the_ends_of_the_supported_years() {
    let yearly = schedule("@yearly", "America/New_York");
    assert_eq!(yearly.next_after(utc(9999, 6, 1, 0, 0)), None);
    assert_eq!(yearly.previous_before(utc(1, 1, 1, 0, 0)), None);
    assert!(yearly.next_after(i64::MIN).is_some());
    assert!(yearly.previous_before(i64::MAX).is_some());
    let leap = schedule("0 0 29 2 *", "UTC");
    assert_eq!(leap.next_after(utc(9996, 3, 1, 0, 0)), None);
}

#[test]
fn unknown_zones_and_bad_expressions_are_errors() {
    assert!(
        matches!(Schedule::new("* * * * *", "Mars/Olympus"), Err(CoreError::InvalidArgument(message)) if message.contains("Mars/Olympus"))
    );
    assert!(matches!(
        Schedule::new("* * * * *", "../../etc/passwd"),
        Err(CoreError::InvalidArgument(_))
    ));
    assert!(
        matches!(Schedule::new("0 0 30 2 *", "UTC"), Err(CoreError::CronSyntax(error)) if error.field == "day-of-month")
    );
    assert_eq!(
        schedule("* * * * *", "europe/berlin").zone_name(),
        "Europe/Berlin"
    );
}
