//! Back-Channel Logout 1.0: when a session ends, each client it signed in to
//! that registered a `backchannel_logout_uri` receives a logout token — a
//! test receiver here verifies it against the JWKS as a client would. The
//! deliveries come from a durable outbox: a receiver that fails is retried,
//! and one still failing when the server restarts gets its token from the
//! restarted server.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::both;
use crate::common::{Backend, TestApp, verify_jwt};
use crate::login::{app_with_idp, code_for, redeem, web_client};

/// A client's back-channel logout endpoint: answers `fail_first` requests
/// with 503, then 200, and keeps every `logout_token` it was sent.
#[derive(Clone, Default)]
struct Receiver {
    tokens: Arc<Mutex<Vec<String>>>,
    requests: Arc<Mutex<u32>>,
    fail_first: u32,
}

impl Receiver {
    async fn start(fail_first: u32) -> (Self, String) {
        let receiver = Receiver {
            fail_first,
            ..Default::default()
        };
        let router = axum::Router::new()
            .route("/backchannel", axum::routing::post(receive))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://127.0.0.1:{}/backchannel",
            listener.local_addr().unwrap().port()
        );
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        (receiver, url)
    }

    fn tokens(&self) -> Vec<String> {
        self.tokens.lock().unwrap().clone()
    }

    fn requests(&self) -> u32 {
        *self.requests.lock().unwrap()
    }
}

async fn receive(
    State(r): State<Receiver>,
    headers: axum::http::HeaderMap,
    body: String,
) -> StatusCode {
    assert_eq!(
        headers["content-type"], "application/x-www-form-urlencoded",
        "Back-Channel Logout §2.5: a form POST"
    );
    let n = {
        let mut n = r.requests.lock().unwrap();
        *n += 1;
        *n
    };
    if n <= r.fail_first {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let token = url::form_urlencoded::parse(body.as_bytes())
        .find(|(k, _)| k == "logout_token")
        .map(|(_, v)| v.into_owned())
        .expect("a logout_token parameter");
    r.tokens.lock().unwrap().push(token);
    StatusCode::OK
}

/// A signed-in browser with a code redeemed by a client that registered
/// `url` (and `session_required`); answers the client id and the ID token
/// (its claims in `"claims"`, the token in `"raw"`).
async fn signed_in(app: &TestApp, url: &str, session_required: bool) -> (String, Value) {
    let (id, secret) = web_client(
        app,
        json!({
            "skip_consent": true,
            "backchannel_logout_uri": url,
            "backchannel_logout_session_required": session_required,
        }),
    )
    .await;
    let code = code_for(app, &id).await;
    let tokens: Value = redeem(app, &id, &secret, &code).await.json().await.unwrap();
    let jwks = app.jwks().await;
    let raw = tokens["id_token"].as_str().unwrap();
    let (_, mut claims) = verify_jwt(raw, &jwks, &app.base, &id, "JWT");
    claims["raw"] = json!(raw);
    (id, claims)
}

/// RP-initiated logout with the ID token as hint: signed out at once.
async fn logout_with_hint(app: &TestApp, id_token: &Value) {
    let r = app
        .http
        .get(format!("{}/logout", app.base))
        .query(&[("id_token_hint", id_token["raw"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("signed out"));
}

/// Checks a logout token as a relying party must (Back-Channel Logout §2.6).
fn check_logout_token(app: &TestApp, jwks: &Value, token: &str, client_id: &str, id: &Value) {
    let (header, claims) = verify_jwt(token, jwks, &app.base, client_id, "logout+jwt");
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    assert_eq!(claims["sub"], id["sub"]);
    assert_eq!(
        claims["sid"], id["sid"],
        "the session's sid, as in the ID token"
    );
    assert_eq!(
        claims["events"],
        json!({"http://schemas.openid.net/event/backchannel-logout": {}})
    );
    assert!(
        claims.get("nonce").is_none(),
        "§2.4: a logout token has no nonce"
    );
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 16));
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert!(exp > iat && exp - iat <= 300, "short-lived: {iat}..{exp}");
}

async fn signing_out_notifies_each_client_of_the_session(backend: Backend) {
    let (app, _idp) = app_with_idp(backend, &[]).await;
    let (receiver, url) = Receiver::start(0).await;
    let (id, id_claims) = signed_in(&app, &url, true).await;
    // A second client in the same session without a back-channel URI, and
    // a third with one that the session never signed in to.
    let (plain, _) = web_client(&app, json!({"skip_consent": true})).await;
    code_for(&app, &plain).await;
    let (other_receiver, other_url) = Receiver::start(0).await;
    web_client(
        &app,
        json!({"skip_consent": true, "backchannel_logout_uri": other_url}),
    )
    .await;

    logout_with_hint(&app, &id_claims).await;
    app.eventually(|| async { !receiver.tokens().is_empty() })
        .await;
    let tokens = receiver.tokens();
    assert_eq!(tokens.len(), 1, "one token per client and session");
    check_logout_token(&app, &app.jwks().await, &tokens[0], &id, &id_claims);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(receiver.requests(), 1, "delivered once, not again");
    assert_eq!(other_receiver.requests(), 0, "not signed in there");
}
both!(signing_out_notifies_each_client_of_the_session);

async fn a_failing_client_is_retried_and_a_restart_loses_nothing(backend: Backend) {
    let (app, _idp) = app_with_idp(backend, &[]).await;
    // Fails the first attempt, and the retry two seconds later too.
    let (receiver, url) = Receiver::start(2).await;
    let (id, id_claims) = signed_in(&app, &url, false).await;
    logout_with_hint(&app, &id_claims).await;
    app.eventually(|| async { receiver.requests() >= 1 }).await;
    // Stopped while the delivery waits for its next attempt.
    let app = app.restart().await;
    app.eventually(|| async { !receiver.tokens().is_empty() })
        .await;
    assert_eq!(receiver.requests(), 3, "two failures, then delivered");
    check_logout_token(
        &app,
        &app.jwks().await,
        &receiver.tokens()[0],
        &id,
        &id_claims,
    );
}
both!(a_failing_client_is_retried_and_a_restart_loses_nothing);

async fn ending_a_users_sessions_notifies_the_clients(backend: Backend) {
    let (app, _idp) = app_with_idp(backend, &[]).await;
    let (receiver, url) = Receiver::start(0).await;
    let (id, id_claims) = signed_in(&app, &url, true).await;
    let sub = id_claims["sub"].as_str().unwrap();
    let r = app
        .admin_request(
            reqwest::Method::DELETE,
            &format!("/admin/users/{sub}/sessions"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    app.eventually(|| async { !receiver.tokens().is_empty() })
        .await;
    check_logout_token(
        &app,
        &app.jwks().await,
        &receiver.tokens()[0],
        &id,
        &id_claims,
    );
}
both!(ending_a_users_sessions_notifies_the_clients);

async fn a_client_that_refuses_the_token_is_given_up_and_audited(backend: Backend) {
    let (app, _idp) = app_with_idp(backend, &[]).await;
    // 400 from the first request on: the client refuses the token.
    let router = axum::Router::new().route(
        "/bc",
        axum::routing::post(|| async { StatusCode::BAD_REQUEST }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://127.0.0.1:{}/bc",
        listener.local_addr().unwrap().port()
    );
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let (id, id_claims) = signed_in(&app, &url, false).await;
    logout_with_hint(&app, &id_claims).await;
    app.eventually(|| async {
        let r = app
            .admin_request(
                reqwest::Method::GET,
                "/admin/events?type=backchannel_logout.failed",
            )
            .send()
            .await
            .unwrap();
        let body: Value = r.json().await.unwrap();
        body["events"].as_array().unwrap().iter().any(|e| {
            e["client_id"] == id.as_str()
                && e["data"]["reason"] == "the client answered 400"
                && e["data"]["attempts"] == 1
        })
    })
    .await;
}
both!(a_client_that_refuses_the_token_is_given_up_and_audited);

fn refresh_form(token: &str) -> [(&'static str, &str); 2] {
    [("grant_type", "refresh_token"), ("refresh_token", token)]
}

/// Redeems a code for `scope` in the browser's session; answers the tokens.
async fn tokens_for(app: &TestApp, id: &str, secret: &str, scope: &str) -> Value {
    let crate::login::Landing::Client(q) =
        crate::login::authorize(app, id, &[("scope", scope)]).await
    else {
        panic!("a code expected")
    };
    redeem(app, id, secret, &q["code"])
        .await
        .json()
        .await
        .unwrap()
}

async fn logout_revokes_the_sessions_refresh_tokens_but_not_offline_ones(backend: Backend) {
    let (app, _idp) = app_with_idp(backend, &[]).await;
    let (id, secret) = web_client(
        &app,
        json!({"skip_consent": true, "scope": "openid profile email offline_access"}),
    )
    .await;
    let online = tokens_for(&app, &id, &secret, "openid email").await;
    let offline = tokens_for(&app, &id, &secret, "openid offline_access").await;
    let mut id_token = json!({});
    id_token["raw"] = online["id_token"].clone();
    logout_with_hint(&app, &id_token).await;

    let refresh = |t: &Value| t["refresh_token"].as_str().unwrap().to_owned();
    let (online_refresh, offline_refresh) = (refresh(&online), refresh(&offline));
    let r = app
        .token_basic(&id, &secret, &refresh_form(&online_refresh))
        .await;
    let (status, code, _) = crate::common::error_of(r).await;
    assert_eq!((status, code.as_str()), (400, "invalid_grant"));
    let r = app
        .token_basic(&id, &secret, &refresh_form(&offline_refresh))
        .await;
    assert_eq!(r.status(), 200, "offline_access outlives the session");
    // The access token that came with the online grant is revoked too.
    let r = app
        .http
        .get(format!("{}/userinfo", app.base))
        .bearer_auth(online["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}
both!(logout_revokes_the_sessions_refresh_tokens_but_not_offline_ones);
