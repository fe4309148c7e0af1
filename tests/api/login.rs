//! The browser sign-in end to end over real HTTP with real cookies: client
//! → /authorize → the fake upstream → /callback/google → consent → code →
//! /token → tokens verified against /jwks as a relying party and a resource
//! server would; refresh rotation and reuse detection; /userinfo.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::both;
use crate::common::fake_idp::{FakeIdp, Tamper, User};
use crate::common::{Backend, TestApp, error_of, spawn_app_with, verify_jwt};

pub const REDIRECT: &str = "https://app.example/cb";
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K9uhyUPf5y2cNpTQvpQ3nP0CJo";
pub const CHALLENGE: &str = "jFJ5owK9BMosC5BZe7GT7EBmwJC2OlXa1zyf-EDuX8U";

pub async fn app_with_idp(backend: Backend, extra: &[(&str, &str)]) -> (TestApp, FakeIdp) {
    let idp = FakeIdp::start().await;
    let mut vars: Vec<(String, String)> = idp.vars();
    vars.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let app = spawn_app_with(backend, &vars).await;
    app.eventually(|| async {
        app.http
            .get(format!("{}/readyz", app.base))
            .send()
            .await
            .unwrap()
            .status()
            == 200
    })
    .await;
    (app, idp)
}

fn query_of(location: &str) -> HashMap<String, String> {
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

fn location(r: &reqwest::Response) -> String {
    r.headers()["location"].to_str().unwrap().to_owned()
}

/// Where the browser ends up after /authorize: the client's redirect URI
/// (its query), or a consent page (its ticket).
#[derive(Debug)]
pub enum Landing {
    Client(HashMap<String, String>),
    Consent(String),
    /// An error page: its status and text (shown when a test fails).
    Page(String),
}

/// Follows redirects like a browser, through the fake upstream, until the
/// client's redirect URI, a consent page or an error page.
pub async fn follow(app: &TestApp, mut r: reqwest::Response) -> Landing {
    loop {
        let status = r.status().as_u16();
        if status == 302 || status == 303 {
            let to = location(&r);
            if to.starts_with(REDIRECT)
                || to.starts_with("http://127.0.0.1/cb")
                || to.starts_with("http://localhost") && !to.contains("/callback/")
            {
                return Landing::Client(query_of(&to));
            }
            r = app.http.get(&to).send().await.unwrap();
            continue;
        }
        let body = r.text().await.unwrap();
        if status == 200 && body.contains("name=\"decision\"") {
            let ticket = body
                .split("name=\"ticket\" value=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
                .to_owned();
            return Landing::Consent(ticket);
        }
        return Landing::Page(format!("{status}: {body}"));
    }
}

pub async fn authorize(app: &TestApp, client_id: &str, extra: &[(&str, &str)]) -> Landing {
    let mut q = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("scope", "openid profile email"),
        ("state", "st4te"),
        ("nonce", "n0nce"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ];
    for (k, v) in extra {
        q.retain(|(qk, _)| qk != k);
        if !v.is_empty() {
            q.push((k, v));
        }
    }
    let r = app
        .http
        .get(format!("{}/authorize", app.base))
        .query(&q)
        .send()
        .await
        .unwrap();
    follow(app, r).await
}

pub async fn decide(app: &TestApp, ticket: &str, decision: &str) -> Landing {
    let r = app
        .http
        .post(format!("{}/consent", app.base))
        .form(&[("ticket", ticket), ("decision", decision)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    follow(app, r).await
}

/// Signs in through consent (Allow) and returns the code.
pub async fn code_for(app: &TestApp, client_id: &str) -> String {
    let landing = match authorize(app, client_id, &[]).await {
        Landing::Consent(ticket) => decide(app, &ticket, "allow").await,
        other => other,
    };
    match landing {
        Landing::Client(q) => {
            assert_eq!(q.get("state").map(String::as_str), Some("st4te"));
            assert_eq!(q.get("iss"), Some(&app.base));
            q.get("code")
                .unwrap_or_else(|| panic!("no code: {q:?}"))
                .clone()
        }
        other => panic!("{other:?}"),
    }
}

pub async fn web_client(app: &TestApp, extra: Value) -> (String, String) {
    let mut meta = json!({
        "client_name": "Example App",
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
    });
    for (k, v) in extra.as_object().unwrap() {
        meta[k] = v.clone();
    }
    let c = app.create_client(meta).await;
    (
        c["client_id"].as_str().unwrap().to_owned(),
        c["client_secret"].as_str().unwrap_or_default().to_owned(),
    )
}

pub async fn redeem(app: &TestApp, id: &str, secret: &str, code: &str) -> reqwest::Response {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    if secret.is_empty() {
        let mut f = form.to_vec();
        f.push(("client_id", id));
        app.http
            .post(format!("{}/token", app.base))
            .form(&f)
            .send()
            .await
            .unwrap()
    } else {
        app.token_basic(id, secret, &form).await
    }
}

async fn a_confidential_client_signs_a_user_in_and_gets_verified_tokens(backend: Backend) {
    let (app, idp) = app_with_idp(backend, &[]).await;
    idp.sign_in_as(User::new("alice"));
    let (id, secret) = web_client(&app, json!({})).await;
    let code = code_for(&app, &id).await;
    let r = redeem(&app, &id, &secret, &code).await;
    let headers = r.headers().clone();
    let body: Value = r.json().await.unwrap();
    assert!(body.get("access_token").is_some(), "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(body["scope"], "openid profile email");
    let jwks = app.jwks().await;

    let (_, access) = verify_jwt(
        body["access_token"].as_str().unwrap(),
        &jwks,
        &app.base,
        &app.base,
        "at+jwt",
    );
    let sub = access["sub"].as_str().unwrap().to_owned();
    assert_ne!(sub, "alice", "the sub is Tessera's own, not the upstream's");
    assert_eq!(access["client_id"], id.as_str());
    assert!(access["auth_time"].is_i64());

    let (header, idt) = verify_jwt(
        body["id_token"].as_str().unwrap(),
        &jwks,
        &app.base,
        &id,
        "JWT",
    );
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    assert_eq!(idt["sub"], sub.as_str());
    assert_eq!(idt["nonce"], "n0nce");
    assert_eq!(idt["azp"], id.as_str());
    assert_eq!(idt["email"], "alice@example.com");
    assert_eq!(idt["email_verified"], true);
    assert_eq!(idt["name"], "User alice");
    assert_eq!(idt["auth_time"], access["auth_time"]);
    assert!(idt["sid"].is_string());
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        body["access_token"].as_str().unwrap().as_bytes(),
    );
    assert_eq!(
        idt["at_hash"],
        tessera::secret::b64url(&digest.as_ref()[..16])
    );

    // /userinfo answers the same claims.
    let info: Value = app
        .http
        .get(format!("{}/userinfo", app.base))
        .bearer_auth(body["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["sub"], sub.as_str());
    assert_eq!(info["email"], "alice@example.com");

    // A second login of the same upstream user maps to the same sub.
    let again = code_for(&app, &id).await;
    let body2: Value = redeem(&app, &id, &secret, &again)
        .await
        .json()
        .await
        .unwrap();
    let (_, access2) = verify_jwt(
        body2["access_token"].as_str().unwrap(),
        &jwks,
        &app.base,
        &app.base,
        "at+jwt",
    );
    assert_eq!(access2["sub"], sub.as_str());
}
both!(a_confidential_client_signs_a_user_in_and_gets_verified_tokens);

async fn a_public_client_uses_pkce_and_refresh_rotation(backend: Backend) {
    let (app, _idp) = app_with_idp(backend, &[]).await;
    let (id, _) = web_client(
        &app,
        json!({"token_endpoint_auth_method": "none", "skip_consent": true}),
    )
    .await;
    let code = code_for(&app, &id).await;
    let body: Value = redeem(&app, &id, "", &code).await.json().await.unwrap();
    let first = body["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(first.len(), 43);

    let refresh = |token: String, scope: Option<&'static str>| {
        let app = &app;
        let id = id.clone();
        async move {
            let mut form = vec![
                ("grant_type", "refresh_token".to_owned()),
                ("refresh_token", token),
                ("client_id", id),
            ];
            if let Some(s) = scope {
                form.push(("scope", s.to_owned()));
            }
            app.http
                .post(format!("{}/token", app.base))
                .form(&form)
                .send()
                .await
                .unwrap()
        }
    };
    let r = refresh(first.clone(), Some("openid email")).await;
    assert_eq!(r.status(), 200);
    let rotated: Value = r.json().await.unwrap();
    assert_eq!(
        rotated["scope"], "openid email",
        "a narrower scope narrows this access token"
    );
    let second = rotated["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    let jwks = app.jwks().await;
    let (_, idt) = verify_jwt(
        rotated["id_token"].as_str().unwrap(),
        &jwks,
        &app.base,
        &id,
        "JWT",
    );
    assert!(
        idt.get("nonce").is_none(),
        "no nonce in a refreshed ID token"
    );

    // The family keeps its scope: the next refresh may ask for profile again.
    let r = refresh(second.clone(), Some("openid profile")).await;
    assert_eq!(r.status(), 200);
    let third: Value = r.json().await.unwrap();
    let third = third["refresh_token"].as_str().unwrap().to_owned();
    // Asking for more than was granted is invalid_scope and spends nothing.
    let (status, error, _) = error_of(refresh(third.clone(), Some("openid api:admin")).await).await;
    assert_eq!((status, error.as_str()), (400, "invalid_scope"));

    // Reuse of a spent token revokes the family: the live one dies too.
    let (status, error, _) = error_of(refresh(first.clone(), None).await).await;
    assert_eq!((status, error.as_str()), (400, "invalid_grant"));
    let (status, error, _) = error_of(refresh(third, None).await).await;
    assert_eq!((status, error.as_str()), (400, "invalid_grant"));
}
both!(a_public_client_uses_pkce_and_refresh_rotation);

async fn a_code_works_once_and_its_replay_revokes_what_it_issued(backend: Backend) {
    let (app, _idp) = app_with_idp(backend, &[]).await;
    let (id, secret) = web_client(&app, json!({"skip_consent": true})).await;
    let code = code_for(&app, &id).await;
    let body: Value = redeem(&app, &id, &secret, &code)
        .await
        .json()
        .await
        .unwrap();
    let access = body["access_token"].as_str().unwrap().to_owned();
    let refresh_token = body["refresh_token"].as_str().unwrap().to_owned();
    let (status, error, _) = error_of(redeem(&app, &id, &secret, &code).await).await;
    assert_eq!((status, error.as_str()), (400, "invalid_grant"));
    let r = app
        .http
        .get(format!("{}/userinfo", app.base))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        401,
        "the access token of the first redemption is revoked"
    );
    let r = app
        .token_basic(
            &id,
            &secret,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh_token),
            ],
        )
        .await;
    assert_eq!(r.status(), 400, "and so is its refresh token");
}
both!(a_code_works_once_and_its_replay_revokes_what_it_issued);

async fn consent_is_remembered_and_deny_returns_access_denied(backend: Backend) {
    let (app, _idp) = app_with_idp(backend, &[]).await;
    let (id, _) = web_client(&app, json!({})).await;
    let Landing::Consent(ticket) = authorize(&app, &id, &[]).await else {
        panic!("consent page expected")
    };
    match decide(&app, &ticket, "deny").await {
        Landing::Client(q) => {
            assert_eq!(q["error"], "access_denied");
            assert_eq!(q["state"], "st4te");
            assert_eq!(q["iss"], app.base);
        }
        other => panic!("{other:?}"),
    }
    // The ticket works once.
    let replay = app
        .http
        .post(format!("{}/consent", app.base))
        .form(&[("ticket", ticket.as_str()), ("decision", "allow")])
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 400);
    assert_eq!(replay.headers()["x-frame-options"], "DENY");
    // Allow once: the next request for the same or fewer scopes skips the page (SSO, no upstream).
    let Landing::Consent(ticket) = authorize(&app, &id, &[]).await else {
        panic!("consent page expected")
    };
    assert!(matches!(
        decide(&app, &ticket, "allow").await,
        Landing::Client(_)
    ));
    assert!(
        matches!(authorize(&app, &id, &[("scope", "openid email")]).await, Landing::Client(q) if q.contains_key("code"))
    );
    assert!(matches!(
        authorize(&app, &id, &[("prompt", "consent")]).await,
        Landing::Consent(_)
    ));
    assert!(
        matches!(authorize(&app, &id, &[("prompt", "none")]).await, Landing::Client(q) if q.contains_key("code"))
    );
}
both!(consent_is_remembered_and_deny_returns_access_denied);

async fn prompt_none_and_prompt_login(backend: Backend) {
    let (app, idp) = app_with_idp(backend, &[]).await;
    let (id, _) = web_client(&app, json!({"skip_consent": true})).await;
    match authorize(&app, &id, &[("prompt", "none")]).await {
        Landing::Client(q) => assert_eq!(q["error"], "login_required"),
        other => panic!("{other:?}"),
    }
    assert!(
        idp.requests().is_empty(),
        "prompt=none never contacts the upstream"
    );
    code_for(&app, &id).await;
    assert_eq!(idp.requests().len(), 1);
    // SSO: no upstream round trip now.
    code_for(&app, &id).await;
    assert_eq!(idp.requests().len(), 1);
    // prompt=login sends the user through the upstream again, asking to pick the account.
    assert!(
        matches!(authorize(&app, &id, &[("prompt", "login")]).await, Landing::Client(q) if q.contains_key("code"))
    );
    let requests = idp.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1]["prompt"], "select_account");
    match authorize(&app, &id, &[("prompt", "none login")]).await {
        Landing::Client(q) => assert_eq!(q["error"], "invalid_request"),
        other => panic!("{other:?}"),
    }
}
both!(prompt_none_and_prompt_login);

async fn upstream_failures_go_back_to_the_client_without_a_code(backend: Backend) {
    let (app, idp) = app_with_idp(
        backend,
        &[
            ("TESSERA_GOOGLE_ALLOWED_DOMAINS", "example.com"),
            ("TESSERA_UPSTREAM_TIMEOUT", "2"),
        ],
    )
    .await;
    let (id, _) = web_client(&app, json!({"skip_consent": true})).await;
    let cases = [
        (Tamper::Cancel, "access_denied"),
        (Tamper::BadSignature, "server_error"),
        (Tamper::WrongNonce, "server_error"),
        (Tamper::TokenEndpointDown, "temporarily_unavailable"),
        // Bounded time and memory: cut off, not read or waited for.
        (Tamper::HugeTokenResponse, "temporarily_unavailable"),
        (Tamper::SlowTokenEndpoint, "temporarily_unavailable"),
        (Tamper::GarbageTokenResponse, "temporarily_unavailable"),
        // Outbound requests follow no redirect.
        (Tamper::RedirectingTokenEndpoint, "temporarily_unavailable"),
    ];
    idp.sign_in_as(User {
        hd: Some("example.com".into()),
        ..User::new("ok")
    });
    for (tamper, error) in cases {
        idp.tamper(tamper);
        match authorize(&app, &id, &[]).await {
            Landing::Client(q) => {
                assert_eq!(
                    q.get("error").map(String::as_str),
                    Some(error),
                    "{tamper:?}"
                );
                assert!(!q.contains_key("code"));
                assert_eq!(q["iss"], app.base);
            }
            other => panic!("{tamper:?}: {other:?}"),
        }
    }
    idp.tamper(Tamper::None);
    idp.sign_in_as(User {
        hd: Some("elsewhere.org".into()),
        ..User::new("outsider")
    });
    match authorize(&app, &id, &[]).await {
        Landing::Client(q) => {
            assert_eq!(q["error"], "access_denied");
            assert!(q["error_description"].contains("elsewhere.org"));
        }
        other => panic!("{other:?}"),
    }
}
both!(upstream_failures_go_back_to_the_client_without_a_code);

async fn the_upstream_state_only_works_in_the_browser_that_started_the_login(backend: Backend) {
    let (app, _idp) = app_with_idp(backend, &[]).await;
    let (id, _) = web_client(&app, json!({"skip_consent": true})).await;
    let q = [
        ("response_type", "code"),
        ("client_id", id.as_str()),
        ("redirect_uri", REDIRECT),
        ("scope", "openid"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ];
    let r = app
        .http
        .get(format!("{}/authorize", app.base))
        .query(&q)
        .send()
        .await
        .unwrap();
    let to_upstream = location(&r);
    let r = app.http.get(&to_upstream).send().await.unwrap();
    let callback = location(&r);
    // Another browser (no cookies) presents the same callback.
    let other = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = other.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
    // The state was spent by that attempt: the real browser must start again.
    let r = app.http.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), 400);
}
both!(the_upstream_state_only_works_in_the_browser_that_started_the_login);

async fn an_exceeded_max_age_sends_the_user_through_the_upstream_again(backend: Backend) {
    let (app, idp) = app_with_idp(backend, &[]).await;
    let (id, _) = web_client(&app, json!({"skip_consent": true})).await;
    code_for(&app, &id).await;
    assert_eq!(idp.requests().len(), 1);
    assert!(
        matches!(authorize(&app, &id, &[("max_age", "3600")]).await, Landing::Client(q) if q.contains_key("code"))
    );
    assert_eq!(idp.requests().len(), 1, "a fresh enough session is reused");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert!(
        matches!(authorize(&app, &id, &[("max_age", "0")]).await, Landing::Client(q) if q.contains_key("code"))
    );
    let requests = idp.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1]["prompt"], "select_account");
}
both!(an_exceeded_max_age_sends_the_user_through_the_upstream_again);
