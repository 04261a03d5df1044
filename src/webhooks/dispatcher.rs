//! The webhook dispatcher: sends due deliveries — signed, over the guarded client — many at
//! once, each attempt recorded as soon as it finishes. (Events become deliveries in the very
//! transaction that writes them, and that commit wakes the dispatcher; a periodic sweep fans
//! out anything left over, such as events written by an older version.) No round waits for its slowest delivery: a slow or dead endpoint holds only
//! its own slots (a bounded number per endpoint, counted across nodes), and free slots go
//! round-robin across organizations and endpoints.
//!
//! Any number of dispatchers (one per node) can run against one database: deliveries are
//! claimed with a lease, so none is sent twice at once, and a dispatcher that dies mid-flight
//! leaves its deliveries to be retried, with the same `webhook-id`, when the lease ends.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::future::join_all;
use tokio::sync::{Notify, watch};
use tokio::task::{Id as TaskId, JoinSet};
use url::Url;

use super::policy::{RetryPolicy, Verdict};
use super::send::{Message, send};
use super::target::{TargetPolicy, http_client};
use crate::config::Config;
use crate::domain::ids::{DeliveryId, EndpointId};
use crate::store::{
    Attempt, ClaimRequest, DueDelivery, Finished, Lag, NextDue, Recorded, Round, Store, StoreError,
    now_ms,
};

const FAN_OUT_BATCH: i64 = 500;
/// Longer than the 15 s request timeout, so a live attempt never loses its lease.
const LEASE: Duration = Duration::from_secs(60);
/// How often other nodes' work, due retries and held deliveries are looked for without a wake:
/// one process on SQLite; on PostgreSQL other nodes' work arrives by `LISTEN/NOTIFY`
/// (`workers::wakeups`) and the poll is the safety net.
const POLL_SQLITE: Duration = Duration::from_millis(500);
const POLL_POSTGRES: Duration = Duration::from_secs(5);
/// How often the backlog is measured for metrics and late-delivery warnings: twice per
/// warning threshold, within these bounds.
const REPORT_EVERY: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(10));
/// A late endpoint is warned about at most this often.
const WARN_EVERY: Duration = Duration::from_secs(60);
/// At shutdown, attempts in flight get this long to finish; the rest are handed back.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// Completions arriving within `GATHER_GAP` of each other, up to `GATHER` in all, are recorded
/// in one round.
const GATHER: Duration = Duration::from_millis(2);
const GATHER_GAP: Duration = Duration::from_micros(500);
/// A claim that found an endpoint held by another node's claim looks again this soon: that
/// claim commits within a few milliseconds, and waiting for the next wake left the endpoint's
/// slots idle (the nodes bench: three nodes drained a backlog at 0.3× one node's rate with no
/// retry, 0.73× with a 10 ms retry, 0.85× with this one).
const CONTENDED_RETRY: Duration = Duration::from_millis(2);
/// A saturated node asks the other nodes for help at most this often.
const HELP_EVERY: Duration = Duration::from_millis(100);
/// After a failed store call, wait this long before trying again.
const BACKOFF: Duration = Duration::from_millis(250);

/// How a dispatcher sends: where to, how many at once, how to retry.
#[derive(Debug, Clone)]
pub struct DispatchSettings {
    pub targets: TargetPolicy,
    pub egress_proxy: Option<Url>,
    pub retry: RetryPolicy,
    /// An endpoint failing this long, with a message's retries used up, is disabled.
    pub disable_after: Duration,
    /// Deliveries one endpoint may have in flight, across all nodes.
    pub endpoint_concurrency: usize,
    /// Deliveries this node sends at once.
    pub concurrency: usize,
    pub lag_warning: Duration,
    pub lease: Duration,
    /// How often to look for work without a wake-up.
    pub poll: Duration,
}

impl DispatchSettings {
    pub fn from_config(config: &Config) -> Self {
        Self {
            targets: config.webhook_targets(),
            egress_proxy: config.webhook_egress_proxy.clone(),
            retry: RetryPolicy {
                schedule: config.webhook_retry_schedule.clone(),
            },
            disable_after: config.webhook_disable_after,
            endpoint_concurrency: config.webhook_endpoint_concurrency,
            concurrency: config.webhook_concurrency,
            lag_warning: config.webhook_lag_warning,
            lease: LEASE,
            poll: config.webhook_poll_interval.unwrap_or(
                match crate::store::Backend::from_url(&config.database_url) {
                    Ok(crate::store::Backend::Postgres) if config.cross_node_wakeups => {
                        POLL_POSTGRES
                    }
                    _ => POLL_SQLITE,
                },
            ),
        }
    }
}

#[derive(Clone)]
pub struct Dispatcher {
    store: Store,
    client: reqwest::Client,
    settings: Arc<DispatchSettings>,
    /// Which organization goes first when slots are scarce; moves on every claim.
    rotation: Arc<AtomicUsize>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    /// Events fanned out, and delivery attempts made.
    Worked {
        fanned: usize,
        sent: usize,
    },
    Idle,
}

impl Dispatcher {
    pub fn new(store: Store, settings: DispatchSettings) -> reqwest::Result<Self> {
        Ok(Self {
            client: http_client(&settings.targets, settings.egress_proxy.as_ref())?,
            store,
            settings: Arc::new(settings),
            rotation: Arc::default(),
        })
    }

    fn claim_request(&self, free: usize, sweep: bool, only_if_released: bool) -> ClaimRequest {
        ClaimRequest {
            free,
            per_endpoint: self.settings.endpoint_concurrency,
            lease_ms: i64::try_from(self.settings.lease.as_millis()).unwrap_or(i64::MAX),
            rotation: self.rotation.fetch_add(1, Ordering::Relaxed),
            sweep,
            only_if_released,
        }
    }

    /// One round, start to finish: fan out, claim what is due, send it all, record the
    /// outcomes. What tests drive; the service runs `run`, which never waits for a batch.
    pub async fn run_once(&self) -> Result<Progress, StoreError> {
        let (fanned, _) = self.store.fan_out(FAN_OUT_BATCH).await?;
        let request = self.claim_request(self.settings.concurrency, true, false);
        let claimed = self.store.claim_deliveries(request).await?;
        let sent = claimed.due.len();
        let finished = join_all(
            claimed
                .due
                .into_iter()
                .map(|d| attempt(self.client.clone(), self.settings.clone(), d)),
        )
        .await;
        self.record(&finished).await?;
        Ok(if fanned + sent == 0 {
            Progress::Idle
        } else {
            Progress::Worked { fanned, sent }
        })
    }

    async fn record(&self, finished: &[Finished]) -> Result<Recorded, StoreError> {
        let recorded = self
            .store
            .record_attempts(finished, self.disable_after_ms())
            .await?;
        count_attempts(finished);
        Ok(recorded)
    }

    fn disable_after_ms(&self) -> i64 {
        i64::try_from(self.settings.disable_after.as_millis()).unwrap_or(i64::MAX)
    }

    /// Runs until `stop` turns true: attempts in flight then get a short grace to finish, and
    /// the leases of any still running are handed back.
    pub async fn run(self, wake: Arc<Notify>, mut stop: watch::Receiver<bool>) {
        let mut flight = Flight::default();
        let mut want = Wanted::everything();
        let mut timers = Timers::new(
            (self.settings.lag_warning / 2).clamp(REPORT_EVERY.0, REPORT_EVERY.1),
            self.settings.poll,
        );
        let mut lag = LagReport::default();
        let mut asked_for_help: Option<Instant> = None;
        loop {
            flight.collect_finished();
            if *stop.borrow() {
                break;
            }
            let fan_out = want.fan_out.then_some(FAN_OUT_BATCH);
            // Claim when told to, when fan-out may have made deliveries, when a slot came free
            // and work was left waiting for one, or when a delivered event may release the next
            // one of its lead.
            let releases = flight
                .finished
                .iter()
                .any(|f| f.verdict == Verdict::Delivered && f.delivery.lead_id.is_some());
            let freed = !flight.finished.is_empty() && want.more_due;
            let free = self.settings.concurrency.saturating_sub(flight.len());
            let needed = want.claim || fan_out.is_some() || freed;
            let claim = (needed || releases) && free > 0;
            if flight.finished.is_empty() && fan_out.is_none() && !claim {
                // Nothing to do until something wakes us.
            } else {
                let round = Round {
                    finished: &flight.finished,
                    disable_after_ms: self.disable_after_ms(),
                    fan_out,
                    claim: claim.then(|| self.claim_request(free, want.sweep, !needed)),
                };
                match self.store.dispatch_round(round).await {
                    Ok(done) => {
                        count_attempts(&flight.finished);
                        flight.finished.clear();
                        timers.next_due(done.next_due, now_ms(), Instant::now());
                        if fan_out.is_some() {
                            want.fan_out = done.fanned.0 == FAN_OUT_BATCH as usize;
                        }
                        if claim {
                            want.claim = false;
                            want.sweep = false;
                            // Held by another node's claim counts as more due: this node
                            // claims again in a moment, and at each of its own completions.
                            want.more_due = done.claimed.more_due || done.claimed.contended;
                            if done.claimed.contended {
                                timers.retry_at = Some(Instant::now() + CONTENDED_RETRY);
                            }
                            // More is due than this node can take: idle nodes can help.
                            if done.claimed.more_due
                                && asked_for_help.is_none_or(|at| at.elapsed() >= HELP_EVERY)
                            {
                                asked_for_help = Some(Instant::now());
                                if let Err(e) = self.store.announce_deliveries().await {
                                    tracing::debug!(error = %e, "asking other nodes for help failed; they poll");
                                }
                            }
                            for delivery in done.claimed.due {
                                let id = delivery.id.clone();
                                let task =
                                    attempt(self.client.clone(), self.settings.clone(), delivery);
                                flight.spawn(id, task);
                            }
                            metrics::gauge!("webhook_in_flight").set(flight.len() as f64);
                        }
                    }
                    Err(e) => {
                        // Finished attempts stay in hand and are recorded on the next turn.
                        tracing::error!(error = %e, "a webhook dispatch round failed; retrying");
                        tokio::time::sleep(BACKOFF).await;
                        continue;
                    }
                }
            }
            let wait_until = timers.wake_at();
            tokio::select! {
                _ = stop.changed() => {}
                Some(done) = flight.join_next(), if !flight.is_empty() => {
                    flight.finish(done);
                    flight.gather().await;
                }
                () = wake.notified() => want.claim = true,
                () = tokio::time::sleep_until(wait_until.into()) => {
                    let now = Instant::now();
                    if now >= timers.poll_at {
                        timers.poll_at = now + self.settings.poll;
                        want = Wanted { more_due: want.more_due, ..Wanted::everything() };
                    } else if timers.retry_at.is_some_and(|at| now >= at) {
                        timers.retry_at = None;
                        want.claim = true;
                    } else if timers.due_at.is_some_and(|at| now >= at) {
                        // A retry fell due: claim it, and look again for the next one.
                        timers.due_at = None;
                        want.claim = true;
                        want.sweep = true;
                    } else {
                        want.claim = true;
                    }
                }
                () = tokio::time::sleep_until(timers.report_at.into()) => {
                    timers.report_at = Instant::now() + timers.report_every;
                    self.report_lag(&mut lag).await;
                }
            }
        }
        self.wind_down(flight).await;
    }

    /// Lets attempts in flight finish (for a short while), records them, and hands the leases
    /// of the rest back so the next process (or another node) sends them at once.
    async fn wind_down(&self, mut flight: Flight) {
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        while !flight.is_empty() {
            match tokio::time::timeout_at(deadline, flight.join_next()).await {
                Ok(Some(done)) => flight.finish(done),
                Ok(None) | Err(_) => break,
            }
        }
        let abandoned = flight.abandon();
        if let Err(e) = self.record(&flight.finished).await {
            tracing::error!(error = %e, "recording the last webhook attempts failed");
        }
        if let Err(e) = self.store.release_leases(&abandoned).await {
            tracing::warn!(error = %e, "handing back webhook leases failed; they expire by themselves");
        }
    }

    /// Publishes how far behind delivery is, and warns about endpoints whose oldest due
    /// delivery has waited longer than the warning threshold.
    async fn report_lag(&self, report: &mut LagReport) {
        let lag = match self.store.delivery_lag().await {
            Ok(lag) => lag,
            Err(e) => {
                tracing::warn!(error = %e, "measuring the webhook backlog failed");
                return;
            }
        };
        let reading = report.observe(&lag, now_ms(), Instant::now(), self.settings.lag_warning);
        for l in &lag {
            metrics::gauge!("webhook_backlog", "endpoint" => l.endpoint_id.to_string())
                .set(l.due as f64);
        }
        for late in &reading.late {
            tracing::warn!(
                endpoint = %late.lag.endpoint_id,
                org = %late.lag.org,
                due = late.lag.due,
                waited_s = late.waited.as_secs(),
                "webhook deliveries are late"
            );
        }
        // Endpoints that caught up read zero instead of their last backlog.
        for id in &reading.caught_up {
            metrics::gauge!("webhook_backlog", "endpoint" => id.to_string()).set(0.0);
        }
        metrics::gauge!("webhook_oldest_due_seconds").set(reading.oldest.as_secs_f64());
        metrics::gauge!("webhook_endpoints_behind").set(lag.len() as f64);
    }
}

/// What one lag report found, beyond the backlogs themselves.
#[derive(Debug)]
struct LagReading<'a> {
    /// How long the longest-waiting due delivery of any endpoint has waited.
    oldest: Duration,
    /// Endpoints late enough to warn about now.
    late: Vec<Late<'a>>,
    /// Endpoints behind at the last report and not any more.
    caught_up: Vec<EndpointId>,
}

#[derive(Debug)]
struct Late<'a> {
    lag: &'a Lag,
    waited: Duration,
}

impl LagReport {
    /// Reads one measurement of the backlog at `now` (`now_ms` on the store's clock): which
    /// endpoints to warn about (late beyond `lag_warning`, and not warned about within
    /// `WARN_EVERY`), and which caught up since the last one. An endpoint that caught up is
    /// forgotten, so it is warned about again as soon as it falls behind again.
    fn observe<'a>(
        &mut self,
        lag: &'a [Lag],
        now_ms: i64,
        now: Instant,
        lag_warning: Duration,
    ) -> LagReading<'a> {
        let mut oldest = Duration::ZERO;
        let mut late = Vec::new();
        let behind: HashSet<EndpointId> = lag.iter().map(|l| l.endpoint_id.clone()).collect();
        for l in lag {
            let waited =
                Duration::from_millis(u64::try_from(now_ms - l.oldest_due_at).unwrap_or(0));
            oldest = oldest.max(waited);
            let recently = self
                .warned
                .get(&l.endpoint_id)
                .is_some_and(|at| now.saturating_duration_since(*at) < WARN_EVERY);
            if waited > lag_warning && !recently {
                self.warned.insert(l.endpoint_id.clone(), now);
                late.push(Late { lag: l, waited });
            }
        }
        let caught_up = self.behind.difference(&behind).cloned().collect();
        self.warned.retain(|id, _| behind.contains(id));
        self.behind = behind;
        LagReading {
            oldest,
            late,
            caught_up,
        }
    }
}

/// What the lag report remembers between runs.
#[derive(Default)]
struct LagReport {
    /// Endpoints with a backlog at the last report.
    behind: HashSet<EndpointId>,
    /// When each late endpoint was last warned about.
    warned: HashMap<EndpointId, Instant>,
}

/// What the loop should do on its next turn.
#[derive(Debug, Clone, Copy)]
struct Wanted {
    /// Fan out events not fanned out when written (a safety net, on the periodic sweep).
    fan_out: bool,
    claim: bool,
    sweep: bool,
    /// The last claim left due deliveries behind for want of slots.
    more_due: bool,
}

impl Wanted {
    fn everything() -> Self {
        Self {
            fan_out: true,
            claim: true,
            sweep: true,
            more_due: false,
        }
    }
}

struct Timers {
    poll_at: Instant,
    /// When the earliest retry falls due (sooner than the poll, to keep `Retry-After` exact).
    due_at: Option<Instant>,
    /// When to claim again after another node held an endpoint this node wanted.
    retry_at: Option<Instant>,
    report_at: Instant,
    report_every: Duration,
}

impl Timers {
    fn new(report_every: Duration, poll: Duration) -> Self {
        let now = Instant::now();
        Self {
            poll_at: now + poll,
            due_at: None,
            retry_at: None,
            report_at: now + report_every,
            report_every,
        }
    }

    /// Sets the retry timer from the round's look at the next due attempt (`at`, in the
    /// store's wall-clock milliseconds), read at `now_ms` and `now`.
    fn next_due(&mut self, next: NextDue, now_ms: i64, now: Instant) {
        match next {
            NextDue::NotLooked => {}
            NextDue::Nothing => self.due_at = None,
            NextDue::At(at) => {
                let wait = u64::try_from(at - now_ms).unwrap_or(0);
                self.due_at = Some(now + Duration::from_millis(wait));
            }
        }
    }

    fn wake_at(&self) -> Instant {
        [self.due_at, self.retry_at]
            .into_iter()
            .flatten()
            .fold(self.poll_at, Instant::min)
    }
}

/// The attempts running now, and those finished but not yet recorded.
#[derive(Default)]
struct Flight {
    tasks: JoinSet<Finished>,
    ids: HashMap<TaskId, DeliveryId>,
    finished: Vec<Finished>,
}

impl Flight {
    fn len(&self) -> usize {
        self.tasks.len()
    }

    fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    fn spawn(
        &mut self,
        delivery: DeliveryId,
        attempt: impl Future<Output = Finished> + Send + 'static,
    ) {
        let handle = self.tasks.spawn(attempt);
        self.ids.insert(handle.id(), delivery);
    }

    async fn join_next(&mut self) -> Option<Result<(TaskId, Finished), tokio::task::JoinError>> {
        self.tasks.join_next_with_id().await
    }

    /// After one attempt finished, waits a moment for the ones landing right behind it, so they
    /// are recorded (and their slots claimed again) in one round instead of one round each.
    async fn gather(&mut self) {
        let until = tokio::time::Instant::now() + GATHER;
        while !self.is_empty() {
            let next = (tokio::time::Instant::now() + GATHER_GAP).min(until);
            match tokio::time::timeout_at(next, self.join_next()).await {
                Ok(Some(done)) => self.finish(done),
                Ok(None) | Err(_) => break,
            }
        }
    }

    fn collect_finished(&mut self) {
        while let Some(done) = self.tasks.try_join_next_with_id() {
            self.finish(done);
        }
    }

    fn finish(&mut self, done: Result<(TaskId, Finished), tokio::task::JoinError>) {
        match done {
            Ok((id, finished)) => {
                self.ids.remove(&id);
                self.finished.push(finished);
            }
            Err(e) => {
                // The lease runs out and the delivery is attempted again.
                self.ids.remove(&e.id());
                tracing::error!(error = %e, "a webhook attempt task failed");
            }
        }
    }

    /// Stops whatever is still running; returns their deliveries.
    fn abandon(&mut self) -> Vec<DeliveryId> {
        self.tasks.abort_all();
        self.ids.drain().map(|(_, id)| id).collect()
    }
}

fn count_attempts(finished: &[Finished]) {
    for f in finished {
        metrics::counter!("webhook_attempts_total", "outcome" => f.verdict.id()).increment(1);
        metrics::histogram!("webhook_attempt_duration_seconds")
            .record(f.attempt.duration_ms as f64 / 1000.0);
    }
}

/// One attempt of one delivery, timed, with its verdict.
async fn attempt(
    client: reqwest::Client,
    settings: Arc<DispatchSettings>,
    delivery: DueDelivery,
) -> Finished {
    let started = Instant::now();
    let attempted_at = now_ms();
    let message = Message {
        id: delivery.id.as_str(),
        body: &delivery.body,
        url: &delivery.url,
        secret: &delivery.secret,
        previous_secret: delivery.previous_secret.as_deref(),
    };
    let outcome = send(&client, &settings.targets, message, attempted_at / 1000).await;
    let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let verdict = settings
        .retry
        .verdict(&outcome, delivery.attempts + 1, now_ms());
    Finished {
        attempt: Attempt {
            attempted_at,
            status_code: outcome.status(),
            duration_ms,
            error_class: outcome.error_class(),
            response_excerpt: outcome.excerpt().to_owned(),
        },
        verdict,
        delivery,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigLayer;

    fn poll_of(database_url: &str, wakeups: Option<bool>, interval: Option<&str>) -> Duration {
        let config = Config::resolve(ConfigLayer {
            database_url: Some(database_url.into()),
            cross_node_wakeups: wakeups,
            webhook_poll_interval: interval.map(str::to_owned),
            ..ConfigLayer::default()
        })
        .expect("a valid configuration");
        DispatchSettings::from_config(&config).poll
    }

    /// The long poll is safe only where `LISTEN/NOTIFY` brings other nodes' work: PostgreSQL
    /// with wake-ups on. Without them a node would notice another node's events seconds late.
    #[test]
    fn the_poll_is_long_only_where_other_nodes_wake_the_dispatcher() {
        let postgres = "postgres://127.0.0.1/leadtrail";
        assert_eq!(poll_of("sqlite://leadtrail.db", None, None), POLL_SQLITE);
        assert_eq!(poll_of(postgres, None, None), POLL_POSTGRES);
        assert_eq!(poll_of(postgres, Some(true), None), POLL_POSTGRES);
        assert_eq!(poll_of(postgres, Some(false), None), POLL_SQLITE);
        let chosen = Duration::from_millis(250);
        assert_eq!(poll_of(postgres, None, Some("250ms")), chosen);
        assert_eq!(
            poll_of("sqlite://leadtrail.db", None, Some("250ms")),
            chosen
        );
    }

    const WARNING: Duration = Duration::from_secs(30);
    const NOW_MS: i64 = 1_000_000_000;

    fn behind(endpoint: &EndpointId, waited_ms: i64) -> Lag {
        Lag {
            endpoint_id: endpoint.clone(),
            org: crate::domain::ids::OrgId::generate(),
            due: 3,
            oldest_due_at: NOW_MS - waited_ms,
        }
    }

    fn late_ones(reading: &LagReading<'_>) -> Vec<(EndpointId, Duration)> {
        reading
            .late
            .iter()
            .map(|l| (l.lag.endpoint_id.clone(), l.waited))
            .collect()
    }

    /// Only an endpoint waiting longer than the threshold is late; the oldest wait is the
    /// longest of all, and a delivery due in the future (clock skew between nodes) counts as
    /// not waiting.
    #[test]
    fn an_endpoint_is_late_once_its_oldest_due_delivery_waited_past_the_threshold() {
        let (a, b, c) = (
            EndpointId::generate(),
            EndpointId::generate(),
            EndpointId::generate(),
        );
        let lag = [behind(&a, 30_001), behind(&b, 30_000), behind(&c, -5_000)];
        let mut report = LagReport::default();
        let reading = report.observe(&lag, NOW_MS, Instant::now(), WARNING);
        assert_eq!(
            late_ones(&reading),
            vec![(a, Duration::from_millis(30_001))]
        );
        assert_eq!(reading.oldest, Duration::from_millis(30_001));
        assert!(reading.caught_up.is_empty());

        let reading = report.observe(&lag[1..], NOW_MS, Instant::now(), WARNING);
        assert_eq!(reading.oldest, Duration::from_millis(30_000));
        assert!(
            report
                .observe(&[], NOW_MS, Instant::now(), WARNING)
                .oldest
                .is_zero()
        );
    }

    /// A late endpoint is warned about once a minute, not on every report.
    #[test]
    fn a_late_endpoint_is_warned_about_at_most_once_a_minute() {
        let a = EndpointId::generate();
        let lag = [behind(&a, 60_000)];
        let mut report = LagReport::default();
        let start = Instant::now();
        let at = |after: Duration| start + after;
        let warned = |report: &mut LagReport, after| {
            late_ones(&report.observe(&lag, NOW_MS, at(after), WARNING)).len()
        };
        assert_eq!(warned(&mut report, Duration::ZERO), 1);
        assert_eq!(warned(&mut report, Duration::from_secs(5)), 0);
        assert_eq!(
            warned(&mut report, WARN_EVERY - Duration::from_millis(1)),
            0
        );
        assert_eq!(warned(&mut report, WARN_EVERY), 1, "a minute later");
        assert_eq!(warned(&mut report, WARN_EVERY + Duration::from_secs(1)), 0);
    }

    /// An endpoint that caught up is reported once (its backlog gauge goes to zero) and
    /// forgotten: falling behind again, it is warned about at once.
    #[test]
    fn an_endpoint_that_caught_up_reads_zero_once_and_is_warned_about_afresh() {
        let (a, b) = (EndpointId::generate(), EndpointId::generate());
        let start = Instant::now();
        let mut report = LagReport::default();
        let both = [behind(&a, 45_000), behind(&b, 45_000)];
        assert_eq!(
            late_ones(&report.observe(&both, NOW_MS, start, WARNING)).len(),
            2
        );

        let only_b = [behind(&b, 46_000)];
        let reading = report.observe(&only_b, NOW_MS, start + Duration::from_secs(1), WARNING);
        assert_eq!(reading.caught_up, vec![a.clone()]);
        assert!(reading.late.is_empty(), "b was warned about a second ago");
        let reading = report.observe(&only_b, NOW_MS, start + Duration::from_secs(2), WARNING);
        assert!(reading.caught_up.is_empty(), "a read zero already");

        let again = [behind(&a, 31_000), behind(&b, 47_000)];
        let reading = report.observe(&again, NOW_MS, start + Duration::from_secs(3), WARNING);
        assert_eq!(
            late_ones(&reading),
            vec![(a, Duration::from_millis(31_000))]
        );
    }

    /// The retry timer is set for the next due attempt, measured from the round's own clock
    /// readings; a time already past is due at once, and "nothing" or "not looked" are kept
    /// apart.
    #[test]
    fn the_retry_timer_is_set_for_the_next_due_attempt() {
        let now = Instant::now();
        let mut timers = Timers::new(Duration::from_secs(10), Duration::from_secs(3600));
        timers.next_due(NextDue::At(NOW_MS + 1_500), NOW_MS, now);
        assert_eq!(timers.due_at, Some(now + Duration::from_millis(1_500)));
        assert_eq!(timers.wake_at(), now + Duration::from_millis(1_500));
        timers.next_due(NextDue::NotLooked, NOW_MS, now);
        assert_eq!(timers.due_at, Some(now + Duration::from_millis(1_500)));
        timers.next_due(NextDue::At(NOW_MS - 5_000), NOW_MS, now);
        assert_eq!(timers.due_at, Some(now), "overdue: at once");
        timers.next_due(NextDue::Nothing, NOW_MS, now);
        assert_eq!(timers.due_at, None);
        assert_eq!(timers.wake_at(), timers.poll_at, "only the poll is left");
    }

    fn finished_after(verdict: Verdict, duration_ms: i64) -> Finished {
        Finished {
            delivery: DueDelivery {
                id: DeliveryId::generate(),
                endpoint_id: EndpointId::generate(),
                event_type: "lead.address_preview".into(),
                body: "{}".into(),
                attempts: 0,
                lead_id: None,
                sequence: None,
                stream: String::new(),
                url: "https://hooks.example.com/in".into(),
                secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
                previous_secret: None,
                endpoint_failing: false,
                lease: 0,
            },
            attempt: Attempt {
                attempted_at: NOW_MS,
                status_code: Some(200),
                duration_ms,
                error_class: None,
                response_excerpt: String::new(),
            },
            verdict,
        }
    }

    /// `/metrics` counts each recorded attempt by its verdict and times it in seconds. (A
    /// recorder of its own: the service's is global, shared by every test in the process.)
    #[test]
    fn each_recorded_attempt_is_counted_by_verdict_and_timed_in_seconds() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let finished = [
            finished_after(Verdict::Delivered, 250),
            finished_after(Verdict::Delivered, 1_500),
            finished_after(Verdict::RetryAt(NOW_MS + 60_000), 4),
        ];
        metrics::with_local_recorder(&recorder, || count_attempts(&finished));
        let text = handle.render();
        let value = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
                .and_then(|v| v.parse::<f64>().ok())
        };
        assert_eq!(
            value("webhook_attempts_total{outcome=\"delivered\"}"),
            Some(2.0),
            "{text}"
        );
        assert_eq!(
            value("webhook_attempts_total{outcome=\"retry\"}"),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            value("webhook_attempt_duration_seconds_count"),
            Some(3.0),
            "{text}"
        );
        assert_eq!(
            value("webhook_attempt_duration_seconds_sum"),
            Some(1.754),
            "{text}"
        );
    }
}
