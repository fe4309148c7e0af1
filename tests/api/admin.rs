//! The admin API: authentication, RFC 7591 metadata, list/show/replace/
//! delete, and secret rotation through the verification cache.

use reqwest::Method;
use serde_json::{Value, json};

use crate::both;
use crate::common::{Backend, spawn_app, spawn_app_with};

async fn client_count(app: &crate::common::TestApp) -> usize {
    let list: Value = app
        .admin_json(Method::GET, "/admin/clients?limit=200")
        .await;
    list["clients"].as_array().unwrap().len()
}

async fn the_admin_api_refuses_a_missing_or_wrong_token(backend: Backend) {
    let app = spawn_app(backend).await;
    for token in [None, Some("wrong-token-wrong-token"), Some("")] {
        let mut r = app.http.get(format!("{}/admin/clients", app.admin));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let r = r.send().await.unwrap();
        assert_eq!(r.status(), 401, "{token:?}");
        assert!(
            r.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
    }
    let r = app
        .http
        .post(format!("{}/admin/clients", app.admin))
        .json(&json!({"grant_types": ["client_credentials"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        client_count(&app).await,
        0,
        "an unauthenticated create stored nothing"
    );
    // The operational endpoints need no token.
    assert_eq!(
        app.http
            .get(format!("{}/healthz", app.admin))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        app.http
            .get(format!("{}/metrics", app.admin))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}
both!(the_admin_api_refuses_a_missing_or_wrong_token);

async fn an_unset_admin_token_refuses_everything(backend: Backend) {
    let app = spawn_app_with(backend, &[("TESSERA_ADMIN_TOKEN", "")]).await;
    let r = app
        .admin_request(Method::GET, "/admin/clients")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}
both!(an_unset_admin_token_refuses_everything);

async fn bad_metadata_is_refused_and_stores_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let cases = [
        (
            json!({"redirect_uris": ["http://app.example/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["https://app.example/cb#frag"]}),
            "invalid_redirect_uri",
        ),
        (json!({"redirect_uris": ["cb"]}), "invalid_redirect_uri"),
        (
            json!({"redirect_uris": ["javascript:alert(1)"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"grant_types": ["authorization_code"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"grant_types": ["implicit"], "redirect_uris": ["https://a.example/cb"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"}),
            "invalid_client_metadata",
        ),
        (
            json!({"grant_types": ["refresh_token"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": "client_secret_jwt"}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://a.example/cb"], "id_token_signed_response_alg": "none"}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://a.example/cb"], "id_token_signed_response_alg": "ES256"}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": "https://a.example/cb"}),
            "invalid_client_metadata",
        ),
        (
            json!({"grant_types": ["client_credentials"], "scope": "a\\b"}),
            "invalid_client_metadata",
        ),
    ];
    for (body, code) in cases {
        let r = app
            .admin_request(Method::POST, "/admin/clients")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"], code, "{body}");
    }
    let r = app
        .admin_request(Method::POST, "/admin/clients")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "invalid_client_metadata"
    );
    assert_eq!(client_count(&app).await, 0);
}
both!(bad_metadata_is_refused_and_stores_nothing);

async fn a_registered_client_echoes_its_effective_metadata(backend: Backend) {
    let app = spawn_app(backend).await;
    let c = app
        .create_client(json!({
            "client_name": "Example",
            "redirect_uris": ["https://app.example/cb", "http://127.0.0.1/cb", "com.example.app:/cb"],
            "client_id": "chosen-by-me",
            "client_secret": "also-mine",
            "software_statement": "ignored"
        }))
        .await;
    let id = c["client_id"].as_str().unwrap();
    assert_ne!(id, "chosen-by-me");
    assert_eq!(id.len(), 22);
    assert_eq!(c["client_secret"].as_str().unwrap().len(), 43);
    assert_ne!(c["client_secret"], "also-mine");
    assert_eq!(c["client_secret_expires_at"], 0);
    assert_eq!(c["grant_types"], json!(["authorization_code"]));
    assert_eq!(c["response_types"], json!(["code"]));
    assert_eq!(c["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(c["id_token_signed_response_alg"], "RS256");
    assert_eq!(c["scope"], "openid profile email");
    assert_eq!(c["skip_consent"], false);
    assert!(c.get("software_statement").is_none());

    let shown: Value = app
        .admin_json(Method::GET, &format!("/admin/clients/{id}"))
        .await;
    assert!(
        shown.get("client_secret").is_none(),
        "the secret is shown once"
    );
    assert_eq!(shown["client_name"], "Example");

    let public = app
        .create_client(json!({"redirect_uris": ["https://spa.example/cb"], "token_endpoint_auth_method": "none", "grant_types": ["authorization_code", "refresh_token"]}))
        .await;
    assert!(public.get("client_secret").is_none());
}
both!(a_registered_client_echoes_its_effective_metadata);

async fn clients_are_listed_in_pages_with_a_cursor(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(app.machine_client("").await.0);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/admin/clients?limit=2&cursor={c}"),
            None => "/admin/clients?limit=2".to_owned(),
        };
        let page: Value = app.admin_json(Method::GET, &path).await;
        for c in page["clients"].as_array().unwrap() {
            assert!(c.get("client_secret").is_none());
            seen.push(c["client_id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    seen.sort();
    ids.sort();
    assert_eq!(seen, ids);
    let bad = app
        .admin_request(Method::GET, "/admin/clients?cursor=%%%")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let bad = app
        .admin_request(Method::GET, "/admin/clients?limit=0")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}
both!(clients_are_listed_in_pages_with_a_cursor);

async fn bad_list_queries_get_a_json_invalid_request(backend: Backend) {
    let app = spawn_app(backend).await;
    for path in [
        "/admin/clients?limit=201",
        "/admin/clients?limit=",
        "/admin/clients?limit=1&limit=2",
        "/admin/users?limit=",
        "/admin/users?limit=1&limit=1",
        "/admin/users?email=a&email=b",
        "/admin/events?limit=",
        "/admin/events?type=logout&type=logout",
    ] {
        let r = app.admin_request(Method::GET, path).send().await.unwrap();
        let (status, code, _) = crate::common::error_of(r).await;
        assert_eq!((status, code.as_str()), (400, "invalid_request"), "{path}");
    }
}
both!(bad_list_queries_get_a_json_invalid_request);

/// Every route of both listeners is in the OpenAPI 3.1 document, which the
/// admin listener serves without a token.
async fn the_openapi_document_describes_every_operation(backend: Backend) {
    let app = spawn_app(backend).await;
    let r = app
        .http
        .get(format!("{}/openapi.json", app.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let operations = [
        ("/token", "post"),
        ("/revoke", "post"),
        ("/introspect", "post"),
        ("/userinfo", "get"),
        ("/userinfo", "post"),
        ("/jwks", "get"),
        ("/.well-known/openid-configuration", "get"),
        ("/.well-known/oauth-authorization-server", "get"),
        ("/authorize", "get"),
        ("/authorize", "post"),
        ("/callback/google", "get"),
        ("/consent", "post"),
        ("/logout", "get"),
        ("/logout", "post"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/admin/clients", "get"),
        ("/admin/clients", "post"),
        ("/admin/clients/{client_id}", "get"),
        ("/admin/clients/{client_id}", "put"),
        ("/admin/clients/{client_id}", "delete"),
        ("/admin/clients/{client_id}/secret", "post"),
        ("/admin/users", "get"),
        ("/admin/users/{sub}", "get"),
        ("/admin/users/{sub}/disable", "post"),
        ("/admin/users/{sub}/enable", "post"),
        ("/admin/users/{sub}/sessions", "delete"),
        ("/admin/users/{sub}/consents/{client_id}", "delete"),
        ("/admin/events", "get"),
        ("/metrics", "get"),
        ("/openapi.json", "get"),
    ];
    let paths = doc["paths"].as_object().unwrap();
    let documented: usize = paths
        .values()
        .map(|item| {
            ["get", "post", "put", "delete"]
                .iter()
                .filter(|m| item.get(**m).is_some())
                .count()
        })
        .sum();
    assert_eq!(documented, operations.len(), "{:?}", paths.keys());
    for (path, method) in operations {
        let op = &doc["paths"][path][method];
        assert!(op["responses"].is_object(), "{method} {path}");
        // Each path names the listener it is on.
        let servers = doc["paths"][path]["servers"].as_array().unwrap();
        let on_admin = servers.iter().any(|s| s["url"] == app.admin.as_str());
        assert_eq!(
            on_admin,
            path.starts_with("/admin") || ["/metrics", "/openapi.json", "/healthz"].contains(&path),
            "{path}"
        );
    }
    // The admin operations need the admin token; the document says so.
    assert_eq!(
        doc["paths"]["/admin/clients"]["post"]["security"][0]["admin_token"],
        json!([])
    );
    assert!(doc["components"]["schemas"]["ClientView"].is_object());
    assert_eq!(
        doc["components"]["securitySchemes"]["admin_token"]["scheme"],
        "bearer"
    );
}
both!(the_openapi_document_describes_every_operation);

async fn put_replaces_the_whole_registration(backend: Backend) {
    let app = spawn_app(backend).await;
    let c = app
        .create_client(json!({"redirect_uris": ["https://spa.example/cb"], "token_endpoint_auth_method": "none", "skip_consent": true}))
        .await;
    let id = c["client_id"].as_str().unwrap();
    // Becoming confidential: a secret is issued, shown in this answer.
    let r = app
        .admin_request(Method::PUT, &format!("/admin/clients/{id}"))
        .json(&json!({"client_id": id, "grant_types": ["client_credentials"], "scope": "api:read"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let replaced: Value = r.json().await.unwrap();
    assert_eq!(
        replaced["skip_consent"], false,
        "omitted fields take their defaults"
    );
    assert_eq!(
        replaced["token_endpoint_auth_method"],
        "client_secret_basic"
    );
    let secret = replaced["client_secret"].as_str().unwrap();
    assert_eq!(
        app.token_basic(id, secret, &[("grant_type", "client_credentials")])
            .await
            .status(),
        200
    );

    let mismatch = app
        .admin_request(Method::PUT, &format!("/admin/clients/{id}"))
        .json(&json!({"client_id": "other", "grant_types": ["client_credentials"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(mismatch.status(), 400);
    let missing = app
        .admin_request(Method::PUT, "/admin/clients/nope")
        .json(&json!({"grant_types": ["client_credentials"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let bad = app
        .admin_request(Method::PUT, &format!("/admin/clients/{id}"))
        .json(&json!({"grant_types": ["implicit"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let still: Value = app
        .admin_json(Method::GET, &format!("/admin/clients/{id}"))
        .await;
    assert_eq!(
        still["grant_types"],
        json!(["client_credentials"]),
        "a refused PUT changed nothing"
    );
}
both!(put_replaces_the_whole_registration);

async fn a_rotated_secret_replaces_the_old_one_even_when_cached(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, old) = app.machine_client("api:read").await;
    let form = [("grant_type", "client_credentials")];
    // Twice: the second answer comes from the verification cache.
    assert_eq!(app.token_basic(&id, &old, &form).await.status(), 200);
    assert_eq!(app.token_basic(&id, &old, &form).await.status(), 200);

    let r = app
        .admin_request(Method::POST, &format!("/admin/clients/{id}/secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rotated: Value = r.json().await.unwrap();
    let new = rotated["client_secret"].as_str().unwrap();
    assert_ne!(new, old);
    assert_eq!(app.token_basic(&id, &old, &form).await.status(), 401);
    assert_eq!(app.token_basic(&id, new, &form).await.status(), 200);

    let missing = app
        .admin_request(Method::POST, "/admin/clients/nope/secret")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}
both!(a_rotated_secret_replaces_the_old_one_even_when_cached);

async fn a_deleted_client_fails_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, secret) = app.machine_client("api:read").await;
    let form = [("grant_type", "client_credentials")];
    assert_eq!(app.token_basic(&id, &secret, &form).await.status(), 200);
    let r = app
        .admin_request(Method::DELETE, &format!("/admin/clients/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(app.token_basic(&id, &secret, &form).await.status(), 401);
    let again = app
        .admin_request(Method::DELETE, &format!("/admin/clients/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404);
    let show = app
        .admin_request(Method::GET, &format!("/admin/clients/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(show.status(), 404);
}
both!(a_deleted_client_fails_at_once);

async fn an_oversized_admin_body_is_refused_with_413(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = json!({"grant_types": ["client_credentials"], "client_name": "x".repeat(1_100_000)});
    let r = app
        .admin_request(Method::POST, "/admin/clients")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
}
both!(an_oversized_admin_body_is_refused_with_413);
