//! Recurrence rules of a series (pure: no database, no clock; time comes in as an argument).
//!
//! A [`Recurrence`] is a [`Rule`] (daily, weekly, monthly, quarterly, yearly), a start date
//! and optionally a federal state whose public holidays are no working days. With a
//! [`TimeOfDay`] it is evaluated in the practice's time zone: [`Recurrence::next_after`]
//! gives the first occurrence strictly after an instant, as Unix seconds.
//!
//! Decisions, each tested in `rule_tests.rs`:
//! - A day of month the month lacks means the month's last day (31 → 30 April, 28/29 Feb);
//!   a yearly 29 February means 28 February in other years. Neither is refused.
//! - "Working day" is Monday to Friday, minus the chosen state's public holidays.
//! - "n days before quarter end" counts calendar days back from the quarter's last day
//!   (0 = the last day itself), at most [`MAX_QUARTER_OFFSET`].
//! - Daylight saving time: a local time that does not exist (02:30 on the last Sunday of
//!   March in Berlin) is moved forward by the length of the gap (03:30 summer time); a local
//!   time that exists twice (02:30 on the last Sunday of October) is its first occurrence
//!   (summer time). This is jiff's "compatible" disambiguation, the one RFC 5545 asks for.
//! - Every n days/weeks counts from the start date (weeks from the Monday of its week).
//!
//! The stored form is JSON ([`Recurrence::to_json`]), stable and checked again when read.

use std::fmt;

use jiff::Timestamp;
use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use super::holidays::{Region, State, add_days, is_working_day};

/// Most days between two occurrences of a daily rule.
pub const MAX_EVERY_DAYS: u32 = 365;
/// Most weeks between two occurrences of a weekly rule.
pub const MAX_EVERY_WEEKS: u32 = 52;
/// Most days before the quarter's end.
pub const MAX_QUARTER_OFFSET: u32 = 80;
/// How far [`Recurrence::next_after`] looks ahead (every rule recurs within 13 months).
const HORIZON_DAYS: i64 = 800;

/// Why a rule was refused: German text the forms and the API show as they are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("Der Abstand muss zwischen 1 und {MAX_EVERY_DAYS} Tagen liegen.")]
    EveryDays,
    #[error("Der Abstand muss zwischen 1 und {MAX_EVERY_WEEKS} Wochen liegen.")]
    EveryWeeks,
    #[error("Bitte mindestens einen Wochentag wählen.")]
    NoWeekday,
    #[error("Der Tag des Monats muss zwischen 1 und 31 liegen.")]
    DayOfMonth,
    #[error("Der Abstand zum Quartalsende muss zwischen 0 und {MAX_QUARTER_OFFSET} Tagen liegen.")]
    QuarterOffset,
    #[error("Der Monat muss zwischen 1 und 12 liegen.")]
    Month,
    #[error("Den {0:02}.{1:02}. gibt es in keinem Jahr.")]
    DayOfYear(u32, u32),
    #[error("Die Uhrzeit bitte als SS:MM angeben, z. B. 08:00.")]
    TimeOfDay,
    #[error("Das Startdatum bitte als Datum angeben, z. B. 2027-01-04.")]
    Start,
    #[error("Die Regel ist unvollständig oder ungültig.")]
    Malformed,
}

/// A day of the week, stored as its German two-letter abbreviation (`mo`, `di`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Day {
    Mo,
    Di,
    Mi,
    Do,
    Fr,
    Sa,
    So,
}

impl Day {
    pub const ALL: [Day; 7] = [
        Day::Mo,
        Day::Di,
        Day::Mi,
        Day::Do,
        Day::Fr,
        Day::Sa,
        Day::So,
    ];

    pub fn weekday(self) -> Weekday {
        match self {
            Day::Mo => Weekday::Monday,
            Day::Di => Weekday::Tuesday,
            Day::Mi => Weekday::Wednesday,
            Day::Do => Weekday::Thursday,
            Day::Fr => Weekday::Friday,
            Day::Sa => Weekday::Saturday,
            Day::So => Weekday::Sunday,
        }
    }

    /// The form's value (`mo`).
    pub fn code(self) -> &'static str {
        match self {
            Day::Mo => "mo",
            Day::Di => "di",
            Day::Mi => "mi",
            Day::Do => "do",
            Day::Fr => "fr",
            Day::Sa => "sa",
            Day::So => "so",
        }
    }

    /// The German name (`Montag`).
    pub fn name(self) -> &'static str {
        match self {
            Day::Mo => "Montag",
            Day::Di => "Dienstag",
            Day::Mi => "Mittwoch",
            Day::Do => "Donnerstag",
            Day::Fr => "Freitag",
            Day::Sa => "Samstag",
            Day::So => "Sonntag",
        }
    }

    pub fn parse(code: &str) -> Option<Day> {
        Day::ALL.into_iter().find(|d| d.code() == code)
    }
}

/// Which day of a month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MonthDay {
    /// This day of the month (1–31); past the month's end, its last day.
    Day(u32),
    FirstWorkingDay,
    LastWorkingDay,
}

/// Which day of a quarter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuarterDay {
    /// This many calendar days before the quarter's last day (0 = the last day).
    DaysBeforeEnd(u32),
    FirstWorkingDay,
    LastWorkingDay,
}

/// How often a series recurs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "freq", rename_all = "snake_case")]
pub enum Rule {
    Daily { every: u32 },
    Weekly { every: u32, days: Vec<Day> },
    Monthly { on: MonthDay },
    Quarterly { on: QuarterDay },
    Yearly { month: u32, day: u32 },
}

/// A local time of day (hours and minutes), stored as `HH:MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeOfDay {
    hour: i8,
    minute: i8,
}

impl TimeOfDay {
    /// `08:00`, `8:00`, `23:59`; anything else is [`RuleError::TimeOfDay`].
    pub fn parse(s: &str) -> Result<Self, RuleError> {
        let (h, m) = s.trim().split_once(':').ok_or(RuleError::TimeOfDay)?;
        let num = |p: &str, max: i8| -> Result<i8, RuleError> {
            if p.is_empty() || p.len() > 2 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(RuleError::TimeOfDay);
            }
            p.parse::<i8>()
                .ok()
                .filter(|v| *v <= max)
                .ok_or(RuleError::TimeOfDay)
        };
        let (hour, minute) = (num(h, 23)?, num(m, 59)?);
        if m.len() != 2 {
            return Err(RuleError::TimeOfDay);
        }
        Ok(Self { hour, minute })
    }

    fn time(self) -> Time {
        Time::constant(self.hour, self.minute, 0, 0)
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.hour, self.minute)
    }
}

/// A checked rule with its start date and holiday calendar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recurrence {
    #[serde(flatten)]
    pub rule: Rule,
    /// Public holidays of this state are no working days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holidays: Option<State>,
    /// The part of that state the practice is in, with holidays of its own
    /// ([`super::holidays::Region`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<Region>,
    /// No occurrence before this local date (`YYYY-MM-DD`).
    pub start: String,
    #[serde(skip)]
    start_date: Option<Date>,
}

impl Recurrence {
    /// A recurrence from its parts, checked.
    pub fn new(rule: Rule, holidays: Option<State>, start: Date) -> Result<Self, RuleError> {
        let mut r = Self {
            rule,
            holidays,
            region: None,
            start: start.to_string(),
            start_date: None,
        };
        r.check()?;
        Ok(r)
    }

    /// The same recurrence in `region`, whose holidays (and its state's) are no working days.
    pub fn in_region(mut self, region: Region) -> Self {
        self.holidays = Some(region.state());
        self.region = Some(region);
        self
    }

    /// Reads the stored form, checked as a new rule would be.
    pub fn from_json(s: &str) -> Result<Self, RuleError> {
        let mut r: Self = serde_json::from_str(s).map_err(|_| RuleError::Malformed)?;
        r.check()?;
        Ok(r)
    }

    /// The stored form.
    pub fn to_json(&self) -> String {
        // A struct of plain enums, numbers and strings always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }

    fn check(&mut self) -> Result<(), RuleError> {
        if let Some(r) = self.region
            && self.holidays != Some(r.state())
        {
            return Err(RuleError::Malformed);
        }
        match &mut self.rule {
            Rule::Daily { every } if !(1..=MAX_EVERY_DAYS).contains(every) => {
                return Err(RuleError::EveryDays);
            }
            Rule::Weekly { every, .. } if !(1..=MAX_EVERY_WEEKS).contains(every) => {
                return Err(RuleError::EveryWeeks);
            }
            Rule::Weekly { days, .. } => {
                days.sort();
                days.dedup();
                if days.is_empty() {
                    return Err(RuleError::NoWeekday);
                }
            }
            Rule::Monthly {
                on: MonthDay::Day(d),
            } if !(1..=31).contains(d) => return Err(RuleError::DayOfMonth),
            Rule::Quarterly {
                on: QuarterDay::DaysBeforeEnd(n),
            } if *n > MAX_QUARTER_OFFSET => return Err(RuleError::QuarterOffset),
            Rule::Yearly { month, .. } if !(1..=12).contains(month) => {
                return Err(RuleError::Month);
            }
            Rule::Yearly { month, day } => {
                // In a leap year every real date exists (29 February included).
                let max = jiff::civil::date(2024, *month as i8, 1).days_in_month() as u32;
                if !(1..=max).contains(day) {
                    return Err(RuleError::DayOfYear(*day, *month));
                }
            }
            _ => {}
        }
        let start: Date = self.start.trim().parse().map_err(|_| RuleError::Start)?;
        self.start = start.to_string();
        self.start_date = Some(start);
        Ok(())
    }

    fn start_date(&self) -> Date {
        // Set by `check`, which every constructor runs.
        self.start_date.unwrap_or(Date::MIN)
    }

    /// Whether the rule falls on local date `d`.
    pub fn matches(&self, d: Date) -> bool {
        let start = self.start_date();
        if d < start {
            return false;
        }
        let wd = |d: Date| is_working_day(d, self.holidays, self.region);
        match &self.rule {
            Rule::Daily { every } => days_between(start, d) % i64::from(*every) == 0,
            Rule::Weekly { every, days } => {
                days.iter().any(|x| x.weekday() == d.weekday())
                    && (days_between(monday_of(start), monday_of(d)) / 7) % i64::from(*every) == 0
            }
            Rule::Monthly { on } => match on {
                MonthDay::Day(n) => i64::from(d.day()) == i64::from(*n).min(month_len(d)),
                MonthDay::FirstWorkingDay => first_working(d.first_of_month(), wd) == Some(d),
                MonthDay::LastWorkingDay => last_working(d.last_of_month(), wd) == Some(d),
            },
            Rule::Quarterly { on } => {
                let first = quarter_first(d);
                let last = add_days(first, 92)
                    .first_of_month()
                    .yesterday()
                    .unwrap_or(first);
                match on {
                    QuarterDay::DaysBeforeEnd(n) => d == add_days(last, -i64::from(*n)),
                    QuarterDay::FirstWorkingDay => first_working(first, wd) == Some(d),
                    QuarterDay::LastWorkingDay => last_working(last, wd) == Some(d),
                }
            }
            Rule::Yearly { month, day } => {
                i64::from(d.month()) == i64::from(*month)
                    && i64::from(d.day()) == i64::from(*day).min(month_len(d))
            }
        }
    }

    /// The first occurrence at local time `at` in `tz` strictly after `after` (Unix
    /// seconds), or `None` past the end of the calendar.
    pub fn next_after(&self, at: TimeOfDay, tz: &TimeZone, after: i64) -> Option<i64> {
        let after_ts = Timestamp::from_second(after).ok()?;
        let from = tz.to_datetime(after_ts).date().max(self.start_date());
        (0..HORIZON_DAYS)
            .map(|i| add_days(from, i))
            .filter(|d| self.matches(*d))
            .filter_map(|d| local_instant(tz, d, at))
            .find(|t| *t > after)
    }

    /// The rule as a German phrase: `monatlich am letzten Werktag um 08:00`.
    pub fn describe(&self, at: TimeOfDay) -> String {
        let what = match &self.rule {
            Rule::Daily { every: 1 } => "täglich".to_owned(),
            Rule::Daily { every } => format!("alle {every} Tage"),
            Rule::Weekly { every, days } => {
                let names: Vec<&str> = days.iter().map(|d| d.name()).collect();
                let list = match names.split_last() {
                    Some((last, rest)) if !rest.is_empty() => {
                        format!("{} und {last}", rest.join(", "))
                    }
                    _ => names.join(""),
                };
                if *every == 1 {
                    format!("wöchentlich am {list}")
                } else {
                    format!("alle {every} Wochen am {list}")
                }
            }
            Rule::Monthly { on } => match on {
                MonthDay::Day(n) if *n > 28 => {
                    format!("monatlich am {n}. (in kürzeren Monaten am letzten Tag)")
                }
                MonthDay::Day(n) => format!("monatlich am {n}."),
                MonthDay::FirstWorkingDay => "monatlich am ersten Werktag".to_owned(),
                MonthDay::LastWorkingDay => "monatlich am letzten Werktag".to_owned(),
            },
            Rule::Quarterly { on } => match on {
                QuarterDay::DaysBeforeEnd(0) => {
                    "vierteljährlich am letzten Tag des Quartals".into()
                }
                QuarterDay::DaysBeforeEnd(1) => "vierteljährlich 1 Tag vor Quartalsende".into(),
                QuarterDay::DaysBeforeEnd(n) => {
                    format!("vierteljährlich {n} Tage vor Quartalsende")
                }
                QuarterDay::FirstWorkingDay => {
                    "vierteljährlich am ersten Werktag des Quartals".into()
                }
                QuarterDay::LastWorkingDay => {
                    "vierteljährlich am letzten Werktag des Quartals".into()
                }
            },
            Rule::Yearly { month: 2, day: 29 } => {
                "jährlich am 29.02. (in anderen Jahren am 28.02.)".to_owned()
            }
            Rule::Yearly { month, day } => format!("jährlich am {day:02}.{month:02}."),
        };
        let uses_working_days = matches!(
            self.rule,
            Rule::Monthly {
                on: MonthDay::FirstWorkingDay | MonthDay::LastWorkingDay
            } | Rule::Quarterly {
                on: QuarterDay::FirstWorkingDay | QuarterDay::LastWorkingDay
            }
        );
        let holidays = match (self.holidays, self.region) {
            (Some(_), Some(r)) if uses_working_days => format!(" (Feiertage: {})", r.name()),
            (Some(s), None) if uses_working_days => format!(" (Feiertage: {})", s.name()),
            _ => String::new(),
        };
        format!("{what}{holidays} um {at}")
    }
}

/// Local date `d` at `at` in `tz` as Unix seconds (DST gaps and folds: see the module).
pub fn local_instant(tz: &TimeZone, d: Date, at: TimeOfDay) -> Option<i64> {
    tz.to_ambiguous_timestamp(d.to_datetime(at.time()))
        .compatible()
        .ok()
        .map(|t| t.as_second())
}

fn days_between(a: Date, b: Date) -> i64 {
    b.duration_since(a).as_hours() / 24
}

fn monday_of(d: Date) -> Date {
    add_days(d, -i64::from(d.weekday().to_monday_zero_offset()))
}

fn month_len(d: Date) -> i64 {
    i64::from(d.days_in_month())
}

fn quarter_first(d: Date) -> Date {
    let m = (d.month() - 1) / 3 * 3 + 1;
    jiff::civil::date(d.year(), m, 1)
}

/// The first working day from `from` on within its month.
fn first_working(from: Date, wd: impl Fn(Date) -> bool) -> Option<Date> {
    (0..31)
        .map(|i| add_days(from, i))
        .take_while(|d| d.month() == from.month())
        .find(|d| wd(*d))
}

/// The last working day from `from` back within its month.
fn last_working(from: Date, wd: impl Fn(Date) -> bool) -> Option<Date> {
    (0..31)
        .map(|i| add_days(from, -i))
        .take_while(|d| d.month() == from.month())
        .find(|d| wd(*d))
}

#[cfg(test)]
#[path = "rule_tests.rs"]
mod tests;
