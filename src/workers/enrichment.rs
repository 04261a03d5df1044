//! Enrichment after the personal-info step: the built-in estimator, or an external HTTP
//! enricher within a deadline (falling back to the built-in result). Jobs are leased, so a lead
//! whose enrichment was interrupted by a crash or restart is enriched again once the lease ends.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{Notify, watch};

use crate::domain::estimate::{Enrichment, enrich};
use crate::store::{EnrichmentJob, Store, StoreError};

/// How long a claimed job stays with one worker before another may take it over.
pub const LEASE: Duration = Duration::from_secs(60);
const BATCH: i64 = 32;
/// Pending work is also looked for on this interval, for leads written by other nodes.
const POLL: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct ExternalEnricher {
    pub url: String,
    pub deadline: Duration,
    pub client: reqwest::Client,
}

#[derive(Clone)]
pub struct EnrichmentWorker {
    store: Store,
    external: Option<ExternalEnricher>,
    lease: Duration,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    Enriched(usize),
    Idle,
}

#[derive(Serialize)]
struct ExternalRequest<'a> {
    lead_id: &'a str,
    project: &'a crate::domain::lead::ProjectDetails,
    home_sqft: Option<u32>,
    owner_occupied: bool,
    /// The built-in result, for an enricher that only refines it.
    built_in: &'a Enrichment,
}

impl EnrichmentWorker {
    pub fn new(store: Store, external: Option<ExternalEnricher>) -> Self {
        Self {
            store,
            external,
            lease: LEASE,
        }
    }

    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Claims and enriches one batch of waiting leads.
    pub async fn run_once(&self) -> Result<Progress, StoreError> {
        let lease_ms = i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX);
        let jobs = self.store.claim_enrichment(BATCH, lease_ms).await?;
        if jobs.is_empty() {
            return Ok(Progress::Idle);
        }
        let mut done = 0;
        for job in &jobs {
            let enrichment = self.enrich(job).await;
            if self.store.write_enrichment(job, &enrichment).await? {
                done += 1;
                metrics::counter!("leads_enriched_total", "provider" => enrichment.provider.clone())
                    .increment(1);
            }
        }
        Ok(Progress::Enriched(done))
    }

    async fn enrich(&self, job: &EnrichmentJob) -> Enrichment {
        let built_in = enrich(&job.project, &job.personal);
        let Some(external) = &self.external else {
            return built_in;
        };
        let request = ExternalRequest {
            lead_id: &job.lead_id,
            project: &job.project,
            home_sqft: job.personal.home_sqft,
            owner_occupied: job.personal.owner_occupied,
            built_in: &built_in,
        };
        let call = async {
            let response = external
                .client
                .post(&external.url)
                .json(&request)
                .send()
                .await?;
            response.error_for_status()?.json::<Enrichment>().await
        };
        match tokio::time::timeout(external.deadline, call).await {
            Ok(Ok(mut result)) if result.score <= 100 => {
                result.provider = "external".to_owned();
                result
            }
            Ok(Ok(_)) => {
                tracing::warn!(lead = %job.lead_id, "external enricher answered a score over 100; using the built-in result");
                built_in
            }
            Ok(Err(e)) => {
                tracing::warn!(lead = %job.lead_id, error = %e, "external enricher failed; using the built-in result");
                built_in
            }
            Err(_) => {
                tracing::warn!(lead = %job.lead_id, "external enricher missed its deadline; using the built-in result");
                built_in
            }
        }
    }

    /// Runs until `stop` turns true, finishing the batch in hand (a safe point) first.
    pub async fn run(self, wake: Arc<Notify>, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                break;
            }
            match self.run_once().await {
                Ok(Progress::Enriched(n)) => {
                    // A full batch: more may be waiting, and idle nodes can take some.
                    if i64::try_from(n).unwrap_or(i64::MAX) >= BATCH
                        && let Err(e) = self.store.announce_enrichment().await
                    {
                        tracing::debug!(error = %e, "asking other nodes for help failed; they poll");
                    }
                    continue;
                }
                Ok(Progress::Idle) => {}
                Err(e) => tracing::error!(error = %e, "enrichment batch failed"),
            }
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(POLL) => {}
                _ = stop.changed() => {}
            }
        }
    }
}
