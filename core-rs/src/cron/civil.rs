//! Proleptic Gregorian wall-clock date-times to the second, and their arithmetic.
//!
//! Hand-written rather than taken from `jiff::civil`: the cron search steps field by field
//! through (year, month, day, hour, minute, second) tuples thousands of times per call, and plain
//! integers with Howard Hinnant's day-count formulas keep that loop free of checked conversions.

/// The first year a fire time may fall in (Python's `datetime.MINYEAR`).
pub const MIN_YEAR: i32 = 1;
/// The last year a fire time may fall in (Python's `datetime.MAXYEAR`).
pub const MAX_YEAR: i32 = 9999;

const SECONDS_PER_DAY: i64 = 86_400;

/// A wall-clock date and time, to the second, in no particular time zone.
///
/// Fields compare in declaration order, so the derived ordering is chronological.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Civil {
    /// The year, `MIN_YEAR..=MAX_YEAR` for values the search produces.
    pub year: i32,
    /// 1–12.
    pub month: u8,
    /// 1–31.
    pub day: u8,
    /// 0–23.
    pub hour: u8,
    /// 0–59.
    pub minute: u8,
    /// 0–59 (no leap seconds, like cron and Python).
    pub second: u8,
}

impl Civil {
    /// The date-time `seconds` after 1970-01-01 00:00:00 (negative before).
    #[must_use]
    pub fn from_seconds(seconds: i64) -> Self {
        let days = seconds.div_euclid(SECONDS_PER_DAY);
        let in_day = seconds.rem_euclid(SECONDS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        // `in_day` is 0..86_400, so each part fits in a u8.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Self {
            year,
            month,
            day,
            hour: (in_day / 3600) as u8,
            minute: (in_day / 60 % 60) as u8,
            second: (in_day % 60) as u8,
        }
    }

    /// Seconds since 1970-01-01 00:00:00 of this wall-clock time read as UTC.
    #[must_use]
    pub fn to_seconds(self) -> i64 {
        days_from_civil(self.year, self.month, self.day) * SECONDS_PER_DAY
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
    }
}

/// Whether `year` has a February 29th.
#[must_use]
pub fn is_leap_year(year: i32) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// The number of days of `month` (1–12) in `year`.
#[must_use]
pub fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The day of the week of a date: 0 = Sunday … 6 = Saturday.
#[must_use]
pub fn weekday(year: i32, month: u8, day: u8) -> u8 {
    // 1970-01-01 was a Thursday (4).
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let weekday = (days_from_civil(year, month, day) + 4).rem_euclid(7) as u8;
    weekday
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Hinnant's `days_from_civil`).
#[must_use]
pub fn days_from_civil(year: i32, month: u8, day: u8) -> i64 {
    let year = i64::from(year) - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Hinnant's `civil_from_days`).
#[must_use]
pub fn civil_from_days(days: i64) -> (i32, u8, u8) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    // Years of timestamps within ±2^55 s fit in i32; month and day are 1–12 and 1–31.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    (year as i32, month as u8, day as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_counts_round_trip_over_four_centuries_and_the_edges() {
        for days in (-800_000..800_000).step_by(7) {
            let (year, month, day) = civil_from_days(days);
            assert_eq!(days_from_civil(year, month, day), days);
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(days_from_civil(1, 1, 1)), (1, 1, 1));
        assert_eq!(
            civil_from_days(days_from_civil(9999, 12, 31)),
            (9999, 12, 31)
        );
    }

    #[test]
    fn weekdays_and_month_lengths() {
        assert_eq!(weekday(2024, 2, 29), 4); // a Thursday
        assert_eq!(weekday(2000, 1, 1), 6); // a Saturday
        assert_eq!(weekday(1, 1, 1), 1); // a Monday
        assert_eq!(days_in_month(2024, 2), 29);
        assert_eq!(days_in_month(2100, 2), 28);
        assert_eq!(days_in_month(2000, 2), 29);
        assert_eq!(days_in_month(2023, 4), 30);
        assert_eq!(days_in_month(2023, 12), 31);
    }

    #[test]
    fn seconds_round_trip_and_order_is_chronological() {
        let moment = Civil {
            year: 2024,
            month: 3,
            day: 10,
            hour: 2,
            minute: 30,
            second: 5,
        };
        assert_eq!(Civil::from_seconds(moment.to_seconds()), moment);
        assert_eq!(Civil::from_seconds(-1).year, 1969);
        let later = Civil {
            second: 6,
            ..moment
        };
        assert!(later > moment);
        assert_eq!(later.to_seconds() - moment.to_seconds(), 1);
    }
}
