//! The recurring cards of the demo board "Praxisorganisation" (the rest of the demo is the
//! boards' side): a weekly "Hygieneplan prüfen" and a quarterly "Quartalsabrechnung
//! vorbereiten". The demo calls [`seed`] with the board it created.

use diesel::SqliteConnection;
use kollegium_tenants::UnixTime;
use kollegium_tenants::time::Zone;

use super::RoutineError;
use super::rule::{Day, QuarterDay, Recurrence, Rule, TimeOfDay};
use super::series::{self, Mode, NewSeries};
use crate::members::MemberId;
use crate::tasks::BoardId;

/// Creates the demo's two series (and so their first cards) on `board`, created by
/// `actor`: the hygiene check assigned to `hygiene`, the billing to `billing`.
pub fn seed(
    conn: &mut SqliteConnection,
    board: BoardId,
    actor: MemberId,
    [hygiene_by, billing_by]: [&[MemberId]; 2],
    zone: &Zone,
    now: UnixTime,
) -> Result<(), RoutineError> {
    let start = jiff::Timestamp::from_second(now)
        .map(|t| zone.time_zone().to_datetime(t).date())
        .map_err(|_| super::rule::RuleError::Start)?;
    let hygiene = NewSeries {
        board,
        column: None,
        title: "Hygieneplan prüfen".to_owned(),
        description: "Wöchentliche Kontrolle nach dem Hygieneplan der Praxis; Auffälligkeiten \
                      bitte als Kommentar festhalten."
            .to_owned(),
        checklist: vec![
            "Flächendesinfektion Behandlungsräume dokumentiert".to_owned(),
            "Händedesinfektionsmittel aufgefüllt".to_owned(),
            "Sterilgut: Haltbarkeit geprüft".to_owned(),
            "Kühlschrank-Temperaturprotokoll abgezeichnet".to_owned(),
        ],
        assignees: hygiene_by.to_vec(),
        labels: Vec::new(),
        recurrence: Recurrence::new(
            Rule::Weekly {
                every: 1,
                days: vec![Day::Mo],
            },
            None,
            start,
        )?,
        at: TimeOfDay::parse("08:00")?,
        mode: Mode::OnDone,
    };
    let billing = NewSeries {
        board,
        column: None,
        title: "Quartalsabrechnung vorbereiten".to_owned(),
        description: "Abrechnung für die KV vorbereiten: Scheine vollständig, Diagnosen \
                      kodiert, Plausibilität geprüft."
            .to_owned(),
        checklist: vec![
            "Fehlende Versichertenkarten nachgefordert".to_owned(),
            "Diagnosen und Ziffern geprüft".to_owned(),
            "Prüfmodul gelaufen".to_owned(),
            "Abrechnung übermittelt".to_owned(),
        ],
        assignees: billing_by.to_vec(),
        labels: Vec::new(),
        recurrence: Recurrence::new(
            Rule::Quarterly {
                on: QuarterDay::DaysBeforeEnd(10),
            },
            None,
            start,
        )?,
        at: TimeOfDay::parse("09:00")?,
        mode: Mode::OnDue,
    };
    for s in [hygiene, billing] {
        series::create(conn, &s, actor, zone, now)?;
    }
    Ok(())
}
