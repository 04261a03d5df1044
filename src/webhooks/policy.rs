//! What happens after an attempt: the outcome of one HTTP send as a type, and the pure rules
//! that turn it into the delivery's next state (delivered, retry at, exhausted, gone).

use std::time::Duration;

use rand::Rng;

/// A 429's `Retry-After` is honoured up to this long.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Why an attempt got no HTTP answer (or was not made).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// The URL or the address it resolved to is not allowed (any more).
    TargetRefused,
    /// The stored secret does not parse; nothing can be signed.
    BadSecret,
    Timeout,
    Connect,
    Network,
}

impl FailureClass {
    pub fn id(self) -> &'static str {
        match self {
            Self::TargetRefused => "target_refused",
            Self::BadSecret => "bad_secret",
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::Network => "network",
        }
    }
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// The endpoint answered: its status, the start of its body, and (for a 429) how long it
    /// asked us to wait.
    Answered {
        status: u16,
        excerpt: String,
        retry_after: Option<Duration>,
    },
    Failed(FailureClass),
}

impl SendOutcome {
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Answered { status, .. } => Some(*status),
            Self::Failed(_) => None,
        }
    }

    pub fn succeeded(&self) -> bool {
        self.status().is_some_and(|s| (200..300).contains(&s))
    }

    /// The class the delivery log shows: none for a success.
    pub fn error_class(&self) -> Option<String> {
        match self {
            Self::Failed(class) => Some(class.id().to_owned()),
            Self::Answered { status, .. } => match status {
                200..=299 => None,
                300..=399 => Some("redirect_not_followed".to_owned()),
                s => Some(format!("http_{s}")),
            },
        }
    }

    pub fn excerpt(&self) -> &str {
        match self {
            Self::Answered { excerpt, .. } => excerpt,
            Self::Failed(_) => "",
        }
    }
}

/// What happens to a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// Try again at this time (Unix ms).
    RetryAt(i64),
    /// The retry schedule is used up; successors of the same lead stay held.
    Exhausted,
    /// The endpoint answered 410 Gone: it is disabled.
    Gone,
}

impl Verdict {
    pub fn id(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::RetryAt(_) => "retry",
            Self::Exhausted => "exhausted",
            Self::Gone => "gone",
        }
    }
}

/// The retry schedule: the delay after each failed attempt, with jitter that only ever adds
/// (up to a tenth), so retries from many deliveries spread out but never come early.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub schedule: Vec<Duration>,
}

impl RetryPolicy {
    /// The next state of a delivery that has now been attempted `made` times in all.
    pub fn verdict(&self, outcome: &SendOutcome, made: i64, now_ms: i64) -> Verdict {
        match outcome {
            o if o.succeeded() => Verdict::Delivered,
            SendOutcome::Answered { status: 410, .. } => Verdict::Gone,
            SendOutcome::Answered { retry_after, .. } => self.retry(made, *retry_after, now_ms),
            SendOutcome::Failed(_) => self.retry(made, None, now_ms),
        }
    }

    fn retry(&self, made: i64, retry_after: Option<Duration>, now_ms: i64) -> Verdict {
        let index = usize::try_from(made - 1).unwrap_or(usize::MAX);
        let Some(base) = self.schedule.get(index).copied() else {
            return Verdict::Exhausted;
        };
        let base = retry_after.map_or(base, |ra| base.max(ra.min(MAX_RETRY_AFTER)));
        let jitter_ms = u64::try_from(base.as_millis() / 10).unwrap_or(0);
        let jitter = if jitter_ms == 0 {
            0
        } else {
            rand::rng().random_range(0..=jitter_ms)
        };
        let delay = i64::try_from(base.as_millis()).unwrap_or(i64::MAX / 4);
        Verdict::RetryAt(now_ms.saturating_add(delay).saturating_add(jitter as i64))
    }
}

/// `Retry-After` in delta-seconds (the form rate limiters send); an HTTP date is ignored.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            schedule: vec![Duration::from_secs(5), Duration::from_secs(300)],
        }
    }

    fn answered(status: u16, retry_after: Option<Duration>) -> SendOutcome {
        SendOutcome::Answered {
            status,
            excerpt: String::new(),
            retry_after,
        }
    }

    #[test]
    fn only_2xx_delivers_and_410_gives_up_on_the_endpoint() {
        assert_eq!(
            policy().verdict(&answered(204, None), 1, 0),
            Verdict::Delivered
        );
        assert_eq!(policy().verdict(&answered(410, None), 1, 0), Verdict::Gone);
        assert!(matches!(
            policy().verdict(&answered(301, None), 1, 0),
            Verdict::RetryAt(_)
        ));
        assert!(matches!(
            policy().verdict(&SendOutcome::Failed(FailureClass::Timeout), 1, 0),
            Verdict::RetryAt(_)
        ));
    }

    #[test]
    fn retries_follow_the_schedule_with_added_jitter_then_stop() {
        for _ in 0..100 {
            let Verdict::RetryAt(at) = policy().verdict(&answered(500, None), 1, 1_000) else {
                panic!("a first failure is retried");
            };
            assert!((6_000..=6_500).contains(&at), "{at}");
            let Verdict::RetryAt(at) = policy().verdict(&answered(500, None), 2, 1_000) else {
                panic!("a second failure is retried");
            };
            assert!((301_000..=331_000).contains(&at), "{at}");
        }
        assert_eq!(
            policy().verdict(&answered(500, None), 3, 1_000),
            Verdict::Exhausted
        );
    }

    #[test]
    fn jitter_really_varies_the_retry_time() {
        let times: std::collections::BTreeSet<i64> = (0..200)
            .filter_map(|_| match policy().verdict(&answered(500, None), 1, 0) {
                Verdict::RetryAt(at) => Some(at),
                _ => None,
            })
            .collect();
        // Up to 500 ms of jitter on 5 s: two hundred draws are never all the same.
        assert!(times.len() > 1, "{times:?}");
        assert!(times.iter().all(|t| (5_000..=5_500).contains(t)));
    }

    #[test]
    fn verdicts_and_excerpts_are_what_the_log_shows() {
        let ids: Vec<&str> = [
            Verdict::Delivered,
            Verdict::RetryAt(1),
            Verdict::Exhausted,
            Verdict::Gone,
        ]
        .into_iter()
        .map(Verdict::id)
        .collect();
        assert_eq!(ids, ["delivered", "retry", "exhausted", "gone"]);
        let answered = SendOutcome::Answered {
            status: 500,
            excerpt: "boom".into(),
            retry_after: None,
        };
        assert_eq!(answered.excerpt(), "boom");
        assert_eq!(SendOutcome::Failed(FailureClass::Timeout).excerpt(), "");
    }

    #[test]
    fn retry_after_is_honoured_up_to_an_hour_but_never_shortens_the_schedule() {
        let Verdict::RetryAt(at) =
            policy().verdict(&answered(429, Some(Duration::from_secs(60))), 1, 0)
        else {
            panic!("429 is retried");
        };
        assert!((60_000..=66_000).contains(&at), "{at}");
        let Verdict::RetryAt(at) =
            policy().verdict(&answered(429, Some(Duration::from_secs(1))), 1, 0)
        else {
            panic!("429 is retried");
        };
        assert!(at >= 5_000, "{at}");
        let Verdict::RetryAt(at) =
            policy().verdict(&answered(429, Some(Duration::from_secs(86_400))), 1, 0)
        else {
            panic!("429 is retried");
        };
        assert!(at <= 3_960_000, "{at}");
    }

    #[test]
    fn the_log_names_what_went_wrong() {
        assert_eq!(answered(200, None).error_class(), None);
        assert_eq!(
            answered(302, None).error_class().as_deref(),
            Some("redirect_not_followed")
        );
        assert_eq!(
            answered(503, None).error_class().as_deref(),
            Some("http_503")
        );
        assert_eq!(
            SendOutcome::Failed(FailureClass::Connect)
                .error_class()
                .as_deref(),
            Some("connect")
        );
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
