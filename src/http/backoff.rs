//! Slowing down password guessing without handing anyone a way to lock a person out.
//!
//! Only failed attempts count, and a success forgets them. A key may fail a few times freely;
//! after that each further attempt must wait, twice as long after every failure, up to a cap.
//! The caller keys by (address, client network) and by client network alone: a stranger
//! guessing at an owner's address from elsewhere slows only their own key, while the owner,
//! from their own network, logs in as usual. Time is passed in, so tests drive it.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How a key is slowed down.
#[derive(Debug, Clone, Copy)]
pub struct BackoffRule {
    /// Failures after which the next attempt waits.
    pub free: u32,
    /// The wait after the first failure past `free`; doubled after each further one.
    pub first_wait: Duration,
    pub max_wait: Duration,
}

impl BackoffRule {
    /// The wait after `failures` failures.
    fn wait_after(&self, failures: u32) -> Duration {
        if failures < self.free {
            return Duration::ZERO;
        }
        let doublings = (failures - self.free).min(31);
        self.first_wait
            .saturating_mul(1 << doublings)
            .min(self.max_wait)
    }
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// Failed attempts per key, under one rule.
#[derive(Debug)]
pub struct FailureBackoff<K> {
    rule: BackoffRule,
    keys: HashMap<K, Failures>,
}

impl<K: Hash + Eq> FailureBackoff<K> {
    pub fn new(rule: BackoffRule) -> Self {
        Self {
            rule,
            keys: HashMap::new(),
        }
    }

    /// How much longer `key` must wait before its next attempt is heard, if at all.
    pub fn wait(&self, key: &K, now: Instant) -> Option<Duration> {
        let f = self.keys.get(key)?;
        let until = f.last + self.rule.wait_after(f.count);
        (until > now).then(|| until - now)
    }

    pub fn failed(&mut self, key: K, now: Instant) {
        let f = self.keys.entry(key).or_insert(Failures {
            count: 0,
            last: now,
        });
        f.count = f.count.saturating_add(1);
        f.last = now;
    }

    pub fn succeeded(&mut self, key: &K) {
        self.keys.remove(key);
    }

    /// Forgets keys whose last failure is older than `age` (failures do not count forever).
    pub fn forget_before(&mut self, now: Instant, age: Duration) {
        self.keys
            .retain(|_, f| now.saturating_duration_since(f.last) < age);
    }
}

/// The network a client address stands for: an IPv4 address itself, an IPv6 address its /64
/// (one subscriber's allocation, which rotates freely within it). IPv4-mapped IPv6 is IPv4.
pub fn client_network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(bits.into())
            }
        },
    }
}

/// Failures after which the login of one address from one network is slowed.
const PER_ACCOUNT: BackoffRule = BackoffRule {
    free: 5,
    first_wait: Duration::from_secs(1),
    max_wait: Duration::from_secs(15 * 60),
};
/// One network guessing at many addresses is slowed later, but slowed all the same.
const PER_NETWORK: BackoffRule = BackoffRule {
    free: 30,
    first_wait: Duration::from_secs(1),
    max_wait: Duration::from_secs(15 * 60),
};
/// Failures older than this are forgotten.
const MEMORY: Duration = Duration::from_secs(24 * 3600);

/// The dashboard's login throttle: per (address, client network) and per client network.
#[derive(Debug)]
pub struct LoginThrottle {
    inner: Mutex<Keys>,
}

#[derive(Debug)]
struct Keys {
    account: FailureBackoff<(String, Option<IpAddr>)>,
    network: FailureBackoff<IpAddr>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Keys {
                account: FailureBackoff::new(PER_ACCOUNT),
                network: FailureBackoff::new(PER_NETWORK),
            }),
        }
    }
}

impl LoginThrottle {
    fn keys(&self) -> std::sync::MutexGuard<'_, Keys> {
        // A poisoned lock only means another request panicked mid-update; the counts stay usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `Err(wait)` when this attempt must be refused without looking at the password.
    pub fn check(&self, ip: Option<IpAddr>, email: &str, now: Instant) -> Result<(), Duration> {
        let net = ip.map(client_network);
        let keys = self.keys();
        let account = keys.account.wait(&(email.to_lowercase(), net), now);
        let network = net.and_then(|n| keys.network.wait(&n, now));
        match account.max(network) {
            Some(wait) => Err(wait),
            None => Ok(()),
        }
    }

    pub fn failed(&self, ip: Option<IpAddr>, email: &str, now: Instant) {
        let net = ip.map(client_network);
        let mut keys = self.keys();
        keys.account.failed((email.to_lowercase(), net), now);
        if let Some(n) = net {
            keys.network.failed(n, now);
        }
    }

    /// A correct password clears that address's failures from that network.
    pub fn succeeded(&self, ip: Option<IpAddr>, email: &str) {
        let net = ip.map(client_network);
        self.keys().account.succeeded(&(email.to_lowercase(), net));
    }

    pub fn forget_old(&self, now: Instant) {
        let mut keys = self.keys();
        keys.account.forget_before(now, MEMORY);
        keys.network.forget_before(now, MEMORY);
    }
}

/// Wrong guesses at a configured token (the operator's, the metrics scraper's) are slowed per
/// client network. A right token always gets through: nobody can lock the operator out.
#[derive(Debug)]
pub struct TokenThrottle {
    inner: Mutex<FailureBackoff<IpAddr>>,
}

const PER_NETWORK_TOKEN: BackoffRule = BackoffRule {
    free: 10,
    first_wait: Duration::from_secs(1),
    max_wait: Duration::from_secs(15 * 60),
};

impl Default for TokenThrottle {
    fn default() -> Self {
        Self {
            inner: Mutex::new(FailureBackoff::new(PER_NETWORK_TOKEN)),
        }
    }
}

impl TokenThrottle {
    fn keys(&self) -> std::sync::MutexGuard<'_, FailureBackoff<IpAddr>> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether a wrong token from this client is heard at all; the wait if not.
    pub fn check(&self, ip: Option<IpAddr>, now: Instant) -> Result<(), Duration> {
        match ip.and_then(|ip| self.keys().wait(&client_network(ip), now)) {
            Some(wait) => Err(wait),
            None => Ok(()),
        }
    }

    pub fn failed(&self, ip: Option<IpAddr>, now: Instant) {
        if let Some(ip) = ip {
            self.keys().failed(client_network(ip), now);
        }
    }

    pub fn forget_old(&self, now: Instant) {
        self.keys().forget_before(now, MEMORY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWNER: &str = "owner@acme.example";

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn a_few_failures_are_free_then_the_wait_doubles_up_to_its_cap() {
        let rule = PER_ACCOUNT;
        assert_eq!(rule.wait_after(0), Duration::ZERO);
        assert_eq!(rule.wait_after(4), Duration::ZERO);
        assert_eq!(rule.wait_after(5), Duration::from_secs(1));
        assert_eq!(rule.wait_after(6), Duration::from_secs(2));
        assert_eq!(rule.wait_after(8), Duration::from_secs(8));
        assert_eq!(rule.wait_after(40), Duration::from_secs(15 * 60));
        assert_eq!(rule.wait_after(u32::MAX), Duration::from_secs(15 * 60));
    }

    #[test]
    fn a_stranger_guessing_elsewhere_never_slows_the_owner() {
        let t = LoginThrottle::default();
        let now = Instant::now();
        for _ in 0..20 {
            t.failed(ip("203.0.113.9"), OWNER, now);
        }
        assert!(t.check(ip("203.0.113.9"), OWNER, now).is_err());
        assert_eq!(t.check(ip("198.51.100.7"), OWNER, now), Ok(()));
    }

    #[test]
    fn the_wait_runs_out_and_a_success_forgets_the_failures() {
        let t = LoginThrottle::default();
        let start = Instant::now();
        for _ in 0..4 {
            t.failed(ip("192.0.2.1"), OWNER, start);
        }
        assert_eq!(t.check(ip("192.0.2.1"), OWNER, start), Ok(()));
        t.failed(ip("192.0.2.1"), OWNER, start);
        assert_eq!(
            t.check(ip("192.0.2.1"), OWNER, start),
            Err(Duration::from_secs(1))
        );
        let later = start + Duration::from_secs(1);
        assert_eq!(t.check(ip("192.0.2.1"), OWNER, later), Ok(()));
        t.succeeded(ip("192.0.2.1"), OWNER);
        t.failed(ip("192.0.2.1"), OWNER, later);
        assert_eq!(t.check(ip("192.0.2.1"), OWNER, later), Ok(()));
    }

    #[test]
    fn successes_are_not_counted() {
        let t = LoginThrottle::default();
        let now = Instant::now();
        for _ in 0..100 {
            assert_eq!(t.check(ip("192.0.2.1"), OWNER, now), Ok(()));
            t.succeeded(ip("192.0.2.1"), OWNER);
        }
    }

    #[test]
    fn one_network_guessing_at_many_addresses_is_slowed() {
        let t = LoginThrottle::default();
        let now = Instant::now();
        for n in 0..29 {
            t.failed(ip("192.0.2.1"), &format!("user{n}@acme.example"), now);
        }
        let fresh = "someone.else@acme.example";
        assert_eq!(t.check(ip("192.0.2.1"), fresh, now), Ok(()));
        t.failed(ip("192.0.2.1"), "one.more@acme.example", now);
        assert!(t.check(ip("192.0.2.1"), fresh, now).is_err());
        assert_eq!(t.check(ip("192.0.2.2"), fresh, now), Ok(()));
    }

    #[test]
    fn an_ipv6_client_is_its_64_and_rotating_within_it_does_not_help() {
        let t = LoginThrottle::default();
        let now = Instant::now();
        for n in 0..5 {
            t.failed(ip(&format!("2001:db8:1:2::{n:x}")), OWNER, now);
        }
        assert!(t.check(ip("2001:db8:1:2:ffff::1"), OWNER, now).is_err());
        assert_eq!(t.check(ip("2001:db8:1:3::1"), OWNER, now), Ok(()));
        assert_eq!(
            client_network("::ffff:192.0.2.1".parse().unwrap()),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn old_failures_are_forgotten() {
        let t = LoginThrottle::default();
        let start = Instant::now();
        for _ in 0..10 {
            t.failed(ip("192.0.2.1"), OWNER, start);
        }
        t.forget_old(start + MEMORY);
        assert_eq!(t.check(ip("192.0.2.1"), OWNER, start + MEMORY), Ok(()));
    }
}
