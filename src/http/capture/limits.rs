//! Abuse limits on the public capture endpoints: per client IP and per organization.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::domain::ids::OrgId;
use crate::http::error::ApiError;

/// One organization's whole audience may send this many times what one IP may.
const ORG_MULTIPLIER: u32 = 100;

pub struct CaptureLimits {
    per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    per_org: Option<DefaultKeyedRateLimiter<String>>,
}

impl CaptureLimits {
    /// `per_minute == 0` turns both limits off (load benchmarks on loopback).
    pub fn new(per_minute: u32) -> Self {
        let quota = |n: u32| NonZeroU32::new(n).map(Quota::per_minute);
        Self {
            per_ip: quota(per_minute).map(RateLimiter::keyed),
            per_org: quota(per_minute.saturating_mul(ORG_MULTIPLIER)).map(RateLimiter::keyed),
        }
    }

    pub fn check_ip(&self, ip: IpAddr) -> Result<(), TooManyRequests> {
        match &self.per_ip {
            Some(limiter) => limiter.check_key(&ip).map_err(|not_until| {
                TooManyRequests(not_until.wait_time_from(DefaultClock::default().now()))
            }),
            None => Ok(()),
        }
    }

    pub fn check_org(&self, org: &OrgId) -> Result<(), TooManyRequests> {
        match &self.per_org {
            Some(limiter) => limiter
                .check_key(&org.as_str().to_owned())
                .map_err(|not_until| {
                    TooManyRequests(not_until.wait_time_from(DefaultClock::default().now()))
                }),
            None => Ok(()),
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
