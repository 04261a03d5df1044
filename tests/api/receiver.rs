//! A real HTTP receiver on loopback that records what it is sent and answers as told.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Received {
    /// When the request arrived (before any delay the receiver adds).
    pub at: std::time::Instant,
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: String,
    pub json: Value,
    pub answered: u16,
}

/// Decides the status for each request: given the event type and how many times this
/// `webhook-id` was seen before.
pub type Policy = Arc<dyn Fn(&str, usize) -> u16 + Send + Sync>;

#[derive(Clone)]
struct Shared {
    log: Arc<Mutex<Vec<Received>>>,
    /// Requests that reached `/elsewhere`, where the 302 answers point.
    redirected: Arc<std::sync::atomic::AtomicUsize>,
    policy: Policy,
    /// How long to wait before answering: a slow endpoint, or (very long) one that hangs.
    delay: std::time::Duration,
}

pub struct Receiver {
    pub url: String,
    log: Arc<Mutex<Vec<Received>>>,
    redirected: Arc<std::sync::atomic::AtomicUsize>,
}

impl Receiver {
    pub async fn start(policy: Policy) -> Receiver {
        Self::start_with_delay(policy, std::time::Duration::ZERO).await
    }

    /// A receiver that takes `delay` to answer each request (and answers 200).
    pub async fn slow(delay: std::time::Duration) -> Receiver {
        Self::start_with_delay(Arc::new(|_, _| 200), delay).await
    }

    /// A receiver that accepts requests and never answers them.
    pub async fn hanging() -> Receiver {
        Self::slow(std::time::Duration::from_secs(3600)).await
    }

    pub async fn start_with_delay(policy: Policy, delay: std::time::Duration) -> Receiver {
        let log = Arc::new(Mutex::new(Vec::new()));
        let redirected = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let shared = Shared {
            log: log.clone(),
            redirected: redirected.clone(),
            policy,
            delay,
        };
        let app = axum::Router::new()
            .route("/hook", post(receive))
            .route("/elsewhere", post(elsewhere))
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver {
            url,
            log,
            redirected,
        }
    }

    /// How many requests followed a redirect to `/elsewhere`.
    pub fn redirected(&self) -> usize {
        self.redirected.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub async fn ok() -> Receiver {
        Self::start(Arc::new(|_, _| 200)).await
    }

    pub fn all(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }

    /// Successful deliveries only, in arrival order.
    pub fn delivered(&self) -> Vec<Received> {
        self.all()
            .into_iter()
            .filter(|r| (200..300).contains(&r.answered))
            .collect()
    }

    /// Waits until `n` requests arrived, whatever they were answered.
    pub async fn wait_for_attempts(&self, n: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while self.all().len() < n {
            assert!(
                std::time::Instant::now() < deadline,
                "only {} of {n} attempts arrived",
                self.all().len()
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    pub async fn wait_for(&self, what: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let seen = self.delivered();
            if done(&seen) {
                return seen;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "receiver never got {what}: {:?}",
                seen.iter()
                    .map(|r| r.json["type"].clone())
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

async fn elsewhere(State(shared): State<Shared>) -> StatusCode {
    shared
        .redirected
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    StatusCode::OK
}

async fn receive(State(shared): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let json: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let id = header("webhook-id");
    let event_type = json["type"].as_str().unwrap_or_default().to_owned();
    let status = {
        let mut log = shared.log.lock().unwrap();
        let seen = log.iter().filter(|r| r.id == id).count();
        let status = (shared.policy)(&event_type, seen);
        log.push(Received {
            at: std::time::Instant::now(),
            id,
            timestamp: header("webhook-timestamp"),
            signature: header("webhook-signature"),
            body,
            json,
            answered: status,
        });
        status
    };
    if !shared.delay.is_zero() {
        tokio::time::sleep(shared.delay).await;
    }
    if status == 302 {
        return (StatusCode::FOUND, [("location", "/elsewhere")]).into_response();
    }
    if status == 429 {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "2")],
            "slow down",
        )
            .into_response();
    }
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        format!("answered {status}"),
    )
        .into_response()
}
