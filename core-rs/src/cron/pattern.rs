//! The set of wall-clock times a cron expression matches, and the field-by-field search through it.
//!
//! Each field is a bitset; the search jumps to the next set bit of the month, then the day, the
//! hour, the minute and the second, carrying into the field above when one runs out, so finding
//! the next fire time costs a handful of bit operations per field rather than a scan of minutes.

use super::civil::{days_in_month, weekday, Civil, MAX_YEAR, MIN_YEAR};

/// The days of the week, as the bitset of the days of a month that fall on a given weekday.
///
/// `WEEKDAY_DAYS[first]` has the bits `first, first + 7, …` up to 31, for `first` in 1–7.
const WEEKDAY_DAYS: [u32; 8] = {
    let mut table = [0u32; 8];
    let mut first = 1;
    while first <= 7 {
        let mut day = first;
        while day <= 31 {
            table[first] |= 1 << day;
            day += 7;
        }
        first += 1;
    }
    table
};

/// The matching values of each field of a cron expression, plus the `L` and `#` extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// Bits 0–59.
    pub seconds: u64,
    /// Bits 0–59.
    pub minutes: u64,
    /// Bits 0–23.
    pub hours: u32,
    /// Bits 1–31: the plain days of the month.
    pub days: u32,
    /// Bit `n` set: `L-n`, the `n`th day before the last day of the month (`L` is `n = 0`).
    pub last_day_offsets: u32,
    /// Bits 1–12.
    pub months: u16,
    /// Bits 0–6 (0 = Sunday): every such weekday.
    pub weekdays: u8,
    /// `nth_weekdays[w]` bit `k` set (1–5): the `k`th weekday `w` of the month (`w#k`).
    pub nth_weekdays: [u8; 7],
    /// Bits 0–6: the last such weekday of the month (`wL`).
    pub last_weekdays: u8,
    /// The day-of-month field starts with `*` or `?` (Vixie cron's "unrestricted" test).
    pub day_of_month_star: bool,
    /// The day-of-week field starts with `*` or `?`.
    pub day_of_week_star: bool,
    /// The hour field is a wildcard or a step (`*`, `*/2`, `1-23/2`, `3/4`): such a job follows
    /// elapsed time across DST changes instead of running once per wall-clock time.
    pub follows_real_time: bool,
    /// `weekday_days[w]`: the bitset of plain `weekdays` in a month whose 1st is weekday `w`.
    weekday_days: [u32; 7],
}

impl Pattern {
    /// A pattern from its fields; computes the lookup tables the search uses.
    #[allow(clippy::too_many_arguments, clippy::fn_params_excessive_bools)]
    #[must_use]
    pub fn new(
        seconds: u64,
        minutes: u64,
        hours: u32,
        days: u32,
        last_day_offsets: u32,
        months: u16,
        weekdays: u8,
        nth_weekdays: [u8; 7],
        last_weekdays: u8,
        stars: (bool, bool),
        follows_real_time: bool,
    ) -> Self {
        let mut weekday_days = [0u32; 7];
        for (first_weekday, days_of_weekdays) in weekday_days.iter_mut().enumerate() {
            for wanted in 0..7 {
                if weekdays & (1 << wanted) != 0 {
                    // The first day of the month that falls on `wanted`, 1–7.
                    *days_of_weekdays |= WEEKDAY_DAYS[1 + (wanted + 7 - first_weekday) % 7];
                }
            }
        }
        Self {
            seconds,
            minutes,
            hours,
            days,
            last_day_offsets,
            months,
            weekdays,
            nth_weekdays,
            last_weekdays,
            day_of_month_star: stars.0,
            day_of_week_star: stars.1,
            follows_real_time,
            weekday_days,
        }
    }

    /// The matching days of a month whose length is `length` and whose 1st falls on
    /// `first_weekday` (0 = Sunday), as bits 1–31.
    #[must_use]
    pub fn days_of(&self, length: u8, first_weekday: u8) -> u32 {
        let valid = (u32::MAX >> (31 - length)) & !1;
        let mut by_month_day = self.days;
        let mut offsets = self.last_day_offsets;
        while offsets != 0 {
            let offset = offsets.trailing_zeros();
            offsets &= offsets - 1;
            if u32::from(length) > offset {
                by_month_day |= 1 << (u32::from(length) - offset);
            }
        }
        let mut by_weekday = self.weekday_days[usize::from(first_weekday)];
        for (wanted, &nths) in (0u8..).zip(&self.nth_weekdays) {
            if nths != 0 {
                let first = 1 + (wanted + 7 - first_weekday) % 7;
                let mut nths = nths;
                while nths != 0 {
                    let nth = nths.trailing_zeros();
                    nths &= nths - 1;
                    by_weekday |= 1u32
                        .checked_shl(u32::from(first) + 7 * (nth - 1))
                        .unwrap_or(0);
                }
            }
        }
        if self.last_weekdays != 0 {
            let last_weekday = (first_weekday + length - 1) % 7;
            for wanted in 0..7 {
                if self.last_weekdays & (1 << wanted) != 0 {
                    by_weekday |= 1 << (length - (last_weekday + 7 - wanted) % 7);
                }
            }
        }
        // Vixie cron: when either field is unrestricted a day must match both (the unrestricted
        // one matches every day); when both are restricted, either one suffices.
        let days = if self.day_of_month_star || self.day_of_week_star {
            by_month_day & by_weekday
        } else {
            by_month_day | by_weekday
        };
        days & valid
    }

    /// The matching days of `month` in `year`, as bits 1–31.
    #[must_use]
    pub fn days_in(&self, year: i32, month: u8) -> u32 {
        self.days_of(days_in_month(year, month), weekday(year, month, 1))
    }

    /// Whether some day of some year matches: every (month length, weekday of the 1st) pair
    /// occurs for every month in the Gregorian calendar (February's 29 days in leap years), so
    /// checking those pairs decides it without a search.
    #[must_use]
    pub fn can_match(&self) -> bool {
        (1..=12u8)
            .filter(|month| self.months & (1 << month) != 0)
            .any(|month| {
                let lengths: &[u8] = match month {
                    2 => &[28, 29],
                    4 | 6 | 9 | 11 => &[30],
                    _ => &[31],
                };
                lengths
                    .iter()
                    .any(|&length| (0..7).any(|first| self.days_of(length, first) != 0))
            })
    }

    /// Whether the wall-clock time `at` matches every field.
    #[must_use]
    pub fn matches(&self, at: Civil) -> bool {
        self.months & (1 << at.month) != 0
            && self.days_in(at.year, at.month) & (1 << at.day) != 0
            && self.hours & (1 << at.hour) != 0
            && self.minutes & (1 << at.minute) != 0
            && self.seconds & (1 << at.second) != 0
    }

    /// The first matching wall-clock time strictly after `after` and no later than `limit`'s
    /// month (the search stops at whole months), or `None`.
    #[must_use]
    pub fn next(&self, after: Civil, limit: Civil) -> Option<Civil> {
        let limit_month = if limit.year > MAX_YEAR {
            (MAX_YEAR, 12)
        } else {
            (limit.year, limit.month)
        };
        let (mut year, mut month) = (after.year, u32::from(after.month));
        let (mut day, mut hour) = (u32::from(after.day), u32::from(after.hour));
        let (mut minute, mut second) = (u32::from(after.minute), u32::from(after.second) + 1);
        loop {
            let Some(next_month) = next_bit(u64::from(self.months), month) else {
                (year, month, day, hour, minute, second) = (year + 1, 1, 1, 0, 0, 0);
                if year > limit_month.0 {
                    return None;
                }
                continue;
            };
            if next_month != month {
                (month, day, hour, minute, second) = (next_month, 1, 0, 0, 0);
            }
            #[allow(clippy::cast_possible_truncation)]
            let month_u8 = month as u8;
            if (year, month_u8) > limit_month {
                return None;
            }
            let Some(next_day) = next_bit(u64::from(self.days_in(year, month_u8)), day) else {
                (month, day, hour, minute, second) = (month + 1, 1, 0, 0, 0);
                continue;
            };
            if next_day != day {
                (day, hour, minute, second) = (next_day, 0, 0, 0);
            }
            let Some(next_hour) = next_bit(u64::from(self.hours), hour) else {
                (day, hour, minute, second) = (day + 1, 0, 0, 0);
                continue;
            };
            if next_hour != hour {
                (hour, minute, second) = (next_hour, 0, 0);
            }
            let Some(next_minute) = next_bit(self.minutes, minute) else {
                (hour, minute, second) = (hour + 1, 0, 0);
                continue;
            };
            if next_minute != minute {
                (minute, second) = (next_minute, 0);
            }
            let Some(next_second) = next_bit(self.seconds, second) else {
                (minute, second) = (minute + 1, 0);
                continue;
            };
            return Some(civil(year, month, day, hour, minute, next_second));
        }
    }

    /// The last matching wall-clock time strictly before `before` and no earlier than `limit`'s
    /// month (the search stops at whole months), or `None`.
    #[must_use]
    pub fn previous(&self, before: Civil, limit: Civil) -> Option<Civil> {
        let limit_month = if limit.year < MIN_YEAR {
            (MIN_YEAR, 1)
        } else {
            (limit.year, limit.month)
        };
        let (mut year, mut month) = (before.year, i32::from(before.month));
        let (mut day, mut hour) = (i32::from(before.day), i32::from(before.hour));
        let (mut minute, mut second) = (i32::from(before.minute), i32::from(before.second) - 1);
        loop {
            let Some(previous_month) = previous_bit(u64::from(self.months), month) else {
                (year, month, day, hour, minute, second) = (year - 1, 12, 31, 23, 59, 59);
                if year < limit_month.0 {
                    return None;
                }
                continue;
            };
            if previous_month != month {
                (month, day, hour, minute, second) = (previous_month, 31, 23, 59, 59);
            }
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let month_u8 = month as u8;
            if (year, month_u8) < limit_month {
                return None;
            }
            let Some(previous_day) = previous_bit(u64::from(self.days_in(year, month_u8)), day)
            else {
                (month, day, hour, minute, second) = (month - 1, 31, 23, 59, 59);
                continue;
            };
            if previous_day != day {
                (day, hour, minute, second) = (previous_day, 23, 59, 59);
            }
            let Some(previous_hour) = previous_bit(u64::from(self.hours), hour) else {
                (day, hour, minute, second) = (day - 1, 23, 59, 59);
                continue;
            };
            if previous_hour != hour {
                (hour, minute, second) = (previous_hour, 59, 59);
            }
            let Some(previous_minute) = previous_bit(self.minutes, minute) else {
                (hour, minute, second) = (hour - 1, 59, 59);
                continue;
            };
            if previous_minute != minute {
                (minute, second) = (previous_minute, 59);
            }
            let Some(previous_second) = previous_bit(self.seconds, second) else {
                (minute, second) = (minute - 1, 59);
                continue;
            };
            #[allow(clippy::cast_sign_loss)]
            return Some(civil(
                year,
                month as u32,
                day as u32,
                hour as u32,
                minute as u32,
                previous_second as u32,
            ));
        }
    }
}

fn civil(year: i32, month: u32, day: u32, hour: u32, minute: u32, second: u32) -> Civil {
    // Each value is a set bit of its field's bitset, so within the field's range.
    #[allow(clippy::cast_possible_truncation)]
    Civil {
        year,
        month: month as u8,
        day: day as u8,
        hour: hour as u8,
        minute: minute as u8,
        second: second as u8,
    }
}

/// The lowest set bit of `bits` at or above `from`.
fn next_bit(bits: u64, from: u32) -> Option<u32> {
    let above = bits.checked_shr(from)?;
    (above != 0).then(|| from + above.trailing_zeros())
}

/// The highest set bit of `bits` at or below `from`.
fn previous_bit(bits: u64, from: i32) -> Option<i32> {
    let from = u32::try_from(from).ok()?.min(63);
    let below = bits & (u64::MAX >> (63 - from));
    // At most 63, so the cast is lossless.
    #[allow(clippy::cast_possible_wrap)]
    (below != 0).then(|| below.ilog2() as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_day() -> Pattern {
        Pattern::new(1, 1, 1, !1, 0, 0x1ffe, 0x7f, [0; 7], 0, (true, true), false)
    }

    #[test]
    fn bit_helpers_find_the_nearest_set_bit() {
        assert_eq!(next_bit(0b1010, 0), Some(1));
        assert_eq!(next_bit(0b1010, 2), Some(3));
        assert_eq!(next_bit(0b1010, 4), None);
        assert_eq!(next_bit(1 << 63, 63), Some(63));
        assert_eq!(next_bit(u64::MAX, 64), None);
        assert_eq!(previous_bit(0b1010, 2), Some(1));
        assert_eq!(previous_bit(0b1010, 0), None);
        assert_eq!(previous_bit(0b1010, -1), None);
        assert_eq!(previous_bit(1 << 63, 100), Some(63));
    }

    #[test]
    fn weekday_tables_put_the_first_weekday_on_the_right_day() {
        assert_eq!(WEEKDAY_DAYS[1] & 0x1ff, 0b1_0000_0010);
        let mondays = Pattern::new(
            1,
            1,
            1,
            !1,
            0,
            0x1ffe,
            0b10,
            [0; 7],
            0,
            (true, false),
            false,
        );
        // March 2024 starts on a Friday: its Mondays are the 4th, 11th, 18th and 25th.
        assert_eq!(
            mondays.days_in(2024, 3),
            (1 << 4) | (1 << 11) | (1 << 18) | (1 << 25)
        );
    }

    #[test]
    fn midnight_search_crosses_days_months_and_years() {
        let pattern = every_day();
        let new_year = Civil {
            year: 2023,
            month: 12,
            day: 31,
            hour: 0,
            minute: 0,
            second: 0,
        };
        let limit = Civil {
            year: 2100,
            ..new_year
        };
        let next = pattern.next(new_year, limit).unwrap();
        assert_eq!((next.year, next.month, next.day), (2024, 1, 1));
        let previous = pattern.previous(next, limit.min(new_year)).unwrap();
        assert_eq!(previous, new_year);
        assert_eq!(pattern.next(new_year, new_year), None);
    }
}
