//! Discovery documents, JWKS caching, health and metrics.

use serde_json::{Value, json};

use crate::both;
use crate::common::{Backend, spawn_app};

async fn both_discovery_documents_are_the_same_and_name_only_what_works(backend: Backend) {
    let app = spawn_app(backend).await;
    let get = |p: &'static str| app.http.get(format!("{}{p}", app.base)).send();
    let oidc = get("/.well-known/openid-configuration").await.unwrap();
    assert_eq!(oidc.headers()["access-control-allow-origin"], "*");
    let oidc: Value = oidc.json().await.unwrap();
    let oauth: Value = get("/.well-known/oauth-authorization-server")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(oidc, oauth);
    assert_eq!(oidc["issuer"], app.base.as_str());
    assert_eq!(oidc["token_endpoint"], format!("{}/token", app.base));
    assert_eq!(
        oidc["authorization_endpoint"],
        format!("{}/authorize", app.base)
    );
    assert_eq!(oidc["userinfo_endpoint"], format!("{}/userinfo", app.base));
    assert_eq!(
        oidc["grant_types_supported"],
        serde_json::json!(["authorization_code", "refresh_token", "client_credentials"])
    );
    assert_eq!(
        oidc["response_types_supported"],
        serde_json::json!(["code"])
    );
    assert_eq!(
        oidc["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(oidc["authorization_response_iss_parameter_supported"], true);
    let methods = oidc["token_endpoint_auth_methods_supported"]
        .as_array()
        .unwrap();
    assert!(
        !methods
            .iter()
            .any(|m| m == "private_key_jwt" || m == "client_secret_jwt")
    );
    assert_eq!(oidc["revocation_endpoint"], format!("{}/revoke", app.base));
    assert_eq!(
        oidc["introspection_endpoint"],
        format!("{}/introspect", app.base)
    );
    assert_eq!(
        oidc["introspection_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post"])
    );
    assert_eq!(oidc["end_session_endpoint"], format!("{}/logout", app.base));
    assert_eq!(oidc["backchannel_logout_supported"], true);
    assert_eq!(oidc["backchannel_logout_session_supported"], true);
}
both!(both_discovery_documents_are_the_same_and_name_only_what_works);

async fn the_jwks_is_cacheable_and_holds_only_public_parameters(backend: Backend) {
    let app = spawn_app(backend).await;
    let r = app
        .http
        .get(format!("{}/jwks", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "public, max-age=300");
    let jwks: Value = r.json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let k = &keys[0];
    assert_eq!(
        (k["kty"].as_str(), k["use"].as_str(), k["alg"].as_str()),
        (Some("RSA"), Some("sig"), Some("RS256"))
    );
    assert!(k["n"].is_string() && k["e"] == "AQAB" && k["kid"].is_string());
    for private in ["d", "p", "q", "dp", "dq", "qi"] {
        assert!(k.get(private).is_none());
    }
}
both!(the_jwks_is_cacheable_and_holds_only_public_parameters);

async fn health_and_metrics_report_what_happened(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_eq!(
        app.http
            .get(format!("{}/healthz", app.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        app.http
            .get(format!("{}/readyz", app.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let (id, secret) = app.machine_client("api:read").await;
    for _ in 0..2 {
        app.token_basic(&id, &secret, &[("grant_type", "client_credentials")])
            .await;
    }
    app.token_basic(&id, "wrong", &[("grant_type", "client_credentials")])
        .await;
    let text = app
        .http
        .get(format!("{}/metrics", app.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(r#"tessera_tokens_issued_total{grant="client_credentials",alg="RS256"} 2"#),
        "{text}"
    );
    assert!(
        text.contains("tessera_client_auth_failures_total 1"),
        "{text}"
    );
    // Each request counted once, by endpoint, method and status.
    assert!(
        text.contains(
            r#"tessera_http_requests_total{endpoint="/token",method="POST",status="200"} 2"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"tessera_http_requests_total{endpoint="/token",method="POST",status="401"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"tessera_http_request_duration_seconds_count{endpoint="/token"} 3"#),
        "{text}"
    );
    assert!(text.contains("tessera_db_pool_connections"), "{text}");
}
both!(health_and_metrics_report_what_happened);

async fn readiness_waits_for_upstream_discovery(backend: Backend) {
    let down = crate::common::spawn_app_with(
        backend,
        &[
            ("TESSERA_GOOGLE_ISSUER", "http://127.0.0.1:9"),
            ("TESSERA_GOOGLE_CLIENT_ID", "x"),
            ("TESSERA_GOOGLE_CLIENT_SECRET", "y"),
        ],
    )
    .await;
    assert_eq!(
        down.http
            .get(format!("{}/healthz", down.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        down.http
            .get(format!("{}/readyz", down.base))
            .send()
            .await
            .unwrap()
            .status(),
        503
    );

    let idp = crate::common::fake_idp::FakeIdp::start().await;
    let vars = idp.vars();
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let up = crate::common::spawn_app_with(backend, &vars).await;
    up.eventually(|| async {
        up.http
            .get(format!("{}/readyz", up.base))
            .send()
            .await
            .unwrap()
            .status()
            == 200
    })
    .await;
}
both!(readiness_waits_for_upstream_discovery);
