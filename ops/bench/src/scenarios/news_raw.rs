//! The `news` scenario's messages and its raw baseline: the drafts the operator publishes
//! (Markdown bodies of a given size, audiences in turn) and the driver's Ed25519
//! verification rate over entries of the same size.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, VerifyingKey};
use kollegium_tenants::broadcast::entry::{DOMAIN, Item, MessagePayload};
use kollegium_tenants::broadcast::{
    Audience, Draft, Entry, MessageId, OperatorKey, Payload, PublicKey,
};
use kollegium_tenants::{Clock, SystemClock, catalog};

use crate::load::own_thread_cpu_ns;

/// A Markdown body of about `bytes` bytes, like a billing tip.
pub fn body(i: usize, bytes: usize) -> String {
    let para = format!(
        "**Abrechnungstipp {i}:** Die GOP 03230 ist ab dem 1. Januar neu bewertet. \
         Bitte prüfen Sie die Dokumentation der Gesprächsdauer (mindestens 10 Minuten) \
         und die Begründung im Freitextfeld.\n\n- Gilt für alle Versichertengruppen\n\
         - Nicht neben der GOP 03220 am selben Tag\n\n"
    );
    let mut out = String::with_capacity(bytes + para.len());
    while out.len() < bytes {
        out.push_str(&para);
    }
    let mut end = bytes.min(out.len());
    while !out.is_char_boundary(end) {
        end -= 1;
    }
    out.truncate(end);
    if out.trim().is_empty() {
        out = "Neu.".into();
    }
    out
}

/// The `i`-th message: bodies of `body_bytes`, audiences in turn for everyone, a KV
/// region, a role and a specialty.
pub fn draft(i: usize, body_bytes: usize) -> Draft {
    let one = |id: &str| vec![id.to_owned()];
    let audience = match i % 4 {
        0 => Audience::default(),
        1 => Audience {
            kv_regions: one("kv-nordrhein"),
            ..Audience::default()
        },
        2 => Audience {
            roles: one("abrechnung"),
            ..Audience::default()
        },
        _ => Audience {
            specialties: catalog::SPECIALTIES
                .first()
                .map(|s| one(s.id))
                .unwrap_or_default(),
            ..Audience::default()
        },
    };
    Draft {
        title: format!("Abrechnungstipp {i}: GOP 03230 neu bewertet"),
        body: body(i, body_bytes),
        audience,
        valid_until: None,
        pinned: i == 0,
    }
}

/// Entries of the same size as the published ones, signed with `key`, for the raw rates
/// (the same payload as `OperatorFeed::publish` makes, with the seq the feed will give).
pub fn sample_entries(
    key: &OperatorKey,
    n: usize,
    body_bytes: usize,
) -> anyhow::Result<Vec<Entry>> {
    let now = SystemClock.now();
    (0..n)
        .map(|i| {
            let d = draft(i, body_bytes);
            let payload = Payload {
                seq: i as i64 + 1,
                item: Item::Message(MessagePayload {
                    id: MessageId::random(),
                    published_at: now,
                    valid_until: d.valid_until,
                    title: d.title,
                    body: d.body,
                    pinned: d.pinned,
                    audience: d.audience,
                }),
            };
            Ok(Entry::sign(key, &payload)?)
        })
        .collect()
}

/// Verifications per CPU-second of the calling thread (and per wall second) for at least
/// `budget` of its CPU time (`RAW_CPU` of the scenario in a run).
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Rate {
    pub per_cpu_s: f64,
    pub per_wall_s: f64,
    pub n: u64,
}

fn rate(budget: Duration, mut one: impl FnMut(usize) -> bool) -> anyhow::Result<Rate> {
    let cpu0 = own_thread_cpu_ns().context("no /proc/thread-self/schedstat")?;
    let wall = Instant::now();
    let mut n = 0u64;
    loop {
        for i in 0..64 {
            ensure!(one(i), "a sample entry did not verify");
            n += 1;
        }
        let cpu = own_thread_cpu_ns().unwrap_or(cpu0).saturating_sub(cpu0);
        if cpu >= budget.as_nanos() as u64 {
            return Ok(Rate {
                per_cpu_s: n as f64 / (cpu as f64 / 1e9),
                per_wall_s: n as f64 / wall.elapsed().as_secs_f64(),
                n,
            });
        }
    }
}

/// The raw rates: bare `verify_strict` over the signed bytes, and `Entry::verify`.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct RawRates {
    pub ed25519: Rate,
    pub entry_verify: Rate,
}

pub fn raw_rates(
    public: PublicKey,
    entries: &[Entry],
    budget: Duration,
) -> anyhow::Result<RawRates> {
    let bytes: [u8; 32] = B64
        .decode(public.to_base64())?
        .try_into()
        .map_err(|_| anyhow::anyhow!("public key is not 32 bytes"))?;
    let vk = VerifyingKey::from_bytes(&bytes)?;
    let signed: Vec<(Vec<u8>, Signature)> = entries
        .iter()
        .map(|e| {
            let mut msg = DOMAIN.to_vec();
            msg.extend_from_slice(e.payload.as_bytes());
            let sig = Signature::from_slice(&B64.decode(&e.sig)?)?;
            Ok((msg, sig))
        })
        .collect::<anyhow::Result<_>>()?;
    let k = signed.len();
    let ed25519 = rate(budget, |i| {
        let (msg, sig) = &signed[i % k];
        vk.verify_strict(std::hint::black_box(msg), sig).is_ok()
    })?;
    let entry_verify = rate(budget, |i| {
        std::hint::black_box(&entries[i % k])
            .verify(&public)
            .is_ok()
    })?;
    Ok(RawRates {
        ed25519,
        entry_verify,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn bodies_have_the_asked_size_and_drafts_publishable_audiences() {
        for bytes in [1, 7, 300, 1500, 20_000] {
            let b = body(3, bytes);
            assert!(
                b.len() <= bytes && b.len() + 4 > bytes,
                "{bytes}: {}",
                b.len()
            );
            assert!(!b.trim().is_empty());
        }
        let key = OperatorKey::generate();
        let entries = sample_entries(&key, 8, 1500).unwrap();
        for (i, e) in entries.iter().enumerate() {
            let p = e.verify(&key.public()).unwrap();
            assert_eq!(p.seq, i as i64 + 1);
        }
        let audiences: BTreeSet<_> = (0..4)
            .map(|i| format!("{:?}", draft(i, 10).audience))
            .collect();
        assert_eq!(audiences.len(), 4, "four different audiences");
        let budget = Duration::from_millis(20);
        let rates = raw_rates(key.public(), &entries, budget).unwrap();
        assert!(rates.ed25519.per_cpu_s > 0.0 && rates.ed25519.n > 0);
        assert!(rates.entry_verify.per_cpu_s > 0.0);
        let other = OperatorKey::generate();
        assert!(
            raw_rates(other.public(), &entries, budget).is_err(),
            "a wrong key verifies nothing"
        );
    }
}
