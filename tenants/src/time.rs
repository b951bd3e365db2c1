//! The practice's local time: every time shown to a user is in the practice's time zone (a
//! practice setting in the registry, default [`DEFAULT_ZONE`]) and German format
//! (`06.12.2026, 14:05`). Stored times stay Unix seconds (UTC); operator-facing output (the
//! CLI, benchmark reports) may stay UTC ([`crate::clock::format_utc`]).
//!
//! Zones come from the IANA database that `jiff` bundles into the binary
//! ([`TimeZoneDatabase::bundled`]), never from the host's `/usr/share/zoneinfo`, so a node
//! shows the same times whatever its packages are; a parsed zone is cached by `jiff` and a
//! [`Zone`] is a cheap handle (a reference-counted pointer).

use std::fmt;

use jiff::Timestamp;
use jiff::tz::{TimeZone, TimeZoneDatabase};

use crate::clock::{UnixTime, format_utc};

/// The time zone of a practice that has not chosen one.
pub const DEFAULT_ZONE: &str = "Europe/Berlin";

/// Longest zone name accepted (the longest IANA name has 32 characters).
const MAX_NAME: usize = 64;

/// Why a zone name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown time zone {0:?}: give a name of the IANA time zone database, such as Europe/Berlin"
)]
pub struct UnknownZone(pub String);

/// A practice's time zone: a zone of the bundled IANA database, known by its name.
#[derive(Clone)]
pub struct Zone {
    tz: TimeZone,
}

impl Zone {
    /// The zone named `name` (an IANA name such as `Europe/Berlin`, case-insensitive;
    /// kept in its canonical spelling). Fixed offsets, POSIX rules and names the bundled
    /// database does not know are refused.
    pub fn parse(name: &str) -> Result<Self, UnknownZone> {
        let refuse = || UnknownZone(name.chars().take(MAX_NAME).collect());
        let trimmed = name.trim();
        if trimmed.is_empty()
            || trimmed.len() > MAX_NAME
            || !trimmed
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/_+-".contains(c))
        {
            return Err(refuse());
        }
        let tz = TimeZoneDatabase::bundled()
            .get(trimmed)
            .map_err(|_| refuse())?;
        if tz.iana_name().is_none() || tz.is_unknown() {
            return Err(refuse());
        }
        Ok(Self { tz })
    }

    /// The default zone, [`DEFAULT_ZONE`].
    pub fn default_zone() -> Self {
        // The bundled database always has it (a unit test says so); UTC only if a build
        // were made without it.
        Self::parse(DEFAULT_ZONE).unwrap_or(Self { tz: TimeZone::UTC })
    }

    /// The zone as stored, read from the registry: an unknown name (a row written by a
    /// newer version, or by hand) falls back to the default, with a warning, so that the
    /// practice stays reachable.
    pub fn stored(name: &str) -> Self {
        Self::parse(name).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "stored practice time zone unknown; using the default");
            Self::default_zone()
        })
    }

    /// The zone itself, for computing with local dates and times (recurrence rules).
    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// The canonical IANA name, e.g. `Europe/Berlin`.
    pub fn name(&self) -> &str {
        self.tz.iana_name().unwrap_or("UTC")
    }

    /// `t` as local date and time in German format: `06.12.2026, 14:05`.
    pub fn format(&self, t: UnixTime) -> String {
        let Ok(ts) = Timestamp::from_second(t) else {
            // Outside jiff's range (years -9999..=9999): no user-facing time is.
            return format_utc(t);
        };
        let d = self.tz.to_datetime(ts);
        format!(
            "{:02}.{:02}.{:04}, {:02}:{:02}",
            d.day(),
            d.month(),
            d.year(),
            d.hour(),
            d.minute()
        )
    }

    /// `t` as people say it, seen at `now`: `heute 04:21` and `gestern 17:03` for today and
    /// yesterday (local calendar days), otherwise date and time (`06.12.2026, 04:21`).
    pub fn format_relative(&self, t: UnixTime, now: UnixTime) -> String {
        let (Ok(ts), Ok(now_ts)) = (Timestamp::from_second(t), Timestamp::from_second(now)) else {
            return self.format(t);
        };
        let (d, today) = (self.tz.to_datetime(ts), self.tz.to_datetime(now_ts).date());
        let day = if d.date() == today {
            "heute"
        } else if today.yesterday().is_ok_and(|y| y == d.date()) {
            "gestern"
        } else {
            return self.format(t);
        };
        format!("{day} {:02}:{:02}", d.hour(), d.minute())
    }

    /// `t` as local date in German format: `06.12.2026`.
    pub fn format_date(&self, t: UnixTime) -> String {
        let mut s = self.format(t);
        s.truncate(10);
        s
    }
}

/// `t` in `zone`, German format (`06.12.2026, 14:05`): what pages and mails show.
pub fn format_local(t: UnixTime, zone: &Zone) -> String {
    zone.format(t)
}

impl Default for Zone {
    fn default() -> Self {
        Self::default_zone()
    }
}

impl PartialEq for Zone {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for Zone {}

impl fmt::Debug for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Zone").field(&self.name()).finish()
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl serde::Serialize for Zone {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unix seconds of a UTC date and time.
    fn utc(y: i16, mo: i8, d: i8, h: i8, mi: i8) -> UnixTime {
        TimeZone::UTC
            .to_timestamp(jiff::civil::datetime(y, mo, d, h, mi, 0, 0))
            .unwrap()
            .as_second()
    }

    fn berlin() -> Zone {
        Zone::parse("Europe/Berlin").unwrap()
    }

    #[test]
    fn the_default_is_berlin() {
        assert_eq!(Zone::default().name(), "Europe/Berlin");
        assert_eq!(Zone::default(), berlin());
    }

    #[test]
    fn winter_time_is_utc_plus_one_and_summer_time_utc_plus_two() {
        // CET
        assert_eq!(
            format_local(utc(2026, 12, 6, 13, 5), &berlin()),
            "06.12.2026, 14:05"
        );
        assert_eq!(
            format_local(utc(2027, 1, 15, 8, 0), &berlin()),
            "15.01.2027, 09:00"
        );
        // CEST
        assert_eq!(
            format_local(utc(2026, 7, 1, 12, 30), &berlin()),
            "01.07.2026, 14:30"
        );
    }

    #[test]
    fn the_switch_to_summer_time_on_the_last_sunday_of_march() {
        // 29 March 2026: at 01:00 UTC the clocks jump from 02:00 to 03:00.
        let z = berlin();
        assert_eq!(z.format(utc(2026, 3, 29, 0, 59)), "29.03.2026, 01:59");
        assert_eq!(z.format(utc(2026, 3, 29, 1, 0)), "29.03.2026, 03:00");
        assert_eq!(z.format(utc(2026, 3, 28, 12, 0)), "28.03.2026, 13:00");
        assert_eq!(z.format(utc(2026, 3, 29, 12, 0)), "29.03.2026, 14:00");
    }

    #[test]
    fn the_switch_back_on_the_last_sunday_of_october() {
        // 25 October 2026: at 01:00 UTC the clocks go back from 03:00 to 02:00, so the
        // hour from 02:00 to 03:00 is shown twice.
        let z = berlin();
        assert_eq!(z.format(utc(2026, 10, 25, 0, 30)), "25.10.2026, 02:30");
        assert_eq!(z.format(utc(2026, 10, 25, 0, 59)), "25.10.2026, 02:59");
        assert_eq!(z.format(utc(2026, 10, 25, 1, 0)), "25.10.2026, 02:00");
        assert_eq!(z.format(utc(2026, 10, 25, 1, 30)), "25.10.2026, 02:30");
        assert_eq!(z.format(utc(2026, 10, 25, 2, 0)), "25.10.2026, 03:00");
        assert_eq!(z.format(utc(2026, 10, 26, 12, 0)), "26.10.2026, 13:00");
    }

    #[test]
    fn a_date_across_midnight_utc() {
        // 23:30 UTC on New Year's Eve is already the next day (and year) in Berlin ...
        let t = utc(2026, 12, 31, 23, 30);
        assert_eq!(berlin().format(t), "01.01.2027, 00:30");
        assert_eq!(berlin().format_date(t), "01.01.2027");
        // ... and still the day before in New York.
        let ny = Zone::parse("America/New_York").unwrap();
        assert_eq!(ny.format(t), "31.12.2026, 18:30");
        // In summer the date changes at 22:00 UTC.
        assert_eq!(
            berlin().format(utc(2026, 6, 30, 22, 0)),
            "01.07.2026, 00:00"
        );
        assert_eq!(
            berlin().format(utc(2026, 6, 30, 21, 59)),
            "30.06.2026, 23:59"
        );
    }

    #[test]
    fn today_and_yesterday_are_said_in_words_by_the_local_calendar() {
        let z = berlin();
        // Now: 6 December 2026, 09:00 in Berlin (08:00 UTC).
        let now = utc(2026, 12, 6, 8, 0);
        assert_eq!(
            z.format_relative(utc(2026, 12, 6, 3, 21), now),
            "heute 04:21"
        );
        // 23:30 UTC on the 5th is already the 6th in Berlin.
        assert_eq!(
            z.format_relative(utc(2026, 12, 5, 23, 30), now),
            "heute 00:30"
        );
        assert_eq!(
            z.format_relative(utc(2026, 12, 5, 16, 3), now),
            "gestern 17:03"
        );
        // Yesterday starts at local midnight (23:00 UTC in winter).
        assert_eq!(
            z.format_relative(utc(2026, 12, 4, 23, 0), now),
            "gestern 00:00"
        );
        assert_eq!(
            z.format_relative(utc(2026, 12, 4, 22, 59), now),
            "04.12.2026, 23:59"
        );
        // Later today (an expiry) is today; tomorrow has its date.
        assert_eq!(
            z.format_relative(utc(2026, 12, 6, 20, 0), now),
            "heute 21:00"
        );
        assert_eq!(
            z.format_relative(utc(2026, 12, 7, 8, 0), now),
            "07.12.2026, 09:00"
        );
        // Across a year: 1 January's yesterday is 31 December.
        let new_year = utc(2027, 1, 1, 9, 0);
        assert_eq!(
            z.format_relative(utc(2026, 12, 31, 12, 0), new_year),
            "gestern 13:00"
        );
        // Another zone, another calendar: 03:00 UTC is still the 5th in New York.
        let ny = Zone::parse("America/New_York").unwrap();
        assert_eq!(
            ny.format_relative(utc(2026, 12, 6, 3, 0), utc(2026, 12, 6, 15, 0)),
            "gestern 22:00"
        );
    }

    #[test]
    fn names_are_canonical_and_unknown_ones_refused() {
        assert_eq!(
            Zone::parse("europe/berlin").unwrap().name(),
            "Europe/Berlin"
        );
        assert_eq!(Zone::parse(" UTC ").unwrap().name(), "UTC");
        let long = "A".repeat(100);
        for bad in [
            "",
            "Mars/Olympus_Mons",
            "Europe/Berlinn",
            "CET-1CEST,M3.5.0,M10.5.0/3",
            "+01:00",
            "../../etc/passwd",
            "Europe/Berlin;",
            long.as_str(),
        ] {
            let e = Zone::parse(bad).unwrap_err();
            assert!(e.to_string().contains("unknown time zone"), "{bad:?}: {e}");
        }
        // What the registry holds is never refused: unknown means the default.
        assert_eq!(Zone::stored("Mars/Olympus_Mons"), berlin());
        assert_eq!(Zone::stored("Europe/Vienna").name(), "Europe/Vienna");
    }

    #[test]
    fn serialises_as_its_name() {
        assert_eq!(
            serde_json::to_string(&berlin()).unwrap(),
            "\"Europe/Berlin\""
        );
    }
}
