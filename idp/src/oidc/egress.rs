//! Where the server may send a request on an admin's word (a client's back-channel logout
//! address, the only such URL: redirect, post-logout, launch and login-initiation
//! addresses are followed by browsers, never fetched by the server).
//!
//! Public unicast addresses only. Refused: loopback, private networks (RFC 1918, CGNAT
//! 100.64/10, fc00::/7, fec0::/10), link-local (169.254/16 with the cloud metadata service,
//! fe80::/10), unspecified, multicast, broadcast, documentation, benchmarking and reserved
//! ranges, IPv4 inside IPv6 (mapped, compatible, NAT64, 6to4) by the IPv4 address it
//! carries, the node's own domain (`<base>` and `*.<base>`, which the node resolves to
//! itself) and its own listeners. Short and numeric IPv4 forms (`127.1`, `2130706433`,
//! `0x7f.1`) are normalised by the URL parser before they get here.
//!
//! Names are resolved at registration (every address must pass) and again at delivery,
//! where [`GuardedResolver`] hands the HTTP client only addresses that pass then, so a name
//! that re-binds to an internal address after registration is not connected to.
//!
//! `idp.allow_private_endpoints` (demo, development, tests) lets loopback and private
//! networks through, and names under the base domain are then judged by the addresses
//! they resolve to (a tool at `localhost:9000` next to a node on `localhost:8080`);
//! link-local addresses and the node's own listeners stay refused.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Why an address is refused. `Display` is German (shown in the admin form, after
/// "abgelehnt:"); [`Refusal::reason`] is the English log form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("sie ist keine gültige Adresse")]
    Invalid,
    #[error("ihr Name lässt sich nicht auflösen")]
    Unresolvable,
    #[error("sie zeigt auf diesen Rechner (Loopback)")]
    Loopback,
    #[error("sie zeigt in ein privates Netz")]
    Private,
    #[error("sie zeigt auf eine link-lokale Adresse (etwa Cloud-Metadaten)")]
    LinkLocal,
    #[error("sie ist keine öffentliche Adresse")]
    NotPublic,
    #[error("sie zeigt auf diesen Server selbst")]
    OwnServer,
}

impl Refusal {
    /// A short English reason for logs and the queue's `last_error`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Invalid => "invalid address",
            Self::Unresolvable => "name does not resolve",
            Self::Loopback => "loopback address",
            Self::Private => "private network",
            Self::LinkLocal => "link-local address",
            Self::NotPublic => "not a public address",
            Self::OwnServer => "the node itself",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Public,
    Loopback,
    Private,
    LinkLocal,
    Special,
}

fn class_v4(ip: Ipv4Addr) -> Class {
    let [a, b, c, _] = ip.octets();
    match (a, b, c) {
        (127, _, _) => Class::Loopback,
        (10, _, _) | (172, 16..=31, _) | (192, 168, _) | (100, 64..=127, _) => Class::Private,
        (169, 254, _) => Class::LinkLocal,
        // "this network", multicast, reserved, broadcast
        (0, _, _) | (224..=255, _, _) => Class::Special,
        // protocol assignments, documentation, benchmarking
        (192, 0, 0) | (192, 0, 2) | (198, 51, 100) | (203, 0, 113) | (198, 18..=19, _) => {
            Class::Special
        }
        _ => Class::Public,
    }
}

fn embedded_v4(hi: u16, lo: u16) -> Ipv4Addr {
    let [a, b] = hi.to_be_bytes();
    let [c, d] = lo.to_be_bytes();
    Ipv4Addr::new(a, b, c, d)
}

fn class_v6(ip: Ipv6Addr) -> Class {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return class_v4(v4);
    }
    let s = ip.segments();
    if ip.is_unspecified() {
        return Class::Special;
    }
    if ip.is_loopback() {
        return Class::Loopback;
    }
    let v4_in_last = || embedded_v4(s[6], s[7]);
    // ::a.b.c.d (IPv4-compatible, deprecated): never public.
    if s[..6] == [0; 6] {
        return match class_v4(v4_in_last()) {
            Class::Public => Class::Special,
            other => other,
        };
    }
    // NAT64 well-known prefix 64:ff9b::/96 carries an IPv4 address.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return class_v4(v4_in_last());
    }
    // Local-use NAT64 64:ff9b:1::/48.
    if s[..3] == [0x64, 0xff9b, 1] {
        return Class::Private;
    }
    // 6to4 2002::/16 carries an IPv4 address in bits 16..48.
    if s[0] == 0x2002 {
        return class_v4(embedded_v4(s[1], s[2]));
    }
    match s[0] {
        x if x & 0xfe00 == 0xfc00 => Class::Private, // unique local fc00::/7
        x if x & 0xffc0 == 0xfe80 => Class::LinkLocal, // fe80::/10
        x if x & 0xffc0 == 0xfec0 => Class::Private, // site-local fec0::/10 (deprecated)
        x if x & 0xff00 == 0xff00 => Class::Special, // multicast
        0x2001 if s[1] == 0x0db8 => Class::Special,  // documentation
        0x2001 if s[1] == 0 => Class::Special,       // Teredo (carries a hidden IPv4)
        0x2001 if s[1] == 2 && s[2] == 0 => Class::Special, // benchmarking
        x if x & 0xe000 != 0x2000 => Class::Special, // outside global unicast 2000::/3
        _ => Class::Public,
    }
}

fn class(ip: IpAddr) -> Class {
    match ip {
        IpAddr::V4(v4) => class_v4(v4),
        IpAddr::V6(v6) => class_v6(v6),
    }
}

/// The egress rules of this node.
#[derive(Debug, Clone, Default)]
pub struct Egress {
    /// Let loopback and private networks through (demo, development, tests).
    pub allow_private: bool,
    /// The node's base domain: it and its subdomains are the node itself.
    pub base_domain: String,
    /// The node's bound listeners (main and operator).
    pub listeners: Vec<SocketAddr>,
}

impl Egress {
    /// Port-independent rules for one address (what [`GuardedResolver`] can check).
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Refusal> {
        let ip = ip.to_canonical();
        let own = self.listeners.iter().any(|l| {
            let lip = l.ip().to_canonical();
            !lip.is_unspecified() && class(lip) == Class::Public && lip == ip
        });
        if own {
            return Err(Refusal::OwnServer);
        }
        match class(ip) {
            Class::Public => Ok(()),
            Class::Loopback | Class::Private if self.allow_private => Ok(()),
            Class::Loopback => Err(Refusal::Loopback),
            Class::Private => Err(Refusal::Private),
            Class::LinkLocal => Err(Refusal::LinkLocal),
            Class::Special => Err(Refusal::NotPublic),
        }
    }

    /// Every rule for one address and port: also refuses the node's own listeners where
    /// loopback is allowed.
    pub fn check_socket(&self, addr: SocketAddr) -> Result<(), Refusal> {
        self.check_ip(addr.ip())?;
        let ip = addr.ip().to_canonical();
        let own = self.listeners.iter().any(|l| {
            let lip = l.ip().to_canonical();
            l.port() == addr.port()
                && (lip == ip || ((lip.is_unspecified() || lip.is_loopback()) && ip.is_loopback()))
        });
        if own {
            return Err(Refusal::OwnServer);
        }
        Ok(())
    }

    /// Refuses the node's own names (outside development mode, where their addresses
    /// decide).
    pub fn check_name(&self, host: &str) -> Result<(), Refusal> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let base = self.base_domain.trim_end_matches('.');
        let ours = !base.is_empty() && (host == base || host.ends_with(&format!(".{base}")));
        if host.is_empty() || (ours && !self.allow_private) {
            return Err(Refusal::OwnServer);
        }
        Ok(())
    }

    /// Checks an address the server would send a request to: its host, and every address
    /// its name resolves to now.
    pub async fn check_uri(&self, uri: &str) -> Result<(), Refusal> {
        let u = url::Url::parse(uri).map_err(|_| Refusal::Invalid)?;
        let port = u.port_or_known_default().ok_or(Refusal::Invalid)?;
        match u.host().ok_or(Refusal::Invalid)? {
            url::Host::Ipv4(ip) => self.check_socket(SocketAddr::new(ip.into(), port)),
            url::Host::Ipv6(ip) => self.check_socket(SocketAddr::new(ip.into(), port)),
            url::Host::Domain(name) => {
                self.check_name(name)?;
                let found: Vec<SocketAddr> = tokio::net::lookup_host((name, port))
                    .await
                    .map_err(|_| Refusal::Unresolvable)?
                    .collect();
                if found.is_empty() {
                    return Err(Refusal::Unresolvable);
                }
                found.into_iter().try_for_each(|a| self.check_socket(a))
            }
        }
    }
}

/// The resolver of the client that talks to third-party endpoints: system resolution, then
/// only the addresses that pass [`Egress::check_ip`]; none left is an error, so the
/// connection never goes to an address that was not checked at that moment.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    pub egress: Arc<Egress>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let egress = self.egress.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            egress.check_name(&host)?;
            let mut refused = Refusal::Unresolvable;
            let mut allowed = Vec::new();
            for a in tokio::net::lookup_host((host.as_str(), 0)).await? {
                match egress.check_ip(a.ip()) {
                    Ok(()) => allowed.push(a),
                    Err(r) => refused = r,
                }
            }
            if allowed.is_empty() {
                return Err(Box::new(refused) as Box<dyn std::error::Error + Send + Sync>);
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// The HTTP client for third-party endpoints: checked resolution, no proxy (a proxy would
/// connect on our behalf, unchecked), no redirects, short timeouts.
pub fn guarded_client(egress: Arc<Egress>) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(GuardedResolver { egress }))
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(std::time::Duration::from_secs(3))
        .timeout(std::time::Duration::from_secs(5))
        .pool_max_idle_per_host(1)
        .user_agent("Kollegium")
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> Egress {
        Egress {
            allow_private: false,
            base_domain: "kollegium.example".into(),
            listeners: vec![
                "0.0.0.0:8080".parse().unwrap(),
                "127.0.0.1:8081".parse().unwrap(),
                "198.51.7.9:443".parse().unwrap(),
            ],
        }
    }

    fn check(e: &Egress, uri: &str) -> Result<(), Refusal> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(e.check_uri(uri))
    }

    #[test]
    fn internal_and_special_addresses_are_refused_in_every_spelling() {
        let e = strict();
        for (uri, why) in [
            (
                "https://169.254.169.254/latest/meta-data",
                Refusal::LinkLocal,
            ),
            ("https://10.0.0.5/bc", Refusal::Private),
            ("https://172.16.3.4/bc", Refusal::Private),
            ("https://192.168.1.1/bc", Refusal::Private),
            ("https://100.64.0.1/bc", Refusal::Private),
            ("https://127.0.0.1:8081/metrics", Refusal::Loopback),
            ("https://[::1]:22/", Refusal::Loopback),
            ("https://127.1/", Refusal::Loopback),
            ("https://2130706433/", Refusal::Loopback),
            ("https://0x7f.1/", Refusal::Loopback),
            ("https://0177.0.0.1/", Refusal::Loopback),
            ("https://0.0.0.0/", Refusal::NotPublic),
            ("https://[::]/", Refusal::NotPublic),
            ("https://[::ffff:127.0.0.1]/", Refusal::Loopback),
            ("https://[::ffff:a9fe:a9fe]/", Refusal::LinkLocal),
            ("https://[::127.0.0.1]/", Refusal::Loopback),
            ("https://[64:ff9b::a00:5]/", Refusal::Private),
            ("https://[2002:a9fe:a9fe::1]/", Refusal::LinkLocal),
            ("https://[fd00::1]/", Refusal::Private),
            ("https://[fe80::1]/", Refusal::LinkLocal),
            ("https://[ff02::1]/", Refusal::NotPublic),
            ("https://[2001:db8::1]/", Refusal::NotPublic),
            ("https://224.0.0.1/", Refusal::NotPublic),
            ("https://255.255.255.255/", Refusal::NotPublic),
            ("https://198.51.7.9:8443/", Refusal::OwnServer),
            ("https://kollegium.example/", Refusal::OwnServer),
            ("https://praxis-b.kollegium.example./id", Refusal::OwnServer),
            ("https://PRAXIS-B.Kollegium.Example/id", Refusal::OwnServer),
            ("mailto:x@example.org", Refusal::Invalid),
        ] {
            assert_eq!(check(&e, uri), Err(why), "{uri}");
        }
        for ok in [
            "https://93.184.215.14/bc",
            "https://[2606:4700::1111]/bc",
            "https://[::ffff:93.184.215.14]/bc",
        ] {
            assert_eq!(check(&e, ok), Ok(()), "{ok}");
        }
    }

    /// At delivery the resolver hands the client only checked addresses: a name that
    /// resolves to loopback (as a re-bound name would) yields nothing to connect to.
    #[test]
    fn the_delivery_resolver_drops_refused_addresses() {
        use std::str::FromStr;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let resolve = |e: Egress, name: &str| {
            let r = GuardedResolver {
                egress: Arc::new(e),
            };
            rt.block_on(r.resolve(Name::from_str(name).unwrap()))
                .map(|a| a.collect::<Vec<_>>())
        };
        let refused = resolve(strict(), "localhost").unwrap_err();
        assert_eq!(
            refused.downcast_ref::<Refusal>(),
            Some(&Refusal::Loopback),
            "{refused}"
        );
        let own = resolve(strict(), "praxis-a.kollegium.example").unwrap_err();
        assert_eq!(own.downcast_ref::<Refusal>(), Some(&Refusal::OwnServer));
        let dev = Egress {
            allow_private: true,
            ..strict()
        };
        let found = resolve(dev, "localhost").unwrap();
        assert!(!found.is_empty() && found.iter().all(|a| a.ip().is_loopback()));
    }

    #[test]
    fn the_development_switch_opens_loopback_and_private_networks_only() {
        let e = Egress {
            allow_private: true,
            ..strict()
        };
        for ok in [
            "http://127.0.0.1:9000/bc",
            "http://[::1]:9000/bc",
            "https://10.0.0.5/bc",
            "https://[fd00::1]/bc",
        ] {
            assert_eq!(check(&e, ok), Ok(()), "{ok}");
        }
        for (uri, why) in [
            (
                "http://127.0.0.1:8080/auth/backchannel-logout",
                Refusal::OwnServer,
            ),
            ("http://127.0.0.1:8081/metrics", Refusal::OwnServer),
            ("http://[::1]:8080/", Refusal::OwnServer),
            ("https://169.254.169.254/", Refusal::LinkLocal),
            ("http://localhost:8080/", Refusal::OwnServer),
        ] {
            assert_eq!(check(&e, uri), Err(why), "{uri}");
        }
        // A node on localhost: a tool on another port of this machine is fine.
        let dev = Egress {
            allow_private: true,
            base_domain: "localhost".into(),
            listeners: vec!["127.0.0.1:8080".parse().unwrap()],
        };
        assert_eq!(check(&dev, "http://localhost:9000/bc"), Ok(()));
        assert_eq!(
            check(&dev, "http://localhost:8080/auth/backchannel-logout"),
            Err(Refusal::OwnServer)
        );
    }
}
