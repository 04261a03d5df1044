//! The dashboard in a real headless Chromium: log in, manage lead sources, read leads, set up
//! webhooks — and the refusals (wrong password, viewer, missing CSRF token, hostile names).

use std::path::Path;
use std::time::{Duration, Instant};

use fantoccini::Locator;
use fantoccini::elements::Element;
use serde_json::{Value, json};

use crate::common::{Backend, TestDb};
use crate::harness::Browser;
use crate::helpers::{ADMIN_TOKEN, TestApp};
use leadtrail::domain::user::{Role, hash_password};
use leadtrail::store::Store;

const OWNER: &str = "owner@acme-roofing.example";
const VIEWER: &str = "viewer@acme-roofing.example";
const PASSWORD: &str = "correct horse battery";

struct Fixture {
    app: TestApp,
    key: String,
    public_key: String,
}

impl Fixture {
    /// An organization with an owner, a viewer and a second configured widget ("Storm").
    async fn new() -> Option<(Fixture, Browser)> {
        let db = TestDb::new(Backend::Sqlite).await?;
        let browser = Browser::launch().await?;
        let app = TestApp::spawn_with(db, |c| c.allow_private_webhook_targets = true).await;
        let (status, org) = app
            .call(
                reqwest::Method::POST,
                "/api/v1/organizations",
                Some(ADMIN_TOKEN),
                Some(&json!({
                    "name": "Acme Roofing",
                    "tier": "premium",
                    "website_url": "https://acme-roofing.example/",
                    "brand_color": "#C2410C",
                    "owner_email": OWNER,
                    "owner_password": PASSWORD,
                })),
            )
            .await;
        assert_eq!(status, 201, "{org}");
        let fixture = Fixture {
            key: org["api_key"].as_str().unwrap().to_owned(),
            public_key: org["public_key"].as_str().unwrap().to_owned(),
            app,
        };
        let (status, _) = fixture
            .api(
                reqwest::Method::POST,
                "/api/v1/widgets",
                json!({"name": "Storm Season", "site_url": "https://storm.acme-roofing.example/estimate"}),
            )
            .await;
        assert_eq!(status, 201);
        let (status, _) = fixture
            .api(
                reqwest::Method::PATCH,
                "/api/v1/widgets/02",
                json!({"status": "configured"}),
            )
            .await;
        assert_eq!(status, 200);
        let store = Store::connect(fixture.app.database_url()).await.unwrap();
        let org_id = leadtrail::domain::ids::OrgId::parse(org["id"].as_str().unwrap()).unwrap();
        store
            .create_user(
                &org_id,
                VIEWER,
                &hash_password("password", PASSWORD).unwrap(),
                Role::Viewer,
            )
            .await
            .unwrap();
        store.close().await;
        Some((fixture, browser))
    }

    async fn api(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        let (status, body) = self
            .app
            .call(method, path, Some(&self.key), Some(&body))
            .await;
        (status.as_u16(), body)
    }

    async fn get(&self, path: &str) -> Value {
        let (status, body) = self
            .app
            .call(reqwest::Method::GET, path, Some(&self.key), None)
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.app.base)
    }
}

async fn fill(browser: &Browser, selector: &str, text: &str) {
    let field = browser.wait_for(selector).await;
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

async fn click(browser: &Browser, selector: &str) {
    browser.wait_for(selector).await.click().await.unwrap();
}

/// Clicks the visible control with this text or accessible name (closed row menus hold
/// hidden ones with the same words).
async fn click_text(browser: &Browser, text: &str) {
    let xpath = format!(
        "//*[self::a or self::button or self::summary][normalize-space(.)='{text}' or @aria-label='{text}']"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        for candidate in browser
            .client
            .find_all(Locator::XPath(&xpath))
            .await
            .unwrap_or_default()
        {
            if candidate.is_displayed().await.unwrap_or(false) {
                candidate.click().await.unwrap();
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no visible control named {text:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The table row of a source, by its code ("02").
async fn row(browser: &Browser, code: &str) -> Element {
    browser.wait_for(&format!("tr[data-code='{code}']")).await
}

async fn wait_for_path(browser: &Browser, expected: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let path = browser.current_path().await;
        if path == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "expected {expected}, still at {path}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn page_text(browser: &Browser) -> String {
    browser
        .client
        .find(Locator::Css("body"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn log_in(browser: &Browser, fixture: &Fixture, email: &str, password: &str) {
    browser.client.goto(&fixture.url("/login")).await.unwrap();
    fill(browser, "#email", email).await;
    fill(browser, "#password", password).await;
    click(browser, "button[type=submit]").await;
}

/// The page shown now, to tell when a form post has replaced it.
async fn current_page(browser: &Browser) -> Element {
    browser.wait_for("html").await
}

/// Waits until `page` has been replaced by the page a post led to, then for that page's
/// notice. (Waiting for any notice could read the page before, which may show one too.)
async fn new_notice(browser: &Browser, page: Element) -> Element {
    let deadline = Instant::now() + Duration::from_secs(10);
    while page.tag_name().await.is_ok() {
        assert!(Instant::now() < deadline, "the page was never replaced");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    browser.wait_for("p.notice").await
}

async fn add_source(browser: &Browser, name: &str, category: &str, qr: bool) {
    click_text(browser, "Add Source").await;
    fill(browser, "#source-name", name).await;
    browser
        .wait_for("#channel-category")
        .await
        .select_by_value(category)
        .await
        .unwrap();
    let checkbox = browser.wait_for("input[name=generate_qr]").await;
    if checkbox.is_selected().await.unwrap() != qr {
        checkbox.click().await.unwrap();
    }
    let page = current_page(browser).await;
    click_text(browser, "Save").await;
    new_notice(browser, page).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_is_refused_with_a_wrong_password_and_a_bookmarked_url_survives_logging_in() {
    let Some((fixture, browser)) = Fixture::new().await else {
        return;
    };
    // A bookmarked, shared URL for the second widget sends a signed-out visitor to log in...
    browser
        .client
        .goto(&fixture.url("/app/sources?widget=02"))
        .await
        .unwrap();
    browser.wait_for("#password").await;
    assert!(browser.current_path().await.starts_with("/login?next="));
    fill(&browser, "#email", OWNER).await;
    fill(&browser, "#password", "not the password").await;
    browser.screenshot("login-desktop").await;
    click(&browser, "button[type=submit]").await;
    let error = browser.wait_for("[role=alert]").await.text().await.unwrap();
    assert_eq!(error, "That email and password do not match an account.");
    assert!(browser.current_path().await.starts_with("/login"));
    browser.phone(true).await;
    browser.screenshot("login-phone").await;
    browser.phone(false).await;

    // ...and after logging in they land exactly there.
    fill(&browser, "#password", PASSWORD).await;
    click(&browser, "button[type=submit]").await;
    wait_for_path(&browser, "/app/sources?widget=02").await;
    let selected = browser
        .wait_for("#widget option[selected]")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(selected, "Storm Season (v02)");

    // Logging out ends the session: the page asks for a login again.
    click(&browser, "details.account summary").await;
    click_text(&browser, "Log out").await;
    browser.wait_for("#password").await;
    browser
        .client
        .goto(&fixture.url("/app/sources"))
        .await
        .unwrap();
    browser.wait_for("#password").await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_lead_sources_action_works_in_the_browser() {
    let Some((fixture, browser)) = Fixture::new().await else {
        return;
    };
    let downloads = tempfile::tempdir().unwrap();
    log_in(&browser, &fixture, OWNER, PASSWORD).await;
    wait_for_path(&browser, "/app/sources").await;
    // The selector defaults to Primary and lists configured widgets only.
    let options: Vec<String> = {
        let mut out = Vec::new();
        for o in browser
            .client
            .find_all(Locator::Css("#widget option"))
            .await
            .unwrap()
        {
            out.push(o.text().await.unwrap());
        }
        out
    };
    assert_eq!(options, ["Primary (v01)", "Storm Season (v02)"]);
    let label = browser
        .wait_for("label[for=widget]")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(label, "Lead Sources For");

    // Add Source slide-over, QR generated automatically.
    add_source(&browser, "Yard Signs", "print_outdoor", true).await;
    let yard = row(&browser, "02").await;
    assert!(yard.text().await.unwrap().contains("Yard Signs"));
    assert!(yard.find(Locator::Css("td.qr img")).await.is_ok());

    // Copy tracking URL: the clipboard holds exactly the row's tracking URL.
    browser
        .cdp(
            "Browser.grantPermissions",
            json!({"permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"], "origin": fixture.app.base}),
        )
        .await;
    let expected_url = yard
        .find(Locator::Css("input.url-field"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        expected_url,
        "https://acme-roofing.example/?roof-estimate=open&v=01&s=02"
    );
    let copy = yard.find(Locator::Css("button.copy")).await.unwrap();
    assert_eq!(copy.text().await.unwrap(), "Copy tracking URL");
    copy.click().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while copy.text().await.unwrap() != "Copied" {
        assert!(Instant::now() < deadline, "no copy feedback");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let clipboard = browser
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];\
             navigator.clipboard.readText().then(done, (e) => done('ERR ' + e));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(clipboard, Value::String(expected_url));

    // A source without a QR code: Generate, then Download saves a file with the product's name.
    add_source(&browser, "Google Ads", "paid_search", false).await;
    let google = row(&browser, "03").await;
    google
        .find(Locator::XPath(".//button[normalize-space(.)='Generate']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // The rows below must be the new page's.
    browser
        .wait_for_text("p.notice", "QR code ready for Google Ads.")
        .await;
    browser
        .cdp(
            "Browser.setDownloadBehavior",
            json!({"behavior": "allow", "downloadPath": downloads.path().to_str().unwrap()}),
        )
        .await;
    row(&browser, "03")
        .await
        .find(Locator::XPath(".//a[normalize-space(.)='Download']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let file = downloads
        .path()
        .join("Acme-Roofing-Google-Ads-v01-s03-QR.png");
    wait_for_file(&file).await;
    let png = std::fs::read(&file).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");

    // Edit from the row menu.
    click(&browser, "tr[data-code='03'] details.menu summary").await;
    click_text(&browser, "Edit").await;
    fill(&browser, "#source-name", "Google Search Ads").await;
    let page = current_page(&browser).await;
    click_text(&browser, "Save").await;
    new_notice(&browser, page).await;
    assert!(
        row(&browser, "03")
            .await
            .text()
            .await
            .unwrap()
            .contains("Google Search Ads")
    );

    // The system source has no row menu.
    assert!(
        row(&browser, "01")
            .await
            .find(Locator::Css("details.menu"))
            .await
            .is_err()
    );

    // Archive, find it under Archived, restore it.
    click(&browser, "tr[data-code='03'] details.menu summary").await;
    let page = current_page(&browser).await;
    click_text(&browser, "Archive").await;
    new_notice(&browser, page).await;
    assert!(
        browser
            .client
            .find(Locator::Css("tr[data-code='03']"))
            .await
            .is_err()
    );
    click(&browser, ".views a[href$='view=archived']").await;
    wait_for_path(&browser, "/app/sources?widget=01&view=archived").await;
    click(&browser, "tr[data-code='03'] details.menu summary").await;
    let page = current_page(&browser).await;
    click_text(&browser, "Restore").await;
    new_notice(&browser, page).await;
    row(&browser, "03").await;

    // A hostile name is shown as text, never run.
    add_source(&browser, "<img src=x onerror=alert(1)>", "other", false).await;
    let hostile = row(&browser, "04").await;
    let name = hostile
        .find(Locator::Css("td.name"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(name, "<img src=x onerror=alert(1)>");
    assert!(hostile.find(Locator::Css("td.name img")).await.is_err());
    assert!(
        browser.client.get_alert_text().await.is_err(),
        "an alert opened"
    );
    browser.screenshot("lead-sources-desktop").await;
    browser.phone(true).await;
    browser.screenshot("lead-sources-phone").await;
    browser.phone(false).await;

    // Fill the widget to ten active sources: the limit state replaces Add Source.
    for n in 5..=10 {
        add_source(&browser, &format!("Mailer {n}"), "direct_mail", false).await;
    }
    let limit = browser.wait_for("p.limit").await.text().await.unwrap();
    assert_eq!(limit, "10 of 10 active — archive one to add another");
    let add = browser
        .client
        .find(Locator::XPath("//button[normalize-space(.)='Add Source']"))
        .await
        .unwrap();
    assert!(!add.is_enabled().await.unwrap());
    browser.screenshot("lead-sources-limit-desktop").await;

    // Switching widgets changes the URL, so it can be bookmarked and shared.
    browser
        .wait_for("#widget")
        .await
        .select_by_value("02")
        .await
        .unwrap();
    wait_for_path(&browser, "/app/sources?widget=02").await;
    let site = browser.wait_for(".picker .url").await.text().await.unwrap();
    assert_eq!(site, "https://storm.acme-roofing.example/estimate");
    // Its own sources: only the system source so far, so the empty state offers to add one.
    let empty = browser.wait_for("#empty-title").await.text().await.unwrap();
    assert_eq!(empty, "No sources of your own yet");
    browser
        .wait_for("section.empty a[href='/app/sources?widget=02&panel=add']")
        .await;
    assert_eq!(
        browser
            .client
            .find_all(Locator::Css("tbody tr"))
            .await
            .unwrap()
            .len(),
        1
    );
    browser.close().await;
}

async fn wait_for_file(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        let present: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        assert!(
            Instant::now() < deadline,
            "{} never downloaded; present: {present:?}",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_sees_everything_and_can_change_nothing() {
    let Some((fixture, browser)) = Fixture::new().await else {
        return;
    };
    let (status, _) = fixture
        .api(
            reqwest::Method::POST,
            "/api/v1/widgets/01/sources",
            json!({"name": "Yard Signs", "channel_category": "print_outdoor"}),
        )
        .await;
    assert_eq!(status, 201);
    log_in(&browser, &fixture, VIEWER, PASSWORD).await;
    wait_for_path(&browser, "/app/sources").await;
    row(&browser, "02").await;
    let text = page_text(&browser).await;
    assert!(text.contains("Viewer"));
    for hidden in ["Add Source", "Generate"] {
        let xpath = format!("//*[self::a or self::button][normalize-space(.)='{hidden}']");
        assert!(
            browser.client.find(Locator::XPath(&xpath)).await.is_err(),
            "{hidden} shown to a viewer"
        );
    }
    assert!(
        browser
            .client
            .find(Locator::Css("details.menu"))
            .await
            .is_err()
    );
    // Even a hand-made post with the viewer's own valid token is refused by the server.
    let status = post_from_page(
        &browser,
        "/app/sources/01/02/archive",
        "_csrf=' + encodeURIComponent(document.querySelector('input[name=_csrf]').value) + '",
    )
    .await;
    assert_eq!(status, "403");
    let sources = fixture.get("/api/v1/widgets/01/sources").await;
    assert_eq!(sources[1]["code"], "02");
    assert_eq!(sources[1]["status"], "active", "{sources}");
    browser.close().await;
}

/// Posts a form body from inside the page (same origin, with the session cookie) and returns
/// the status. `body_js` is spliced into a JS string literal.
/// Posts a form from the page's own origin; answers `"redirect"` for a 303 (which `fetch`
/// with `redirect: 'manual'` shows only as an opaque redirect) or the status code. A request
/// that fails outright fails the test: it must never read as an outcome.
async fn post_from_page(browser: &Browser, path: &str, body_js: &str) -> String {
    let script = format!(
        "const done = arguments[arguments.length - 1];\
         fetch('{path}', {{method: 'POST', redirect: 'manual', \
           headers: {{'Content-Type': 'application/x-www-form-urlencoded'}}, \
           body: '{body_js}'}}).then( \
             (r) => done(r.type === 'opaqueredirect' ? 'redirect' : String(r.status)), \
             (e) => done('fetch failed: ' + e));"
    );
    let answer = browser.client.execute_async(&script, vec![]).await.unwrap();
    let answer = answer.as_str().unwrap_or_default().to_owned();
    assert!(!answer.starts_with("fetch failed"), "{path}: {answer}");
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_post_without_the_csrf_token_is_refused() {
    let Some((fixture, browser)) = Fixture::new().await else {
        return;
    };
    log_in(&browser, &fixture, OWNER, PASSWORD).await;
    wait_for_path(&browser, "/app/sources").await;
    let missing = post_from_page(
        &browser,
        "/app/sources/01/new",
        "name=Sneaky&channel_category=other",
    )
    .await;
    assert_eq!(missing, "403");
    let wrong = post_from_page(
        &browser,
        "/app/sources/01/new",
        "_csrf=forged&name=Sneaky&channel_category=other",
    )
    .await;
    assert_eq!(wrong, "403");
    let sources = fixture.get("/api/v1/widgets/01/sources").await;
    assert_eq!(sources.as_array().unwrap().len(), 1, "{sources}");
    // The same post with the page's token goes through (303 back to the page).
    let ok = post_from_page(
        &browser,
        "/app/sources/01/new",
        "name=Real&channel_category=other&_csrf=' + encodeURIComponent(document.querySelector('input[name=_csrf]').value) + '",
    )
    .await;
    assert_eq!(ok, "redirect", "accepted: 303 back to the page");
    let sources = fixture.get("/api/v1/widgets/01/sources").await;
    assert!(
        sources
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "Real"),
        "{sources}"
    );
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expanded_lead_shows_its_lead_source_as_it_was_at_arrival() {
    let Some((fixture, browser)) = Fixture::new().await else {
        return;
    };
    let (_, _) = fixture
        .api(
            reqwest::Method::POST,
            "/api/v1/widgets/01/sources",
            json!({"name": "Yard Signs", "channel_category": "print_outdoor"}),
        )
        .await;
    let res = fixture
        .app
        .client
        .post(fixture.url("/c/v1/leads"))
        .json(&json!({
            "public_key": fixture.public_key,
            "widget": "01",
            "v": "01",
            "s": "02",
            "address": {"street": "12 Oak Lane", "city": "Austin", "state": "TX", "postal_code": "78704"}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    // Renamed afterwards: the lead keeps the name it arrived with.
    let (status, _) = fixture
        .api(
            reqwest::Method::PATCH,
            "/api/v1/widgets/01/sources/02",
            json!({"name": "Lawn Signs"}),
        )
        .await;
    assert_eq!(status, 200);
    log_in(&browser, &fixture, OWNER, PASSWORD).await;
    wait_for_path(&browser, "/app/sources").await;
    click_text(&browser, "Leads").await;
    let pill = browser
        .wait_for("tbody tr td[data-label='Source'] .pill")
        .await;
    assert_eq!(pill.text().await.unwrap(), "SRC-02 · Yard Signs");
    click(&browser, "a.toggle").await;
    let section = browser
        .wait_for("section[aria-labelledby^='ls-']")
        .await
        .text()
        .await
        .unwrap();
    for expected in [
        "Lead Source",
        "Widget name\nPrimary",
        "Widget version\n01",
        "Source code\nSRC-02",
        "Source name at arrival\nYard Signs",
    ] {
        assert!(
            section.contains(expected),
            "{expected:?} missing in {section:?}"
        );
    }
    browser.screenshot("leads-desktop").await;
    browser.phone(true).await;
    browser.screenshot("leads-phone").await;
    browser.phone(false).await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_events_keep_lead_enriched_checked_and_locked() {
    let Some((fixture, browser)) = Fixture::new().await else {
        return;
    };
    log_in(&browser, &fixture, OWNER, PASSWORD).await;
    wait_for_path(&browser, "/app/sources").await;
    click_text(&browser, "Webhooks").await;
    fill(&browser, "#wh-url", "http://127.0.0.1:9999/hooks").await;
    // Untick nothing but try: the locked box cannot be changed.
    let locked = browser
        .wait_for("form[action='/app/webhooks'] input[value='lead.enriched'][type=checkbox]")
        .await;
    assert!(locked.is_selected().await.unwrap());
    assert!(!locked.is_enabled().await.unwrap());
    click(
        &browser,
        "form[action='/app/webhooks'] input[value='lead.contact_requested']",
    )
    .await;
    let page = current_page(&browser).await;
    click_text(&browser, "Add endpoint").await;
    new_notice(&browser, page).await;
    // The secret is revealed once after creating, ready to copy.
    let secret = browser
        .wait_for("code[id^='secret-']")
        .await
        .text()
        .await
        .unwrap();
    assert!(secret.starts_with("whsec_"), "{secret}");
    let boxes = browser
        .client
        .find_all(Locator::Css("section.endpoint input[type=checkbox]"))
        .await
        .unwrap();
    let mut state = Vec::new();
    for b in boxes {
        state.push((
            b.attr("value").await.unwrap().unwrap(),
            b.is_selected().await.unwrap(),
            b.is_enabled().await.unwrap(),
        ));
    }
    assert!(
        state.contains(&("lead.enriched".into(), true, false)),
        "{state:?}"
    );
    assert!(
        state.contains(&("lead.contact_requested".into(), true, true)),
        "{state:?}"
    );
    assert!(
        state.contains(&("lead.address_preview".into(), false, true)),
        "{state:?}"
    );
    let endpoints = fixture.get("/api/v1/webhooks").await;
    let events = &endpoints[0]["events"];
    assert_eq!(
        events,
        &json!(["lead.enriched", "lead.contact_requested"]),
        "{endpoints}"
    );
    // A test event shows up in the delivery log.
    click_text(&browser, "Send test event").await;
    browser.wait_for("table.deliveries").await;
    browser.screenshot("webhooks-desktop").await;
    browser.phone(true).await;
    browser.screenshot("webhooks-phone").await;
    browser.phone(false).await;
    for (tab, name) in [
        ("Widgets", "widgets"),
        ("Settings", "settings"),
        ("Team", "team"),
    ] {
        click_text(&browser, tab).await;
        browser
            .wait_for(&format!(
                "nav.tabs a[aria-current='page'][href='/app/{name}']"
            ))
            .await;
        browser.screenshot(&format!("{name}-desktop")).await;
        browser.phone(true).await;
        browser.screenshot(&format!("{name}-phone")).await;
        browser.phone(false).await;
    }
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_organization_has_ninety_days_of_leads_and_a_webhook_endpoint() {
    let Some(db) = TestDb::new(Backend::Sqlite).await else {
        return;
    };
    let Some(browser) = Browser::launch().await else {
        return;
    };
    let app = TestApp::spawn_demo(db).await;
    let store = Store::connect(app.database_url()).await.unwrap();
    let owner = store
        .user_by_email(leadtrail::demo::DEMO_EMAIL)
        .await
        .unwrap()
        .unwrap();
    let leads = store
        .leads(
            &owner.org_id,
            &leadtrail::store::LeadFilter {
                limit: 10_000,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(leads.len() >= 200, "{} demo leads", leads.len());
    let now = leadtrail::store::now_ms();
    let oldest = leads.iter().map(|l| l.created_at).min().unwrap();
    let days = (now - oldest) / 86_400_000;
    assert!((60..=90).contains(&days), "oldest lead {days} days ago");
    assert!(leads.iter().any(|l| l.enrichment.is_some()));
    assert_eq!(store.endpoints(&owner.org_id).await.unwrap().len(), 1);
    store.close().await;

    browser
        .client
        .goto(&format!("{}/login", app.base))
        .await
        .unwrap();
    fill(&browser, "#email", leadtrail::demo::DEMO_EMAIL).await;
    fill(&browser, "#password", leadtrail::demo::DEMO_PASSWORD).await;
    click(&browser, "button[type=submit]").await;
    wait_for_path(&browser, "/app/sources").await;
    row(&browser, "05").await;
    browser.screenshot("demo-lead-sources-desktop").await;
    click_text(&browser, "Leads").await;
    click(&browser, "a.toggle").await;
    browser.wait_for("section[aria-labelledby^='ls-']").await;
    browser.screenshot("demo-leads-desktop").await;
    browser.phone(true).await;
    browser.screenshot("demo-leads-phone").await;
    browser.phone(false).await;
    click_text(&browser, "Older →").await;
    browser.wait_for("a.toggle").await;
    assert!(browser.current_path().await.contains("after="));
    click_text(&browser, "Webhooks").await;
    let url = browser
        .wait_for("section.endpoint h2")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(url, "https://hooks.acme-roofing.example/leadtrail");
    browser.close().await;
}

/// Reads what the page's own session gets from `path` (a GET with the page's cookies).
async fn fetch_text(browser: &Browser, path: &str) -> String {
    let script = format!(
        "const done = arguments[arguments.length - 1];\
         fetch('{path}').then((r) => r.text()).then(done, (e) => done('fetch failed: ' + e));"
    );
    let answer = browser.client.execute_async(&script, vec![]).await.unwrap();
    let text = answer.as_str().unwrap_or_default().to_owned();
    assert!(!text.starts_with("fetch failed"), "{path}: {text}");
    text
}

/// The text of each cell of a table's body, row by row.
async fn table_cells(browser: &Browser, table: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for row in browser
        .client
        .find_all(Locator::Css(&format!("{table} tbody tr")))
        .await
        .unwrap()
    {
        let mut cells = Vec::new();
        for cell in row.find_all(Locator::Css("td")).await.unwrap() {
            // textContent: the phone layout hides nothing, but innerText follows CSS.
            let text = cell.prop("textContent").await.unwrap().unwrap_or_default();
            cells.push(text.trim().to_owned());
        }
        out.push(cells);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_show_the_demo_organizations_sources_and_the_csv_matches_the_table() {
    let Some(db) = TestDb::new(Backend::Sqlite).await else {
        return;
    };
    let Some(browser) = Browser::launch().await else {
        return;
    };
    let app = TestApp::spawn_demo(db).await;
    browser
        .client
        .goto(&format!("{}/login", app.base))
        .await
        .unwrap();
    fill(&browser, "#email", leadtrail::demo::DEMO_EMAIL).await;
    fill(&browser, "#password", leadtrail::demo::DEMO_PASSWORD).await;
    click(&browser, "button[type=submit]").await;
    wait_for_path(&browser, "/app/sources").await;
    click_text(&browser, "Reports").await;
    wait_for_path(&browser, "/app/reports").await;
    // The chart has bars and a legend; the tables are filled.
    let bars = browser
        .client
        .find_all(Locator::Css("svg.stacked rect"))
        .await
        .unwrap();
    assert!(bars.len() > 20, "{} bar segments", bars.len());
    browser.wait_for("ul.legend li").await;
    let rows = table_cells(&browser, "#source-table").await;
    assert!(rows.len() >= 8, "{rows:?}");
    let total: u64 = browser
        .wait_for("#total-leads")
        .await
        .text()
        .await
        .unwrap()
        .parse()
        .unwrap();
    assert!(total > 50, "{total} leads in 30 days");
    let table_leads: u64 = rows.iter().map(|r| r[3].parse::<u64>().unwrap()).sum();
    assert_eq!(table_leads, total);
    let visits: u64 = rows.iter().map(|r| r[2].parse::<u64>().unwrap()).sum();
    assert!(visits > total, "the demo has visits: {visits}");
    assert!(!table_cells(&browser, "#channel-table").await.is_empty());
    let derived = table_cells(&browser, "#derived-table").await;
    assert!(
        derived.iter().any(|r| r[0] == "Organic search"),
        "{derived:?}"
    );
    browser.screenshot("reports-desktop").await;
    browser.phone(true).await;
    browser.screenshot("reports-phone").await;
    browser.phone(false).await;

    // The CSV is the table as shown: the same sources with the same numbers.
    let csv_href = browser
        .wait_for("a[download]")
        .await
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    let csv = fetch_text(&browser, &csv_href).await;
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), rows.len() + 1, "{csv}");
    for (line, row) in lines[1..].iter().zip(&rows) {
        let cells: Vec<&str> = line.split(',').collect();
        // display_code, visits, leads, first-touch leads
        assert!(row[0].ends_with(cells[2]), "{line} vs {row:?}");
        assert_eq!(
            (cells[6], cells[7], cells[8]),
            (row[2].as_str(), row[3].as_str(), row[4].as_str()),
            "{line}"
        );
    }

    // Presets and the widget are in the URL, so a report can be bookmarked.
    browser
        .wait_for("#r-preset")
        .await
        .select_by_value("7d")
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !browser
        .client
        .current_url()
        .await
        .unwrap()
        .as_str()
        .contains("preset=7d")
    {
        assert!(
            Instant::now() < deadline,
            "the preset never reached the URL"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let week: u64 = browser
        .wait_for("#total-leads")
        .await
        .text()
        .await
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        week < total,
        "7 days ({week}) hold fewer leads than 30 ({total})"
    );
    browser
        .wait_for("#r-widget")
        .await
        .select_by_value("02")
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let url = browser.client.current_url().await.unwrap();
        if url.as_str().contains("widget=02") {
            assert!(url.as_str().contains("preset=7d"), "{url}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the widget never reached the URL"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rows = table_cells(&browser, "#source-table").await;
    assert!(rows.iter().all(|r| r[0].starts_with("02/")), "{rows:?}");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_row_menu_and_the_slide_over_work_from_the_keyboard() {
    let Some((fixture, browser)) = Fixture::new().await else {
        return;
    };
    let (status, _) = fixture
        .api(
            reqwest::Method::POST,
            "/api/v1/widgets/01/sources",
            json!({"name": "Yard Signs", "channel_category": "print_outdoor"}),
        )
        .await;
    assert_eq!(status, 201);
    log_in(&browser, &fixture, OWNER, PASSWORD).await;
    wait_for_path(&browser, "/app/sources").await;
    let enter = fantoccini::key::Key::Enter.to_string();
    // Enter on the row menu opens it; Enter on Edit opens the slide-over with the name focused.
    let menu = browser
        .wait_for("tr[data-code='02'] details.menu summary")
        .await;
    browser
        .client
        .execute(
            "arguments[0].focus();",
            vec![serde_json::to_value(&menu).unwrap()],
        )
        .await
        .unwrap();
    menu.send_keys(&enter).await.unwrap();
    let edit = browser
        .wait_for("tr[data-code='02'] details.menu[open] a")
        .await;
    edit.send_keys(&enter).await.unwrap();
    let focused = browser
        .client
        .execute("return document.activeElement.id;", vec![])
        .await
        .unwrap();
    assert_eq!(focused, json!("source-name"));
    // Typing and Enter saves, without touching the mouse.
    let name = browser.wait_for("#source-name").await;
    name.clear().await.unwrap();
    name.send_keys("Lawn Signs").await.unwrap();
    let page = current_page(&browser).await;
    name.send_keys(&enter).await.unwrap();
    let notice = new_notice(&browser, page).await.text().await.unwrap();
    assert_eq!(notice, "Saved SRC-02 Lawn Signs.");
    let renamed = row(&browser, "02").await.text().await.unwrap();
    assert!(renamed.contains("Lawn Signs"), "{renamed}");
    browser.close().await;
}

/// The text of a cell of the Return on spend table, by its row's source and its class.
async fn roi_cell(browser: &Browser, source: &str, class: &str) -> String {
    browser
        .wait_for(&format!("#roi-table tr[data-source='{source}'] td.{class}"))
        .await
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_editor_records_a_won_job_and_spend_and_the_report_shows_the_return() {
    let Some((fixture, browser)) = Fixture::new().await else {
        return;
    };
    let (status, _) = fixture
        .api(
            reqwest::Method::POST,
            "/api/v1/widgets/01/sources",
            json!({"name": "Yard Signs", "channel_category": "print_outdoor"}),
        )
        .await;
    assert_eq!(status, 201);
    let res = fixture
        .app
        .client
        .post(fixture.url("/c/v1/leads"))
        .json(&json!({"public_key": fixture.public_key, "v": "01", "s": "02",
            "address": {"street": "12 Oak Lane", "city": "Austin", "state": "TX", "postal_code": "78704"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    // This whole month (the organization is in UTC): its spend counts in full.
    let today = time::OffsetDateTime::now_utc().date();
    let first = today.replace_day(1).unwrap();
    let last = first
        .replace_day(28)
        .unwrap()
        .saturating_add(time::Duration::days(7))
        .replace_day(1)
        .unwrap()
        .previous_day()
        .unwrap();
    let report = format!("/app/reports?preset=custom&from={first}&to={last}");

    log_in(&browser, &fixture, OWNER, PASSWORD).await;
    wait_for_path(&browser, "/app/sources").await;
    browser.client.goto(&fixture.url(&report)).await.unwrap();
    assert_eq!(roi_cell(&browser, "01-02", "roi-won").await, "0");
    assert_eq!(roi_cell(&browser, "01-02", "roi-spend").await, "—");
    assert_eq!(roi_cell(&browser, "01-02", "roi-roas").await, "—");

    // Won, from the expanded lead.
    click_text(&browser, "Leads").await;
    click(&browser, "a.toggle").await;
    browser
        .wait_for("form.set-outcome select[name=outcome]")
        .await
        .select_by_value("won")
        .await
        .unwrap();
    fill(&browser, "form.set-outcome input[name=value]", "12,500").await;
    click(&browser, "form.set-outcome button[type=submit]").await;
    browser.wait_for_text(".outcome-now", "Won · $12,500").await;
    let history = browser
        .wait_for("section[aria-labelledby^='oc-']")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        history.contains(&format!("Open → Won · $12,500 · by user:{OWNER}")),
        "{history}"
    );
    browser.screenshot("lead-outcome-desktop").await;

    // Spend, from the Lead Sources page.
    click_text(&browser, "Lead Sources").await;
    click(&browser, "a[aria-label='Spend of SRC-02']").await;
    fill(&browser, "#spend-amount", "2500").await;
    browser.screenshot("source-spend-desktop").await;
    let page = current_page(&browser).await;
    click_text(&browser, "Save spend").await;
    new_notice(&browser, page).await;
    let spend = row(&browser, "02")
        .await
        .find(Locator::Css("td[data-label^='Spend']"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(spend, "$2,500");

    // The report's row now shows the job and its return.
    browser.client.goto(&fixture.url(&report)).await.unwrap();
    assert_eq!(roi_cell(&browser, "01-02", "roi-won").await, "1");
    assert_eq!(roi_cell(&browser, "01-02", "roi-revenue").await, "$12,500");
    assert_eq!(roi_cell(&browser, "01-02", "roi-spend").await, "$2,500");
    assert_eq!(roi_cell(&browser, "01-02", "roi-roas").await, "5.00×");
    assert_eq!(
        browser.wait_for("#total-roas").await.text().await.unwrap(),
        "5.00×"
    );
    let show_table = "document.getElementById('roi-title').scrollIntoView()";
    browser.client.execute(show_table, vec![]).await.unwrap();
    browser.screenshot("reports-roi-desktop").await;
    browser.phone(true).await;
    browser.client.execute(show_table, vec![]).await.unwrap();
    browser.screenshot("reports-roi-phone").await;
    browser.phone(false).await;
    browser.close().await;
}

/// A homeowner comes through the Facebook ad, then the yard sign, then converts through the
/// mailer's link: under linear credit the Reports page gives each a third, the side-by-side
/// table shows every model, and the expanded lead lists the three touches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linear_credit_gives_each_of_three_tracking_urls_a_third() {
    let Some((fixture, browser)) = Fixture::new().await else {
        return;
    };
    let mut queries = Vec::new();
    for (name, category) in [
        ("Facebook Ads", "paid_social"),
        ("Yard Signs", "print_outdoor"),
        ("Mailer", "direct_mail"),
    ] {
        let (status, source) = fixture
            .api(
                reqwest::Method::POST,
                "/api/v1/widgets/01/sources",
                json!({"name": name, "channel_category": category}),
            )
            .await;
        assert_eq!(status, 201, "{source}");
        let url = source["tracking_url"].as_str().unwrap();
        queries.push(url.split_once('?').unwrap().1.to_owned());
    }
    let site = crate::widget::host_page(&fixture.app.base, &fixture.public_key, "01").await;
    // Two earlier visits, each counted before the next (the beacon is buffered ≤ 1 s).
    for (i, query) in queries[..2].iter().enumerate() {
        browser
            .client
            .goto(&format!("{site}/?{query}"))
            .await
            .unwrap();
        let code = format!("{:02}", i + 2);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let report = fixture.get("/api/v1/reports/sources").await;
            let visits = report
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["source_code"] == code.as_str())
                .map_or(0, |r| r["visits"].as_u64().unwrap_or(0));
            if visits == 1 {
                break;
            }
            assert!(Instant::now() < deadline, "visit {code} never counted");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // The mailer's link: the widget opens, the homeowner gives the address.
    browser
        .client
        .goto(&format!("{site}/?{}", queries[2]))
        .await
        .unwrap();
    crate::widget::type_into(&browser, "street", "12 Oak Lane").await;
    crate::widget::type_into(&browser, "city", "Austin").await;
    crate::widget::type_into(&browser, "state", "TX").await;
    crate::widget::type_into(&browser, "postal_code", "78704").await;
    crate::widget::continue_to(&browser, "select[name='roof_type']").await;

    log_in(&browser, &fixture, OWNER, PASSWORD).await;
    wait_for_path(&browser, "/app/sources").await;
    browser
        .client
        .goto(&fixture.url("/app/reports?model=linear"))
        .await
        .unwrap();
    for code in ["02", "03", "04"] {
        browser
            .wait_for_text(
                &format!("#model-table tr[data-source='01-{code}'] td[data-model='linear']"),
                "0.33",
            )
            .await;
        browser
            .wait_for_text(
                &format!("#roi-table tr[data-source='01-{code}'] td[data-label='Leads']"),
                "0.33",
            )
            .await;
    }
    browser
        .wait_for_text(
            "#model-table tr[data-source='01-04'] td[data-model='last']",
            "1",
        )
        .await;
    browser
        .wait_for_text(
            "#model-table tr[data-source='01-02'] td[data-model='first']",
            "1",
        )
        .await;
    browser.wait_for_text("#total-leads", "1").await;
    browser.screenshot("reports-linear-desktop").await;

    click_text(&browser, "Leads").await;
    click(&browser, "a.toggle").await;
    let touches = browser
        .client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(fantoccini::Locator::Css("ol.journey"))
        .await
        .unwrap()
        .find_all(fantoccini::Locator::Css("li"))
        .await
        .unwrap();
    assert_eq!(touches.len(), 3);
    let last = touches[2].text().await.unwrap();
    assert!(last.contains("01/SRC-04 Mailer"), "{last}");
    browser.screenshot("lead-touches-desktop").await;
    browser.close().await;
}

/// An owner downloads the Leads page's CSV, erases a homeowner from the expanded lead, and
/// reads the API reference the dashboard links to: a page built from the served OpenAPI
/// document that loads nothing from anywhere else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_exports_leads_erases_a_homeowner_and_reads_the_api_reference() {
    let Some((fixture, browser)) = Fixture::new().await else {
        return;
    };
    let (status, lead) = fixture
        .api(
            reqwest::Method::POST,
            "/api/v1/leads",
            json!({"widget": "01", "source": "01",
                "address": {"street": "9 Juniper Court", "city": "Austin", "state": "TX", "postal_code": "78704"},
                "project": {"roof_type": "repair", "material": "metal", "stories": 1, "urgency": "emergency"},
                "personal": {"first_name": "Marisol", "last_name": "Okafor", "email": "marisol@example.com",
                    "phone": "5125550123", "owner_occupied": true}}),
        )
        .await;
    assert_eq!(status, 201, "{lead}");
    let id = lead["id"].as_str().unwrap().to_owned();
    log_in(&browser, &fixture, OWNER, PASSWORD).await;
    wait_for_path(&browser, "/app/sources").await;
    click_text(&browser, "Leads").await;
    browser.wait_for("tbody tr").await;

    let downloads = tempfile::tempdir().unwrap();
    browser
        .cdp(
            "Browser.setDownloadBehavior",
            json!({"behavior": "allow", "downloadPath": downloads.path().to_str().unwrap()}),
        )
        .await;
    click_text(&browser, "Export CSV").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let file = loop {
        let found = std::fs::read_dir(downloads.path())
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "csv"));
        if let Some(file) = found {
            break file;
        }
        assert!(Instant::now() < deadline, "the export never downloaded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    wait_for_file(&file).await;
    let csv = std::fs::read_to_string(&file).unwrap();
    assert!(csv.starts_with("id,created_at,status"), "{csv}");
    assert!(csv.contains(&id) && csv.contains("Marisol"), "{csv}");

    // Erase from the expanded lead (the browser asks first).
    click(&browser, "a.toggle").await;
    click_text(&browser, "Erase personal data").await;
    browser.client.accept_alert().await.unwrap();
    browser
        .wait_for_text("p.notice", "Personal data erased.")
        .await;
    let text = page_text(&browser).await;
    assert!(
        !text.contains("Marisol") && !text.contains("Juniper"),
        "{text}"
    );
    assert!(text.contains("(erased)"), "{text}");
    let stored = fixture.get(&format!("/api/v1/leads/{id}")).await;
    assert_eq!(stored["personal"]["first_name"], "");
    assert!(stored["erased_at"].is_string());

    // The API reference, from the dashboard's footer.
    click_text(&browser, "API reference").await;
    wait_for_path(&browser, "/api/docs").await;
    let title = browser.wait_for("h1").await.text().await.unwrap();
    assert_eq!(title, "leadtrail API reference");
    click_text(&browser, "POST /leads/{id}/erase").await;
    let section = browser
        .wait_for("section#post--leads--id--erase")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        section.contains("Erase the lead's personal data"),
        "{section}"
    );
    let foreign = browser
        .client
        .execute(
            "return performance.getEntriesByType('resource')\
             .map(e => e.name).filter(n => !n.startsWith(location.origin));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(foreign, json!([]), "the page fetched from elsewhere");
    browser.screenshot("api-reference-desktop").await;
    browser.close().await;
}

/// An owner imports leads from a CSV file on the Leads page: the check lists the bad line,
/// the fixed file checks clean, and the import (without choosing the file again) writes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_checks_and_imports_a_csv_of_leads() {
    let Some((fixture, browser)) = Fixture::new().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let header =
        "created_at,widget_version,source_code,street,city,state,postal_code,outcome,outcome_value";
    let bad = dir.path().join("old-crm.csv");
    std::fs::write(
        &bad,
        format!("{header}\n2025-04-01,01,01,1 Elm St,Austin,TX,78701,won,950000\n2025-04-02,01,01,2 Elm St,Austin,TX,787,,\n"),
    )
    .unwrap();
    let good = dir.path().join("old-crm-fixed.csv");
    std::fs::write(
        &good,
        format!("{header}\n2025-04-01,01,01,1 Elm St,Austin,TX,78701,won,950000\n2025-04-02,01,01,2 Elm St,Austin,TX,78702,,\n"),
    )
    .unwrap();
    log_in(&browser, &fixture, OWNER, PASSWORD).await;
    wait_for_path(&browser, "/app/sources").await;
    click_text(&browser, "Leads").await;
    click_text(&browser, "Import leads").await;
    wait_for_path(&browser, "/app/leads/import").await;
    let choose = |path: std::path::PathBuf| {
        let browser = &browser;
        async move {
            browser
                .wait_for("#import-file")
                .await
                .send_keys(path.to_str().unwrap())
                .await
                .unwrap();
        }
    };
    choose(bad).await;
    click_text(&browser, "Check file").await;
    let refused = browser
        .wait_for("ul.refused-lines")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        refused.contains("Line 3") && refused.contains("postal_code"),
        "{refused}"
    );
    choose(good).await;
    click_text(&browser, "Check file").await;
    browser
        .wait_for_text(
            "p.notice",
            "All 2 lead(s) in old-crm-fixed.csv can be imported.",
        )
        .await;
    assert!(
        fixture.get("/api/v1/leads").await["leads"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    click_text(&browser, "Import").await;
    browser
        .wait_for_text("p.notice", "Imported 2 lead(s).")
        .await;
    let leads = fixture.get("/api/v1/leads").await;
    let leads = leads["leads"].as_array().unwrap();
    assert_eq!(leads.len(), 2);
    assert!(leads.iter().all(|l| l["record_source"] == "import"));
    assert_eq!(leads[1]["created_at"], "2025-04-01T00:00:00Z");
    assert_eq!(leads[1]["outcome_value"], 950_000);
    browser.close().await;
}
