//! `TestApp`: the real service on a real database, on 127.0.0.1, driven over HTTP.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::common::TestDb;
use leadtrail::config::Config;
use leadtrail::server;

pub const ADMIN_TOKEN: &str = "test-operator-token-0123456789abcdef";
/// What a Prometheus scraper sends for `/metrics`.
pub const METRICS_TOKEN: &str = "test-metrics-token-0123456789abcdef";

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    db: TestDb,
}

/// An organization as the tests use it: its API key and ids.
pub struct Tenant<'a> {
    pub app: &'a TestApp,
    pub key: String,
    pub id: String,
    pub body: Value,
}

impl TestApp {
    pub async fn spawn(db: TestDb) -> TestApp {
        Self::spawn_with(db, |_| {}).await
    }

    pub async fn spawn_with(db: TestDb, adjust: impl FnOnce(&mut Config)) -> TestApp {
        Self::start(db, adjust, false).await
    }

    /// The service as `serve --demo` starts it: the demo organization seeded first.
    #[allow(dead_code, reason = "used by tests/browser, which shares this file")]
    pub async fn spawn_demo(db: TestDb) -> TestApp {
        Self::start(db, |_| {}, true).await
    }

    async fn start(db: TestDb, adjust: impl FnOnce(&mut Config), demo: bool) -> TestApp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let mut config = Config::with_database(db.url()).expect("config");
        config.admin_token = Some(ADMIN_TOKEN.to_owned());
        config.metrics_token = Some(METRICS_TOKEN.to_owned());
        config.public_base_url = base.clone();
        adjust(&mut config);
        let service = server::prepare(config).await.expect("prepare");
        if demo {
            leadtrail::demo::seed(&service.state)
                .await
                .expect("demo seed");
        }
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(server::serve(service, listener, async move {
            let _ = rx.await;
        }));
        TestApp {
            base,
            client: reqwest::Client::new(),
            shutdown: Some(tx),
            server: Some(server),
            db,
        }
    }

    /// Sends a request and returns the status and the body parsed as JSON (`Null` if not JSON).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        let text = res.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Sends raw bytes as the body, for malformed-input tests.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        content_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body);
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        let text = res.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Shuts the service down gracefully and waits until it has stopped.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("clean shutdown");
        }
    }

    pub fn database_url(&self) -> &str {
        self.db.url()
    }

    pub async fn create_org(&self, tier: &str) -> Tenant<'_> {
        let body = json!({
            "name": "Acme Roofing",
            "tier": tier,
            "website_url": "https://acme-roofing.example/",
            "brand_color": "#1A73E8",
        });
        let (status, body) = self
            .call(
                Method::POST,
                "/api/v1/organizations",
                Some(ADMIN_TOKEN),
                Some(&body),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        Tenant {
            app: self,
            key: body["api_key"].as_str().expect("api_key").to_owned(),
            id: body["id"].as_str().expect("id").to_owned(),
            body,
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl Tenant<'_> {
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.app
            .call(Method::GET, path, Some(&self.key), None)
            .await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.app
            .call(Method::POST, path, Some(&self.key), Some(&body))
            .await
    }

    pub async fn post_empty(&self, path: &str) -> (StatusCode, Value) {
        self.app
            .call(Method::POST, path, Some(&self.key), None)
            .await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.app
            .call(Method::PATCH, path, Some(&self.key), Some(&body))
            .await
    }

    pub async fn create_source(
        &self,
        widget: &str,
        name: &str,
        category: &str,
    ) -> (StatusCode, Value) {
        self.post(
            &format!("/api/v1/widgets/{widget}/sources"),
            json!({"name": name, "channel_category": category}),
        )
        .await
    }
}

/// Asserts the spec's error shape and returns the error code.
pub fn error_code(body: &Value) -> &str {
    let code = body["error"]["code"].as_str();
    assert!(
        body["error"]["message"].is_string(),
        "not the error shape: {body}"
    );
    code.unwrap_or_else(|| panic!("not the error shape: {body}"))
}
