//! Due dates in the practice's time zone: parsing the form's date and time, showing them,
//! and the day boundaries "Meine Aufgaben" groups by. Stored times are Unix seconds (UTC);
//! an all-day due date is stored as the start of its local day.

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::{TimeZone, TimeZoneDatabase};
use jiff::{Timestamp, ToSpan};
use kollegium_tenants::UnixTime;
use kollegium_tenants::time::Zone;

use super::TaskError;

fn tz(zone: &Zone) -> TimeZone {
    TimeZoneDatabase::bundled()
        .get(zone.name())
        .unwrap_or(TimeZone::UTC)
}

/// `t` as local date and time in `zone`.
fn zoned(zone: &Zone, t: UnixTime) -> Option<DateTime> {
    Timestamp::from_second(t)
        .ok()
        .map(|ts| tz(zone).to_datetime(ts))
}

/// Local `dt` in `zone` as Unix time (a time skipped or repeated by a clock change: the
/// usual "compatible" choice).
fn unix(zone: &Zone, dt: DateTime) -> Option<UnixTime> {
    tz(zone)
        .to_ambiguous_timestamp(dt)
        .compatible()
        .ok()
        .map(|t| t.as_second())
}

fn day_start(zone: &Zone, d: Date) -> Option<UnixTime> {
    unix(zone, d.to_datetime(Time::midnight()))
}

/// Whether a card due at `due` is overdue at `now`: a timed one once the time passed, an
/// all-day one once its day is over.
pub fn is_overdue(due: UnixTime, all_day: bool, now: UnixTime) -> bool {
    if all_day {
        now >= due + 24 * 3600
    } else {
        now > due
    }
}

/// The due date of a form: `date` as `YYYY-MM-DD` (empty: no due date) and `time` as
/// `HH:MM` (empty: all day), local to `zone`. Returns the Unix time and whether all-day.
pub fn parse_due(
    zone: &Zone,
    date: &str,
    time: &str,
) -> Result<Option<(UnixTime, bool)>, TaskError> {
    let (date, time) = (date.trim(), time.trim());
    if date.is_empty() {
        return Ok(None);
    }
    let d: Date = date
        .parse()
        .map_err(|_| TaskError::Invalid("Datum bitte als JJJJ-MM-TT angeben."))?;
    if !(2000..=2200).contains(&d.year()) {
        return Err(TaskError::Invalid(
            "Das Datum liegt außerhalb des erlaubten Bereichs.",
        ));
    }
    let (t, all_day) = if time.is_empty() {
        (Time::midnight(), true)
    } else {
        let t: Time = time
            .parse()
            .map_err(|_| TaskError::Invalid("Uhrzeit bitte als HH:MM angeben."))?;
        (t, false)
    };
    let at = unix(zone, d.to_datetime(t)).ok_or(TaskError::Invalid("Ungültiges Datum."))?;
    Ok(Some((at, all_day)))
}

/// The due date as the form's `date` value (`YYYY-MM-DD`).
pub fn date_value(zone: &Zone, due: UnixTime) -> String {
    zoned(zone, due).map_or_else(String::new, |z| z.date().to_string())
}

/// The due time as the form's `time` value (`HH:MM`; empty for all-day).
pub fn time_value(zone: &Zone, due: UnixTime, all_day: bool) -> String {
    if all_day {
        return String::new();
    }
    zoned(zone, due).map_or_else(String::new, |z| {
        format!("{:02}:{:02}", z.hour(), z.minute())
    })
}

/// A due date as shown: `06.12.2026` (all day) or `06.12.2026, 14:00`.
pub fn due_label(zone: &Zone, due: UnixTime, all_day: bool) -> String {
    if all_day {
        zone.format_date(due)
    } else {
        zone.format(due)
    }
}

/// The start of the local day of `now` and of the day after the end of its week (Monday
/// to Sunday): the bounds of "heute" and "diese Woche".
pub fn day_and_week_end(zone: &Zone, now: UnixTime) -> (UnixTime, UnixTime, UnixTime) {
    let Some(z) = zoned(zone, now) else {
        return (now, now + 24 * 3600, now + 7 * 24 * 3600);
    };
    let start = day_start(zone, z.date()).unwrap_or(now);
    let tomorrow = z
        .date()
        .tomorrow()
        .ok()
        .and_then(|d| day_start(zone, d))
        .unwrap_or(start + 24 * 3600);
    let days_left = 7 - i64::from(z.weekday().to_monday_zero_offset());
    let week_end = z
        .date()
        .checked_add(days_left.days())
        .ok()
        .and_then(|d| day_start(zone, d))
        .unwrap_or(start + days_left * 24 * 3600);
    (start, tomorrow, week_end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_date_is_local_and_round_trips() {
        let z = Zone::default_zone();
        let (t, all_day) = parse_due(&z, "2026-12-07", "14:30").unwrap().unwrap();
        assert!(!all_day);
        assert_eq!(z.format(t), "07.12.2026, 14:30");
        assert_eq!(date_value(&z, t), "2026-12-07");
        assert_eq!(time_value(&z, t, false), "14:30");
        let (d, all_day) = parse_due(&z, "2026-07-01", "").unwrap().unwrap();
        assert!(all_day);
        assert_eq!(z.format(d), "01.07.2026, 00:00");
        assert_eq!(due_label(&z, d, true), "01.07.2026");
        assert!(parse_due(&z, "", "10:00").unwrap().is_none());
        assert!(parse_due(&z, "7.12.2026", "").is_err());
        assert!(parse_due(&z, "2026-12-07", "25:00").is_err());
        assert!(parse_due(&z, "9999-12-07", "").is_err());
    }

    #[test]
    fn all_day_cards_are_overdue_only_after_their_day() {
        let z = Zone::default_zone();
        let (d, _) = parse_due(&z, "2026-12-07", "").unwrap().unwrap();
        assert!(!is_overdue(d, true, d + 23 * 3600));
        assert!(is_overdue(d, true, d + 24 * 3600));
        assert!(is_overdue(d, false, d + 1));
    }

    #[test]
    fn the_week_ends_on_sunday_night() {
        let z = Zone::default_zone();
        // Wednesday 2026-12-09, 10:00 local.
        let (now, _) = parse_due(&z, "2026-12-09", "10:00").unwrap().unwrap();
        let (start, tomorrow, week_end) = day_and_week_end(&z, now);
        assert_eq!(z.format(start), "09.12.2026, 00:00");
        assert_eq!(z.format(tomorrow), "10.12.2026, 00:00");
        assert_eq!(z.format(week_end), "14.12.2026, 00:00");
    }
}
