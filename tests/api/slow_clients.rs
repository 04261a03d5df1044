//! Slow and idle clients cannot hold the server: deadlines for a request's head and for a
//! whole request, and a cap on connections. Raw sockets on loopback; every wait is bounded.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{Backend, TestDb};
use crate::helpers::TestApp;

/// Far longer than any deadline under test: reaching it means the server never gave up.
const PATIENCE: Duration = Duration::from_secs(30);

async fn app(adjust: impl FnOnce(&mut leadtrail::config::Config)) -> Option<TestApp> {
    let db = TestDb::new(Backend::Sqlite).await?;
    Some(TestApp::spawn_with(db, adjust).await)
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Reads until the server closes the connection; what it sent, or `None` if it never did.
async fn read_until_closed(stream: &mut TcpStream) -> Option<String> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut received)).await;
    match read {
        Ok(_) => Some(String::from_utf8_lossy(&received).into_owned()),
        Err(_) => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_with_half_sent_headers_is_closed() {
    let Some(app) = app(|c| c.header_read_timeout = Duration::from_secs(1)).await else {
        return;
    };
    let mut stream = connect(&app).await;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        .await
        .unwrap();
    let started = Instant::now();
    let answer = read_until_closed(&mut stream).await;
    assert!(answer.is_some(), "still open after {:?}", started.elapsed());
    // The server may say 408 before it hangs up; it must not have served the request.
    assert!(!answer.unwrap_or_default().contains("200 OK"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_sent_too_slowly_gets_a_408_in_the_error_shape() {
    let Some(app) = app(|c| c.request_timeout = Duration::from_secs(2)).await else {
        return;
    };
    let mut stream = connect(&app).await;
    stream
        .write_all(
            b"POST /c/v1/leads HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
              Content-Length: 400\r\n\r\n{\"public_key\": ",
        )
        .await
        .unwrap();
    let mut received = vec![0u8; 4096];
    let n = tokio::time::timeout(PATIENCE, stream.read(&mut received))
        .await
        .expect("no answer to a stalled body")
        .unwrap();
    let answer = String::from_utf8_lossy(&received[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let Some(app) = app(|c| {
        c.max_connections = 2;
        c.header_read_timeout = Duration::from_secs(120);
    })
    .await
    else {
        return;
    };
    let client = || {
        reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(1))
            .build()
            .unwrap()
    };
    let healthz = format!("{}/healthz", app.base);
    assert!(client().get(&healthz).send().await.is_ok());
    // Two idle connections take both places: a third is not served.
    let first = connect(&app).await;
    let _second = connect(&app).await;
    let refused = client().get(&healthz).send().await;
    assert!(refused.is_err(), "served beyond the cap: {refused:?}");
    // One closes: the next client is served (the kernel held it in the accept queue).
    drop(first);
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Ok(res) = client().get(&healthz).send().await {
            assert!(res.status().is_success());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never served after a place came free"
        );
    }
}
