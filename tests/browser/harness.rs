//! A real headless Chromium, driven over WebDriver (chromedriver), for browser tests.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::{Element, ShadowRoot};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::common::require_all;

pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

fn find_binary(names: &[&str]) -> Option<String> {
    names.iter().find_map(|name| {
        let out = Command::new("which").arg(name).output().ok()?;
        let path = String::from_utf8(out.stdout).ok()?.trim().to_owned();
        (!path.is_empty()).then_some(path)
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Browser {
    /// Starts chromedriver and a headless Chromium; `None` (test skipped) when they are not
    /// installed and not required.
    pub async fn launch() -> Option<Browser> {
        let (Some(chromium), Some(driver_bin)) = (
            find_binary(&["chromium", "chromium-browser", "google-chrome"]),
            find_binary(&["chromedriver"]),
        ) else {
            if require_all() {
                panic!(
                    "Chromium and chromedriver are required (LEADTRAIL_REQUIRE_ALL/CI): apt-get install chromium chromium-driver"
                );
            }
            crate::common::say_skipped("chromium or chromedriver is not installed");
            return None;
        };
        // A free port can be taken by a parallel test's chromedriver between asking and
        // binding (ours then exits, and the port answers for the other test's driver until it
        // closes): a driver that is not ours, or a session that cannot start, is retried on a
        // new port.
        let mut attempt = 0;
        let (client, driver, profile) = loop {
            attempt += 1;
            let port = free_port();
            let mut driver = Command::new(&driver_bin)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start chromedriver");
            let deadline = Instant::now() + Duration::from_secs(20);
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(Instant::now() < deadline, "chromedriver did not start");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let profile = tempfile::tempdir().unwrap();
            let mut caps = serde_json::Map::new();
            caps.insert(
                "goog:chromeOptions".into(),
                json!({
                    "binary": chromium,
                    "args": [
                        "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                        "--disable-background-networking", "--no-first-run", "--disable-component-update",
                        "--disable-sync", "--disable-quic", "--window-size=1280,900",
                        format!("--user-data-dir={}", profile.path().display()),
                    ],
                }),
            );
            let ours = matches!(driver.try_wait(), Ok(None));
            let session = if ours {
                ClientBuilder::rustls()
                    .unwrap()
                    .capabilities(caps)
                    .connect(&format!("http://127.0.0.1:{port}"))
                    .await
                    .map_err(|e| e.to_string())
            } else {
                Err("chromedriver exited (its port was taken)".to_owned())
            };
            match session {
                Ok(client) => break (client, driver, profile),
                Err(e) if attempt < 3 => {
                    let _ = driver.kill();
                    let _ = driver.wait();
                    eprintln!("WebDriver session on port {port} failed ({e}); retrying");
                }
                Err(e) => panic!("WebDriver session: {e}"),
            }
        };
        Some(Browser {
            client,
            driver,
            _profile: profile,
        })
    }

    /// Waits until `selector` matches inside the shadow root of `host_selector`.
    pub async fn in_shadow(&self, host_selector: &str, selector: &str) -> Element {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(host) = self.client.find(Locator::Css(host_selector)).await
                && let Ok(root) = host.shadow_root().await
                && let Ok(found) = root.find(Locator::Css(selector)).await
            {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "{selector} never appeared in {host_selector}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn shadow_root(&self, host_selector: &str) -> ShadowRoot {
        let host = self.client.find(Locator::Css(host_selector)).await.unwrap();
        host.shadow_root().await.unwrap()
    }

    /// Writes `<name>.png` to the build's temporary directory, or — with
    /// `LEADTRAIL_UPDATE_SCREENSHOTS=1` — to `docs/screenshots/` (the folder the README names),
    /// so an ordinary test run leaves the work tree as it was.
    pub async fn screenshot(&self, name: &str) {
        let dir = if std::env::var("LEADTRAIL_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots")
        } else {
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots")
        };
        let _ = std::fs::create_dir_all(&dir);
        if let Ok(png) = self.client.screenshot().await {
            let _ = std::fs::write(dir.join(format!("{name}.png")), png);
        }
    }

    /// Runs a Chrome DevTools Protocol command through chromedriver's passthrough.
    pub async fn cdp(&self, cmd: &str, params: serde_json::Value) -> serde_json::Value {
        self.client
            .issue_cmd(Cdp {
                body: json!({ "cmd": cmd, "params": params }),
            })
            .await
            .unwrap_or_else(|e| panic!("CDP {cmd}: {e}"))
    }

    /// A phone-sized viewport (375 CSS px wide), or back to the desktop window.
    pub async fn phone(&self, on: bool) {
        if on {
            self.cdp(
                "Emulation.setDeviceMetricsOverride",
                json!({"width": 375, "height": 812, "deviceScaleFactor": 2, "mobile": true}),
            )
            .await;
        } else {
            self.cdp("Emulation.clearDeviceMetricsOverride", json!({}))
                .await;
        }
    }

    /// Waits until `selector` matches in the page.
    pub async fn wait_for(&self, selector: &str) -> Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(selector))
            .await
            .unwrap_or_else(|e| panic!("{selector} never appeared: {e}"))
    }

    /// Waits until the element `selector` reads `expected`. The page may be replaced while it
    /// is read (a form post's redirect): a vanished element is looked up again, not an error.
    pub async fn wait_for_text(&self, selector: &str, expected: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut last = String::new();
        while std::time::Instant::now() < deadline {
            if let Ok(element) = self.client.find(Locator::Css(selector)).await
                && let Ok(text) = element.text().await
            {
                if text == expected {
                    return;
                }
                last = text;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{selector} reads {last:?}, not {expected:?}");
    }

    pub async fn current_path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        }
    }

    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}

#[derive(Debug)]
struct Cdp {
    body: serde_json::Value,
}

impl fantoccini::wd::WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (axum::http::Method, Option<String>) {
        (axum::http::Method::POST, Some(self.body.to_string()))
    }
}
