//! Catalogues with stable ids: roles, KV regions (the 17 Kassenärztliche Vereinigungen)
//! and specialties (Fachrichtungen). Ids are what claims and the member directory carry
//! and what is stored; labels are German and are what users see.
//!
//! One catalogue for every part of the system: the IdP validates profiles against it, the
//! workspace's apps show its labels and share or target by its ids, and the operator
//! targets broadcasts with its ids.

/// An entry of a catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Entry {
    pub id: &'static str,
    pub label: &'static str,
}

const fn e(id: &'static str, label: &'static str) -> Entry {
    Entry { id, label }
}

pub const ROLES: &[Entry] = &[
    e("praxisinhaber", "Praxisleitung"),
    e("arzt", "Ärzt:in"),
    e("mfa", "MFA"),
    e("abrechnung", "Abrechnung"),
    e("verwaltung", "Verwaltung"),
    e("azubi", "Auszubildende:r"),
];

pub const KV_REGIONS: &[Entry] = &[
    e("kv-bw", "KV Baden-Württemberg"),
    e("kv-bayerns", "KV Bayerns"),
    e("kv-berlin", "KV Berlin"),
    e("kv-brandenburg", "KV Brandenburg"),
    e("kv-bremen", "KV Bremen"),
    e("kv-hamburg", "KV Hamburg"),
    e("kv-hessen", "KV Hessen"),
    e("kv-mv", "KV Mecklenburg-Vorpommern"),
    e("kv-niedersachsen", "KV Niedersachsen"),
    e("kv-nordrhein", "KV Nordrhein"),
    e("kv-rlp", "KV Rheinland-Pfalz"),
    e("kv-saarland", "KV Saarland"),
    e("kv-sachsen", "KV Sachsen"),
    e("kv-sachsen-anhalt", "KV Sachsen-Anhalt"),
    e("kv-sh", "KV Schleswig-Holstein"),
    e("kv-thueringen", "KV Thüringen"),
    e("kv-wl", "KV Westfalen-Lippe"),
];

pub const SPECIALTIES: &[Entry] = &[
    e("allgemeinmedizin", "Allgemeinmedizin"),
    e("innere-medizin", "Innere Medizin"),
    e("kardiologie", "Innere Medizin und Kardiologie"),
    e("gastroenterologie", "Innere Medizin und Gastroenterologie"),
    e("diabetologie", "Diabetologie"),
    e("kinder-jugendmedizin", "Kinder- und Jugendmedizin"),
    e("frauenheilkunde", "Frauenheilkunde und Geburtshilfe"),
    e("urologie", "Urologie"),
    e("orthopaedie", "Orthopädie und Unfallchirurgie"),
    e("dermatologie", "Dermatologie"),
    e("hno", "Hals-Nasen-Ohrenheilkunde (HNO)"),
    e("augenheilkunde", "Augenheilkunde"),
    e("neurologie", "Neurologie"),
    e("psychiatrie", "Psychiatrie und Psychotherapie"),
    e("psychotherapie", "Psychotherapie"),
    e("kinder-jugendpsychiatrie", "Kinder- und Jugendpsychiatrie"),
    e("psychosomatik", "Psychosomatische Medizin"),
    e("chirurgie", "Chirurgie"),
    e("radiologie", "Radiologie"),
    e("nuklearmedizin", "Nuklearmedizin"),
    e("anaesthesiologie", "Anästhesiologie"),
    e("pneumologie", "Pneumologie"),
    e("nephrologie", "Nephrologie"),
    e("rheumatologie", "Rheumatologie"),
    e("haematologie-onkologie", "Hämatologie und Onkologie"),
    e(
        "physikalische-medizin",
        "Physikalische und Rehabilitative Medizin",
    ),
    e("laboratoriumsmedizin", "Laboratoriumsmedizin"),
    e("pathologie", "Pathologie"),
    e("humangenetik", "Humangenetik"),
    e("mkg-chirurgie", "Mund-Kiefer-Gesichtschirurgie"),
    e("zahnmedizin", "Zahnmedizin"),
    e("kieferorthopaedie", "Kieferorthopädie"),
];

pub fn find<'a>(list: &'a [Entry], id: &str) -> Option<&'a Entry> {
    list.iter().find(|e| e.id == id)
}

/// The label of `id`, or the id itself if the catalogue does not know it (an id from a
/// newer catalogue is still shown, not dropped).
pub fn label(list: &[Entry], id: &str) -> String {
    find(list, id).map_or_else(|| id.to_owned(), |e| e.label.to_owned())
}

/// The labels of `ids`, in catalogue order. Ids the catalogue does not know are left out
/// (such as `admin`, which the `roles` claim carries for a practice admin).
pub fn labels(list: &[Entry], ids: &[String]) -> Vec<String> {
    list.iter()
        .filter(|e| ids.iter().any(|i| i == e.id))
        .map(|e| e.label.to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogues_have_unique_ids_and_seventeen_kvs() {
        assert_eq!(KV_REGIONS.len(), 17);
        for list in [ROLES, KV_REGIONS, SPECIALTIES] {
            let mut ids: Vec<_> = list.iter().map(|e| e.id).collect();
            ids.sort_unstable();
            ids.dedup();
            assert_eq!(ids.len(), list.len());
        }
        assert_eq!(label(KV_REGIONS, "kv-nordrhein"), "KV Nordrhein");
        assert_eq!(label(ROLES, "unbekannt"), "unbekannt");
    }

    #[test]
    fn labels_follow_the_catalogue_order() {
        let ids = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(labels(ROLES, &ids(&["mfa", "arzt"])), ["Ärzt:in", "MFA"]);
        assert_eq!(
            labels(ROLES, &ids(&["admin", "praxisinhaber", "mfa", "mfa"])),
            ["Praxisleitung", "MFA"]
        );
        assert!(labels(ROLES, &[]).is_empty());
    }
}
