//! Rate limits: per source address on the public listener (behind trusted
//! proxies, the forwarded address), failed admin authentications per
//! address, failed client authentications of unknown client ids per
//! address. Over a limit: 429, `Retry-After`, the OAuth error body; then
//! recovery once the bucket refills.

use serde_json::Value;

use crate::both;
use crate::common::{Backend, TestApp, spawn_app_with};

async fn get(app: &TestApp, path: &str, forwarded_for: Option<&str>) -> reqwest::Response {
    let mut r = app.http.get(format!("{}{path}", app.base));
    if let Some(f) = forwarded_for {
        r = r.header("x-forwarded-for", f);
    }
    r.send().await.unwrap()
}

/// Asserts a 429 with the contract's body and answers its `Retry-After`.
async fn assert_limited(r: reqwest::Response) -> u64 {
    assert_eq!(r.status(), 429);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    assert!(body["error_description"].as_str().is_some());
    wait
}

async fn each_address_gets_its_rate_and_burst(backend: Backend) {
    let app = spawn_app_with(backend, &[("TESSERA_RATE_LIMIT_PER_IP", "2")]).await;
    // Burst: twice the rate.
    for _ in 0..4 {
        assert_eq!(get(&app, "/jwks", None).await.status(), 200);
    }
    let wait = assert_limited(get(&app, "/jwks", None).await).await;
    // Every endpoint of the public listener counts; health checks do not.
    assert_eq!(
        get(&app, "/.well-known/openid-configuration", None)
            .await
            .status(),
        429
    );
    assert_eq!(get(&app, "/healthz", None).await.status(), 200);
    assert_eq!(get(&app, "/readyz", None).await.status(), 200);
    // A browser app is told too: the refusal carries CORS headers.
    let r = app.get_from_origin("/jwks", "https://any.example").await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    // Not behind a trusted proxy: X-Forwarded-For changes nothing.
    assert_eq!(get(&app, "/jwks", Some("203.0.113.7")).await.status(), 429);
    // The admin listener is not limited per address.
    let r = app
        .admin_request(reqwest::Method::GET, "/admin/clients")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Recovery.
    tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
    assert_eq!(get(&app, "/jwks", None).await.status(), 200);
    let metrics = app
        .http
        .get(format!("{}/metrics", app.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("tessera_rate_limited_total ") && !l.ends_with(" 0")),
        "{metrics}"
    );
}
both!(each_address_gets_its_rate_and_burst);

async fn behind_a_trusted_proxy_the_forwarded_address_counts(backend: Backend) {
    let app = spawn_app_with(
        backend,
        &[
            ("TESSERA_RATE_LIMIT_PER_IP", "1"),
            ("TESSERA_TRUSTED_PROXIES", "127.0.0.0/8"),
        ],
    )
    .await;
    let alice = Some("198.51.100.1, 203.0.113.1");
    for _ in 0..2 {
        assert_eq!(get(&app, "/jwks", alice).await.status(), 200);
    }
    assert_limited(get(&app, "/jwks", alice).await).await;
    // Another client behind the same proxy has its own bucket; what the
    // client claimed to the left of the last hop does not matter.
    assert_eq!(
        get(&app, "/jwks", Some("198.51.100.1, 203.0.113.2"))
            .await
            .status(),
        200
    );
    assert_eq!(
        get(&app, "/jwks", Some("192.0.2.99, 203.0.113.1"))
            .await
            .status(),
        429
    );
}
both!(behind_a_trusted_proxy_the_forwarded_address_counts);

async fn failed_admin_authentications_are_limited_per_address(backend: Backend) {
    let app = spawn_app_with(backend, &[("TESSERA_RATE_LIMIT_FAILED_AUTH", "3")]).await;
    let wrong = || {
        app.http
            .get(format!("{}/admin/clients", app.admin))
            .bearer_auth("not-the-admin-token")
            .send()
    };
    for _ in 0..3 {
        assert_eq!(wrong().await.unwrap().status(), 401);
    }
    assert_limited(wrong().await.unwrap()).await;
    // The right token still gets in.
    let r = app
        .admin_request(reqwest::Method::GET, "/admin/clients")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Only the attempts that were not throttled are audit events.
    let r = app
        .admin_request(reqwest::Method::GET, "/admin/events?type=admin.auth_failed")
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["events"].as_array().unwrap().len(), 3);
}
both!(failed_admin_authentications_are_limited_per_address);

async fn unknown_client_ids_are_counted_per_address(backend: Backend) {
    let app = spawn_app_with(backend, &[("TESSERA_RATE_LIMIT_FAILED_AUTH", "3")]).await;
    let app = &app;
    let attempt = |n: u32| async move {
        let id = format!("made-up-client-{n}");
        app.token_basic(&id, "some-secret", &[("grant_type", "client_credentials")])
            .await
    };
    for n in 0..3 {
        assert_eq!(attempt(n).await.status(), 401);
    }
    assert_limited(attempt(3).await).await;
    // A registered client with its right secret is not affected.
    let (id, secret) = app.machine_client("x").await;
    let r = app
        .token_basic(&id, &secret, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(r.status(), 200);
}
both!(unknown_client_ids_are_counted_per_address);

/// `TESSERA_RATE_LIMIT_PER_CLIENT`: an authenticated confidential client
/// gets its own rate at /token, /introspect and /revoke, whatever address it
/// calls from; another client is not affected; failed authentications do
/// not spend the client's budget.
async fn each_confidential_client_gets_its_rate(backend: Backend) {
    let app = spawn_app_with(backend, &[("TESSERA_RATE_LIMIT_PER_CLIENT", "1")]).await;
    let (id, secret) = app.machine_client("read").await;
    let (other, other_secret) = app.machine_client("read").await;
    let form = [("grant_type", "client_credentials")];
    // A wrong secret is a 401 and takes nothing from the budget.
    assert_eq!(
        app.token_basic(&id, "wrong-secret", &form).await.status(),
        401
    );
    // Burst: twice the rate, across the endpoints.
    let token: Value = app
        .token_basic(&id, &secret, &form)
        .await
        .json()
        .await
        .unwrap();
    let access = token["access_token"].as_str().unwrap();
    let introspect = app
        .http
        .post(format!("{}/introspect", app.base))
        .basic_auth(&id, Some(&secret))
        .form(&[("token", access)])
        .send()
        .await
        .unwrap();
    assert_eq!(introspect.status(), 200);
    let wait = assert_limited(app.token_basic(&id, &secret, &form).await).await;
    let revoke = app
        .http
        .post(format!("{}/revoke", app.base))
        .basic_auth(&id, Some(&secret))
        .form(&[("token", access)])
        .send()
        .await
        .unwrap();
    assert_limited(revoke).await;
    // Another client has its own budget.
    assert_eq!(
        app.token_basic(&other, &other_secret, &form).await.status(),
        200
    );
    // Recovery; the limited revocation did nothing: the token is live.
    tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
    let introspect: Value = app
        .http
        .post(format!("{}/introspect", app.base))
        .basic_auth(&id, Some(&secret))
        .form(&[("token", access)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(introspect["active"], true);
}
both!(each_confidential_client_gets_its_rate);
