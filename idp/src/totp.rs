//! One-time passwords: HOTP (RFC 4226) and TOTP (RFC 6238) with HMAC-SHA1, 30-second
//! steps and 6 digits, the `otpauth://` URI (base32 secret, RFC 4648) and its QR code.
//!
//! Secrets are stored sealed (XChaCha20-Poly1305) under a key derived from the practice
//! secret for the purpose "totp" and bound to the practice and account, so a stored secret
//! is useless in another practice, for another account, or without the node key. A secret
//! or code is never logged.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use kollegium_tenants::secrets::{PracticeSecret, SecretsError, Zeroizing};
use kollegium_tenants::{Slug, UnixTime};
use rand::RngCore;
use sha1::Sha1;
use subtle::ConstantTimeEq;

use crate::users::UserId;

/// Seconds per step.
pub const STEP_SECS: i64 = 30;
/// Digits of a code.
pub const DIGITS: u32 = 6;
/// Bytes of a generated secret (160 bits, as RFC 4226 recommends).
pub const SECRET_LEN: usize = 20;
/// Steps accepted either side of the current one (clock drift).
pub const WINDOW: i64 = 1;

const PURPOSE: &str = "totp";

/// HOTP value of `counter` (RFC 4226, dynamic truncation), `digits` long.
pub fn hotp(secret: &[u8], counter: u64, digits: u32) -> u32 {
    // HMAC accepts keys of any length, so this cannot fail.
    let Ok(mut mac) = <Hmac<Sha1> as Mac>::new_from_slice(secret) else {
        return 0;
    };
    mac.update(&counter.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let offset = usize::from(h[19] & 0x0f);
    let bin = (u32::from(h[offset]) & 0x7f) << 24
        | u32::from(h[offset + 1]) << 16
        | u32::from(h[offset + 2]) << 8
        | u32::from(h[offset + 3]);
    bin % 10u32.pow(digits)
}

/// The step a time falls into.
pub fn step_at(t: UnixTime) -> i64 {
    t.div_euclid(STEP_SECS)
}

/// The 6-digit code of one step, zero-padded.
pub fn code_for_step(secret: &[u8], step: i64) -> String {
    let counter = u64::try_from(step).unwrap_or(0);
    format!("{:06}", hotp(secret, counter, DIGITS))
}

/// The code valid at time `t`.
pub fn code_at(secret: &[u8], t: UnixTime) -> String {
    code_for_step(secret, step_at(t))
}

/// Whether input looks like a TOTP code (6 digits, spaces allowed) rather than a
/// recovery code; returns the digits.
pub fn as_code(input: &str) -> Option<String> {
    let digits: String = input.chars().filter(|c| !c.is_whitespace()).collect();
    (digits.len() == DIGITS as usize && digits.chars().all(|c| c.is_ascii_digit()))
        .then_some(digits)
}

/// The step (within ±[`WINDOW`] of `now`) whose code is `code`, if any. Every candidate
/// is compared in constant time. Replay protection is the caller's job
/// ([`crate::users::consume_totp_step`]).
pub fn matching_step(secret: &[u8], code: &str, now: UnixTime) -> Option<i64> {
    let code = as_code(code)?;
    let current = step_at(now);
    let mut found = None;
    for step in (current - WINDOW)..=(current + WINDOW) {
        if step < 0 {
            continue;
        }
        let ok: bool = code_for_step(secret, step)
            .as_bytes()
            .ct_eq(code.as_bytes())
            .into();
        if ok && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// A fresh random secret.
pub fn generate_secret() -> Zeroizing<Vec<u8>> {
    let mut s = Zeroizing::new(vec![0u8; SECRET_LEN]);
    rand::rngs::OsRng.fill_bytes(&mut s);
    s
}

/// RFC 4648 base32 (upper case, no padding, as authenticator apps expect).
pub fn base32(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    let (mut buf, mut bits) = (0u32, 0u32);
    for &b in data {
        buf = (buf << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buf >> bits) & 31) as usize]));
        }
        buf &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buf << (5 - bits)) & 31) as usize]));
    }
    out
}

/// RFC 4648 base32 with `=` padding (the form of the RFC's test vectors).
/// The secret as enrolment pages show it for typing by hand: base32 in groups of four
/// (`ABCD EFGH …`); authenticator apps ignore the spaces.
pub fn base32_grouped(data: &[u8]) -> String {
    base32(data)
        .as_bytes()
        .chunks(4)
        .map(|g| String::from_utf8_lossy(g).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn base32_padded(data: &[u8]) -> String {
    let mut s = base32(data);
    while !s.len().is_multiple_of(8) {
        s.push('=');
    }
    s
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `otpauth://totp/<issuer>:<account>?secret=..&issuer=..&algorithm=SHA1&digits=6&period=30`
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    let issuer = percent_encode(issuer);
    format!(
        "otpauth://totp/{issuer}:{}?secret={}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        percent_encode(account),
        base32(secret),
    )
}

/// The URI as a QR code: an SVG (no `style` attributes, so the CSP holds) in a
/// `data:image/svg+xml;base64,..` URI for an `<img>` (`img-src 'self' data:`).
pub fn qr_data_uri(uri: &str) -> Option<String> {
    let code =
        qrcode::QrCode::with_error_correction_level(uri.as_bytes(), qrcode::EcLevel::M).ok()?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(220, 220)
        .quiet_zone(true)
        .build();
    Some(format!("data:image/svg+xml;base64,{}", B64.encode(svg)))
}

fn context(slug: &Slug, user: UserId) -> String {
    format!("kollegium totp v1|{slug}|user:{}", user.0)
}

/// Seals a secret for storage in `users.totp_secret`.
pub fn seal(practice: &PracticeSecret, slug: &Slug, user: UserId, secret: &[u8]) -> String {
    practice.seal(PURPOSE, &context(slug, user), secret)
}

/// Opens a stored secret.
pub fn open(
    practice: &PracticeSecret,
    slug: &Slug,
    user: UserId,
    sealed: &str,
) -> Result<Zeroizing<Vec<u8>>, SecretsError> {
    practice.open(PURPOSE, &context(slug, user), sealed)
}

/// Seconds a started enrolment may take before the pending secret is refused.
pub const ENROL_TTL_SECS: i64 = 15 * 60;

fn pending_context(slug: &Slug, user: UserId, session: i64) -> String {
    format!(
        "kollegium totp enrol v1|{slug}|user:{}|session:{session}",
        user.0
    )
}

/// The secret of an enrolment in progress, sealed for a hidden form field: bound to the
/// practice, the account and the session, and stamped with its start time.
pub fn seal_pending(
    practice: &PracticeSecret,
    slug: &Slug,
    user: UserId,
    session: i64,
    secret: &[u8],
    now: UnixTime,
) -> String {
    let mut msg = Zeroizing::new(now.to_be_bytes().to_vec());
    msg.extend_from_slice(secret);
    practice.seal(
        "totp-enrol",
        &pending_context(slug, user, session),
        msg.as_slice(),
    )
}

/// Opens a pending secret; `None` if forged, foreign, for another session or expired.
pub fn open_pending(
    practice: &PracticeSecret,
    slug: &Slug,
    user: UserId,
    session: i64,
    sealed: &str,
    now: UnixTime,
) -> Option<Zeroizing<Vec<u8>>> {
    if sealed.len() > 500 {
        return None;
    }
    let raw = practice
        .open("totp-enrol", &pending_context(slug, user, session), sealed)
        .ok()?;
    if raw.len() != 8 + SECRET_LEN {
        return None;
    }
    let (at, secret) = raw.split_at(8);
    let started = i64::from_be_bytes(at.try_into().ok()?);
    if now < started || now - started > ENROL_TTL_SECS {
        return None;
    }
    Some(Zeroizing::new(secret.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn hotp_matches_rfc4226_appendix_d() {
        let expected = [
            755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489,
        ];
        for (counter, want) in expected.iter().enumerate() {
            assert_eq!(hotp(RFC_SECRET, counter as u64, 6), *want, "{counter}");
        }
    }

    #[test]
    fn totp_matches_rfc6238_appendix_b_sha1() {
        let vectors: [(i64, u32); 6] = [
            (59, 94287082),
            (1111111109, 7081804),
            (1111111111, 14050471),
            (1234567890, 89005924),
            (2000000000, 69279037),
            (20000000000, 65353130),
        ];
        for (t, want) in vectors {
            assert_eq!(hotp(RFC_SECRET, step_at(t) as u64, 8), want, "t={t}");
            assert_eq!(code_at(RFC_SECRET, t), format!("{:06}", want % 1_000_000));
        }
    }

    #[test]
    fn window_is_one_step_either_side() {
        let now = 1_800_000_015;
        let s = step_at(now);
        for d in -1..=1 {
            let code = code_for_step(RFC_SECRET, s + d);
            assert_eq!(matching_step(RFC_SECRET, &code, now), Some(s + d));
        }
        for d in [-3, -2, 2, 3] {
            let code = code_for_step(RFC_SECRET, s + d);
            if (-1..=1).all(|k| code_for_step(RFC_SECRET, s + k) != code) {
                assert_eq!(matching_step(RFC_SECRET, &code, now), None, "{d}");
            }
        }
        assert_eq!(matching_step(RFC_SECRET, "12345", now), None);
        assert_eq!(matching_step(RFC_SECRET, "abcdef", now), None);
        let spaced = code_at(RFC_SECRET, now);
        let spaced = format!("{} {}", &spaced[..3], &spaced[3..]);
        assert_eq!(matching_step(RFC_SECRET, &spaced, now), Some(s));
    }

    #[test]
    fn base32_matches_rfc4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "MY======"),
            ("fo", "MZXQ===="),
            ("foo", "MZXW6==="),
            ("foob", "MZXW6YQ="),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI======"),
        ];
        for (input, want) in cases {
            assert_eq!(base32_padded(input.as_bytes()), want, "{input}");
        }
        assert_eq!(base32(RFC_SECRET), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(
            base32_grouped(RFC_SECRET),
            "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ"
        );
    }

    #[test]
    fn otpauth_uri_and_qr() {
        let uri = otpauth_uri("Praxis Dr. Müller", "anna@praxis.example", RFC_SECRET);
        assert_eq!(
            uri,
            "otpauth://totp/Praxis%20Dr.%20M%C3%BCller:anna%40praxis.example?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Praxis%20Dr.%20M%C3%BCller&algorithm=SHA1&digits=6&period=30"
        );
        let data = qr_data_uri(&uri).unwrap();
        let svg = B64
            .decode(data.strip_prefix("data:image/svg+xml;base64,").unwrap())
            .unwrap();
        let svg = String::from_utf8(svg).unwrap();
        assert!(svg.contains("<svg") && svg.contains("<path"));
        assert!(!svg.contains("style"), "the CSP forbids inline styles");
    }

    #[test]
    fn sealed_secret_is_bound_to_practice_and_account() {
        let p = PracticeSecret::generate();
        let other = PracticeSecret::generate();
        let a = Slug::parse("praxis-a").unwrap();
        let b = Slug::parse("praxis-b").unwrap();
        let secret = generate_secret();
        let w = seal(&p, &a, UserId(1), &secret);
        assert!(!w.contains(&base32(&secret)));
        assert_eq!(open(&p, &a, UserId(1), &w).unwrap().as_slice(), &secret[..]);
        assert!(open(&p, &a, UserId(2), &w).is_err());
        assert!(open(&p, &b, UserId(1), &w).is_err());
        assert!(open(&other, &a, UserId(1), &w).is_err());
    }

    #[test]
    fn pending_secret_expires_and_is_bound_to_the_session() {
        let p = PracticeSecret::generate();
        let a = Slug::parse("praxis-a").unwrap();
        let secret = generate_secret();
        let w = seal_pending(&p, &a, UserId(1), 7, &secret, 1000);
        assert_eq!(
            open_pending(&p, &a, UserId(1), 7, &w, 1000 + ENROL_TTL_SECS)
                .unwrap()
                .as_slice(),
            &secret[..]
        );
        assert!(open_pending(&p, &a, UserId(1), 7, &w, 1001 + ENROL_TTL_SECS).is_none());
        assert!(open_pending(&p, &a, UserId(1), 8, &w, 1000).is_none());
        assert!(open_pending(&p, &a, UserId(2), 7, &w, 1000).is_none());
        assert!(open_pending(&p, &a, UserId(1), 7, "kw1.AAAA", 1000).is_none());
    }
}
