//! The admin API for users (and the `tessera user …` CLI on the same
//! database): list and search, details, disable / enable, end sessions,
//! withdraw a consent — and what each does to sign-in and tokens.

use reqwest::Method;
use serde_json::{Value, json};

use crate::both;
use crate::common::{Backend, TestApp, error_of};
use crate::login::{Landing, app_with_idp, authorize, code_for, redeem, web_client};

async fn admin(app: &TestApp, method: Method, path: &str) -> reqwest::Response {
    app.admin_request(method, path).send().await.unwrap()
}

async fn admin_json(app: &TestApp, method: Method, path: &str) -> Value {
    let r = admin(app, method, path).await;
    assert_eq!(r.status(), 200, "{path}");
    r.json().await.unwrap()
}

fn cli_ok(app: &TestApp, args: &[&str]) {
    let out = app.cli(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn refresh_status(app: &TestApp, id: &str, secret: &str, token: &str) -> u16 {
    let form = [("grant_type", "refresh_token"), ("refresh_token", token)];
    app.token_basic(id, secret, &form).await.status().as_u16()
}

async fn sign_in(app: &TestApp, id: &str, secret: &str) -> Value {
    let code = code_for(app, id).await;
    redeem(app, id, secret, &code).await.json().await.unwrap()
}

/// Grants that outlive the browser session.
const OFFLINE: &str = "openid profile email offline_access";

/// A client registered for `offline_access`.
async fn offline_client(app: &TestApp, extra: Value) -> (String, String) {
    let mut meta = json!({"scope": OFFLINE});
    for (k, v) in extra.as_object().unwrap() {
        meta[k] = v.clone();
    }
    web_client(app, meta).await
}

/// Signs in through the consent page (Allow), so a consent is recorded.
async fn sign_in_with_consent(app: &TestApp, id: &str, secret: &str) -> Value {
    sign_in_with_consent_for(app, id, secret, "openid profile email").await
}

async fn sign_in_with_consent_for(app: &TestApp, id: &str, secret: &str, scope: &str) -> Value {
    let code = match authorize(app, id, &[("scope", scope)]).await {
        Landing::Consent(ticket) => match crate::login::decide(app, &ticket, "allow").await {
            Landing::Client(q) => q["code"].clone(),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    };
    redeem(app, id, secret, &code).await.json().await.unwrap()
}

async fn the_admin_api_finds_shows_and_disables_users(backend: Backend) {
    let (app, _idp) = app_with_idp(backend, &[]).await;
    let (id, secret) = web_client(&app, json!({})).await;
    let tokens = sign_in_with_consent(&app, &id, &secret).await;

    let list = admin_json(&app, Method::GET, "/admin/users").await;
    let users = list["users"].as_array().unwrap();
    assert_eq!(users.len(), 1);
    let sub = users[0]["sub"].as_str().unwrap().to_owned();
    let email = users[0]["email"].as_str().unwrap().to_owned();
    assert!(users[0]["disabled_at"].is_null());
    assert!(list["next_cursor"].is_null());
    // Search by email, ignoring case; no match is an empty page.
    let found = admin_json(
        &app,
        Method::GET,
        &format!("/admin/users?email={}", email.to_uppercase()),
    )
    .await;
    assert_eq!(found["users"][0]["sub"], sub);
    let none = admin_json(&app, Method::GET, "/admin/users?email=nobody@example.com").await;
    assert_eq!(none["users"], json!([]));
    let r = admin(&app, Method::GET, "/admin/users?cursor=%%%").await;
    assert_eq!(error_of(r).await.1, "invalid_request");

    let details = admin_json(&app, Method::GET, &format!("/admin/users/{sub}")).await;
    assert_eq!(details["upstream_links"].as_array().unwrap().len(), 1);
    assert_eq!(details["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(details["consents"][0]["client_id"], id);
    assert_eq!(details["refresh_families"][0]["client_id"], id);
    assert!(details["refresh_families"][0]["revoked_at"].is_null());
    let r = admin(&app, Method::GET, "/admin/users/no-such-user").await;
    assert_eq!(r.status(), 404);

    // Disabled: refresh refused, sessions ended, sign-in refused.
    let user = admin_json(&app, Method::POST, &format!("/admin/users/{sub}/disable")).await;
    assert!(user["disabled_at"].is_i64());
    let refresh_token = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(refresh_status(&app, &id, &secret, refresh_token).await, 400);
    let details = admin_json(&app, Method::GET, &format!("/admin/users/{sub}")).await;
    assert_eq!(details["sessions"], json!([]));
    match authorize(&app, &id, &[]).await {
        Landing::Client(q) => assert_eq!(q["error"], "access_denied"),
        other => panic!("{other:?}"),
    }
    // Enabled again: signing in works; that refresh token stays dead, as
    // it went with the ended session (no offline_access).
    let user = admin_json(&app, Method::POST, &format!("/admin/users/{sub}/enable")).await;
    assert!(user["disabled_at"].is_null());
    assert_eq!(refresh_status(&app, &id, &secret, refresh_token).await, 400);
    assert!(matches!(
        authorize(&app, &id, &[]).await,
        Landing::Client(q) if q.contains_key("code")
    ));
    assert_eq!(
        admin(&app, Method::POST, "/admin/users/no-such-user/disable")
            .await
            .status(),
        404
    );
    // Without the admin token, nothing.
    let r = app
        .http
        .post(format!("{}/admin/users/{sub}/disable", app.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}
both!(the_admin_api_finds_shows_and_disables_users);

async fn ending_sessions_and_withdrawing_consent(backend: Backend) {
    let (app, _idp) = app_with_idp(backend, &[]).await;
    let (id, secret) = offline_client(&app, json!({})).await;
    let (other_id, other_secret) = offline_client(&app, json!({"skip_consent": true})).await;
    // Consent, then offline tokens for both clients, and tokens that live
    // only as long as the session.
    let tokens = sign_in_with_consent_for(&app, &id, &secret, OFFLINE).await;
    let other = match authorize(&app, &other_id, &[("scope", OFFLINE)]).await {
        Landing::Client(q) => redeem(&app, &other_id, &other_secret, &q["code"])
            .await
            .json::<Value>()
            .await
            .unwrap(),
        other => panic!("{other:?}"),
    };
    let online = sign_in(&app, &other_id, &other_secret).await;
    let sub = admin_json(&app, Method::GET, "/admin/users").await["users"][0]["sub"]
        .as_str()
        .unwrap()
        .to_owned();

    // Ending sessions: prompt=none now needs a login; offline tokens live
    // on, the session's others are revoked.
    let r = admin(
        &app,
        Method::DELETE,
        &format!("/admin/users/{sub}/sessions"),
    )
    .await;
    assert_eq!(r.status(), 204);
    match authorize(&app, &id, &[("prompt", "none")]).await {
        Landing::Client(q) => assert_eq!(q["error"], "login_required"),
        other => panic!("{other:?}"),
    }
    let refresh_token = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(refresh_status(&app, &id, &secret, refresh_token).await, 200);
    let online_refresh = online["refresh_token"].as_str().unwrap();
    assert_eq!(
        refresh_status(&app, &other_id, &other_secret, online_refresh).await,
        400
    );

    // Withdrawing the consent to `id`: its refresh tokens die and the next
    // sign-in asks again; the other client is untouched.
    let r = admin(
        &app,
        Method::DELETE,
        &format!("/admin/users/{sub}/consents/{id}"),
    )
    .await;
    assert_eq!(r.status(), 204);
    let details = admin_json(&app, Method::GET, &format!("/admin/users/{sub}")).await;
    assert!(
        details["consents"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["client_id"] != id)
    );
    let family = details["refresh_families"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["client_id"] == id)
        .unwrap()
        .clone();
    assert!(family["revoked_at"].is_i64());
    let r = app
        .http
        .get(format!("{}/userinfo", app.base))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the access token went with the family");
    let other_refresh = other["refresh_token"].as_str().unwrap();
    assert_eq!(
        refresh_status(&app, &other_id, &other_secret, other_refresh).await,
        200
    );
    assert!(matches!(
        authorize(&app, &id, &[]).await,
        Landing::Consent(_)
    ));
    let r = admin(
        &app,
        Method::DELETE,
        &format!("/admin/users/{sub}/consents/{id}"),
    )
    .await;
    assert_eq!(r.status(), 404, "already withdrawn");
}
both!(ending_sessions_and_withdrawing_consent);

async fn the_cli_manages_users_on_the_database(backend: Backend) {
    let (app, _idp) = app_with_idp(backend, &[]).await;
    let (id, secret) = offline_client(&app, json!({})).await;
    let tokens = sign_in_with_consent_for(&app, &id, &secret, OFFLINE).await;
    let out = app.cli(&["user", "list", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let sub = list["users"][0]["sub"].as_str().unwrap().to_owned();
    let out = app.cli(&["user", "show", &sub, "--json"]);
    let details: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(details["sub"], sub);

    cli_ok(&app, &["user", "disable", &sub]);
    let refresh_token = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(refresh_status(&app, &id, &secret, refresh_token).await, 400);
    cli_ok(&app, &["user", "enable", &sub]);
    assert_eq!(refresh_status(&app, &id, &secret, refresh_token).await, 200);
    cli_ok(&app, &["user", "end-sessions", &sub]);
    cli_ok(&app, &["user", "revoke-consent", &sub, &id]);
    let out = app.cli(&["user", "revoke-consent", &sub, &id]);
    assert_eq!(out.status.code(), Some(1), "no such consent any more");
    let out = app.cli(&["user", "show", "no-such-user"]);
    assert_eq!(out.status.code(), Some(1));
    // Ids are base64url: one may start with '-', and is not an option.
    for args in [
        &["user", "show", "-starts-with-a-dash", "--json"][..],
        &["user", "revoke-consent", "-a-sub", "-a-client"],
        &["client", "show", "-a-client", "--json"],
        &["client", "delete", "-a-client"],
    ] {
        let out = app.cli(args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
both!(the_cli_manages_users_on_the_database);
