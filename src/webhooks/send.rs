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

#[cfg(test)]
mod tests {
    use axum::http::{StatusCode, header};
    use axum::routing::post;
    use futures::StreamExt;

    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    /// A loopback endpoint answering every post at `/in` with `app`'s handler.
    async fn endpoint(app: axum::routing::MethodRouter) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/in", listener.local_addr().unwrap());
        let app = axum::Router::new().route("/in", app);
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    /// Sends with a timeout a loaded machine cannot reach unless the endpoint never answers.
    async fn send_to(url: &str) -> SendOutcome {
        send_within(url, Duration::from_secs(30)).await
    }

    async fn send_within(url: &str, timeout: Duration) -> SendOutcome {
        let client = Client::builder().timeout(timeout).build().unwrap();
        let message = Message {
            id: "msg_1",
            body: "{}",
            url,
            secret: SECRET,
            previous_secret: None,
        };
        send(&client, &TargetPolicy::permissive(), message, 1_700_000_000).await
    }

    fn answered(status: u16, excerpt: &str, retry_after: Option<Duration>) -> SendOutcome {
        SendOutcome::Answered {
            status,
            excerpt: excerpt.to_owned(),
            retry_after,
        }
    }

    /// Only the first 4 KiB of a long answer are read and kept, cut at the right byte, whether
    /// the answer comes at once or in pieces.
    #[tokio::test]
    async fn a_long_answer_is_kept_to_its_first_four_kibibytes() {
        let body: String = (0..10_000u32)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        let at_once = endpoint(post({
            let body = body.clone();
            async move || body
        }))
        .await;
        let expected = answered(200, &body[..EXCERPT_BYTES], None);
        assert_eq!(send_to(&at_once).await, expected);
        // In two pieces, a moment apart, so the excerpt is made of more than one chunk.
        let in_pieces = endpoint(post({
            let body = body.clone();
            async move || {
                let (first, rest) = body.split_at(3_000);
                let pieces = [first.to_owned(), rest.to_owned()];
                let stream = futures::stream::unfold(0, move |i| {
                    let piece = pieces.get(i).cloned();
                    async move {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        piece.map(|p| (Ok::<_, std::io::Error>(p), i + 1))
                    }
                });
                axum::body::Body::from_stream(stream)
            }
        }))
        .await;
        assert_eq!(send_to(&in_pieces).await, expected);
        let short = endpoint(post(async || "thanks")).await;
        assert_eq!(send_to(&short).await, answered(200, "thanks", None));
    }

    /// An answer that stalls once 4 KiB are in hand is not waited on: the next chunk is never
    /// asked for, so the attempt ends at once (here the client would wait 30 s).
    #[tokio::test]
    async fn an_answer_that_stalls_after_four_kibibytes_is_not_waited_on() {
        let stalling = endpoint(post(async || {
            let first =
                futures::stream::once(async { Ok::<_, std::io::Error>("x".repeat(EXCERPT_BYTES)) });
            axum::body::Body::from_stream(first.chain(futures::stream::pending()))
        }))
        .await;
        let outcome = tokio::time::timeout(Duration::from_secs(10), send_to(&stalling)).await;
        assert_eq!(
            outcome.expect("the attempt waited for more of the body"),
            answered(200, &"x".repeat(EXCERPT_BYTES), None)
        );
    }

    /// A 429's `Retry-After` is kept; the same header on another status is not a request to
    /// wait.
    #[tokio::test]
    async fn only_a_429_says_how_long_to_wait() {
        let with_wait = |status: StatusCode| {
            post(async move || (status, [(header::RETRY_AFTER, "7")], "later"))
        };
        let busy = endpoint(with_wait(StatusCode::TOO_MANY_REQUESTS)).await;
        assert_eq!(
            send_to(&busy).await,
            answered(429, "later", Some(Duration::from_secs(7)))
        );
        let down = endpoint(with_wait(StatusCode::SERVICE_UNAVAILABLE)).await;
        assert_eq!(send_to(&down).await, answered(503, "later", None));
    }

    /// No answer is classed by why: nobody listening, or no answer in time.
    #[tokio::test]
    async fn failures_without_an_answer_say_why() {
        let closed = {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            format!("http://{}/in", listener.local_addr().unwrap())
        };
        assert_eq!(
            send_to(&closed).await,
            SendOutcome::Failed(FailureClass::Connect)
        );
        let hanging = endpoint(post(async || {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            ""
        }))
        .await;
        assert_eq!(
            send_within(&hanging, Duration::from_millis(300)).await,
            SendOutcome::Failed(FailureClass::Timeout)
        );
    }
}
