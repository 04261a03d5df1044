//! Where a webhook may be sent. Subscribers choose the URL, so without a guard they could make
//! leadtrail call its own loopback, the private network, or a cloud metadata service. A URL is
//! checked when an endpoint is saved and again at every attempt, and the HTTP client connects
//! only to addresses this module vetted (see `GuardedResolver`), so a DNS answer that changes
//! between the check and the connection cannot slip past it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use url::{Host, Url};

/// How long a delivery may take to connect, and in all (body included).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("webhook URLs must be http:// or https://")]
    Scheme,
    #[error("the webhook URL is not a valid URL: {0}")]
    Invalid(String),
    #[error("webhook URLs must not carry a user name or password")]
    Credentials,
    #[error(
        "{0} is not a public address; webhooks cannot target loopback, private, link-local or metadata addresses"
    )]
    NotPublic(String),
    #[error("the webhook host {0} did not resolve")]
    Unresolved(String),
    #[error("port {port} is not allowed for webhooks; allowed: {allowed}")]
    Port { port: u16, allowed: AllowedPorts },
}

/// The ports a webhook URL may name. Low ports other than the web's own belong to other
/// services (SMTP, SSH, databases) that a subscriber has no business making us talk to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedPorts(Vec<RangeInclusive<u16>>);

impl AllowedPorts {
    pub const DEFAULT: &'static str = "80,443,8080,8443,1024-65535";

    /// `80,443,8000-9000`: single ports and inclusive ranges, comma-separated.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let port = |p: &str| {
            p.trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("{p:?} is not a port (1-65535)"))
        };
        let ranges = raw
            .split(',')
            .filter(|part| !part.trim().is_empty())
            .map(|part| match part.split_once('-') {
                Some((low, high)) => {
                    let (low, high) = (port(low)?, port(high)?);
                    if low > high {
                        return Err(format!("{part:?}: the range is backwards"));
                    }
                    Ok(low..=high)
                }
                None => port(part).map(|p| p..=p),
            })
            .collect::<Result<Vec<_>, _>>()?;
        if ranges.is_empty() {
            return Err("name at least one port".to_owned());
        }
        Ok(Self(ranges))
    }

    pub fn allows(&self, port: u16) -> bool {
        self.0.iter().any(|r| r.contains(&port))
    }
}

impl Default for AllowedPorts {
    fn default() -> Self {
        Self(vec![
            80..=80,
            443..=443,
            8080..=8080,
            8443..=8443,
            1024..=65535,
        ])
    }
}

impl std::fmt::Display for AllowedPorts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|r| {
                if r.start() == r.end() {
                    r.start().to_string()
                } else {
                    format!("{}-{}", r.start(), r.end())
                }
            })
            .collect();
        f.write_str(&parts.join(", "))
    }
}

/// Where webhooks may go: the operator's settings, applied at save and at every attempt.
#[derive(Debug, Clone, Default)]
pub struct TargetPolicy {
    /// Loopback and private addresses allowed (tests, local development).
    pub allow_private: bool,
    pub ports: AllowedPorts,
}

impl TargetPolicy {
    /// Private targets allowed, every port: what tests against loopback receivers use.
    pub fn permissive() -> Self {
        Self {
            allow_private: true,
            ports: AllowedPorts(vec![1..=65535]),
        }
    }
}

/// A public unicast address: not loopback, private, link-local, CGNAT, unique-local, multicast,
/// documentation, benchmarking or reserved — and for IPv6 forms that embed an IPv4 address
/// (mapped, compatible, NAT64), the embedded address must be public too.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0                                   // "this network"
        || a == 10                             // private
        || a == 127                            // loopback
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64/10
        || (a == 169 && b == 254)              // link-local, cloud metadata
        || (a == 172 && (16..32).contains(&b)) // private
        || (a == 192 && b == 0 && c == 0)      // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)      // documentation
        || (a == 192 && b == 88 && c == 99)    // 6to4 relay
        || (a == 192 && b == 168)              // private
        || (a == 198 && (b == 18 || b == 19))  // benchmarking
        || (a == 198 && b == 51 && c == 100)   // documentation
        || (a == 203 && b == 0 && c == 113)    // documentation
        || a >= 224) // multicast, reserved, broadcast
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let seg = ip.segments();
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    // IPv4-compatible (::a.b.c.d), IPv4-translated (::ffff:0:a.b.c.d) and well-known NAT64
    // (64:ff9b::/96) carry an IPv4 address too.
    if seg[..6] == [0, 0, 0, 0, 0, 0]
        || seg[..6] == [0, 0, 0, 0, 0xffff, 0]
        || seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
    {
        let v4 = Ipv4Addr::new(
            (seg[6] >> 8) as u8,
            seg[6] as u8,
            (seg[7] >> 8) as u8,
            seg[7] as u8,
        );
        return !ip.is_unspecified() && !ip.is_loopback() && is_public_v4(v4);
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || (seg[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (seg[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (seg[0] & 0xffc0) == 0xfec0 // site-local (deprecated) fec0::/10
        || (seg[0] & 0xff00) == 0xff00 // multicast
        || (seg[0] == 0x64 && seg[1] == 0xff9b && seg[2] == 1) // local-use NAT64 64:ff9b:1::/48
        || (seg[0] == 0x100 && seg[1..4] == [0, 0, 0]) // discard-only 100::/64
        || (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation
        || (seg[0] == 0x2001 && seg[1] < 0x0200) // IETF special purpose (Teredo, benchmarking, ORCHID)
        || seg[0] == 0x2002) // 6to4: embeds an arbitrary IPv4 address
}

/// Checks what can be checked without DNS: scheme, credentials, literal addresses, `localhost`.
/// The URL parser has already turned decimal and hex IPv4 forms (`http://2130706433/`,
/// `http://0x7f.1/`) into ordinary addresses, so they are caught here too.
pub fn check_url(raw: &str, policy: &TargetPolicy) -> Result<Url, TargetError> {
    let url = Url::parse(raw.trim()).map_err(|e| TargetError::Invalid(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(TargetError::Scheme);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(TargetError::Credentials);
    }
    let port = url.port_or_known_default().unwrap_or(0);
    if !policy.ports.allows(port) {
        return Err(TargetError::Port {
            port,
            allowed: policy.ports.clone(),
        });
    }
    if policy.allow_private {
        return Ok(url);
    }
    match url.host() {
        None => Err(TargetError::Invalid("no host".into())),
        Some(Host::Ipv4(ip)) if !is_public_v4(ip) => Err(TargetError::NotPublic(ip.to_string())),
        Some(Host::Ipv6(ip)) if !is_public_v6(ip) => Err(TargetError::NotPublic(ip.to_string())),
        Some(Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if name == "localhost" || name.ends_with(".localhost") || name.ends_with(".internal") {
                Err(TargetError::NotPublic(name))
            } else {
                Ok(url)
            }
        }
        Some(_) => Ok(url),
    }
}

/// A DNS resolver for the webhook HTTP client that only ever hands out public addresses: if
/// any answer for a name is not public, the name is refused as a whole.
#[derive(Clone)]
pub struct GuardedResolver {
    pub allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?
                .collect();
            if addresses.is_empty() {
                return Err(Box::new(TargetError::Unresolved(host))
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            if !allow_private && let Some(bad) = addresses.iter().find(|a| !is_public(a.ip())) {
                return Err(
                    Box::new(TargetError::NotPublic(format!("{host} ({})", bad.ip())))
                        as Box<dyn std::error::Error + Send + Sync>,
                );
            }
            Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The client every delivery uses: vetted DNS, no redirects, 5 s to connect, 15 s in all.
///
/// Proxy variables in the environment (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`) are ignored:
/// through a proxy the target's name is resolved by the proxy, out of the guard's sight. An
/// operator who needs an egress proxy names it explicitly (`egress_proxy`); then the literal
/// checks of `check_url` still apply, but names are resolved by the proxy, which must enforce
/// the network policy itself (documented in `docs/webhooks.md`).
pub fn http_client(
    policy: &TargetPolicy,
    egress_proxy: Option<&Url>,
) -> reqwest::Result<reqwest::Client> {
    let builder = reqwest::Client::builder()
        .dns_resolver(Arc::new(GuardedResolver {
            allow_private: policy.allow_private,
        }))
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("leadtrail-webhooks/", env!("CARGO_PKG_VERSION")));
    let builder = match egress_proxy {
        Some(proxy) => builder.proxy(reqwest::Proxy::all(proxy.as_str())?),
        None => builder.no_proxy(),
    };
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_non_public_form_is_refused() {
        for url in [
            "http://127.0.0.1/hook",
            "http://127.1/hook",
            "http://2130706433/hook",
            "http://0x7f000001/hook",
            "http://0177.0.0.1/hook",
            "http://localhost:8080/hook",
            "http://api.localhost/hook",
            "http://[::1]/hook",
            "http://[::ffff:127.0.0.1]/hook",
            "http://[::ffff:a9fe:a9fe]/hook",
            "http://[64:ff9b::a00:1]/hook",
            "http://[fd00::1]/hook",
            "http://[fe80::1]/hook",
            "http://10.0.0.5/hook",
            "http://172.16.3.4/hook",
            "http://192.168.1.1/hook",
            "http://169.254.169.254/latest/meta-data",
            "http://100.64.0.1/hook",
            "http://0.0.0.0/hook",
            "http://[::]/hook",
            "http://224.0.0.1/hook",
            "http://metadata.google.internal/computeMetadata",
            "http://[::ffff:0:7f00:1]/hook",
            "http://[::ffff:0:a00:1]/hook",
            "http://[64:ff9b:1::7f00:1]/hook",
            "http://[64:ff9b:1::808:808]/hook",
            "http://[100::1]/hook",
        ] {
            assert!(
                matches!(check_url(url, &strict()), Err(TargetError::NotPublic(_))),
                "{url} was allowed"
            );
        }
    }

    fn strict() -> TargetPolicy {
        TargetPolicy::default()
    }

    #[test]
    fn public_http_urls_pass_and_other_schemes_do_not() {
        assert!(check_url("https://hooks.example.com/leadtrail", &strict()).is_ok());
        assert!(check_url("http://8.8.8.8/hook", &strict()).is_ok());
        assert!(check_url("http://[2606:4700::1111]/hook", &strict()).is_ok());
        assert!(check_url("http://[::ffff:0:808:808]/hook", &strict()).is_ok());
        assert_eq!(
            check_url("ftp://hooks.example.com/", &strict()).err(),
            Some(TargetError::Scheme)
        );
        assert_eq!(
            check_url("file:///etc/passwd", &strict()).err(),
            Some(TargetError::Scheme)
        );
        assert_eq!(
            check_url("https://user:pw@hooks.example.com/", &strict()).err(),
            Some(TargetError::Credentials)
        );
        for half in [
            "https://user@hooks.example.com/",
            "https://:pw@hooks.example.com/",
        ] {
            assert_eq!(
                check_url(half, &strict()).err(),
                Some(TargetError::Credentials),
                "{half}"
            );
        }
    }

    #[test]
    fn only_web_ports_and_high_ports_are_allowed_by_default() {
        for ok in [
            "https://hooks.example.com/",
            "http://hooks.example.com/",
            "http://hooks.example.com:8080/",
            "https://hooks.example.com:8443/",
            "https://hooks.example.com:1024/",
            "https://hooks.example.com:65535/",
        ] {
            assert!(check_url(ok, &strict()).is_ok(), "{ok} was refused");
        }
        for refused in [
            "http://hooks.example.com:22/",
            "http://hooks.example.com:25/",
            "https://hooks.example.com:1023/",
            "http://hooks.example.com:6/",
        ] {
            assert!(
                matches!(check_url(refused, &strict()), Err(TargetError::Port { .. })),
                "{refused} was allowed"
            );
        }
        // Private targets allowed does not mean every port.
        let local = TargetPolicy {
            allow_private: true,
            ..TargetPolicy::default()
        };
        assert!(check_url("http://127.0.0.1:5432/", &local).is_ok());
        assert!(matches!(
            check_url("http://127.0.0.1:25/", &local),
            Err(TargetError::Port { port: 25, .. })
        ));
    }

    #[test]
    fn resolved_addresses_are_judged_public_or_not() {
        // What the delivery-time guard asks of every address a name resolves to.
        // Public neighbours of every refused block, so each comparison in the rule matters.
        let public = [
            "8.8.8.8",
            "1.1.1.1",
            "100.63.255.255",
            "100.128.0.1",
            "8.64.1.1",
            "8.254.1.1",
            "169.1.1.1",
            "172.15.0.1",
            "172.32.0.1",
            "8.16.0.1",
            "192.1.1.1",
            "192.0.1.1",
            "192.1.0.1",
            "8.0.0.8",
            "192.0.3.1",
            "8.0.2.1",
            "192.88.98.1",
            "192.89.99.1",
            "8.88.99.1",
            "192.169.0.1",
            "8.168.0.1",
            "198.17.0.1",
            "198.20.0.1",
            "8.18.0.1",
            "8.19.0.1",
            "198.51.101.1",
            "198.52.100.1",
            "8.51.100.1",
            "203.0.114.1",
            "203.1.113.1",
            "8.0.113.1",
            "223.255.255.254",
            "2606:4700::1111",
            "2001:4860::8888",
            "2001:db9::1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            // 192.0.1.1 inside NAT64: the third octet is read from the last segment's high byte.
            "64:ff9b::c000:101",
            // IPv6 neighbours: each half of a two-part block test on its own is not enough.
            "2606::1",
            "2606:100::1",
            "2606:db8::1",
            "2606:ff9b:1::1",
            "64:ff9b:2::1",
            "2001:200::1",
            "2003::1",
        ];
        for public in public {
            assert!(
                is_public(public.parse().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))),
                "{public}"
            );
        }
        for private in [
            "10.1.2.3",
            "127.0.0.1",
            "169.254.169.254",
            "::1",
            "fd00::1",
            "::ffff:10.0.0.1",
            "fec0::1",
            "ff02::1",
            "100::1",
            "2001::1",
            "2001:2::1",
            "2001:1ff::1",
            "2001:db8::1",
            "2002:c000:201::1",
            "64:ff9b:1::1",
            // Documentation, 6to4 relay, protocol-assignment and benchmarking blocks.
            "192.0.2.1",
            "192.88.99.1",
            "198.51.100.7",
            "203.0.113.9",
            "192.0.0.8",
            "198.18.0.1",
        ] {
            assert!(
                !is_public(private.parse().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))),
                "{private}"
            );
        }
    }

    #[test]
    fn port_lists_parse_and_print() {
        let ports = AllowedPorts::parse("443, 8000-8999").unwrap_or_default();
        assert!(ports.allows(443) && ports.allows(8000) && ports.allows(8999));
        assert!(!ports.allows(80) && !ports.allows(9000));
        assert_eq!(ports.to_string(), "443, 8000-8999");
        assert_eq!(
            AllowedPorts::parse(AllowedPorts::DEFAULT),
            Ok(AllowedPorts::default())
        );
        // A range of one port is a range.
        let one = AllowedPorts::parse("8000-8000").unwrap_or_default();
        assert!(one.allows(8000) && !one.allows(8001));
        for bad in ["", "0", "70000", "9000-8000", "http", "1-"] {
            assert!(AllowedPorts::parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn the_operator_may_allow_private_targets() {
        assert!(check_url("http://127.0.0.1:9000/hook", &TargetPolicy::permissive()).is_ok());
    }

    #[tokio::test]
    async fn the_resolver_refuses_names_that_resolve_to_loopback() {
        use reqwest::dns::Resolve;
        let name = || "localhost".parse::<reqwest::dns::Name>().ok();
        let (Some(a), Some(b)) = (name(), name()) else {
            panic!("localhost is a valid name");
        };
        let guarded = GuardedResolver {
            allow_private: false,
        };
        assert!(guarded.resolve(a).await.is_err());
        let open = GuardedResolver {
            allow_private: true,
        };
        assert!(open.resolve(b).await.is_ok());
    }

    /// The delivery client itself resolves through the guard: a name for a loopback address is
    /// refused before any connection, and reaches the same listener once private targets are
    /// allowed. (The literal checks of `check_url` never see a name's addresses.)
    #[tokio::test]
    async fn the_delivery_client_resolves_names_through_the_guard() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                // The request's head first: an answer before it is one hyper refuses.
                let mut head = Vec::new();
                let mut chunk = [0_u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&chunk[..n]),
                    }
                }
                let ok = b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n";
                let _ = conn.write_all(ok).await;
            }
        });
        let url = format!("http://localhost:{port}/hook");
        let guarded = http_client(&strict(), None).unwrap();
        let refused = guarded.post(&url).send().await.unwrap_err();
        assert!(format!("{refused:?}").contains("NotPublic"), "{refused:?}");
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            0,
            "nothing reached loopback"
        );
        let open = http_client(&TargetPolicy::permissive(), None).unwrap();
        let answer = open.post(&url).send().await.unwrap();
        assert_eq!(answer.status(), reqwest::StatusCode::NO_CONTENT);
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }
}
