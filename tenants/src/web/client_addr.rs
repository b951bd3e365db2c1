//! The client's address, decided once per request and shared by everything that needs
//! it (login throttling, sessions, security events, the request log).
//!
//! It is the TCP peer, unless the peer is one of the configured `trusted_proxies`: then it
//! is taken from the chain the proxies report, walking `X-Forwarded-For` (or, when a
//! request has none, the `for=` parameters of `Forwarded`) from the right and taking the
//! first address that is not itself a trusted proxy. Everything left of that address was
//! written by the client and is never believed. A malformed or unusable entry ends the
//! walk at the nearest hop known to be real (the last trusted proxy passed). An untrusted
//! peer's headers are ignored entirely, so a client talking to the node directly cannot
//! choose its address.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest, web};
use tracing::Instrument;

use super::WebContext;

/// Hops walked at most (a longer chain of trusted proxies is not believed further).
const MAX_HOPS: usize = 32;

/// An IP network: an address and a prefix length (`10.0.0.0/8`, `fd00::/8`, or a single
/// address, which is `/32` or `/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

/// Why a `trusted_proxies` entry is not a network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpNetError {
    #[error("{0:?} is not an IP address")]
    Address(String),
    #[error("{0:?} has a prefix length that is not a number within the address's size")]
    Prefix(String),
    #[error("{0:?} has bits set beyond its prefix length (did you mean the network address?)")]
    HostBits(String),
}

fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn width(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

/// The `prefix` highest bits of an address `width` bits wide.
fn mask(width: u8, prefix: u8) -> u128 {
    if prefix == 0 {
        return 0;
    }
    let all = if width == 32 {
        u128::from(u32::MAX)
    } else {
        u128::MAX
    };
    all & (all << (width - prefix))
}

impl FromStr for IpNet {
    type Err = IpNetError;

    fn from_str(s: &str) -> Result<Self, IpNetError> {
        let raw = s.trim();
        let (addr, prefix) = match raw.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (raw, None),
        };
        let addr = IpAddr::from_str(addr)
            .map_err(|_| IpNetError::Address(raw.to_owned()))?
            .to_canonical();
        let w = width(addr);
        let prefix = match prefix {
            None => w,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= w)
                .ok_or_else(|| IpNetError::Prefix(raw.to_owned()))?,
        };
        if bits(addr) & !mask(w, prefix) != 0 {
            return Err(IpNetError::HostBits(raw.to_owned()));
        }
        Ok(Self { addr, prefix })
    }
}

impl IpNet {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.addr.is_ipv4()
            && bits(ip) & mask(width(ip), self.prefix) == bits(self.addr)
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The proxies whose forwarding headers are believed. Empty by default: no header is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses the configured entries (addresses or networks).
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, IpNetError> {
        entries
            .iter()
            .map(|e| e.as_ref().parse())
            .collect::<Result<_, _>>()
            .map(Self)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(ip))
    }

    /// The client address of a request from `peer` carrying `headers` (see the module
    /// comment).
    pub fn client_of(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        let chain = match forwarded_for(headers) {
            Some(chain) => chain,
            None => match forwarded(headers) {
                Some(chain) => chain,
                None => return peer,
            },
        };
        let mut nearest = peer;
        for hop in chain.into_iter().rev().take(MAX_HOPS) {
            let Some(ip) = hop else {
                return nearest; // malformed: believe nothing further left
            };
            if !self.trusts(ip) {
                return ip;
            }
            nearest = ip;
        }
        // Every hop is a trusted proxy: the furthest one we were told about.
        nearest
    }
}

/// The values of every `name` header joined as one list, or `None` without any; `Err`
/// when a value is not text.
fn joined(headers: &HeaderMap, name: &header::HeaderName) -> Option<Result<String, ()>> {
    let mut values = headers.get_all(name).peekable();
    values.peek()?;
    let mut out = Vec::new();
    for v in values {
        match v.to_str() {
            Ok(s) => out.push(s),
            Err(_) => return Some(Err(())),
        }
    }
    Some(Ok(out.join(",")))
}

/// One address as a proxy may write it: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `[2001:db8::1]`, `[2001:db8::1]:4711`.
fn parse_hop(raw: &str) -> Option<IpAddr> {
    let s = raw.trim();
    if s.is_empty() || s.len() > 64 {
        return None;
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        return inside
            .parse::<std::net::Ipv6Addr>()
            .ok()
            .map(|a| IpAddr::V6(a).to_canonical());
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    // IPv4 with a port.
    let (host, port) = s.split_once(':')?;
    if !is_port(port) {
        return None;
    }
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

fn is_port(p: &str) -> bool {
    !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit())
}

/// `X-Forwarded-For` as a list of hops, left (client side) to right (nearest proxy); an
/// unparseable hop is `None`.
fn forwarded_for(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    match joined(headers, &header::X_FORWARDED_FOR)? {
        Ok(s) => Some(s.split(',').map(parse_hop).collect()),
        Err(()) => Some(vec![None]),
    }
}

/// The `for=` parameters of `Forwarded` (RFC 7239) as a list of hops; an element without
/// `for=`, or with an obfuscated or `unknown` node, is `None`.
fn forwarded(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let s = match joined(headers, &header::FORWARDED)? {
        Ok(s) => s,
        Err(()) => return Some(vec![None]),
    };
    Some(
        s.split(',')
            .map(|element| {
                element.split(';').find_map(|pair| {
                    let (k, v) = pair.split_once('=')?;
                    k.trim()
                        .eq_ignore_ascii_case("for")
                        .then(|| v.trim().trim_matches('"'))
                })
            })
            .map(|node| node.and_then(parse_hop))
            .collect(),
    )
}

/// The client's address of a request, as decided by [`resolve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl ClientAddr {
    /// The address [`resolve`] put into the request; without it (a handler outside the
    /// server's middleware chain) the TCP peer, never a header.
    pub fn of(req: &HttpRequest) -> Option<Self> {
        req.extensions()
            .get::<ClientAddr>()
            .copied()
            .or_else(|| req.peer_addr().map(|a| Self(a.ip().to_canonical())))
    }
}

/// Middleware (outermost): decides the client address, stores it as a [`ClientAddr`] in
/// the request's extensions and runs the rest of the request in a span carrying it, so
/// the request log line names it too.
pub async fn resolve(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let trusted = req
        .app_data::<web::Data<WebContext>>()
        .map(|c| c.settings.trusted_proxies.clone())
        .unwrap_or_default();
    let Some(peer) = req.peer_addr().map(|a| a.ip()) else {
        return next.call(req).await;
    };
    let client = ClientAddr(trusted.client_of(peer, req.headers()));
    req.extensions_mut().insert(client);
    let span = tracing::info_span!("client", addr = %client);
    next.call(req).instrument(span).await
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_bytes(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn networks_parse_and_match() {
        let net: IpNet = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains(ip("10.200.1.2")));
        assert!(!net.contains(ip("11.0.0.1")));
        assert!(net.contains(ip("::ffff:10.1.2.3")), "IPv4-mapped IPv6");
        let one: IpNet = "192.0.2.7".parse().unwrap();
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        let v6: IpNet = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:1::5")) && !v6.contains(ip("2001:db9::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        let all: IpNet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")) && !all.contains(ip("::1")));
        assert_eq!(net.to_string(), "10.0.0.0/8");
        for bad in [
            "",
            "proxy",
            "10.0.0.0/33",
            "10.0.0.0/-1",
            "10.0.0.0/x",
            "::/129",
        ] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad:?}");
        }
        assert_eq!(
            "10.0.0.1/8".parse::<IpNet>(),
            Err(IpNetError::HostBits("10.0.0.1/8".into()))
        );
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let none = TrustedProxies::default();
        let h = headers(&[
            ("x-forwarded-for", b"198.51.100.1"),
            ("forwarded", b"for=198.51.100.2"),
        ]);
        assert_eq!(none.client_of(ip("203.0.113.5"), &h), ip("203.0.113.5"));
        let some = TrustedProxies::parse(&["10.0.0.0/8"]).unwrap();
        assert_eq!(some.client_of(ip("203.0.113.5"), &h), ip("203.0.113.5"));
    }

    #[test]
    fn the_rightmost_untrusted_hop_of_a_trusted_chain_is_the_client() {
        let t = TrustedProxies::parse(&["10.0.0.1", "10.0.1.0/24"]).unwrap();
        let peer = ip("10.0.0.1");
        let client = |h: &[(&str, &[u8])]| t.client_of(peer, &headers(h));
        // The client's own (spoofed) entry on the left is not believed.
        assert_eq!(
            client(&[("x-forwarded-for", b"1.2.3.4, 198.51.100.7")]),
            ip("198.51.100.7")
        );
        // Several proxies, several header lines.
        assert_eq!(
            client(&[
                ("x-forwarded-for", b"1.2.3.4, 198.51.100.7"),
                ("x-forwarded-for", b"10.0.1.9"),
            ]),
            ip("198.51.100.7")
        );
        // Ports and brackets as some proxies write them.
        assert_eq!(
            client(&[("x-forwarded-for", b"198.51.100.7:5123")]),
            ip("198.51.100.7")
        );
        assert_eq!(
            client(&[("x-forwarded-for", b"[2001:db8::7]:5123")]),
            ip("2001:db8::7")
        );
        // No forwarding header: the proxy itself.
        assert_eq!(client(&[]), peer);
        // Only proxies: the furthest one.
        assert_eq!(
            client(&[("x-forwarded-for", b"10.0.1.3, 10.0.1.4")]),
            ip("10.0.1.3")
        );
        // Forwarded, when there is no X-Forwarded-For.
        assert_eq!(
            client(&[(
                "forwarded",
                b"for=1.2.3.4, for=\"[2001:db8:cafe::17]:4711\";proto=https, For=10.0.1.2"
            )]),
            ip("2001:db8:cafe::17")
        );
        assert_eq!(
            client(&[
                ("forwarded", b"for=192.0.2.60;proto=http;by=203.0.113.43"),
                ("x-forwarded-for", b"198.51.100.7"),
            ]),
            ip("198.51.100.7"),
            "X-Forwarded-For first"
        );
    }

    #[test]
    fn malformed_chains_stop_at_the_nearest_known_hop() {
        let t = TrustedProxies::parse(&["10.0.0.1", "10.0.1.0/24"]).unwrap();
        let peer = ip("10.0.0.1");
        let client = |h: &[(&str, &[u8])]| t.client_of(peer, &headers(h));
        for bad in [
            &b"nicht-eine-adresse"[..],
            b"",
            b" , ",
            b"198.51.100.7:99999999",
            b"[2001:db8::7",
            b"1.2.3.4\xff",
            b"unknown",
        ] {
            assert_eq!(client(&[("x-forwarded-for", bad)]), peer, "{bad:?}");
        }
        assert_eq!(
            client(&[("x-forwarded-for", b"198.51.100.7, kaputt, 10.0.1.5")]),
            ip("10.0.1.5"),
            "garbage behind a trusted hop: that hop"
        );
        assert_eq!(
            client(&[("x-forwarded-for", &b"10.0.1.1,".repeat(100)[..])]),
            peer,
            "trailing empty entry"
        );
        assert_eq!(client(&[("forwarded", b"for=_hidden")]), peer);
        assert_eq!(client(&[("forwarded", b"proto=https")]), peer);
        assert_eq!(
            client(&[("x-forwarded-for", &"9.9.9.9,".repeat(5000).into_bytes()[..])]),
            peer,
            "an oversized header ends in an empty entry"
        );
        let long: String = std::iter::repeat_n("10.0.1.1", 100)
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(
            client(&[("x-forwarded-for", format!("198.51.100.7,{long}").as_bytes())]),
            ip("10.0.1.1"),
            "at most MAX_HOPS hops are walked"
        );
    }
}
