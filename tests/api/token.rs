//! `POST /token` with the client-credentials grant, and every error row.

use serde_json::{Value, json};

use crate::both;
use crate::common::{Backend, TestApp, error_of, spawn_app, spawn_app_with, verify_jwt};

async fn a_client_credentials_token_verifies_against_the_jwks(backend: Backend) {
    let app = spawn_app(backend).await;
    let meta: Value = app
        .http
        .get(format!("{}/.well-known/openid-configuration", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["issuer"], app.base.as_str());
    let jwks: Value = app
        .http
        .get(meta["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (id, secret) = app.machine_client("api:read api:write").await;

    let r = app
        .http
        .post(meta["token_endpoint"].as_str().unwrap())
        .basic_auth(&id, Some(&secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "api:write api:read api:write"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.headers()["pragma"], "no-cache");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["scope"], "api:write api:read");
    assert!(
        body.get("refresh_token").is_none(),
        "client credentials never get a refresh token"
    );

    let (header, claims) = verify_jwt(
        body["access_token"].as_str().unwrap(),
        &jwks,
        &app.base,
        &app.base,
        "at+jwt",
    );
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    assert_eq!(claims["sub"], id.as_str());
    assert_eq!(claims["client_id"], id.as_str());
    assert_eq!(claims["scope"], "api:write api:read");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
    assert_eq!(claims["jti"].as_str().unwrap().len(), 22);
    assert!(claims.get("auth_time").is_none());
}
both!(a_client_credentials_token_verifies_against_the_jwks);

async fn es256_and_eddsa_access_tokens_verify_and_rs256_stays_published(backend: Backend) {
    for alg in ["ES256", "EdDSA"] {
        let app = spawn_app_with(backend, &[("TESSERA_ACCESS_TOKEN_ALG", alg)]).await;
        let jwks = app.jwks().await;
        let algs: Vec<_> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["alg"].as_str().unwrap())
            .collect();
        assert!(algs.contains(&"RS256") && algs.contains(&alg), "{algs:?}");
        let (id, secret) = app.machine_client("api:read").await;
        let body: Value = app
            .token_basic(&id, &secret, &[("grant_type", "client_credentials")])
            .await
            .json()
            .await
            .unwrap();
        let (header, _) = verify_jwt(
            body["access_token"].as_str().unwrap(),
            &jwks,
            &app.base,
            &app.base,
            "at+jwt",
        );
        assert_eq!(format!("{:?}", header.alg), alg);
    }
}
both!(es256_and_eddsa_access_tokens_verify_and_rs256_stays_published);

async fn client_secret_post_and_no_scope_get_every_registered_non_openid_scope(backend: Backend) {
    let app = spawn_app(backend).await;
    let c = app
        .create_client(json!({
            "grant_types": ["client_credentials"],
            "token_endpoint_auth_method": "client_secret_post",
            "scope": "openid api:read api:write"
        }))
        .await;
    let r = app
        .http
        .post(format!("{}/token", app.base))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", c["client_id"].as_str().unwrap()),
            ("client_secret", c["client_secret"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["scope"], "api:read api:write");
}
both!(client_secret_post_and_no_scope_get_every_registered_non_openid_scope);

async fn resources_become_the_audience(backend: Backend) {
    let app = spawn_app_with(
        backend,
        &[(
            "TESSERA_RESOURCES",
            "https://api.example.com/,https://billing.example.com",
        )],
    )
    .await;
    let (id, secret) = app.machine_client("api:read").await;
    let jwks = app.jwks().await;
    let body: Value = app
        .token_basic(
            &id,
            &secret,
            &[
                ("grant_type", "client_credentials"),
                ("resource", "https://api.example.com"),
            ],
        )
        .await
        .json()
        .await
        .unwrap();
    let (_, claims) = verify_jwt(
        body["access_token"].as_str().unwrap(),
        &jwks,
        &app.base,
        "https://api.example.com/",
        "at+jwt",
    );
    assert_eq!(claims["aud"], "https://api.example.com/");

    let r = app
        .http
        .post(format!("{}/token", app.base))
        .basic_auth(&id, Some(&secret))
        .body("grant_type=client_credentials&resource=https%3A%2F%2Fapi.example.com%2F&resource=https%3A%2F%2Fbilling.example.com")
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    let (_, claims) = verify_jwt(
        body["access_token"].as_str().unwrap(),
        &jwks,
        &app.base,
        "https://billing.example.com",
        "at+jwt",
    );
    assert_eq!(
        claims["aud"],
        json!(["https://api.example.com/", "https://billing.example.com"])
    );
}
both!(resources_become_the_audience);

struct Case {
    name: &'static str,
    status: u16,
    error: &'static str,
    basic_challenge: bool,
}

/// Sends one malformed request; `id`/`secret` are a working machine client,
/// `code_id`/`code_secret` a confidential authorization-code client.
async fn send_case(
    app: &TestApp,
    name: &str,
    id: &str,
    secret: &str,
    code_id: &str,
    code_secret: &str,
) -> reqwest::Response {
    let url = format!("{}/token", app.base);
    let form = "application/x-www-form-urlencoded";
    let h = &app.http;
    match name {
        "json body" => h
            .post(&url)
            .basic_auth(id, Some(secret))
            .json(&json!({"grant_type": "client_credentials"}))
            .send(),
        "no content type" => h
            .post(&url)
            .basic_auth(id, Some(secret))
            .body("grant_type=client_credentials")
            .send(),
        "repeated scope" => h
            .post(&url)
            .basic_auth(id, Some(secret))
            .header("content-type", form)
            .body("grant_type=client_credentials&scope=api:read&scope=api:read")
            .send(),
        "repeated grant_type" => h
            .post(&url)
            .basic_auth(id, Some(secret))
            .header("content-type", form)
            .body("grant_type=client_credentials&grant_type=client_credentials")
            .send(),
        "missing grant_type" => h
            .post(&url)
            .basic_auth(id, Some(secret))
            .form(&[("scope", "api:read")])
            .send(),
        "no client authentication" => h
            .post(&url)
            .form(&[("grant_type", "client_credentials")])
            .send(),
        "wrong secret with basic" => h
            .post(&url)
            .basic_auth(id, Some("wrong"))
            .form(&[("grant_type", "client_credentials")])
            .send(),
        "unknown client with basic" => h
            .post(&url)
            .basic_auth("nobody", Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send(),
        "malformed basic" => h
            .post(&url)
            .header("authorization", "Basic !!!")
            .form(&[("grant_type", "client_credentials")])
            .send(),
        "wrong secret in the body" => h
            .post(&url)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", code_id),
                ("client_secret", "wrong"),
            ])
            .send(),
        "post for a basic client" => h
            .post(&url)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", id),
                ("client_secret", secret),
            ])
            .send(),
        "basic and a body secret" => h
            .post(&url)
            .basic_auth(id, Some(secret))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_secret", secret),
            ])
            .send(),
        "basic id differs from body client_id" => h
            .post(&url)
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials"), ("client_id", code_id)])
            .send(),
        "bad secret and unknown grant" => h
            .post(&url)
            .basic_auth(id, Some("wrong"))
            .form(&[("grant_type", "urn:x")])
            .send(),
        "unknown grant_type" => h
            .post(&url)
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "password")])
            .send(),
        "grant not registered" => h
            .post(&url)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", code_id),
                ("client_secret", code_secret),
            ])
            .send(),
        "unregistered scope" => h
            .post(&url)
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials"), ("scope", "api:admin")])
            .send(),
        "openid scope" => h
            .post(&url)
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials"), ("scope", "openid")])
            .send(),
        "malformed scope" => h
            .post(&url)
            .basic_auth(id, Some(secret))
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", "api:read \"x\""),
            ])
            .send(),
        "bad scope and bad resource" => h
            .post(&url)
            .basic_auth(id, Some(secret))
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", "nope"),
                ("resource", "https://evil.example"),
            ])
            .send(),
        "unknown resource" => h
            .post(&url)
            .basic_auth(id, Some(secret))
            .form(&[
                ("grant_type", "client_credentials"),
                ("resource", "https://evil.example"),
            ])
            .send(),
        "relative resource" => h
            .post(&url)
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials"), ("resource", "/api")])
            .send(),
        "resource with a fragment" => h
            .post(&url)
            .basic_auth(id, Some(secret))
            .form(&[
                ("grant_type", "client_credentials"),
                ("resource", &format!("{}#x", app.base)),
            ])
            .send(),
        other => panic!("no case {other}"),
    }
    .await
    .unwrap()
}

async fn every_bad_token_request_gets_its_rfc_error(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, secret) = app.machine_client("api:read").await;
    let code = app.create_client(json!({"redirect_uris": ["https://app.example/cb"], "token_endpoint_auth_method": "client_secret_post"})).await;
    let (code_id, code_secret) = (
        code["client_id"].as_str().unwrap(),
        code["client_secret"].as_str().unwrap(),
    );
    let cases = [
        Case {
            name: "json body",
            status: 400,
            error: "invalid_request",
            basic_challenge: false,
        },
        Case {
            name: "no content type",
            status: 400,
            error: "invalid_request",
            basic_challenge: false,
        },
        Case {
            name: "repeated scope",
            status: 400,
            error: "invalid_request",
            basic_challenge: false,
        },
        Case {
            name: "repeated grant_type",
            status: 400,
            error: "invalid_request",
            basic_challenge: false,
        },
        Case {
            name: "missing grant_type",
            status: 400,
            error: "invalid_request",
            basic_challenge: false,
        },
        Case {
            name: "no client authentication",
            status: 401,
            error: "invalid_client",
            basic_challenge: false,
        },
        Case {
            name: "wrong secret with basic",
            status: 401,
            error: "invalid_client",
            basic_challenge: true,
        },
        Case {
            name: "unknown client with basic",
            status: 401,
            error: "invalid_client",
            basic_challenge: true,
        },
        Case {
            name: "malformed basic",
            status: 401,
            error: "invalid_client",
            basic_challenge: true,
        },
        Case {
            name: "wrong secret in the body",
            status: 401,
            error: "invalid_client",
            basic_challenge: false,
        },
        Case {
            name: "post for a basic client",
            status: 401,
            error: "invalid_client",
            basic_challenge: false,
        },
        Case {
            name: "basic and a body secret",
            status: 400,
            error: "invalid_request",
            basic_challenge: false,
        },
        Case {
            name: "basic id differs from body client_id",
            status: 400,
            error: "invalid_request",
            basic_challenge: false,
        },
        Case {
            name: "bad secret and unknown grant",
            status: 401,
            error: "invalid_client",
            basic_challenge: true,
        },
        Case {
            name: "unknown grant_type",
            status: 400,
            error: "unsupported_grant_type",
            basic_challenge: false,
        },
        Case {
            name: "grant not registered",
            status: 400,
            error: "unauthorized_client",
            basic_challenge: false,
        },
        Case {
            name: "unregistered scope",
            status: 400,
            error: "invalid_scope",
            basic_challenge: false,
        },
        Case {
            name: "openid scope",
            status: 400,
            error: "invalid_scope",
            basic_challenge: false,
        },
        Case {
            name: "malformed scope",
            status: 400,
            error: "invalid_scope",
            basic_challenge: false,
        },
        Case {
            name: "bad scope and bad resource",
            status: 400,
            error: "invalid_scope",
            basic_challenge: false,
        },
        Case {
            name: "unknown resource",
            status: 400,
            error: "invalid_target",
            basic_challenge: false,
        },
        Case {
            name: "relative resource",
            status: 400,
            error: "invalid_target",
            basic_challenge: false,
        },
        Case {
            name: "resource with a fragment",
            status: 400,
            error: "invalid_target",
            basic_challenge: false,
        },
    ];
    for case in cases {
        let r = send_case(&app, case.name, &id, &secret, code_id, code_secret).await;
        let (status, error, headers) = error_of(r).await;
        assert_eq!(
            (status, error.as_str()),
            (case.status, case.error),
            "{}",
            case.name
        );
        assert_eq!(headers["cache-control"], "no-store", "{}", case.name);
        let challenge = headers
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(
            challenge
                .as_deref()
                .is_some_and(|c| c.starts_with("Basic realm=")),
            case.basic_challenge,
            "{}: {challenge:?}",
            case.name
        );
    }
    // The working client still works: nothing above changed it.
    assert_eq!(
        app.token_basic(&id, &secret, &[("grant_type", "client_credentials")])
            .await
            .status(),
        200
    );
}
both!(every_bad_token_request_gets_its_rfc_error);

async fn an_oversized_body_is_refused_with_413(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, secret) = app.machine_client("api:read").await;
    let big = format!(
        "grant_type=client_credentials&pad={}",
        "x".repeat(70 * 1024)
    );
    let r = app
        .http
        .post(format!("{}/token", app.base))
        .basic_auth(&id, Some(&secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    // The admin listener takes up to 1 MiB, no more.
    let r = app
        .admin_request(reqwest::Method::POST, "/admin/clients")
        .header("content-type", "application/json")
        .body(format!(
            "{{\"client_name\": \"{}\"}}",
            "x".repeat(1100 * 1024)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    // Huge or countless headers: refused at once, not a hang.
    let r = app
        .http
        .get(format!("{}/jwks", app.base))
        .header("x-pad", "y".repeat(512 * 1024))
        .send()
        .await;
    assert!(
        r.as_ref()
            .map_or(true, |r| r.status() == 431 || r.status() == 400),
        "{r:?}"
    );
    let mut many = reqwest::header::HeaderMap::new();
    for i in 0..5000 {
        many.insert(
            reqwest::header::HeaderName::from_bytes(format!("x-h{i}").as_bytes()).unwrap(),
            "v".repeat(100).parse().unwrap(),
        );
    }
    let r = app
        .http
        .get(format!("{}/jwks", app.base))
        .headers(many)
        .send()
        .await;
    assert!(
        r.as_ref()
            .map_or(true, |r| r.status() == 431 || r.status() == 400),
        "{r:?}"
    );
    // The server is fine afterwards.
    assert_eq!(app.jwks().await["keys"].as_array().unwrap().len(), 1);
}
both!(an_oversized_body_is_refused_with_413);

async fn browsers_from_registered_origins_may_call_the_token_endpoint(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_client(
        json!({"redirect_uris": ["https://spa.example/cb"], "token_endpoint_auth_method": "none"}),
    )
    .await;
    let preflight = |path: &'static str, origin: &'static str| {
        app.http
            .request(reqwest::Method::OPTIONS, format!("{}{path}", app.base))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
    };
    // A single-page app signs out by revoking its tokens: /revoke too.
    for path in ["/token", "/revoke"] {
        let ok = preflight(path, "https://spa.example").await.unwrap();
        assert_eq!(
            ok.headers()["access-control-allow-origin"],
            "https://spa.example",
            "{path}"
        );
        assert!(
            ok.headers()
                .get("access-control-allow-credentials")
                .is_none()
        );
        let other = preflight(path, "https://evil.example").await.unwrap();
        assert!(other.headers().get("access-control-allow-origin").is_none());
        assert!(
            other
                .headers()
                .get("access-control-allow-methods")
                .is_none()
        );
    }
    let userinfo = preflight("/userinfo", "https://spa.example").await.unwrap();
    assert_eq!(
        userinfo.headers()["access-control-allow-origin"],
        "https://spa.example"
    );
    // The calls themselves: the registered origin may read the answer (an
    // error here, as a browser app would see it), any other may not, and
    // every answer says it depends on `Origin`.
    for (origin, allowed) in [
        (Some("https://spa.example"), true),
        (Some("https://evil.example"), false),
        (None, false),
    ] {
        let mut request = app.http.post(format!("{}/token", app.base)).form(&[
            ("grant_type", "authorization_code"),
            ("client_id", "nobody"),
        ]);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), 401, "{origin:?}");
        assert_eq!(r.headers()["vary"], "origin", "{origin:?}");
        assert_eq!(
            r.headers().get("access-control-allow-origin").is_some(),
            allowed,
            "{origin:?}"
        );
        if allowed {
            assert_eq!(
                r.headers()["access-control-allow-origin"],
                "https://spa.example"
            );
        }
    }
    let jwks = app.get_from_origin("/jwks", "https://any.example").await;
    assert_eq!(jwks.headers()["access-control-allow-origin"], "*");
    // Answers made before the handler runs — a body over the limit (413),
    // too many headers (431) — carry the same CORS headers, so a browser
    // app can read why it was refused.
    let too_big = "x".repeat(tessera::http::public::BODY_LIMIT + 1);
    // Over `MAX_HEADER_BYTES` in three headers (too many headers by count
    // are refused by hyper itself, before any of Tessera's code runs).
    let many: Vec<(String, String)> = (0..3)
        .map(|i| {
            let value = "x".repeat(tessera::http::MAX_HEADER_BYTES / 3 + 1);
            (format!("x-filler-{i}"), value)
        })
        .collect();
    for (origin, allowed) in [
        ("https://spa.example", true),
        ("https://evil.example", false),
    ] {
        let r = app
            .http
            .post(format!("{}/token", app.base))
            .header("origin", origin)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("grant_type=client_credentials&pad={too_big}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 413, "{origin}");
        assert_eq!(r.headers()["vary"], "origin", "{origin}");
        assert_eq!(
            r.headers()
                .get("access-control-allow-origin")
                .map(|v| v.to_str().unwrap().to_owned()),
            allowed.then(|| origin.to_owned()),
            "{origin}"
        );
        let mut request = app
            .http
            .post(format!("{}/revoke", app.base))
            .header("origin", origin);
        for (name, value) in &many {
            request = request.header(name, value);
        }
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), 431, "{origin}");
        assert_eq!(
            r.headers().get("access-control-allow-origin").is_some(),
            allowed,
            "{origin}"
        );
    }
    let mut request = app
        .http
        .get(format!("{}/jwks", app.base))
        .header("origin", "https://any.example");
    for (name, value) in &many {
        request = request.header(name, value);
    }
    let r = request.send().await.unwrap();
    assert_eq!(r.status(), 431);
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
}
both!(browsers_from_registered_origins_may_call_the_token_endpoint);

async fn failed_authentications_are_throttled_without_locking_out_the_real_client(
    backend: Backend,
) {
    let app = spawn_app_with(backend, &[("TESSERA_RATE_LIMIT_FAILED_AUTH", "3")]).await;
    let (id, secret) = app.machine_client("api:read").await;
    let form = [("grant_type", "client_credentials")];
    assert_eq!(app.token_basic(&id, &secret, &form).await.status(), 200);
    for _ in 0..3 {
        assert_eq!(app.token_basic(&id, "guess", &form).await.status(), 401);
    }
    let r = app.token_basic(&id, "guess", &form).await;
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&retry), "{retry}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    // The secret already verified keeps working.
    assert_eq!(app.token_basic(&id, &secret, &form).await.status(), 200);
}
both!(failed_authentications_are_throttled_without_locking_out_the_real_client);

async fn rotating_a_secret_under_load_never_shows_a_half_rotated_client(backend: Backend) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};
    // The failed-authentication budget is off: the old secret's refusals
    // would otherwise throttle the client id (429), which is tested apart.
    let app = Arc::new(
        crate::common::spawn_app_with(backend, &[("TESSERA_RATE_LIMIT_FAILED_AUTH", "0")]).await,
    );
    let (id, old) = app.machine_client("api:read").await;
    let new = Arc::new(std::sync::Mutex::new(None::<(String, Instant)>));
    let stop = Arc::new(AtomicBool::new(false));
    // 16 clients: half with the old secret, half with the new one once it exists.
    let mut load = Vec::new();
    for n in 0..16 {
        let (app, id, old, new, stop) = (
            app.clone(),
            id.clone(),
            old.clone(),
            new.clone(),
            stop.clone(),
        );
        load.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let rotated = new.lock().unwrap().clone();
                let (secret, uses_new) = match (&rotated, n % 2) {
                    (Some((s, _)), 1) => (s.clone(), true),
                    _ => (old.clone(), false),
                };
                let sent = Instant::now();
                let r = app
                    .token_basic(&id, &secret, &[("grant_type", "client_credentials")])
                    .await;
                seen.push((
                    uses_new,
                    rotated.map(|(_, at)| at),
                    sent,
                    r.status().as_u16(),
                ));
            }
            seen
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rotated: Value = app
        .admin_json(
            reqwest::Method::POST,
            &format!("/admin/clients/{id}/secret"),
        )
        .await;
    *new.lock().unwrap() = Some((
        rotated["client_secret"].as_str().unwrap().to_owned(),
        Instant::now(),
    ));
    tokio::time::sleep(Duration::from_millis(2000)).await;
    stop.store(true, Ordering::SeqCst);
    let rotated_at = new.lock().unwrap().as_ref().unwrap().1;
    let mut old_late = 0;
    for task in load {
        for (uses_new, _, sent, status) in task.await.unwrap() {
            assert!(status == 200 || status == 401, "status {status}");
            let settled = sent > rotated_at + Duration::from_millis(1100);
            if settled {
                // A second after the rotation every instance knows it.
                let expected = if uses_new { 200 } else { 401 };
                assert_eq!(status, expected, "new secret: {uses_new}");
            }
            if !uses_new && sent > rotated_at && status == 401 {
                old_late += 1;
            }
        }
    }
    assert!(old_late > 0, "the old secret stopped working");
}
both!(rotating_a_secret_under_load_never_shows_a_half_rotated_client);
