//! German public holidays (gesetzliche Feiertage) of the 16 federal states, computed (no
//! table to keep up to date): the fixed-date ones and those that hang on Easter Sunday
//! (Gauss/Meeus' Gregorian algorithm), plus Buß- und Bettag (the Wednesday before
//! 23 November, Saxony only).
//!
//! A state's calendar holds the holidays of the whole state (Mariä Himmelfahrt in the
//! Saarland, say). Holidays of only part of a state count where the practice says it is
//! there, by choosing a [`Region`] instead of the state: Fronleichnam in the Catholic
//! (Sorbian) communities of Saxony and in those of Thuringia that keep it (Eichsfeld and
//! others), Mariä Himmelfahrt in Bavaria's communities with a Catholic majority, and
//! Augsburg's Friedensfest (8 August, the city of Augsburg only; Augsburg keeps Mariä
//! Himmelfahrt too). Which communities these are is the state's list, not ours: the
//! practice knows whether it is in one. Easter and Whit Sunday (holidays in Brandenburg) are
//! Sundays anyway.

use jiff::civil::{Date, Weekday, date};

use serde::{Deserialize, Serialize};

/// A German federal state (Bundesland), by its official two-letter code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum State {
    BW,
    BY,
    BE,
    BB,
    HB,
    HH,
    HE,
    MV,
    NI,
    NW,
    RP,
    SL,
    SN,
    ST,
    SH,
    TH,
}

impl State {
    /// All states, in the order of the form's choice.
    pub const ALL: [State; 16] = [
        State::BW,
        State::BY,
        State::BE,
        State::BB,
        State::HB,
        State::HH,
        State::HE,
        State::MV,
        State::NI,
        State::NW,
        State::RP,
        State::SL,
        State::SN,
        State::ST,
        State::SH,
        State::TH,
    ];

    /// The state's code, e.g. `SN`.
    pub fn code(self) -> &'static str {
        match self {
            State::BW => "BW",
            State::BY => "BY",
            State::BE => "BE",
            State::BB => "BB",
            State::HB => "HB",
            State::HH => "HH",
            State::HE => "HE",
            State::MV => "MV",
            State::NI => "NI",
            State::NW => "NW",
            State::RP => "RP",
            State::SL => "SL",
            State::SN => "SN",
            State::ST => "ST",
            State::SH => "SH",
            State::TH => "TH",
        }
    }

    /// The state's German name.
    pub fn name(self) -> &'static str {
        match self {
            State::BW => "Baden-Württemberg",
            State::BY => "Bayern",
            State::BE => "Berlin",
            State::BB => "Brandenburg",
            State::HB => "Bremen",
            State::HH => "Hamburg",
            State::HE => "Hessen",
            State::MV => "Mecklenburg-Vorpommern",
            State::NI => "Niedersachsen",
            State::NW => "Nordrhein-Westfalen",
            State::RP => "Rheinland-Pfalz",
            State::SL => "Saarland",
            State::SN => "Sachsen",
            State::ST => "Sachsen-Anhalt",
            State::SH => "Schleswig-Holstein",
            State::TH => "Thüringen",
        }
    }

    /// The state with code `code` (case-insensitive).
    pub fn parse(code: &str) -> Option<State> {
        State::ALL
            .into_iter()
            .find(|s| s.code().eq_ignore_ascii_case(code.trim()))
    }
}

/// Part of a state with public holidays of its own, chosen by the practice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Region {
    /// The city of Augsburg: Friedensfest (8 August) and Mariä Himmelfahrt.
    Augsburg,
    /// A Bavarian community with a Catholic majority: Mariä Himmelfahrt (15 August).
    BayernKatholisch,
    /// A Saxon community keeping Fronleichnam (Catholic Sorbian area around Bautzen).
    SachsenFronleichnam,
    /// A Thuringian community keeping Fronleichnam (Eichsfeld and others).
    ThueringenFronleichnam,
}

impl Region {
    /// All regions, in the order of the form's choice.
    pub const ALL: [Region; 4] = [
        Region::Augsburg,
        Region::BayernKatholisch,
        Region::SachsenFronleichnam,
        Region::ThueringenFronleichnam,
    ];

    /// The form's value, e.g. `BY-augsburg`.
    pub fn code(self) -> &'static str {
        match self {
            Region::Augsburg => "BY-augsburg",
            Region::BayernKatholisch => "BY-katholisch",
            Region::SachsenFronleichnam => "SN-fronleichnam",
            Region::ThueringenFronleichnam => "TH-fronleichnam",
        }
    }

    /// The state it is part of (whose holidays it keeps as well).
    pub fn state(self) -> State {
        match self {
            Region::Augsburg | Region::BayernKatholisch => State::BY,
            Region::SachsenFronleichnam => State::SN,
            Region::ThueringenFronleichnam => State::TH,
        }
    }

    /// How the form offers it (German).
    pub fn name(self) -> &'static str {
        match self {
            Region::Augsburg => "Bayern: Stadt Augsburg (mit Friedensfest und Mariä Himmelfahrt)",
            Region::BayernKatholisch => {
                "Bayern: Gemeinde mit überwiegend katholischer Bevölkerung (mit Mariä Himmelfahrt)"
            }
            Region::SachsenFronleichnam => "Sachsen: Gemeinde mit Fronleichnam",
            Region::ThueringenFronleichnam => "Thüringen: Gemeinde mit Fronleichnam",
        }
    }

    /// The region with form value `code`.
    pub fn parse(code: &str) -> Option<Region> {
        Region::ALL.into_iter().find(|r| r.code() == code.trim())
    }
}

/// The name of a holiday on `d` that only `region` keeps (besides its state's).
pub fn regional_holiday(d: Date, region: Region) -> Option<&'static str> {
    let assumption = (d.month(), d.day()) == (8, 15);
    match region {
        Region::Augsburg if (d.month(), d.day()) == (8, 8) => Some("Augsburger Friedensfest"),
        Region::Augsburg | Region::BayernKatholisch if assumption => Some("Mariä Himmelfahrt"),
        Region::SachsenFronleichnam | Region::ThueringenFronleichnam
            if d.duration_since(easter_sunday(d.year())).as_hours() == 60 * 24 =>
        {
            Some("Fronleichnam")
        }
        _ => None,
    }
}

/// The name of the public holiday on `d` in `state`, or in `region` of it.
pub fn holiday_in(d: Date, state: State, region: Option<Region>) -> Option<&'static str> {
    holiday(d, state).or_else(|| region.and_then(|r| regional_holiday(d, r)))
}

/// Easter Sunday of `year` (Gregorian calendar; anonymous algorithm, Meeus/Jones/Butcher).
pub fn easter_sunday(year: i16) -> Date {
    let y = i32::from(year);
    let a = y % 19;
    let b = y / 100;
    let c = y % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    // month is 3 or 4 and day 1..=31 by construction
    date(year, month as i8, day as i8)
}

/// `d` moved by `days` (within jiff's range; saturates at its ends).
pub fn add_days(d: Date, days: i64) -> Date {
    d.checked_add(jiff::SignedDuration::from_hours(24 * days))
        .unwrap_or(d)
}

/// The name of the public holiday on `d` in `state`, if there is one.
pub fn holiday(d: Date, state: State) -> Option<&'static str> {
    use State::*;
    let in_ = |states: &[State]| states.contains(&state);
    let fixed = match (d.month(), d.day()) {
        (1, 1) => Some("Neujahr"),
        (1, 6) if in_(&[BW, BY, ST]) => Some("Heilige Drei Könige"),
        (3, 8) if state == BE && d.year() >= 2019 => Some("Internationaler Frauentag"),
        (3, 8) if state == MV && d.year() >= 2023 => Some("Internationaler Frauentag"),
        (5, 1) => Some("Tag der Arbeit"),
        (8, 15) if state == SL => Some("Mariä Himmelfahrt"),
        (9, 20) if state == TH && d.year() >= 2019 => Some("Weltkindertag"),
        (10, 3) => Some("Tag der Deutschen Einheit"),
        (10, 31) if in_(&[BB, MV, SN, ST, TH]) => Some("Reformationstag"),
        (10, 31) if in_(&[HB, HH, NI, SH]) && d.year() >= 2018 => Some("Reformationstag"),
        (11, 1) if in_(&[BW, BY, NW, RP, SL]) => Some("Allerheiligen"),
        (12, 25) => Some("1. Weihnachtstag"),
        (12, 26) => Some("2. Weihnachtstag"),
        _ => None,
    };
    if fixed.is_some() {
        return fixed;
    }
    // Reformationstag 2017 (500 years) was a holiday everywhere.
    if d == date(2017, 10, 31) {
        return Some("Reformationstag");
    }
    let easter = easter_sunday(d.year());
    let offset = d.duration_since(easter).as_hours() / 24;
    let moving = match offset {
        -2 => Some("Karfreitag"),
        0 if state == BB => Some("Ostersonntag"),
        1 => Some("Ostermontag"),
        39 => Some("Christi Himmelfahrt"),
        49 if state == BB => Some("Pfingstsonntag"),
        50 => Some("Pfingstmontag"),
        60 if in_(&[BW, BY, HE, NW, RP, SL]) => Some("Fronleichnam"),
        _ => None,
    };
    if moving.is_some() {
        return moving;
    }
    // Buß- und Bettag: the last Wednesday before 23 November (16th to 22nd).
    if state == SN
        && d.month() == 11
        && (16..=22).contains(&d.day())
        && d.weekday() == Weekday::Wednesday
    {
        return Some("Buß- und Bettag");
    }
    None
}

/// Whether `d` is a working day: Monday to Friday and, with a state, not one of its
/// public holidays (nor, with a region, one of the region's).
pub fn is_working_day(d: Date, holidays: Option<State>, region: Option<Region>) -> bool {
    !matches!(d.weekday(), Weekday::Saturday | Weekday::Sunday)
        && holidays.is_none_or(|s| holiday_in(d, s, region).is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn easter_sundays() {
        for (y, m, d) in [
            (2024, 3, 31),
            (2025, 4, 20),
            (2026, 4, 5),
            (2027, 3, 28),
            (2028, 4, 16),
            (2038, 4, 25),
            (2285, 3, 22),
            (2000, 4, 23),
        ] {
            assert_eq!(easter_sunday(y), date(y, m, d), "{y}");
        }
    }

    #[test]
    fn holidays_by_state() {
        use State::*;
        let rows: &[(Date, State, Option<&str>)] = &[
            (date(2026, 1, 1), HH, Some("Neujahr")),
            (date(2026, 1, 6), BY, Some("Heilige Drei Könige")),
            (date(2026, 1, 6), NW, None),
            (date(2026, 3, 8), BE, Some("Internationaler Frauentag")),
            (date(2026, 3, 8), MV, Some("Internationaler Frauentag")),
            (date(2022, 3, 8), MV, None),
            (date(2026, 4, 3), NI, Some("Karfreitag")),
            (date(2026, 4, 6), SN, Some("Ostermontag")),
            (date(2026, 5, 14), HE, Some("Christi Himmelfahrt")),
            (date(2026, 5, 25), TH, Some("Pfingstmontag")),
            (date(2026, 6, 4), NW, Some("Fronleichnam")),
            (date(2026, 6, 4), SN, None),
            (date(2026, 6, 4), BE, None),
            (date(2026, 8, 15), SL, Some("Mariä Himmelfahrt")),
            (date(2026, 8, 15), BY, None),
            (date(2026, 9, 20), TH, Some("Weltkindertag")),
            (date(2026, 10, 3), BW, Some("Tag der Deutschen Einheit")),
            (date(2026, 10, 31), SN, Some("Reformationstag")),
            (date(2026, 10, 31), HH, Some("Reformationstag")),
            (date(2016, 10, 31), HH, None),
            (date(2017, 10, 31), BY, Some("Reformationstag")),
            (date(2026, 10, 31), BY, None),
            (date(2026, 11, 1), RP, Some("Allerheiligen")),
            (date(2026, 11, 1), SN, None),
            (date(2026, 11, 18), SN, Some("Buß- und Bettag")),
            (date(2027, 11, 17), SN, Some("Buß- und Bettag")),
            (date(2026, 11, 18), BY, None),
            (date(2026, 12, 25), BE, Some("1. Weihnachtstag")),
            (date(2026, 12, 26), BE, Some("2. Weihnachtstag")),
            (date(2026, 12, 24), BE, None),
            (date(2026, 4, 5), BB, Some("Ostersonntag")),
        ];
        for (d, s, want) in rows {
            assert_eq!(holiday(*d, *s), *want, "{d} in {}", s.code());
        }
    }

    #[test]
    fn regional_holidays_only_where_the_practice_says_it_is() {
        use Region::*;
        // (date, state, region, holiday); Fronleichnam 2026 is 4 June, 2027 27 May.
        let rows: &[(Date, State, Option<Region>, Option<&str>)] = &[
            (
                date(2026, 8, 8),
                State::BY,
                Some(Augsburg),
                Some("Augsburger Friedensfest"),
            ),
            (date(2026, 8, 8), State::BY, Some(BayernKatholisch), None),
            (date(2026, 8, 8), State::BY, None, None),
            (
                date(2026, 8, 15),
                State::BY,
                Some(Augsburg),
                Some("Mariä Himmelfahrt"),
            ),
            (
                date(2026, 8, 15),
                State::BY,
                Some(BayernKatholisch),
                Some("Mariä Himmelfahrt"),
            ),
            (date(2026, 8, 15), State::BY, None, None),
            (
                date(2026, 8, 15),
                State::SL,
                None,
                Some("Mariä Himmelfahrt"),
            ),
            (
                date(2026, 8, 15),
                State::SN,
                Some(SachsenFronleichnam),
                None,
            ),
            (
                date(2026, 6, 4),
                State::SN,
                Some(SachsenFronleichnam),
                Some("Fronleichnam"),
            ),
            (
                date(2027, 5, 27),
                State::TH,
                Some(ThueringenFronleichnam),
                Some("Fronleichnam"),
            ),
            (date(2026, 6, 4), State::TH, None, None),
            (date(2026, 6, 4), State::SN, None, None),
            (date(2026, 6, 5), State::SN, Some(SachsenFronleichnam), None),
            // A region keeps its state's holidays.
            (
                date(2026, 11, 18),
                State::SN,
                Some(SachsenFronleichnam),
                Some("Buß- und Bettag"),
            ),
            (
                date(2026, 1, 6),
                State::BY,
                Some(Augsburg),
                Some("Heilige Drei Könige"),
            ),
            (
                date(2026, 6, 4),
                State::BY,
                Some(Augsburg),
                Some("Fronleichnam"),
            ),
        ];
        for (d, s, r, want) in rows {
            assert_eq!(holiday_in(*d, *s, *r), *want, "{d} in {} {r:?}", s.code());
        }
        for r in Region::ALL {
            assert_eq!(Region::parse(r.code()), Some(r));
            assert_eq!(State::parse(r.code()), None, "a region is no state");
        }
        // Friday 8 August 2025 is no working day in Augsburg, one elsewhere in Bavaria.
        assert!(!is_working_day(
            date(2025, 8, 8),
            Some(State::BY),
            Some(Augsburg)
        ));
        assert!(is_working_day(date(2025, 8, 8), Some(State::BY), None));
    }

    #[test]
    fn working_days_skip_weekends_and_the_states_holidays() {
        // Friday 3 April 2026 is Karfreitag.
        assert!(is_working_day(date(2026, 4, 3), None, None));
        assert!(!is_working_day(date(2026, 4, 3), Some(State::BE), None));
        assert!(!is_working_day(date(2026, 4, 4), None, None));
        assert!(!is_working_day(date(2026, 4, 5), None, None));
        assert!(is_working_day(date(2026, 4, 7), Some(State::BE), None));
        assert_eq!(State::parse("sn"), Some(State::SN));
        assert_eq!(State::parse("XX"), None);
    }
}
