//! Abuse limits on the public capture endpoints: per client network and per organization.
//!
//! A client is its network (an IPv4 address, an IPv6 /64), so rotating addresses within one
//! allocation does not multiply the allowance. The organization's budget exists because its
//! public key is public: anyone can spend it. So when it runs out it degrades instead of
//! refusing everyone: networks the organization admitted within the last hour (a homeowner
//! already on the page) keep going, each still under its own per-network limit, and only
//! networks it has not seen wait. Steps of a lead already started are never charged to it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::domain::ids::OrgId;
use crate::http::backoff::client_network;
use crate::http::error::ApiError;

/// One organization's whole audience may send this many times what one network may.
const ORG_MULTIPLIER: u32 = 100;
/// How long a network admitted by an organization counts as one of its visitors.
const KNOWN_FOR: Duration = Duration::from_secs(3600);
/// Visitors remembered at most (all organizations): memory stays bounded under any load.
const KNOWN_MAX: usize = 200_000;

pub struct CaptureLimits {
    per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    per_org: Option<DefaultKeyedRateLimiter<String>>,
    /// Networks each organization admitted, and when last.
    known: Mutex<HashMap<(OrgId, IpAddr), Instant>>,
}

impl CaptureLimits {
    /// `per_minute == 0` turns both limits off (load benchmarks on loopback).
    pub fn new(per_minute: u32) -> Self {
        let quota = |n: u32| NonZeroU32::new(n).map(Quota::per_minute);
        Self {
            per_ip: quota(per_minute).map(RateLimiter::keyed),
            per_org: quota(per_minute.saturating_mul(ORG_MULTIPLIER)).map(RateLimiter::keyed),
            known: Mutex::default(),
        }
    }

    fn known(&self) -> std::sync::MutexGuard<'_, HashMap<(OrgId, IpAddr), Instant>> {
        // Poisoned only if a thread panicked holding it; the map is still a valid map.
        self.known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn check_ip(&self, ip: IpAddr) -> Result<(), TooManyRequests> {
        match &self.per_ip {
            Some(limiter) => limiter.check_key(&client_network(ip)).map_err(|not_until| {
                TooManyRequests(not_until.wait_time_from(DefaultClock::default().now()))
            }),
            None => Ok(()),
        }
    }

    /// The organization's budget for a request from `ip` (unknown when not over a socket).
    pub fn check_org(&self, org: &OrgId, ip: Option<IpAddr>) -> Result<(), TooManyRequests> {
        let Some(limiter) = &self.per_org else {
            return Ok(());
        };
        let key = ip.map(|ip| (org.clone(), client_network(ip)));
        let now = Instant::now();
        match limiter.check_key(&org.as_str().to_owned()) {
            Ok(()) => {
                if let Some(key) = key {
                    let mut known = self.known();
                    if known.len() < KNOWN_MAX || known.contains_key(&key) {
                        known.insert(key, now);
                    }
                }
                Ok(())
            }
            Err(not_until) => {
                let seen = key.and_then(|k| self.known().get(&k).copied());
                if seen.is_some_and(|at| now.saturating_duration_since(at) < KNOWN_FOR) {
                    metrics::counter!("capture_org_budget_degraded_total").increment(1);
                    return Ok(());
                }
                Err(TooManyRequests(
                    not_until.wait_time_from(DefaultClock::default().now()),
                ))
            }
        }
    }

    /// Forgets idle keys so the maps do not grow without bound.
    pub fn retain_recent(&self) {
        if let Some(l) = &self.per_ip {
            l.retain_recent();
        }
        if let Some(l) = &self.per_org {
            l.retain_recent();
        }
        let now = Instant::now();
        self.known()
            .retain(|_, at| now.saturating_duration_since(*at) < KNOWN_FOR);
    }
}

/// A 429 in the API's error shape with `Retry-After` in whole seconds.
#[derive(Debug)]
pub struct TooManyRequests(pub Duration);

impl From<TooManyRequests> for ApiError {
    fn from(limited: TooManyRequests) -> Self {
        let seconds = (limited.0.as_secs() + u64::from(limited.0.subsec_nanos() > 0)).max(1);
        let mut error = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many requests; retry in {seconds} s"),
        );
        error.retry_after = Some(seconds);
        error
    }
}

impl IntoResponse for TooManyRequests {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_ipv6_client_is_limited_as_its_64() {
        let limits = CaptureLimits::new(2);
        assert!(limits.check_ip(ip("2001:db8:1:2::1")).is_ok());
        assert!(limits.check_ip(ip("2001:db8:1:2::2")).is_ok());
        assert!(limits.check_ip(ip("2001:db8:1:2:ffff::3")).is_err());
        assert!(limits.check_ip(ip("2001:db8:1:3::1")).is_ok());
    }

    #[test]
    fn a_drained_org_budget_still_admits_the_visitors_it_already_had() {
        // 1 per minute per network: the organization's budget is 100.
        let limits = CaptureLimits::new(1);
        let org = OrgId::from_stored("org_a".into());
        let other = OrgId::from_stored("org_b".into());
        let homeowner = ip("198.51.100.7");
        assert!(limits.check_org(&org, Some(homeowner)).is_ok());
        // Someone with the public key drains the budget from many networks.
        for n in 0..99 {
            let attacker = ip(&format!("203.0.113.{n}"));
            assert!(limits.check_org(&org, Some(attacker)).is_ok());
        }
        // A network never seen waits; the homeowner already on the page goes on.
        assert!(limits.check_org(&org, Some(ip("192.0.2.1"))).is_err());
        assert!(limits.check_org(&org, None).is_err());
        assert!(limits.check_org(&org, Some(homeowner)).is_ok());
        // Being known to one organization is nothing to another.
        for n in 0..100 {
            let _ = limits.check_org(&other, Some(ip(&format!("192.0.2.{n}"))));
        }
        assert!(limits.check_org(&other, Some(homeowner)).is_err());
    }

    #[test]
    fn zero_turns_the_limits_off() {
        let limits = CaptureLimits::new(0);
        let org = OrgId::from_stored("org_a".into());
        for _ in 0..1000 {
            assert!(limits.check_ip(ip("192.0.2.1")).is_ok());
            assert!(limits.check_org(&org, None).is_ok());
        }
    }
}
