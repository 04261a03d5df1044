//! Running the service: open the store, migrate, start the workers, serve HTTP until a
//! shutdown signal, then stop in order: no new requests, in-flight requests finish, queued
//! capture writes and buffered visits are written, enrichment stops at a batch boundary.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::http::listen::ConnectionLimits;
use crate::http::{self, AppState};
use crate::store::{Backend, Store};
use crate::webhooks::dispatcher::{DispatchSettings, Dispatcher};
use crate::workers::capture_writer::CaptureWriter;
use crate::workers::credit_recount::CreditRecount;
use crate::workers::enrichment::{EnrichmentWorker, ExternalEnricher};
use crate::workers::rollup_fold::RollupFold;
use crate::workers::visit_buffer::VisitBuffer;
use crate::workers::wakeups;

/// A prepared service: its state (for seeding and tests) and its background tasks.
pub struct Service {
    pub state: AppState,
    tasks: Tasks,
}

struct Tasks {
    writer: std::thread::JoinHandle<()>,
    visits: JoinHandle<()>,
    enrichment: JoinHandle<()>,
    /// Recounts multi-touch credit after a settings change.
    recount: JoinHandle<()>,
    /// Folds report-rollup changes into the rollups (PostgreSQL only).
    fold: Option<JoinHandle<()>>,
    dispatcher: JoinHandle<()>,
    /// Hears other nodes' work (PostgreSQL only).
    wakeups: Option<JoinHandle<()>>,
    /// Tells enrichment, the recount, the fold and the dispatcher to stop after the round in hand.
    stop_workers: watch::Sender<bool>,
    /// Forgets idle rate-limit keys and old idempotency keys, refreshes planner statistics;
    /// holds no queue, so it is simply aborted at the end.
    janitor: JoinHandle<()>,
}

/// Connects and migrates the store, then starts the workers.
pub async fn prepare(config: Config) -> anyhow::Result<Service> {
    let wake_enrichment = Arc::new(Notify::new());
    // Every store of this node wakes the dispatcher after a commit that made deliveries due.
    let wake_dispatch = Arc::new(Notify::new());
    // Migrations run without the serving limits: an index over a large table may take longer
    // than any request should.
    let migrator = Store::connect(&config.database_url).await?;
    let migrated = migrator.migrate().await;
    migrator.close().await;
    migrated?;
    let store = Store::connect_with(&config.database_url, config.database)
        .await?
        .waking(wake_dispatch.clone());
    store.take_back_leases_after_restart().await?;
    if let Some((statement, lock)) = store.postgres_limits().await? {
        tracing::info!(%statement, %lock, "PostgreSQL statement_timeout and lock_timeout");
    }
    for d in store.sqlite_durability().await? {
        tracing::info!(
            connection = d.connection,
            journal_mode = %d.journal_mode,
            synchronous = d.synchronous,
            "SQLite durability (synchronous 2 = FULL: a commit that returned is on disk)"
        );
    }
    let (capture, writer) = CaptureWriter::start(
        &config.database_url,
        config.database,
        wake_enrichment.clone(),
        wake_dispatch.clone(),
    )
    .await?;
    let (visit_buffer, visits) = VisitBuffer::start(store.clone());
    let external = match &config.enricher_url {
        Some(url) => Some(ExternalEnricher {
            url: url.clone(),
            deadline: config.enricher_timeout,
            client: reqwest::Client::builder()
                .timeout(config.enricher_timeout)
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
        }),
        None => None,
    };
    let (stop_workers, stop) = watch::channel(false);
    // Other nodes' work, heard of at once (PostgreSQL): one listening connection per node.
    let wakeups = (store.backend() == Backend::Postgres && config.cross_node_wakeups).then(|| {
        let wake = wakeups::Wake {
            dispatcher: wake_dispatch.clone(),
            enrichment: wake_enrichment.clone(),
        };
        tokio::spawn(wakeups::listen(
            config.database_url.clone(),
            wake,
            stop.clone(),
        ))
    });
    let enrichment = tokio::spawn(
        EnrichmentWorker::new(store.clone(), external).run(wake_enrichment, stop.clone()),
    );
    let recount = tokio::spawn(CreditRecount::new(store.clone()).run(stop.clone()));
    let fold = (store.backend() == Backend::Postgres)
        .then(|| tokio::spawn(RollupFold::new(store.clone()).run(stop.clone())));
    let dispatcher = Dispatcher::new(store.clone(), DispatchSettings::from_config(&config))?;
    let dispatcher = tokio::spawn(dispatcher.run(wake_dispatch, stop));
    let state = AppState::new(store, Arc::new(config), capture, visit_buffer);
    let (limits, login_limits, token_failures, manual_sends, planner) = (
        state.limits.clone(),
        state.login_limits.clone(),
        state.token_failures.clone(),
        state.manual_sends.clone(),
        state.store.clone(),
    );
    let janitor = tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
        for minute in 0u64.. {
            every.tick().await;
            limits.retain_recent();
            login_limits.forget_old(std::time::Instant::now());
            token_failures.forget_old(std::time::Instant::now());
            manual_sends.retain_recent();
            // Hourly, and once shortly after start: planner statistics for the report queries,
            // idempotency keys past their day, expired sessions and invite links, raw request
            // data past each organization's retention.
            if minute % 60 == 1 {
                if let Err(e) = planner.optimize().await {
                    tracing::warn!(error = %e, "refreshing planner statistics failed");
                }
                if let Err(e) = planner
                    .forget_old_idempotency_keys(crate::store::now_ms())
                    .await
                {
                    tracing::warn!(error = %e, "forgetting old idempotency keys failed");
                }
                if let Err(e) = planner.forget_expired_sessions().await {
                    tracing::warn!(error = %e, "forgetting expired sessions failed");
                }
                match planner.drop_expired_raw_data().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(rows = n, "raw request data past retention dropped"),
                    Err(e) => tracing::warn!(error = %e, "dropping raw data past retention failed"),
                }
            }
        }
    });
    Ok(Service {
        state,
        tasks: Tasks {
            writer,
            visits,
            enrichment,
            recount,
            fold,
            dispatcher,
            wakeups,
            stop_workers,
            janitor,
        },
    })
}

/// Serves until `shutdown` resolves, then stops the workers at safe points.
pub async fn serve(
    service: Service,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let Service { state, tasks } = service;
    let store = state.store.clone();
    let limits = ConnectionLimits {
        header_read_timeout: state.config.header_read_timeout,
        max_connections: state.config.max_connections,
    };
    let app = http::router(state);
    http::listen::serve(listener, app, limits, shutdown).await;
    // The router, and with it every queue sender, is gone: the writers drain and end.
    let _ = tokio::task::spawn_blocking(move || tasks.writer.join()).await;
    let _ = tasks.visits.await;
    let _ = tasks.stop_workers.send(true);
    let _ = tasks.enrichment.await;
    let _ = tasks.recount.await;
    if let Some(fold) = tasks.fold {
        let _ = fold.await;
    }
    let _ = tasks.dispatcher.await;
    if let Some(wakeups) = tasks.wakeups {
        let _ = wakeups.await;
    }
    tasks.janitor.abort();
    store.close().await;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}
