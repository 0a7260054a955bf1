//! Fire times of a cron pattern in a time zone, with the DST rules of Vixie cron.
//!
//! The timeline is cut at the zone's offset changes into segments of constant offset; inside one,
//! wall-clock time and real time move together, so the pattern's wall-clock search maps straight
//! to instants. At the cuts:
//!
//! - spring forward (a gap of wall-clock times that never happen): a job whose hour is fixed and
//!   that matches a time in the gap fires once, at the instant the gap ends; a job that follows
//!   real time (wildcard or step hour) just has no such times;
//! - fall back (a repeated hour): a job whose hour is fixed fires only at the first occurrence;
//!   one that follows real time fires at both.

use jiff::tz::TimeZone;
use jiff::Timestamp;

use super::civil::Civil;
use super::parse::{parse, Parsed};
use crate::error::{CoreError, CoreResult};

/// A fire time: an instant, and how it reads on the wall clock of the schedule's zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FireTime {
    /// Seconds since 1970-01-01T00:00:00Z.
    pub timestamp: i64,
    /// The zone's UTC offset at that instant, in seconds.
    pub offset: i32,
    /// The wall-clock time is the second of two instants that read the same (the repeated hour
    /// of a fall back), like Python's `datetime.fold == 1`.
    pub fold: bool,
}

impl FireTime {
    /// The wall-clock time in the schedule's zone.
    #[must_use]
    pub fn local(self) -> Civil {
        Civil::from_seconds(self.timestamp + i64::from(self.offset))
    }
}

/// A run of time with one UTC offset: `[start, end)`.
#[derive(Debug, Clone, Copy)]
struct Segment {
    offset: i64,
    /// The offset change that begins the segment, and the offset before it.
    start: Option<(i64, i64)>,
    /// The offset change that ends the segment, and the offset after it.
    end: Option<(i64, i64)>,
}

/// The earliest and latest instants the search works in: a day beyond Python's datetime range,
/// so local times in any offset still cover years 1 and 9999 whole.
const FIRST_SECOND: i64 = -62_135_596_800 - 86_400; // 0001-01-01T00:00:00Z less a day
const LAST_SECOND: i64 = 253_402_300_799 + 86_400; // 9999-12-31T23:59:59Z plus a day

/// A cron expression bound to a time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    parsed: Parsed,
    zone: TimeZone,
    /// The zone's offset when it never changes (UTC, `Etc/GMT+5`): skips transition look-ups.
    fixed_offset: Option<i64>,
}

impl Schedule {
    /// A schedule from a cron expression and an IANA time zone name such as `"Europe/Berlin"`.
    ///
    /// # Errors
    ///
    /// `CoreError::CronSyntax` for an invalid expression, `CoreError::InvalidArgument` for an
    /// unknown time zone.
    pub fn new(expression: &str, zone_name: &str) -> CoreResult<Self> {
        let parsed = parse(expression).map_err(CoreError::CronSyntax)?;
        let zone = zone(zone_name)?;
        let fixed_offset = zone
            .to_fixed_offset()
            .ok()
            .map(|offset| i64::from(offset.seconds()));
        Ok(Self {
            parsed,
            zone,
            fixed_offset,
        })
    }

    /// The parsed expression.
    #[must_use]
    pub fn parsed(&self) -> &Parsed {
        &self.parsed
    }

    /// The time zone's IANA name, as the database spells it.
    #[must_use]
    pub fn zone_name(&self) -> &str {
        self.zone.iana_name().unwrap_or("UTC")
    }

    /// The first fire time strictly after `after` (seconds since the epoch), or `None` when
    /// there is none before the end of year 9999 in the schedule's zone.
    #[must_use]
    pub fn next_after(&self, after: i64) -> Option<FireTime> {
        let pattern = &self.parsed.pattern;
        let fixed_hour = !pattern.follows_real_time;
        let mut lower = after.max(FIRST_SECOND);
        while lower < LAST_SECOND {
            let segment = self.segment(lower + 1);
            let offset = segment.offset;
            if let Some((start, before)) = segment.start {
                if fixed_hour
                    && start == lower + 1
                    && before < offset
                    && self.gap_matches(start, before, offset)
                {
                    return Some(FireTime {
                        timestamp: start,
                        offset: to_i32(offset),
                        fold: false,
                    });
                }
            }
            let limit = segment.end.map_or(LAST_SECOND, |(end, _)| end);
            let limit_civil = Civil::from_seconds(limit + offset);
            let mut cursor = Civil::from_seconds(lower + offset);
            while let Some(candidate) = pattern.next(cursor, limit_civil) {
                let local = candidate.to_seconds();
                let timestamp = local - offset;
                if timestamp >= limit {
                    break;
                }
                let fold = segment
                    .start
                    .is_some_and(|(start, before)| before > offset && local < start + before);
                if fold && fixed_hour {
                    // A repeated wall-clock time: this job already fired at its first occurrence.
                    let (start, before) = segment.start.unwrap_or_default();
                    cursor = Civil::from_seconds(start + before - 1);
                    continue;
                }
                return Some(FireTime {
                    timestamp,
                    offset: to_i32(offset),
                    fold,
                });
            }
            lower = segment.end?.0 - 1;
        }
        None
    }

    /// The last fire time strictly before `before` (seconds since the epoch), or `None` when
    /// there is none after the start of year 1 in the schedule's zone.
    #[must_use]
    pub fn previous_before(&self, before: i64) -> Option<FireTime> {
        let pattern = &self.parsed.pattern;
        let fixed_hour = !pattern.follows_real_time;
        let mut upper = before.min(LAST_SECOND);
        while upper > FIRST_SECOND {
            let segment = self.segment(upper - 1);
            let offset = segment.offset;
            let limit = segment.start.map_or(FIRST_SECOND, |(start, _)| start);
            let limit_civil = Civil::from_seconds(limit + offset);
            let bound = Civil::from_seconds(upper + offset);
            if let Some(candidate) = pattern.previous(bound, limit_civil) {
                let local = candidate.to_seconds();
                let timestamp = local - offset;
                let fold = segment
                    .start
                    .is_some_and(|(start, before)| before > offset && local < start + before);
                // A fixed-hour job skips the repeated hour's second occurrence; everything
                // earlier in this segment is in it too, so the search goes on before the segment.
                if timestamp >= limit && !(fold && fixed_hour) {
                    return Some(FireTime {
                        timestamp,
                        offset: to_i32(offset),
                        fold,
                    });
                }
            }
            let (start, before_offset) = segment.start?;
            if fixed_hour
                && before_offset < offset
                && self.gap_matches(start, before_offset, offset)
            {
                return Some(FireTime {
                    timestamp: start,
                    offset: to_i32(offset),
                    fold: false,
                });
            }
            upper = start;
        }
        None
    }

    /// Whether the instant `timestamp` (seconds since the epoch) is a fire time.
    #[must_use]
    pub fn matches(&self, timestamp: i64) -> bool {
        self.next_after(timestamp - 1)
            .is_some_and(|fire| fire.timestamp == timestamp)
    }

    /// Whether a wall-clock time skipped by the spring-forward at `at` (from offset `before` to
    /// `after`) matches the pattern.
    fn gap_matches(&self, at: i64, before: i64, after: i64) -> bool {
        let first_skipped = at + before;
        let first_after_gap = at + after;
        self.parsed
            .pattern
            .next(
                Civil::from_seconds(first_skipped - 1),
                Civil::from_seconds(first_after_gap),
            )
            .is_some_and(|candidate| candidate.to_seconds() < first_after_gap)
    }

    /// The segment of constant offset that holds `at`.
    fn segment(&self, at: i64) -> Segment {
        if let Some(offset) = self.fixed_offset {
            return Segment {
                offset,
                start: None,
                end: None,
            };
        }
        let timestamp = timestamp(at);
        let offset = i64::from(self.zone.to_offset(timestamp).seconds());
        let end = self.zone.following(timestamp).next().map(|transition| {
            (
                transition.timestamp().as_second(),
                i64::from(transition.offset().seconds()),
            )
        });
        let start = self
            .zone
            .preceding(jiff::Timestamp::from_second(at + 1).unwrap_or(timestamp))
            .next()
            .map(|transition| {
                let start = transition.timestamp().as_second();
                let before = i64::from(self.zone.to_offset(self::timestamp(start - 1)).seconds());
                (start, before)
            });
        Segment { offset, start, end }
    }
}

/// Offsets are within ±26 hours, so they fit in an i32.
fn to_i32(offset: i64) -> i32 {
    i32::try_from(offset).unwrap_or_default()
}

/// `seconds` since the epoch as a jiff timestamp, clamped to jiff's range (wider than ours).
fn timestamp(seconds: i64) -> Timestamp {
    Timestamp::from_second(seconds.clamp(Timestamp::MIN.as_second(), Timestamp::MAX.as_second()))
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

/// The time zone named `name` in the bundled IANA database.
fn zone(name: &str) -> CoreResult<TimeZone> {
    // jiff also reads POSIX TZ strings and file paths through other constructors; `get` only
    // looks names up in the database, which is what a schedule's `tz` means.
    TimeZone::get(name).map_err(|_| {
        CoreError::InvalidArgument(format!(
            "unknown time zone {name:?}: expected an IANA name such as \"Europe/Berlin\" or \"UTC\""
        ))
    })
}

#[cfg(test)]
mod tests;
