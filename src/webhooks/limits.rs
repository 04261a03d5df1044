//! A per-organization budget for sends a person starts by hand (test events, resends,
//! replays), so a button held down or a script in a loop cannot fill the queue.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::domain::ids::OrgId;

pub struct ManualSendLimit(Option<DefaultKeyedRateLimiter<OrgId>>);

impl ManualSendLimit {
    /// `per_minute == 0` turns the limit off.
    pub fn new(per_minute: u32) -> Self {
        Self(NonZeroU32::new(per_minute).map(|n| RateLimiter::keyed(Quota::per_minute(n))))
    }

    /// Takes one send from the organization's budget, or says how long until one is free.
    pub fn check(&self, org: &OrgId) -> Result<(), Duration> {
        match &self.0 {
            Some(limiter) => limiter
                .check_key(org)
                .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now())),
            None => Ok(()),
        }
    }

    /// Forgets idle organizations so the map does not grow without bound.
    pub fn retain_recent(&self) {
        if let Some(limiter) = &self.0 {
            limiter.retain_recent();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_organization_has_its_own_budget() {
        let limit = ManualSendLimit::new(2);
        let (a, b) = (OrgId::generate(), OrgId::generate());
        assert!(limit.check(&a).is_ok());
        assert!(limit.check(&a).is_ok());
        let wait = limit.check(&a).err();
        assert!(wait.is_some_and(|w| w > Duration::ZERO && w <= Duration::from_secs(30)));
        assert!(
            limit.check(&b).is_ok(),
            "another organization is unaffected"
        );
        assert!(ManualSendLimit::new(0).check(&a).is_ok(), "0 turns it off");
    }
}
