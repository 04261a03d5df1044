//! The dashboard over plain HTTP: cookies, CSRF, rate limits, roles, invites and tenancy.
//! (What needs a real browser — clicks, clipboard, downloads — is in `tests/browser`.)

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use serde_json::json;

use crate::common::TestDb;
use crate::helpers::{ADMIN_TOKEN, TestApp};
use crate::on_both_backends;

pub(crate) const PASSWORD: &str = "correct horse battery";

/// A cookie jar of one: enough to play a browser that follows no redirects.
pub(crate) struct Visitor<'a> {
    app: &'a TestApp,
    client: reqwest::Client,
    cookies: Vec<(String, String)>,
    csrf: String,
}

pub(crate) struct Page {
    pub(crate) status: StatusCode,
    headers: HeaderMap,
    pub(crate) body: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

impl<'a> Visitor<'a> {
    pub(crate) fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: Vec::new(),
            csrf: String::new(),
        }
    }

    fn remember(&mut self, page: &Page) {
        for v in page.headers.get_all(SET_COOKIE) {
            let pair = v.to_str().unwrap().split(';').next().unwrap();
            let (k, val) = pair.split_once('=').unwrap();
            self.cookies.retain(|(name, _)| name != k);
            if !val.is_empty() {
                self.cookies.push((k.to_owned(), val.to_owned()));
            }
        }
        if let Some(i) = page.body.find("name=\"_csrf\" value=\"") {
            let rest = &page.body[i + 20..];
            self.csrf = rest[..rest.find('"').unwrap()].to_owned();
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub(crate) async fn get(&mut self, path: &str) -> Page {
        let res = self
            .client
            .get(format!("{}{path}", self.app.base))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        let page = Page {
            status: res.status(),
            headers: res.headers().clone(),
            body: res.text().await.unwrap(),
        };
        self.remember(&page);
        page
    }

    /// Posts a form with this visitor's current CSRF token.
    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        let csrf = self.csrf.clone();
        form.push(("_csrf", &csrf));
        self.post_raw(path, &form, &[]).await
    }

    async fn post_raw(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Page {
        let mut req = self
            .client
            .post(format!("{}{path}", self.app.base))
            .header("cookie", self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(form)
                    .finish(),
            );
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = req.send().await.unwrap();
        let page = Page {
            status: res.status(),
            headers: res.headers().clone(),
            body: res.text().await.unwrap(),
        };
        self.remember(&page);
        page
    }

    pub(crate) async fn log_in(&mut self, email: &str, password: &str) -> Page {
        self.get("/login").await;
        self.post(
            "/login",
            &[
                ("email", email),
                ("password", password),
                ("next", "/app/sources"),
            ],
        )
        .await
    }
}

/// An organization with an owner login; returns the API key.
pub(crate) async fn org_with_owner(app: &TestApp, email: &str) -> String {
    let (status, body) = app
        .call(
            reqwest::Method::POST,
            "/api/v1/organizations",
            Some(ADMIN_TOKEN),
            Some(&json!({
                "name": "Acme Roofing", "tier": "premium",
                "website_url": "https://acme-roofing.example/", "brand_color": "#1A73E8",
                "owner_email": email, "owner_password": PASSWORD,
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["api_key"].as_str().unwrap().to_owned()
}

async fn signed_out_pages_send_you_to_log_in_and_back(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let mut visitor = Visitor::new(&app);
    let page = visitor.get("/app/leads?status=contact_info_provided").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(
        page.location(),
        "/login?next=%2Fapp%2Fleads%3Fstatus%3Dcontact%5Finfo%5Fprovided"
    );
    let unknown = visitor.get("/app/no-such-page").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(
        unknown.body.starts_with("<!doctype html>"),
        "{}",
        unknown.body
    );
    let login = visitor.get("/login").await;
    assert_eq!(login.status, StatusCode::OK);
    let csp = login.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert_eq!(login.headers["x-frame-options"], "DENY");
}

async fn session_cookies_are_http_only_lax_and_secure_behind_https(db: TestDb) {
    let app = TestApp::spawn(db).await;
    org_with_owner(&app, "owner@acme.example").await;
    let mut visitor = Visitor::new(&app);
    let page = visitor.log_in("owner@acme.example", PASSWORD).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/app/sources");
    let cookie = page
        .headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("lt_session="))
        .unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "plain http: {cookie}");

    // A header anyone can send does not decide the cookie's flags.
    let mut spoofing = Visitor::new(&app);
    spoofing.get("/login").await;
    let csrf = spoofing.csrf.clone();
    let page = spoofing
        .post_raw(
            "/login",
            &[
                ("email", "owner@acme.example"),
                ("password", PASSWORD),
                ("_csrf", &csrf),
            ],
            &[("x-forwarded-proto", "https")],
        )
        .await;
    let cookie = page.headers[SET_COOKIE].to_str().unwrap();
    assert!(!cookie.contains("Secure"), "{cookie}");
    assert!(!page.headers.contains_key("strict-transport-security"));
}

/// Deployed over https (`secure_cookies`, on by default for an https `public_base_url`):
/// every cookie is `Secure` and every answer carries HSTS.
async fn an_https_deployment_marks_cookies_secure_and_sends_hsts(db: TestDb) {
    let app = TestApp::spawn_with(db, |c| c.secure_cookies = true).await;
    org_with_owner(&app, "owner@acme.example").await;
    let mut visitor = Visitor::new(&app);
    let login = visitor.get("/login").await;
    assert!(
        login.headers["strict-transport-security"]
            .to_str()
            .unwrap()
            .contains("max-age="),
    );
    let page = visitor.log_in("owner@acme.example", PASSWORD).await;
    for cookie in page.headers.get_all(SET_COOKIE) {
        let cookie = cookie.to_str().unwrap();
        assert!(cookie.contains("; Secure"), "{cookie}");
    }
}

/// Links shown to people (invites, embed snippets) use the configured public origin, never the
/// `Host` a request claims.
async fn links_use_the_public_base_url_not_the_host_header(db: TestDb) {
    let app = TestApp::spawn_with(db, |c| {
        c.public_base_url = "https://leads.acme-roofing.example".into();
    })
    .await;
    org_with_owner(&app, "owner@acme.example").await;
    let mut owner = Visitor::new(&app);
    owner.log_in("owner@acme.example", PASSWORD).await;
    owner.get("/app/team").await;
    let csrf = owner.csrf.clone();
    let page = owner
        .post_raw(
            "/app/team/invite",
            &[
                ("email", "m@acme.example"),
                ("role", "member"),
                ("_csrf", &csrf),
            ],
            &[("host", "evil.example")],
        )
        .await;
    assert!(
        page.body
            .contains("https://leads.acme-roofing.example/invite/"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("evil.example"), "{}", page.body);
    let widgets = owner.get("/app/widgets").await;
    assert!(
        widgets
            .body
            .contains("https://leads.acme-roofing.example/widget.js"),
        "{}",
        widgets.body
    );
}

async fn login_attempts_are_rate_limited_per_account(db: TestDb) {
    let app = TestApp::spawn(db).await;
    org_with_owner(&app, "owner@acme.example").await;
    let mut visitor = Visitor::new(&app);
    for _ in 0..5 {
        let page = visitor
            .log_in("owner@acme.example", "wrong password!")
            .await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
        assert!(page.body.contains("do not match"));
    }
    // After five failures the next attempt waits, refused before the password is looked at.
    let page = visitor.log_in("owner@acme.example", PASSWORD).await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(page.headers["retry-after"], "1");
    assert!(page.body.contains("Too many attempts"));
}

/// Logging in successfully, however often, never throttles anyone (only failures count).
async fn successful_logins_are_never_throttled(db: TestDb) {
    let app = TestApp::spawn(db).await;
    org_with_owner(&app, "owner@acme.example").await;
    for _ in 0..12 {
        let mut visitor = Visitor::new(&app);
        let page = visitor.log_in("owner@acme.example", PASSWORD).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    }
    // A few failures between successes are forgotten by each success.
    for _ in 0..4 {
        let mut visitor = Visitor::new(&app);
        visitor
            .log_in("owner@acme.example", "wrong password!")
            .await;
        visitor
            .log_in("owner@acme.example", "wrong password!")
            .await;
        let page = visitor.log_in("owner@acme.example", PASSWORD).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    }
}

async fn a_login_post_without_the_form_token_is_refused(db: TestDb) {
    let app = TestApp::spawn(db).await;
    org_with_owner(&app, "owner@acme.example").await;
    let mut visitor = Visitor::new(&app);
    let page = visitor
        .post_raw(
            "/login",
            &[("email", "owner@acme.example"), ("password", PASSWORD)],
            &[],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    // A signed-in form from another origin is refused even with the right token.
    visitor.log_in("owner@acme.example", PASSWORD).await;
    visitor.get("/app/sources").await;
    let csrf = visitor.csrf.clone();
    let page = visitor
        .post_raw(
            "/app/sources/01/new",
            &[
                ("name", "Evil"),
                ("channel_category", "other"),
                ("_csrf", &csrf),
            ],
            &[("origin", "https://evil.example")],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    let page = visitor
        .post(
            "/app/sources/01/new",
            &[("name", "Good"), ("channel_category", "other")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
}

async fn another_tenants_dashboard_objects_are_not_found(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let key_a = org_with_owner(&app, "a@acme.example").await;
    org_with_owner(&app, "b@other.example").await;
    let (status, _) = app
        .call(
            reqwest::Method::POST,
            "/api/v1/widgets/01/sources",
            Some(&key_a),
            Some(&json!({"name": "Yard Signs", "channel_category": "print_outdoor", "generate_qr": true})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, endpoint) = app
        .call(
            reqwest::Method::POST,
            "/api/v1/webhooks",
            Some(&key_a),
            Some(&json!({"url": "https://hooks.acme.example/in"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{endpoint}");
    let endpoint = endpoint["id"].as_str().unwrap();

    let mut b = Visitor::new(&app);
    b.log_in("b@other.example", PASSWORD).await;
    let own = b.get("/app/sources").await;
    assert_eq!(own.status, StatusCode::OK);
    assert!(!own.body.contains("Yard Signs"));
    for path in [
        "/app/sources/01/02/qr.png",
        "/app/sources?widget=01&panel=edit&code=02",
    ] {
        assert_eq!(b.get(path).await.status, StatusCode::NOT_FOUND, "{path}");
    }
    for path in [
        "/app/sources/01/02/archive".to_owned(),
        format!("/app/webhooks/{endpoint}/rotate"),
        format!("/app/webhooks/{endpoint}/test"),
    ] {
        assert_eq!(
            b.post(&path, &[]).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    let (_, sources) = app
        .call(
            reqwest::Method::GET,
            "/api/v1/widgets/01/sources",
            Some(&key_a),
            None,
        )
        .await;
    assert_eq!(sources[1]["status"], "active");
}

async fn an_owner_invites_a_member_with_a_link_that_works_once(db: TestDb) {
    let app = TestApp::spawn(db).await;
    org_with_owner(&app, "owner@acme.example").await;
    let mut owner = Visitor::new(&app);
    owner.log_in("owner@acme.example", PASSWORD).await;
    owner.get("/app/team").await;
    let page = owner
        .post(
            "/app/team/invite",
            &[("email", "New.Member@Acme.Example"), ("role", "member")],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let start = page.body.find("/invite/").unwrap();
    let token = &page.body[start + 8..];
    let path = format!("/invite/{}", &token[..token.find('"').unwrap()]);

    let mut member = Visitor::new(&app);
    let invite = member.get(&path).await;
    assert_eq!(invite.status, StatusCode::OK);
    assert!(invite.body.contains("new.member@acme.example"));
    let short = member.post(&path, &[("password", "short")]).await;
    assert_eq!(short.status, StatusCode::UNPROCESSABLE_ENTITY);
    let done = member.post(&path, &[("password", PASSWORD)]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    let sources = member.get("/app/sources").await;
    assert_eq!(sources.status, StatusCode::OK);
    assert!(sources.body.contains("Member"));
    // Members change sources but do not manage the team.
    let page = member
        .post(
            "/app/team/invite",
            &[("email", "x@acme.example"), ("role", "owner")],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);

    let mut again = Visitor::new(&app);
    assert_eq!(again.get(&path).await.status, StatusCode::NOT_FOUND);
}

async fn a_reset_ends_the_members_sessions(db: TestDb) {
    let app = TestApp::spawn(db).await;
    org_with_owner(&app, "owner@acme.example").await;
    let mut owner = Visitor::new(&app);
    owner.log_in("owner@acme.example", PASSWORD).await;
    owner.get("/app/team").await;
    let page = owner
        .post(
            "/app/team/invite",
            &[("email", "m@acme.example"), ("role", "viewer")],
        )
        .await;
    let start = page.body.find("/invite/").unwrap() + 8;
    let token = page.body[start..].split('"').next().unwrap().to_owned();
    let mut member = Visitor::new(&app);
    member.get(&format!("/invite/{token}")).await;
    member
        .post(&format!("/invite/{token}"), &[("password", PASSWORD)])
        .await;
    assert_eq!(member.get("/app/leads").await.status, StatusCode::OK);

    let team = owner.get("/app/team").await;
    let at = team.body.find("/reset\"").unwrap();
    let id_start = team.body[..at].rfind("/app/team/").unwrap() + 10;
    let reset_path = format!("/app/team/{}/reset", &team.body[id_start..at]);
    let page = owner.post(&reset_path, &[]).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("/invite/"));
    assert_eq!(member.get("/app/leads").await.status, StatusCode::SEE_OTHER);
    let login = member.log_in("m@acme.example", PASSWORD).await;
    assert_eq!(login.status, StatusCode::UNAUTHORIZED);
}

/// The one-time link path (`/invite/…`) shown on a Team page.
fn invite_path(body: &str) -> String {
    let start = body.find("/invite/").expect("a link on the page");
    let rest = &body[start..];
    rest[..rest.find('"').expect("the link ends")].to_owned()
}

/// The path of a member's action (`reset` or `remove`) on the Team page.
fn member_action(team: &str, action: &str) -> String {
    let at = team.find(&format!("/{action}\"")).expect("the action");
    let id_start = team[..at].rfind("/app/team/").expect("the member") + 10;
    format!("/app/team/{}/{action}", &team[id_start..at])
}

async fn a_removed_member_cannot_come_back_through_an_earlier_link(db: TestDb) {
    let app = TestApp::spawn(db).await;
    org_with_owner(&app, "owner@acme.example").await;
    let mut owner = Visitor::new(&app);
    owner.log_in("owner@acme.example", PASSWORD).await;
    owner.get("/app/team").await;
    let page = owner
        .post(
            "/app/team/invite",
            &[("email", "m@acme.example"), ("role", "member")],
        )
        .await;
    let mut member = Visitor::new(&app);
    let first = invite_path(&page.body);
    member.get(&first).await;
    member.post(&first, &[("password", PASSWORD)]).await;
    assert_eq!(member.get("/app/leads").await.status, StatusCode::OK);
    // A reset (link L): the member is out at once, listed only as a link waiting.
    let team = owner.get("/app/team").await;
    let reset = owner.post(&member_action(&team.body, "reset"), &[]).await;
    let link = invite_path(&reset.body);
    assert_eq!(member.get("/app/leads").await.status, StatusCode::SEE_OTHER);
    let team = owner.get("/app/team").await;
    assert!(!team.body.contains("/reset\""), "{}", team.body);
    assert!(team.body.contains("Links not used yet"), "{}", team.body);
    // The owner decides they should not come back: revoking L closes the last way in.
    let revoked = owner
        .post("/app/team/invites/revoke", &[("email", "m@acme.example")])
        .await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER);

    let mut attacker = Visitor::new(&app);
    assert_eq!(attacker.get(&link).await.status, StatusCode::NOT_FOUND);
    // With a valid form token (from the login page), so only the link itself is judged.
    attacker.get("/login").await;
    let taken = attacker.post(&link, &[("password", PASSWORD)]).await;
    assert_eq!(taken.status, StatusCode::NOT_FOUND, "{}", taken.body);
    assert_eq!(
        attacker.get("/app/leads").await.status,
        StatusCode::SEE_OTHER
    );
    let login = attacker.log_in("m@acme.example", PASSWORD).await;
    assert_eq!(login.status, StatusCode::UNAUTHORIZED);
    let team = owner.get("/app/team").await;
    assert!(!team.body.contains("/reset\""), "{}", team.body);
    assert!(!team.body.contains("Links not used yet"), "{}", team.body);
}

/// One login in two organizations: invited with its existing address, it joins while logged
/// in (choosing a password through the link is refused), switches between them with each
/// membership's role, and the inviting owner never learns whether the address had a login.
async fn one_login_joins_a_second_organization_and_switches(db: TestDb) {
    let app = TestApp::spawn(db).await;
    org_with_owner(&app, "owner@acme.example").await;
    // A second organization with its own owner.
    let (status, body) = app
        .call(
            reqwest::Method::POST,
            "/api/v1/organizations",
            Some(ADMIN_TOKEN),
            Some(&json!({
                "name": "Bravo Gutters", "tier": "starter",
                "website_url": "https://bravo.example/", "brand_color": "#000000",
                "owner_email": "boss@bravo.example", "owner_password": PASSWORD,
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let mut boss = Visitor::new(&app);
    boss.log_in("boss@bravo.example", PASSWORD).await;
    boss.get("/app/team").await;
    let invited = boss
        .post(
            "/app/team/invite",
            &[("email", "owner@acme.example"), ("role", "viewer")],
        )
        .await;
    // The same answer as for any new address: nothing about a login elsewhere.
    assert_eq!(invited.status, StatusCode::OK, "{}", invited.body);
    let link = invite_path(&invited.body);

    // Not logged in: setting a password through the link is refused.
    let mut stranger = Visitor::new(&app);
    stranger.get(&link).await;
    let refused = stranger
        .post(&link, &[("password", "another password!")])
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert!(refused.body.contains("log in"), "{}", refused.body);
    let login = stranger
        .log_in("owner@acme.example", "another password!")
        .await;
    assert_eq!(login.status, StatusCode::UNAUTHORIZED);

    // Logged in as that address: one button joins.
    let mut owner = Visitor::new(&app);
    owner.log_in("owner@acme.example", PASSWORD).await;
    let page = owner.get(&link).await;
    assert!(page.body.contains("Join Bravo Gutters"), "{}", page.body);
    let joined = owner.post(&link, &[]).await;
    assert_eq!(joined.status, StatusCode::SEE_OTHER, "{}", joined.body);
    let sources = owner.get("/app/sources").await;
    assert!(sources.body.contains("Bravo Gutters"), "{}", sources.body);
    assert!(sources.body.contains("Viewer"), "{}", sources.body);
    assert!(
        sources.body.contains("Switch to Acme Roofing"),
        "{}",
        sources.body
    );
    // A viewer there …
    assert_eq!(
        owner
            .post("/app/settings", &[("name", "Pwned")])
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    // … and an owner at home.
    let field = "name=\"organization\" value=\"";
    let home = sources.body.find(field).unwrap() + field.len();
    let home_id = sources.body[home..].split('"').next().unwrap().to_owned();
    let switched = owner
        .post("/app/organization", &[("organization", home_id.as_str())])
        .await;
    assert_eq!(switched.status, StatusCode::SEE_OTHER);
    let team = owner.get("/app/team").await;
    assert!(team.body.contains("Acme Roofing"), "{}", team.body);
    assert!(team.body.contains("Invite someone"), "{}", team.body);
    // An organization it does not belong to is not found.
    let (status, org) = app
        .call(
            reqwest::Method::POST,
            "/api/v1/organizations",
            Some(ADMIN_TOKEN),
            Some(&json!({"name": "Charlie", "tier": "starter",
                "website_url": "https://c.example/", "brand_color": "#000000"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let foreign = owner
        .post(
            "/app/organization",
            &[("organization", org["id"].as_str().unwrap())],
        )
        .await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);
}

async fn unused_links_are_listed_replaced_and_revocable(db: TestDb) {
    let app = TestApp::spawn(db).await;
    org_with_owner(&app, "owner@acme.example").await;
    let mut owner = Visitor::new(&app);
    owner.log_in("owner@acme.example", PASSWORD).await;
    owner.get("/app/team").await;
    let invite = [("email", "new@acme.example"), ("role", "viewer")];
    let first = invite_path(&owner.post("/app/team/invite", &invite).await.body);
    let second = invite_path(&owner.post("/app/team/invite", &invite).await.body);
    assert_ne!(first, second);
    let mut visitor = Visitor::new(&app);
    // Only the newest link for an address works.
    assert_eq!(visitor.get(&first).await.status, StatusCode::NOT_FOUND);
    assert_eq!(visitor.get(&second).await.status, StatusCode::OK);

    let team = owner.get("/app/team").await;
    assert!(team.body.contains("Links not used yet"), "{}", team.body);
    assert!(team.body.contains("new@acme.example"));
    let revoked = owner
        .post("/app/team/invites/revoke", &[("email", "new@acme.example")])
        .await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER);
    assert_eq!(visitor.get(&second).await.status, StatusCode::NOT_FOUND);
    let team = owner.get("/app/team").await;
    assert!(team.body.contains("Revoked the link for new@acme.example"));
    assert!(!team.body.contains("Links not used yet"), "{}", team.body);
    let again = owner
        .post("/app/team/invites/revoke", &[("email", "new@acme.example")])
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
}

/// Query strings a person can type: dates at the ends of the calendar, garbage, huge numbers.
/// Every page answers them without a server error.
async fn no_query_string_makes_a_page_fail(db: TestDb) {
    let app = TestApp::spawn(db).await;
    org_with_owner(&app, "owner@acme.example").await;
    let mut owner = Visitor::new(&app);
    owner.log_in("owner@acme.example", PASSWORD).await;
    let values = [
        "9999-12-31",
        "-9999-01-01",
        "0000-00-00",
        "2026-02-30",
        "99999999999999999999",
        "%00",
        "%F0%9F%92%A9",
        "' OR 1=1 --",
        "",
    ];
    let pages = [
        (
            "/app/leads",
            &[
                "from", "to", "after", "open", "widget", "source", "status", "outcome",
            ][..],
        ),
        (
            "/app/reports",
            &["from", "to", "preset", "widget", "touch"][..],
        ),
        (
            "/app/reports.csv",
            &["from", "to", "preset", "widget", "touch"][..],
        ),
        ("/app/webhooks", &["endpoint", "reveal"][..]),
        ("/app/sources", &["widget"][..]),
    ];
    for (path, params) in pages {
        for param in params {
            for value in values {
                let url = format!("{path}?{param}={value}");
                let page = owner.get(&url).await;
                assert!(
                    page.status.as_u16() < 500,
                    "{url}: {} {}",
                    page.status,
                    page.body
                );
            }
        }
        let both = format!("{path}?from=9999-12-31&to=9999-12-31");
        assert!(owner.get(&both).await.status.as_u16() < 500, "{both}");
    }
}

async fn settings_and_widgets_refuse_bad_input_keeping_what_was_typed(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let key = org_with_owner(&app, "owner@acme.example").await;
    let mut owner = Visitor::new(&app);
    owner.log_in("owner@acme.example", PASSWORD).await;
    owner.get("/app/settings").await;
    // Too light to scan: refused with the reason, the typed values still in the form.
    let page = owner
        .post(
            "/app/settings",
            &[
                ("name", "Acme Roofing & Gutters"),
                ("website_url", "https://acme-roofing.example/"),
                ("brand_color", "#FFFF00"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("too light"), "{}", page.body);
    assert!(
        page.body.contains("value=\"Acme Roofing &#38; Gutters\""),
        "{}",
        page.body
    );
    assert!(page.body.contains("value=\"#FFFF00\""));
    let preview = owner
        .get("/app/settings/qr-preview.svg?color=%23FFFF00")
        .await;
    assert_eq!(preview.status, StatusCode::UNPROCESSABLE_ENTITY);
    let preview = owner
        .get("/app/settings/qr-preview.svg?color=%23123456")
        .await;
    assert_eq!(preview.status, StatusCode::OK);
    assert!(preview.body.contains("#123456"));
    let page = owner
        .post(
            "/app/settings",
            &[
                ("name", "Acme Roofing & Gutters"),
                ("website_url", "https://acme-roofing.example/"),
                ("brand_color", "#123456"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let (_, org) = app
        .call(
            reqwest::Method::GET,
            "/api/v1/organization",
            Some(&key),
            None,
        )
        .await;
    assert_eq!(org["brand_color"], "#123456", "{org}");
    assert_eq!(org["name"], "Acme Roofing & Gutters");

    // Widgets: a new one, configured, then a bad site URL refused in place.
    owner.get("/app/widgets").await;
    let page = owner
        .post("/app/widgets", &[("name", "Storm"), ("site_url", "")])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    owner.get("/app/widgets").await;
    let page = owner
        .post(
            "/app/widgets/02",
            &[
                ("name", "Storm"),
                ("site_url", "https://storm.acme.example/"),
                ("status", "configured"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let page = owner
        .post(
            "/app/widgets/02",
            &[
                ("name", "Storm"),
                ("site_url", "not a url"),
                ("status", "configured"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("value=\"not a url\""));
    let sources = owner.get("/app/sources?widget=02").await;
    assert_eq!(sources.status, StatusCode::OK);
    assert!(sources.body.contains("https://storm.acme.example/"));
    // The Primary widget offers no Archived status and refuses one sent anyway.
    let page = owner
        .post(
            "/app/widgets/01",
            &[
                ("name", "Primary"),
                ("site_url", "https://acme-roofing.example/"),
                ("status", "archived"),
            ],
        )
        .await;
    assert_eq!(
        page.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        page.body
    );
}

async fn webhook_secrets_rotate_and_are_revealed_only_to_editors(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let key = org_with_owner(&app, "owner@acme.example").await;
    let (_, endpoint) = app
        .call(
            reqwest::Method::POST,
            "/api/v1/webhooks",
            Some(&key),
            Some(&json!({"url": "https://hooks.acme.example/in"})),
        )
        .await;
    let (id, secret) = (
        endpoint["id"].as_str().unwrap(),
        endpoint["secret"].as_str().unwrap(),
    );
    let mut owner = Visitor::new(&app);
    owner.log_in("owner@acme.example", PASSWORD).await;
    let hidden = owner.get("/app/webhooks").await;
    assert!(!hidden.body.contains(secret));
    let shown = owner.get(&format!("/app/webhooks?reveal={id}")).await;
    assert!(shown.body.contains(secret));
    let rotated = owner.post(&format!("/app/webhooks/{id}/rotate"), &[]).await;
    assert_eq!(rotated.status, StatusCode::SEE_OTHER);
    let shown = owner.get(&format!("/app/webhooks?reveal={id}")).await;
    assert!(
        !shown.body.contains(secret),
        "the old secret is not shown as current"
    );
    assert!(shown.body.contains("whsec_"));
    // Unticking everything keeps lead.enriched; disabling sticks.
    let saved = owner
        .post(&format!("/app/webhooks/{id}"), &[("enabled", "off")])
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER);
    let (_, endpoint) = app
        .call(
            reqwest::Method::GET,
            &format!("/api/v1/webhooks/{id}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(endpoint["events"], json!(["lead.enriched"]));
    assert_eq!(endpoint["enabled"], false);
    // A bad URL is refused in the form with what was typed.
    let page = owner
        .post(
            "/app/webhooks",
            &[("url", "http://127.0.0.1/hook"), ("description", "mine")],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("value=\"http://127.0.0.1/hook\""));
}

async fn a_refused_source_reopens_the_slide_over_with_what_was_typed(db: TestDb) {
    let app = TestApp::spawn(db).await;
    org_with_owner(&app, "owner@acme.example").await;
    let mut owner = Visitor::new(&app);
    owner.log_in("owner@acme.example", PASSWORD).await;
    owner.get("/app/sources").await;
    let ok = owner
        .post(
            "/app/sources/01/new",
            &[
                ("name", "Yard Signs"),
                ("channel_category", "print_outdoor"),
            ],
        )
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    // The Leads filter offers the widget's sources by code and name.
    let leads = owner.get("/app/leads?widget=01&source=02").await;
    assert!(
        leads
            .body
            .contains("<option value=\"02\" selected>SRC-02 · Yard Signs</option>"),
        "{}",
        leads.body
    );
    let page = owner
        .post(
            "/app/sources/01/new",
            &[
                ("name", "YARD SIGNS"),
                ("channel_category", "print_outdoor"),
                ("generate_qr", "1"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("role=\"alert\""), "{}", page.body);
    assert!(page.body.contains("already exists"), "{}", page.body);
    assert!(page.body.contains("value=\"YARD SIGNS\""));
    assert!(page.body.contains("value=\"print_outdoor\" selected"));
    let page = owner
        .post(
            "/app/sources/01/02",
            &[("name", ""), ("channel_category", "other")],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("Edit SRC-02"), "{}", page.body);
}

async fn the_webhooks_page_shows_each_endpoints_backlog_and_last_error_and_replays(db: TestDb) {
    let app = TestApp::spawn_with(db, |c| {
        c.allow_private_webhook_targets = true;
        c.webhook_retry_schedule = vec![std::time::Duration::from_secs(3600)];
    })
    .await;
    let key = org_with_owner(&app, "owner@acme.example").await;
    let failing = crate::receiver::Receiver::start(std::sync::Arc::new(|_, _| 503)).await;
    let (_, endpoint) = app
        .call(
            reqwest::Method::POST,
            "/api/v1/webhooks",
            Some(&key),
            Some(&json!({"url": failing.url})),
        )
        .await;
    let id = endpoint["id"].as_str().unwrap();
    let mut owner = Visitor::new(&app);
    owner.log_in("owner@acme.example", PASSWORD).await;
    let page = owner.get(&format!("/app/webhooks?endpoint={id}")).await;
    assert!(page.body.contains("Nothing waiting"), "{}", page.body);
    owner.post(&format!("/app/webhooks/{id}/test"), &[]).await;
    failing.wait_for_attempts(1).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let page = loop {
        let page = owner.get(&format!("/app/webhooks?endpoint={id}")).await;
        if page.body.contains("Last error") {
            break page;
        }
        assert!(std::time::Instant::now() < deadline, "no last error shown");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(page.body.contains("http_503"), "{}", page.body);
    assert!(page.body.contains("1 waiting (0 due now)"), "{}", page.body);
    // A replay from the form, with the times a datetime-local input sends.
    let replayed = owner
        .post(
            &format!("/app/webhooks/{id}/replay"),
            &[("since", "2020-01-01T00:00"), ("until", "2020-01-02T00:00")],
        )
        .await;
    assert_eq!(replayed.status, StatusCode::SEE_OTHER, "{}", replayed.body);
    let backwards = owner
        .post(
            &format!("/app/webhooks/{id}/replay"),
            &[("since", "2020-01-02T00:00"), ("until", "2020-01-01T00:00")],
        )
        .await;
    assert_eq!(backwards.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(backwards.body.contains("until must be after since"));
}

/// Everything a dashboard post could change, read back over the API and the database.
async fn state_of(app: &TestApp, key: &str, org: &leadtrail::domain::ids::OrgId) -> Vec<String> {
    let mut seen = Vec::new();
    for path in [
        "/api/v1/organization",
        "/api/v1/widgets",
        "/api/v1/widgets/01/sources?status=all",
        "/api/v1/widgets/02/sources?status=all",
        "/api/v1/webhooks",
        "/api/v1/leads",
        "/api/v1/spend",
        "/api/v1/reports/attribution",
    ] {
        let (_, body) = app.call(reqwest::Method::GET, path, Some(key), None).await;
        seen.push(format!("{path}: {body}"));
    }
    let (_, endpoints) = app
        .call(reqwest::Method::GET, "/api/v1/webhooks", Some(key), None)
        .await;
    for e in endpoints.as_array().unwrap() {
        let path = format!("/api/v1/webhooks/{}/deliveries", e["id"].as_str().unwrap());
        let (_, body) = app.call(reqwest::Method::GET, &path, Some(key), None).await;
        seen.push(format!("{path}: {body}"));
    }
    let store = leadtrail::store::Store::connect(app.database_url())
        .await
        .unwrap();
    for u in store.users(org).await.unwrap() {
        seen.push(format!(
            "user {} {} {:?} {}",
            u.id, u.email, u.role, u.password_hash
        ));
    }
    for i in store.pending_invites(org).await.unwrap() {
        seen.push(format!("invite {} {:?} {}", i.email, i.role, i.expires_at));
    }
    let pool = sqlx::AnyPool::connect(app.database_url()).await.unwrap();
    for table in ["invites", "sessions"] {
        let sql = format!("SELECT COUNT(*) AS n FROM {table}");
        let n: i64 = sqlx::Row::get(
            &sqlx::query(sqlx::AssertSqlSafe(sql))
                .fetch_one(&pool)
                .await
                .unwrap(),
            "n",
        );
        seen.push(format!("{table}: {n}"));
    }
    seen
}

/// Every form post the dashboard routes (`src/http/dashboard/mod.rs`), with what it needs.
/// The list is checked against the router's source, so a new route cannot be left out.
const MUTATING_ROUTES: &[&str] = &[
    "/app/sources/{widget}/new",
    "/app/sources/{widget}/{code}",
    "/app/sources/{widget}/{code}/archive",
    "/app/sources/{widget}/{code}/restore",
    "/app/sources/{widget}/{code}/qr",
    "/app/webhooks",
    "/app/webhooks/{id}",
    "/app/webhooks/{id}/rotate",
    "/app/webhooks/{id}/test",
    "/app/webhooks/{id}/delete",
    "/app/webhooks/{id}/replay",
    "/app/webhooks/{id}/deliveries/{delivery}/resend",
    "/app/widgets",
    "/app/widgets/{version}",
    "/app/settings",
    "/app/team/invite",
    "/app/team/invites/revoke",
    "/app/team/{id}/reset",
    "/app/team/{id}/remove",
    "/app/leads/{id}/source",
    "/app/leads/{id}/outcome",
    "/app/leads/{id}/erase",
    "/app/leads/import",
    "/app/sources/{widget}/{code}/spend",
    "/app/sources/{widget}/spend-import",
    "/app/reports/attribution",
];

#[test]
fn every_post_route_of_the_dashboard_is_in_the_permission_matrix() {
    let router = include_str!("../../src/http/dashboard/mod.rs");
    // Routes reached by anyone (logging in and out, accepting an invite) are not role-gated.
    // Switching organization is for any member, to the organizations they belong to.
    let open = ["/login", "/logout", "/invite/{token}", "/app/organization"];
    let mut routes = Vec::new();
    let mut rest = router;
    while let Some(i) = rest.find(".route(") {
        rest = &rest[i + 7..];
        let path = rest.split('"').nth(1).unwrap_or_default();
        let handler_end = rest.find(".route(").unwrap_or(rest.len());
        if rest[..handler_end].contains("post(") && !open.contains(&path) {
            routes.push(path.to_owned());
        }
    }
    routes.sort();
    let mut listed: Vec<String> = MUTATING_ROUTES.iter().map(|r| (*r).to_owned()).collect();
    listed.sort();
    assert_eq!(routes, listed);
}

/// Every `(method, path)` the dashboard's router registers, read from its source.
fn dashboard_routes() -> Vec<(&'static str, String)> {
    let router = include_str!("../../src/http/dashboard/mod.rs");
    let mut routes = Vec::new();
    let mut rest = router;
    while let Some(i) = rest.find(".route(") {
        rest = &rest[i + 7..];
        let path = rest.split('"').nth(1).unwrap_or_default().to_owned();
        let end = rest.find(".route(").unwrap_or(rest.len());
        let handlers = &rest[..end];
        // `get(` alone, not the `get(` inside another word.
        if handlers.contains("get(") && !handlers.trim_start().starts_with("post(") {
            routes.push(("GET", path.clone()));
        }
        if handlers.contains("post(") {
            routes.push(("POST", path));
        }
    }
    routes
}

/// Every dashboard route answers with the web-security headers, and every form post without
/// this session's token — or from another site — is refused before it does anything.
async fn every_dashboard_route_sends_security_headers_and_refuses_forged_posts(db: TestDb) {
    let app = TestApp::spawn_with(db, |c| c.allow_private_webhook_targets = true).await;
    let key = org_with_owner(&app, "owner@acme.example").await;
    app.call(
        reqwest::Method::POST,
        "/api/v1/widgets/01/sources",
        Some(&key),
        Some(&json!({"name": "Yard Signs", "channel_category": "print_outdoor", "generate_qr": true})),
    )
    .await;
    let (_, endpoint) = app
        .call(
            reqwest::Method::POST,
            "/api/v1/webhooks",
            Some(&key),
            Some(&json!({"url": "http://127.0.0.1:9999/hook"})),
        )
        .await;
    let endpoint = endpoint["id"].as_str().unwrap().to_owned();
    let mut owner = Visitor::new(&app);
    owner.log_in("owner@acme.example", PASSWORD).await;
    let routes = dashboard_routes();
    assert!(routes.len() > 30, "{routes:?}");
    let fill = |path: &str| {
        path.replace("{widget}", "01")
            .replace("{code}", "02")
            .replace("{version}", "01")
            .replace("{delivery}", "dlv_unknown")
            .replace("{token}", "not-a-token")
            .replace("/webhooks/{id}", &format!("/webhooks/{endpoint}"))
            .replace("{id}", "unknown")
    };
    let headers_of = |page: &Page, what: &str| {
        for (name, expected) in [
            ("x-frame-options", "DENY"),
            ("x-content-type-options", "nosniff"),
            ("referrer-policy", "same-origin"),
        ] {
            assert_eq!(
                page.headers.get(name).map(|v| v.to_str().unwrap()),
                Some(expected),
                "{what}: {name}"
            );
        }
        let csp = page.headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'"), "{what}: {csp}");
    };
    let mut checked = 0;
    for (method, path) in &routes {
        let url = fill(path);
        if *method == "GET" {
            let page = owner.get(&url).await;
            assert!(page.status.as_u16() < 500, "GET {url}: {}", page.status);
            headers_of(&page, &format!("GET {url}"));
            checked += 1;
            continue;
        }
        // No token at all.
        let page = owner.post_raw(&url, &[("name", "x")], &[]).await;
        assert_eq!(
            page.status,
            StatusCode::FORBIDDEN,
            "POST {url} without a token"
        );
        headers_of(&page, &format!("POST {url}"));
        // The right token, but posted from another site.
        let csrf = owner.csrf.clone();
        let page = owner
            .post_raw(
                &url,
                &[("name", "x"), ("_csrf", &csrf)],
                &[("origin", "https://evil.example")],
            )
            .await;
        assert_eq!(
            page.status,
            StatusCode::FORBIDDEN,
            "POST {url} from another site"
        );
        // A token, but not this session's.
        let page = owner
            .post_raw(&url, &[("name", "x"), ("_csrf", "a-guessed-token")], &[])
            .await;
        assert_eq!(
            page.status,
            StatusCode::FORBIDDEN,
            "POST {url} with a wrong token"
        );
        checked += 3;
    }
    // Still signed in: none of the refused posts (logout among them) did anything.
    assert_eq!(owner.get("/app/sources").await.status, StatusCode::OK);
    println!(
        "{} dashboard routes, {checked} requests checked",
        routes.len()
    );
}

/// What forms carry beyond one text per field reaches the store: a ticked checkbox, a list of
/// checkboxes, a pasted text of a few kilobytes.
async fn forms_carry_checkboxes_lists_and_long_pastes(db: TestDb) {
    let app = TestApp::spawn_with(db, |c| c.allow_private_webhook_targets = true).await;
    let key = org_with_owner(&app, "owner@acme.example").await;
    let mut owner = Visitor::new(&app);
    owner.log_in("owner@acme.example", PASSWORD).await;
    owner.get("/app/sources").await;
    let created = owner
        .post(
            "/app/sources/01/new",
            &[
                ("name", "Yard Signs"),
                ("channel_category", "print_outdoor"),
                ("generate_qr", "1"),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    assert_eq!(
        owner.get("/app/sources/01/02/qr.png").await.status,
        StatusCode::OK,
        "the ticked box made a QR code"
    );
    owner.get("/app/webhooks").await;
    let hook = owner
        .post(
            "/app/webhooks",
            &[
                ("url", "http://127.0.0.1:9999/hook"),
                ("events", "lead.address_preview"),
                ("events", "lead.outcome_changed"),
            ],
        )
        .await;
    assert!(hook.status.as_u16() < 400, "{}", hook.body);
    let (_, hooks) = app
        .call(reqwest::Method::GET, "/api/v1/webhooks", Some(&key), None)
        .await;
    let events = hooks[0]["events"].to_string();
    for e in ["lead.address_preview", "lead.outcome_changed"] {
        assert!(events.contains(e), "{events}");
    }
    // Three years of monthly spend for two sources: a paste of about 1.4 KB.
    let mut csv = String::from("widget_version,source_code,month,amount\n");
    for year in [2023, 2024, 2025] {
        for month in 1..=12 {
            for source in ["01", "02"] {
                csv.push_str(&format!("01,{source},{year}-{month:02},100\n"));
            }
        }
    }
    assert!(csv.len() > 1_200, "{}", csv.len());
    owner.get("/app/sources").await;
    let imported = owner
        .post("/app/sources/01/spend-import", &[("csv", &csv)])
        .await;
    assert!(imported.status.as_u16() < 400, "{}", imported.body);
    let (_, spend) = app
        .call(reqwest::Method::GET, "/api/v1/spend", Some(&key), None)
        .await;
    assert!(spend.to_string().matches("2025-12").count() >= 2, "{spend}");
}

async fn a_viewer_can_change_nothing_through_any_dashboard_route(db: TestDb) {
    let app = TestApp::spawn_with(db, |c| c.allow_private_webhook_targets = true).await;
    let key = org_with_owner(&app, "owner@acme.example").await;
    let call = |method: reqwest::Method, path: String, body: serde_json::Value| {
        let (app, key) = (&app, &key);
        async move { app.call(method, &path, Some(key), Some(&body)).await }
    };
    call(
        reqwest::Method::POST,
        "/api/v1/widgets".into(),
        json!({"name": "Second"}),
    )
    .await;
    call(
        reqwest::Method::POST,
        "/api/v1/widgets/01/sources".into(),
        json!({"name": "Yard Signs", "channel_category": "print_outdoor"}),
    )
    .await;
    let (_, endpoint) = call(
        reqwest::Method::POST,
        "/api/v1/webhooks".into(),
        json!({"url": "http://127.0.0.1:9999/hook"}),
    )
    .await;
    let endpoint = endpoint["id"].as_str().unwrap().to_owned();
    let (_, test) = call(
        reqwest::Method::POST,
        format!("/api/v1/webhooks/{endpoint}/test"),
        json!({}),
    )
    .await;
    let delivery = test["delivery_id"].as_str().unwrap().to_owned();
    let (_, lead) = call(
        reqwest::Method::POST,
        "/api/v1/leads".into(),
        json!({"widget": "01", "source": "01", "address": {"street": "1 Main St",
            "city": "Austin", "state": "TX", "postal_code": "78701"}}),
    )
    .await;
    let lead = lead["id"].as_str().unwrap().to_owned();
    let store = leadtrail::store::Store::connect(app.database_url())
        .await
        .unwrap();
    let org = store
        .user_by_email("owner@acme.example")
        .await
        .unwrap()
        .unwrap()
        .org_id;
    let hash = leadtrail::domain::user::hash_password("password", PASSWORD).unwrap();
    for (email, role) in [
        ("viewer@acme.example", leadtrail::domain::user::Role::Viewer),
        ("member@acme.example", leadtrail::domain::user::Role::Member),
    ] {
        store.create_user(&org, email, &hash, role).await.unwrap();
    }
    let member = store
        .user_by_email("member@acme.example")
        .await
        .unwrap()
        .unwrap()
        .id;
    // A link waiting for the address the forms name, for the revoke route to withdraw.
    let week = leadtrail::store::now_ms() + 7 * 24 * 3600 * 1000;
    store
        .create_invite(
            &org,
            "new@acme.example",
            leadtrail::domain::user::Role::Viewer,
            "pending-link-digest",
            week,
        )
        .await
        .unwrap();
    let fill = |route: &str| {
        route
            .replace("{widget}", "01")
            .replace("{code}", "02")
            .replace("{version}", "02")
            .replace("{delivery}", &delivery)
            .replace("/team/{id}", &format!("/team/{member}"))
            .replace("/leads/{id}", &format!("/leads/{lead}"))
            .replace("{id}", &endpoint)
    };
    // Fields a real form would send, so a refusal is for the role and not for bad input.
    let fields: &[(&str, &str)] = &[
        ("name", "Pwned"),
        ("channel_category", "other"),
        ("url", "http://127.0.0.1:9998/other"),
        ("events", "lead.enriched"),
        ("enabled", "off"),
        ("since", "2020-01-01T00:00"),
        ("until", "2020-01-02T00:00"),
        ("email", "new@acme.example"),
        ("role", "owner"),
        ("website_url", "https://evil.example/"),
        ("brand_color", "#000000"),
        ("site_url", "https://evil.example/"),
        ("status", "archived"),
        ("source", "02"),
        ("reason", "pwned"),
        ("outcome", "won"),
        ("value", "1000"),
        ("month", "2026-10"),
        ("amount", "100"),
        ("lookback_days", "30"),
        ("half_life_days", "3"),
        (
            "csv",
            "widget_version,source_code,month,amount\n01,01,2026-10,5\n",
        ),
    ];
    let before = state_of(&app, &key, &org).await;
    for (who, routes) in [
        ("viewer@acme.example", MUTATING_ROUTES.to_vec()),
        (
            "member@acme.example",
            MUTATING_ROUTES
                .iter()
                .copied()
                // Owners only: the team, and erasing a homeowner's data.
                .filter(|r| r.starts_with("/app/team") || r.ends_with("/erase"))
                .collect(),
        ),
    ] {
        let mut visitor = Visitor::new(&app);
        visitor.log_in(who, PASSWORD).await;
        visitor.get("/app/sources").await;
        let sessions_with_visitor = state_of(&app, &key, &org).await;
        for route in routes {
            let page = visitor.post(&fill(route), fields).await;
            assert_eq!(
                page.status,
                StatusCode::FORBIDDEN,
                "{who} {route}: {}",
                page.body
            );
        }
        // Nothing changed (the visitor's own session row aside, counted in both).
        assert_eq!(
            state_of(&app, &key, &org).await,
            sessions_with_visitor,
            "{who}"
        );
    }
    let after = state_of(&app, &key, &org).await;
    let without_sessions = |s: &[String]| -> Vec<String> {
        s.iter()
            .filter(|l| !l.starts_with("sessions"))
            .cloned()
            .collect()
    };
    assert_eq!(without_sessions(&after), without_sessions(&before));
}

async fn an_editor_corrects_a_leads_source_and_the_arrival_stays_on_record(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let key = org_with_owner(&app, "owner@acme.example").await;
    for name in ["Yard Signs", "Nextdoor"] {
        app.call(
            reqwest::Method::POST,
            "/api/v1/widgets/01/sources",
            Some(&key),
            Some(&json!({"name": name, "channel_category": "print_outdoor"})),
        )
        .await;
    }
    let (_, org) = app
        .call(
            reqwest::Method::GET,
            "/api/v1/organization",
            Some(&key),
            None,
        )
        .await;
    // Arrived through a link naming a widget the organization does not have, with a gclid.
    let (status, created) = app
        .call(
            reqwest::Method::POST,
            "/c/v1/leads",
            None,
            Some(
                &json!({"public_key": org["public_key"], "v": "07", "s": "02",
                "utm": {"gclid": "Cj0KCQ-test", "utm_campaign": "spring"},
                "address": {"street": "1 Main St", "city": "Austin", "state": "TX",
                    "postal_code": "78701"}}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let lead = created["lead_id"].as_str().unwrap().to_owned();
    let mut owner = Visitor::new(&app);
    owner.log_in("owner@acme.example", PASSWORD).await;
    let page = owner.get(&format!("/app/leads?open={lead}")).await;
    assert_eq!(page.status, StatusCode::OK);
    for shown in [
        "Cj0KCQ-test",
        "spring",
        "The link named a widget this organization does not have",
        "Correct source",
    ] {
        assert!(page.body.contains(shown), "{shown} missing");
    }
    let path = format!("/app/leads/{lead}/source");
    let refused = owner
        .post(&path, &[("source", "03"), ("reason", " ")])
        .await;
    assert_eq!(refused.status, StatusCode::SEE_OTHER);
    let (_, body) = app
        .call(
            reqwest::Method::GET,
            &format!("/api/v1/leads/{lead}"),
            Some(&key),
            None,
        )
        .await;
    assert!(
        body["corrected_source"].is_null(),
        "a blank reason changes nothing"
    );
    let done = owner
        .post(
            &path,
            &[("source", "03"), ("reason", "Caller saw it on Nextdoor")],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let page = owner.get(&format!("/app/leads?open={lead}")).await;
    assert!(page.body.contains("SRC-03 · Nextdoor (corrected)"));
    assert!(
        page.body
            .contains("SRC-01 → SRC-03 · Caller saw it on Nextdoor · by user:owner@acme.example")
    );
    assert!(page.body.contains("Source name at arrival</dt><dd>Website"));
    // Another organization's owner cannot reach the lead.
    org_with_owner(&app, "rival@other.example").await;
    let mut rival = Visitor::new(&app);
    rival.log_in("rival@other.example", PASSWORD).await;
    rival.get("/app/leads").await;
    let page = rival
        .post(&path, &[("source", "02"), ("reason", "mine now")])
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    let (_, body) = app
        .call(
            reqwest::Method::GET,
            &format!("/api/v1/leads/{lead}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(body["corrected_source"]["source_code"], "03");
    assert_eq!(body["source_tracking"]["source_code"], "01");
}

async fn lead_sources_list_the_system_source_first_then_newest_and_qr_is_opt_in(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let key = org_with_owner(&app, "owner@acme.example").await;
    for name in ["Yard Signs", "Mailers", "Radio Spot"] {
        let (status, _) = app
            .call(
                reqwest::Method::POST,
                "/api/v1/widgets/01/sources",
                Some(&key),
                Some(&json!({"name": name, "channel_category": "other"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let mut owner = Visitor::new(&app);
    owner.log_in("owner@acme.example", PASSWORD).await;
    let page = owner.get("/app/sources?widget=01&panel=add").await;
    assert_eq!(page.status, StatusCode::OK);
    let order: Vec<usize> = ["Website", "Radio Spot", "Mailers", "Yard Signs"]
        .iter()
        .map(|name| {
            page.body
                .find(&format!(">{name}<"))
                .unwrap_or_else(|| panic!("{name} missing"))
        })
        .collect();
    assert!(
        order.is_sorted(),
        "system source first, then newest: {order:?}"
    );
    let checkbox = page
        .body
        .split("name=\"generate_qr\"")
        .nth(1)
        .and_then(|rest| rest.split('>').next())
        .unwrap();
    assert!(!checkbox.contains("checked"), "QR generation is opt-in");
    // Primary offers no other status, and a forged post for one is refused.
    let refused = owner
        .post(
            "/app/widgets/01",
            &[("name", "Primary"), ("status", "archived")],
        )
        .await;
    assert!(refused.status.is_client_error(), "{}", refused.status);
    assert!(refused.body.contains("Primary"), "{}", refused.body);
    let (_, widget) = app
        .call(reqwest::Method::GET, "/api/v1/widgets/01", Some(&key), None)
        .await;
    assert_eq!(widget["status"], "configured");
}

on_both_backends!(
    lead_sources_list_the_system_source_first_then_newest_and_qr_is_opt_in,
    an_editor_corrects_a_leads_source_and_the_arrival_stays_on_record,
    a_viewer_can_change_nothing_through_any_dashboard_route,
    every_dashboard_route_sends_security_headers_and_refuses_forged_posts,
    forms_carry_checkboxes_lists_and_long_pastes,
    the_webhooks_page_shows_each_endpoints_backlog_and_last_error_and_replays,
    a_refused_source_reopens_the_slide_over_with_what_was_typed,
    settings_and_widgets_refuse_bad_input_keeping_what_was_typed,
    webhook_secrets_rotate_and_are_revealed_only_to_editors,
    signed_out_pages_send_you_to_log_in_and_back,
    session_cookies_are_http_only_lax_and_secure_behind_https,
    login_attempts_are_rate_limited_per_account,
    successful_logins_are_never_throttled,
    an_https_deployment_marks_cookies_secure_and_sends_hsts,
    links_use_the_public_base_url_not_the_host_header,
    no_query_string_makes_a_page_fail,
    a_login_post_without_the_form_token_is_refused,
    another_tenants_dashboard_objects_are_not_found,
    an_owner_invites_a_member_with_a_link_that_works_once,
    a_reset_ends_the_members_sessions,
    a_removed_member_cannot_come_back_through_an_earlier_link,
    unused_links_are_listed_replaced_and_revocable,
    one_login_joins_a_second_organization_and_switches,
);
