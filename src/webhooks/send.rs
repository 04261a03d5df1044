//! One delivery attempt over the network: sign, post, read at most a few KiB of the answer.

use std::time::Duration;

use reqwest::Client;

use super::policy::{FailureClass, SendOutcome, parse_retry_after};
use super::signing::{Secret, signature_header};
use super::target::{TargetPolicy, check_url};

/// How much of a response body is read and kept for the log. The rest is never read: the
/// connection is dropped instead, so a hostile endpoint cannot make us buffer gigabytes.
pub const EXCERPT_BYTES: usize = 4096;

/// What an attempt needs: the message and where it goes, as claimed from the store.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub id: &'a str,
    pub body: &'a str,
    pub url: &'a str,
    pub secret: &'a str,
    pub previous_secret: Option<&'a str>,
}

/// Sends one message. The URL is vetted again, since DNS and settings may have changed since
/// the endpoint was saved.
pub async fn send(
    client: &Client,
    policy: &TargetPolicy,
    message: Message<'_>,
    timestamp: i64,
) -> SendOutcome {
    let Ok(url) = check_url(message.url, policy) else {
        return SendOutcome::Failed(FailureClass::TargetRefused);
    };
    let Ok(secret) = Secret::parse(message.secret) else {
        return SendOutcome::Failed(FailureClass::BadSecret);
    };
    let previous = message.previous_secret.and_then(|p| Secret::parse(p).ok());
    let mut secrets = vec![&secret];
    secrets.extend(previous.as_ref());
    let signature = signature_header(&secrets, message.id, timestamp, message.body.as_bytes());
    let sent = client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", message.id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(message.body.to_owned())
        .send()
        .await;
    let mut response = match sent {
        Ok(response) => response,
        Err(e) => return SendOutcome::Failed(classify(&e)),
    };
    let status = response.status().as_u16();
    let retry_after: Option<Duration> = (status == 429)
        .then(|| {
            response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after)
        })
        .flatten();
    let excerpt = read_excerpt(&mut response).await;
    SendOutcome::Answered {
        status,
        excerpt,
        retry_after,
    }
}

/// Reads the body chunk by chunk until `EXCERPT_BYTES` are in hand, then stops. A body that
/// breaks off midway keeps what arrived: the status already decided the outcome.
async fn read_excerpt(response: &mut reqwest::Response) -> String {
    let mut kept: Vec<u8> = Vec::new();
    while kept.len() < EXCERPT_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let take = chunk.len().min(EXCERPT_BYTES - kept.len());
                kept.extend_from_slice(&chunk[..take]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}

fn classify(e: &reqwest::Error) -> FailureClass {
    if e.is_timeout() {
        FailureClass::Timeout
    } else if e.is_connect() {
        FailureClass::Connect
    } else {
        FailureClass::Network
    }
}
