//! Table tests of the recurrence rules, with the clock given as an argument.

use jiff::civil::{Date, date};
use jiff::tz::TimeZone;

use super::*;
use kollegium_tenants::time::Zone;

fn berlin() -> TimeZone {
    Zone::parse("Europe/Berlin").unwrap().time_zone().clone()
}

/// Local `YYYY-MM-DD HH:MM` in Berlin as Unix seconds (the earlier one in a fold).
fn local(s: &str) -> i64 {
    let (d, t) = s.split_once(' ').unwrap();
    local_instant(&berlin(), d.parse().unwrap(), TimeOfDay::parse(t).unwrap()).unwrap()
}

/// Unix seconds as `YYYY-MM-DD Dy HH:MM+hh` in Berlin, so a row shows date, weekday,
/// local time and offset (summer or winter time).
fn show(t: i64) -> String {
    let tz = berlin();
    let ts = Timestamp::from_second(t).unwrap();
    let dt = tz.to_datetime(ts);
    let off = tz.to_offset(ts).seconds() / 3600;
    let wd = Day::ALL[dt.weekday().to_monday_zero_offset() as usize].code();
    format!(
        "{} {wd} {:02}:{:02}+{off:02}",
        dt.date(),
        dt.hour(),
        dt.minute()
    )
}

fn rec(rule: Rule, holidays: Option<State>, start: Date) -> Recurrence {
    Recurrence::new(rule, holidays, start).unwrap()
}

/// The next `n` occurrences after local time `after`.
fn next_n(r: &Recurrence, at: &str, after: &str, n: usize) -> Vec<String> {
    let at = TimeOfDay::parse(at).unwrap();
    let mut t = local(after);
    let mut out = Vec::new();
    for _ in 0..n {
        t = r.next_after(at, &berlin(), t).unwrap();
        out.push(show(t));
    }
    out
}

fn start() -> Date {
    date(2025, 1, 1)
}

#[test]
fn daily_and_every_n_days_count_from_the_start() {
    let r = rec(Rule::Daily { every: 1 }, None, start());
    assert_eq!(
        next_n(&r, "08:00", "2026-12-31 08:00", 2),
        ["2027-01-01 fr 08:00+01", "2027-01-02 sa 08:00+01"]
    );
    // At the very minute the occurrence is not "after" itself.
    assert_eq!(
        next_n(&r, "08:00", "2026-12-31 07:59", 1),
        ["2026-12-31 do 08:00+01"]
    );
    let r = rec(Rule::Daily { every: 3 }, None, date(2026, 12, 30));
    assert_eq!(
        next_n(&r, "07:00", "2026-12-01 00:00", 3),
        [
            "2026-12-30 mi 07:00+01",
            "2027-01-02 sa 07:00+01",
            "2027-01-05 di 07:00+01"
        ]
    );
}

#[test]
fn weekly_on_chosen_days_and_every_second_week() {
    let r = rec(
        Rule::Weekly {
            every: 1,
            days: vec![Day::Do, Day::Mo, Day::Mo],
        },
        None,
        start(),
    );
    assert_eq!(
        next_n(&r, "07:30", "2026-12-07 07:30", 3),
        [
            "2026-12-10 do 07:30+01",
            "2026-12-14 mo 07:30+01",
            "2026-12-17 do 07:30+01"
        ]
    );
    // Every second week, counted from the start's week (Monday 4 January 2027).
    let r = rec(
        Rule::Weekly {
            every: 2,
            days: vec![Day::Fr],
        },
        None,
        date(2027, 1, 6),
    );
    assert_eq!(
        next_n(&r, "12:00", "2027-01-01 00:00", 3),
        [
            "2027-01-08 fr 12:00+01",
            "2027-01-22 fr 12:00+01",
            "2027-02-05 fr 12:00+01"
        ]
    );
}

#[test]
fn a_day_of_month_the_month_lacks_is_its_last_day() {
    let r = rec(
        Rule::Monthly {
            on: MonthDay::Day(31),
        },
        None,
        start(),
    );
    assert_eq!(
        next_n(&r, "09:00", "2027-01-31 10:00", 4),
        [
            "2027-02-28 so 09:00+01",
            "2027-03-31 mi 09:00+02",
            "2027-04-30 fr 09:00+02",
            "2027-05-31 mo 09:00+02"
        ]
    );
    // A leap year's February has 29 days.
    assert_eq!(
        next_n(&r, "09:00", "2028-02-01 00:00", 1),
        ["2028-02-29 di 09:00+01"]
    );
    let r = rec(
        Rule::Monthly {
            on: MonthDay::Day(30),
        },
        None,
        start(),
    );
    assert_eq!(
        next_n(&r, "09:00", "2027-01-31 00:00", 2),
        ["2027-02-28 so 09:00+01", "2027-03-30 di 09:00+02"]
    );
}

#[test]
fn last_and_first_working_day_of_the_month() {
    let last = rec(
        Rule::Monthly {
            on: MonthDay::LastWorkingDay,
        },
        None,
        start(),
    );
    // January 2027 ends on a Sunday, July 2027 on a Saturday.
    assert_eq!(
        next_n(&last, "08:00", "2027-01-01 00:00", 7),
        [
            "2027-01-29 fr 08:00+01",
            "2027-02-26 fr 08:00+01",
            "2027-03-31 mi 08:00+02",
            "2027-04-30 fr 08:00+02",
            "2027-05-31 mo 08:00+02",
            "2027-06-30 mi 08:00+02",
            "2027-07-30 fr 08:00+02"
        ]
    );
    // December: 31.12.2027 is a Friday, no holiday; 2032 ends on a Friday too.
    assert_eq!(
        next_n(&last, "08:00", "2027-12-01 00:00", 1),
        ["2027-12-31 fr 08:00+01"]
    );
    let first = rec(
        Rule::Monthly {
            on: MonthDay::FirstWorkingDay,
        },
        None,
        start(),
    );
    // 1 January 2028 is a Saturday; without holidays Monday the 3rd.
    assert_eq!(
        next_n(&first, "08:00", "2027-12-15 00:00", 2),
        ["2028-01-03 mo 08:00+01", "2028-02-01 di 08:00+01"]
    );
    // With holidays, 1 January is never a working day: 1 January 2027 is a Friday.
    let first_nw = rec(
        Rule::Monthly {
            on: MonthDay::FirstWorkingDay,
        },
        Some(State::NW),
        start(),
    );
    assert_eq!(
        next_n(&first, "08:00", "2026-12-15 00:00", 1),
        ["2027-01-01 fr 08:00+01"]
    );
    assert_eq!(
        next_n(&first_nw, "08:00", "2026-12-15 00:00", 1),
        ["2027-01-04 mo 08:00+01"]
    );
}

#[test]
fn last_working_day_skips_the_states_holidays() {
    // Friday 31 October 2025 is Reformationstag in Saxony, not in Bavaria.
    let rule = Rule::Monthly {
        on: MonthDay::LastWorkingDay,
    };
    let sn = rec(rule.clone(), Some(State::SN), start());
    let by = rec(rule.clone(), Some(State::BY), start());
    assert_eq!(
        next_n(&sn, "08:00", "2025-10-01 00:00", 3),
        [
            "2025-10-30 do 08:00+01",
            "2025-11-28 fr 08:00+01",
            "2025-12-31 mi 08:00+01"
        ]
    );
    assert_eq!(
        next_n(&by, "08:00", "2025-10-01 00:00", 1),
        ["2025-10-31 fr 08:00+01"]
    );
    // December 2027 ends on Friday 31st; December 2022 on a Saturday (Friday 30th).
    let none = rec(rule, None, date(2022, 1, 1));
    assert_eq!(
        next_n(&none, "08:00", "2022-12-01 00:00", 1),
        ["2022-12-30 fr 08:00+01"]
    );
}

#[test]
fn quarterly_days_before_end_and_working_days() {
    let r = rec(
        Rule::Quarterly {
            on: QuarterDay::DaysBeforeEnd(10),
        },
        None,
        start(),
    );
    assert_eq!(
        next_n(&r, "08:00", "2026-12-07 00:00", 5),
        [
            "2026-12-21 mo 08:00+01",
            "2027-03-21 so 08:00+01",
            "2027-06-20 so 08:00+02",
            "2027-09-20 mo 08:00+02",
            "2027-12-21 di 08:00+01"
        ]
    );
    let r = rec(
        Rule::Quarterly {
            on: QuarterDay::DaysBeforeEnd(0),
        },
        None,
        start(),
    );
    assert_eq!(
        next_n(&r, "17:00", "2027-12-31 17:00", 2),
        ["2028-03-31 fr 17:00+02", "2028-06-30 fr 17:00+02"]
    );
    let first = rec(
        Rule::Quarterly {
            on: QuarterDay::FirstWorkingDay,
        },
        Some(State::BE),
        start(),
    );
    // 1 January 2027 (Friday) is Neujahr; 1 April 2027 a Thursday; 1 July a Thursday;
    // 1 October a Friday.
    assert_eq!(
        next_n(&first, "08:00", "2026-12-07 00:00", 4),
        [
            "2027-01-04 mo 08:00+01",
            "2027-04-01 do 08:00+02",
            "2027-07-01 do 08:00+02",
            "2027-10-01 fr 08:00+02"
        ]
    );
    let last = rec(
        Rule::Quarterly {
            on: QuarterDay::LastWorkingDay,
        },
        None,
        start(),
    );
    // 31 March 2029 is a Saturday: Friday 30th (Karfreitag 2029 is 30 March!) — without
    // holidays it counts; with Berlin's holidays it is Thursday 29th.
    assert_eq!(
        next_n(&last, "08:00", "2029-01-01 00:00", 1),
        ["2029-03-30 fr 08:00+02"]
    );
    let last_be = rec(
        Rule::Quarterly {
            on: QuarterDay::LastWorkingDay,
        },
        Some(State::BE),
        start(),
    );
    assert_eq!(
        next_n(&last_be, "08:00", "2029-01-01 00:00", 1),
        ["2029-03-29 do 08:00+02"]
    );
}

#[test]
fn yearly_and_the_leap_day() {
    let r = rec(Rule::Yearly { month: 2, day: 29 }, None, start());
    assert_eq!(
        next_n(&r, "10:00", "2026-12-07 00:00", 3),
        [
            "2027-02-28 so 10:00+01",
            "2028-02-29 di 10:00+01",
            "2029-02-28 mi 10:00+01"
        ]
    );
    let r = rec(Rule::Yearly { month: 12, day: 31 }, None, start());
    assert_eq!(
        next_n(&r, "23:30", "2026-12-31 23:30", 1),
        ["2027-12-31 fr 23:30+01"]
    );
}

#[test]
fn the_march_gap_moves_forward_and_the_october_fold_takes_the_first() {
    let daily = rec(Rule::Daily { every: 1 }, None, start());
    // 29 March 2026: 02:00 → 03:00; 02:30 does not exist, it becomes 03:30 summer time.
    assert_eq!(
        next_n(&daily, "02:30", "2026-03-28 12:00", 3),
        [
            "2026-03-29 so 03:30+02",
            "2026-03-30 mo 02:30+02",
            "2026-03-31 di 02:30+02"
        ]
    );
    // The gap's occurrence is one hour after 01:30 winter time, exactly 24 h - 1 h later.
    let t28 = local("2026-03-28 02:30");
    let t29 = daily
        .next_after(TimeOfDay::parse("02:30").unwrap(), &berlin(), t28)
        .unwrap();
    assert_eq!(t29 - t28, 24 * 3600);
    // 25 October 2026: 03:00 → 02:00; 02:30 exists twice, the first (summer time) counts,
    // and the second one is not a second occurrence.
    assert_eq!(
        next_n(&daily, "02:30", "2026-10-24 12:00", 3),
        [
            "2026-10-25 so 02:30+02",
            "2026-10-26 mo 02:30+01",
            "2026-10-27 di 02:30+01"
        ]
    );
    let first = local("2026-10-25 02:30");
    let next = daily
        .next_after(TimeOfDay::parse("02:30").unwrap(), &berlin(), first)
        .unwrap();
    assert_eq!(show(next), "2026-10-26 mo 02:30+01");
    assert_eq!(next - first, 25 * 3600);
    // Times away from the switch are untouched by it.
    assert_eq!(
        next_n(&daily, "08:00", "2026-03-28 12:00", 2),
        ["2026-03-29 so 08:00+02", "2026-03-30 mo 08:00+02"]
    );
}

#[test]
fn another_zone_another_calendar() {
    let ny = Zone::parse("America/New_York").unwrap().time_zone().clone();
    let r = rec(
        Rule::Monthly {
            on: MonthDay::Day(1),
        },
        None,
        start(),
    );
    // 1 January 2027 00:30 in Berlin is still 31 December in New York.
    let t = r
        .next_after(
            TimeOfDay::parse("08:00").unwrap(),
            &ny,
            local("2027-01-01 00:30"),
        )
        .unwrap();
    assert_eq!(show(t), "2027-01-01 fr 14:00+01");
}

#[test]
fn nothing_before_the_start() {
    let r = rec(Rule::Daily { every: 1 }, None, date(2027, 3, 1));
    assert_eq!(
        next_n(&r, "08:00", "2026-12-07 00:00", 1),
        ["2027-03-01 mo 08:00+01"]
    );
}

#[test]
fn invalid_rules_are_refused_in_german() {
    let d = start();
    let rows: Vec<(Rule, RuleError)> = vec![
        (Rule::Daily { every: 0 }, RuleError::EveryDays),
        (Rule::Daily { every: 366 }, RuleError::EveryDays),
        (
            Rule::Weekly {
                every: 0,
                days: vec![Day::Mo],
            },
            RuleError::EveryWeeks,
        ),
        (
            Rule::Weekly {
                every: 1,
                days: vec![],
            },
            RuleError::NoWeekday,
        ),
        (
            Rule::Monthly {
                on: MonthDay::Day(0),
            },
            RuleError::DayOfMonth,
        ),
        (
            Rule::Monthly {
                on: MonthDay::Day(32),
            },
            RuleError::DayOfMonth,
        ),
        (
            Rule::Quarterly {
                on: QuarterDay::DaysBeforeEnd(81),
            },
            RuleError::QuarterOffset,
        ),
        (Rule::Yearly { month: 13, day: 1 }, RuleError::Month),
        (Rule::Yearly { month: 0, day: 1 }, RuleError::Month),
        (
            Rule::Yearly { month: 2, day: 30 },
            RuleError::DayOfYear(30, 2),
        ),
        (
            Rule::Yearly { month: 4, day: 31 },
            RuleError::DayOfYear(31, 4),
        ),
        (
            Rule::Yearly { month: 1, day: 0 },
            RuleError::DayOfYear(0, 1),
        ),
    ];
    for (rule, want) in rows {
        assert_eq!(
            Recurrence::new(rule.clone(), None, d).unwrap_err(),
            want,
            "{rule:?}"
        );
    }
    assert_eq!(
        RuleError::QuarterOffset.to_string(),
        "Der Abstand zum Quartalsende muss zwischen 0 und 80 Tagen liegen."
    );
    assert_eq!(
        RuleError::DayOfYear(30, 2).to_string(),
        "Den 30.02. gibt es in keinem Jahr."
    );
    for bad in [
        "", "8", "24:00", "08:60", "8:5", "08:00:00", "-1:00", "ab:cd", "０8:00",
    ] {
        assert_eq!(TimeOfDay::parse(bad), Err(RuleError::TimeOfDay), "{bad:?}");
    }
    assert_eq!(TimeOfDay::parse("8:05").unwrap().to_string(), "08:05");
}

#[test]
fn the_stored_form_is_stable_and_checked_when_read() {
    let r = rec(
        Rule::Weekly {
            every: 2,
            days: vec![Day::Fr, Day::Mo],
        },
        Some(State::SN),
        date(2027, 1, 4),
    );
    let json = r.to_json();
    assert_eq!(
        json,
        r#"{"freq":"weekly","every":2,"days":["mo","fr"],"holidays":"SN","start":"2027-01-04"}"#
    );
    assert_eq!(Recurrence::from_json(&json).unwrap(), r);
    let q = rec(
        Rule::Quarterly {
            on: QuarterDay::DaysBeforeEnd(10),
        },
        None,
        d0(),
    );
    assert_eq!(
        q.to_json(),
        r#"{"freq":"quarterly","on":{"days_before_end":10},"start":"2025-01-01"}"#
    );
    let m = rec(
        Rule::Monthly {
            on: MonthDay::LastWorkingDay,
        },
        None,
        d0(),
    );
    assert_eq!(
        m.to_json(),
        r#"{"freq":"monthly","on":"last_working_day","start":"2025-01-01"}"#
    );
    for bad in [
        "",
        "null",
        r#"{"freq":"hourly","every":1,"start":"2025-01-01"}"#,
        r#"{"freq":"daily","start":"2025-01-01"}"#,
        r#"{"freq":"monthly","on":{"day":-1},"start":"2025-01-01"}"#,
        r#"{"freq":"daily","every":1,"start":"2025-02-30"}"#,
        r#"{"freq":"daily","every":1,"holidays":"XX","start":"2025-01-01"}"#,
    ] {
        assert_eq!(
            Recurrence::from_json(bad).unwrap_err(),
            match bad.contains("02-30") {
                true => RuleError::Start,
                false => RuleError::Malformed,
            },
            "{bad}"
        );
    }
    assert_eq!(
        Recurrence::from_json(r#"{"freq":"monthly","on":{"day":0},"start":"2025-01-01"}"#)
            .unwrap_err(),
        RuleError::DayOfMonth
    );
}

fn d0() -> Date {
    start()
}

#[test]
fn rules_read_like_german_sentences() {
    let at = TimeOfDay::parse("08:00").unwrap();
    let rows: Vec<(Rule, Option<State>, &str)> = vec![
        (Rule::Daily { every: 1 }, None, "täglich um 08:00"),
        (Rule::Daily { every: 3 }, None, "alle 3 Tage um 08:00"),
        (
            Rule::Weekly {
                every: 1,
                days: vec![Day::Mo],
            },
            None,
            "wöchentlich am Montag um 08:00",
        ),
        (
            Rule::Weekly {
                every: 2,
                days: vec![Day::Fr, Day::Mo, Day::Mi],
            },
            None,
            "alle 2 Wochen am Montag, Mittwoch und Freitag um 08:00",
        ),
        (
            Rule::Monthly {
                on: MonthDay::LastWorkingDay,
            },
            None,
            "monatlich am letzten Werktag um 08:00",
        ),
        (
            Rule::Monthly {
                on: MonthDay::LastWorkingDay,
            },
            Some(State::SN),
            "monatlich am letzten Werktag (Feiertage: Sachsen) um 08:00",
        ),
        (
            Rule::Monthly {
                on: MonthDay::Day(31),
            },
            None,
            "monatlich am 31. (in kürzeren Monaten am letzten Tag) um 08:00",
        ),
        (
            Rule::Quarterly {
                on: QuarterDay::DaysBeforeEnd(10),
            },
            None,
            "vierteljährlich 10 Tage vor Quartalsende um 08:00",
        ),
        (
            Rule::Quarterly {
                on: QuarterDay::FirstWorkingDay,
            },
            None,
            "vierteljährlich am ersten Werktag des Quartals um 08:00",
        ),
        (
            Rule::Yearly { month: 2, day: 29 },
            None,
            "jährlich am 29.02. (in anderen Jahren am 28.02.) um 08:00",
        ),
        (
            Rule::Yearly { month: 3, day: 1 },
            None,
            "jährlich am 01.03. um 08:00",
        ),
    ];
    for (rule, h, want) in rows {
        assert_eq!(rec(rule, h, d0()).describe(at), want);
    }
}

#[test]
fn a_region_of_a_state_keeps_its_own_holidays_off_the_working_days() {
    use super::super::holidays::Region;
    let last = Rule::Monthly {
        on: MonthDay::LastWorkingDay,
    };
    // Fronleichnam 2029 is Thursday 31 May: only the Saxon communities that keep it move
    // the month's last working day to Wednesday.
    let saxony = rec(last.clone(), Some(State::SN), start());
    let sorbian = rec(last.clone(), None, start()).in_region(Region::SachsenFronleichnam);
    let thuringia = rec(last, None, start()).in_region(Region::ThueringenFronleichnam);
    assert_eq!(
        next_n(&saxony, "08:00", "2029-05-15 00:00", 1),
        ["2029-05-31 do 08:00+02"]
    );
    for r in [&sorbian, &thuringia] {
        assert_eq!(
            next_n(r, "08:00", "2029-05-15 00:00", 1),
            ["2029-05-30 mi 08:00+02"]
        );
    }
    // Stored and read back with its region; a region that does not lie in the stored state
    // is malformed, not quietly another calendar.
    let back = Recurrence::from_json(&sorbian.to_json()).unwrap();
    assert_eq!(back, sorbian);
    assert!(
        sorbian
            .describe(TimeOfDay::parse("08:00").unwrap())
            .contains("Sachsen: Gemeinde mit Fronleichnam")
    );
    let wrong = sorbian.to_json().replace("\"SN\"", "\"BY\"");
    assert!(Recurrence::from_json(&wrong).is_err(), "{wrong}");
}
