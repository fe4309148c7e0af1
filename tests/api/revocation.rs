//! `POST /revoke` (RFC 7009) and `POST /introspect` (RFC 7662), and how a
//! revocation reaches `/userinfo`, the refresh grant and other instances.

use serde_json::{Value, json};

use crate::both;
use crate::common::{Backend, TestApp, error_of, start};
use crate::login::{app_with_idp, code_for, redeem, web_client};

/// A client's POST to `/revoke` or `/introspect`: Basic when it has a
/// secret, its bare `client_id` in the form when public.
async fn call(
    app: &TestApp,
    path: &str,
    (id, secret): (&str, &str),
    form: &[(&str, &str)],
) -> reqwest::Response {
    let url = format!("{}{path}", app.base);
    if secret.is_empty() {
        let mut form = form.to_vec();
        form.push(("client_id", id));
        app.http.post(url).form(&form).send().await.unwrap()
    } else {
        app.http
            .post(url)
            .basic_auth(id, Some(secret))
            .form(form)
            .send()
            .await
            .unwrap()
    }
}

async fn introspect(app: &TestApp, rs: (&str, &str), token: &str) -> Value {
    let r = call(app, "/introspect", rs, &[("token", token)]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    r.json().await.unwrap()
}

async fn revoke(app: &TestApp, client: (&str, &str), form: &[(&str, &str)]) {
    let r = call(app, "/revoke", client, form).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

async fn userinfo_status(app: &TestApp, access: &str) -> u16 {
    app.http
        .get(format!("{}/userinfo", app.base))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn refresh(app: &TestApp, (id, secret): (&str, &str), token: &str) -> reqwest::Response {
    let form = [("grant_type", "refresh_token"), ("refresh_token", token)];
    app.token_basic(id, secret, &form).await
}

/// Signs a user in to the client and returns the token response.
async fn sign_in(app: &TestApp, id: &str, secret: &str) -> Value {
    let code = code_for(app, id).await;
    let r = redeem(app, id, secret, &code).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap()
}

async fn introspection_describes_each_kind_of_token(backend: Backend) {
    let (app, _idp) = app_with_idp(backend, &[]).await;
    let (id, secret) = web_client(&app, json!({"skip_consent": true})).await;
    let (rs_id, rs_secret) = app.machine_client("api").await;
    let rs = (rs_id.as_str(), rs_secret.as_str());
    let tokens = sign_in(&app, &id, &secret).await;

    let access = introspect(&app, rs, s(&tokens["access_token"])).await;
    assert_eq!(access["active"], true);
    assert_eq!(access["token_type"], "Bearer");
    assert_eq!(access["client_id"], id);
    assert_eq!(access["iss"], app.base);
    assert_eq!(access["scope"], tokens["scope"]);
    assert!(s(&access["username"]).ends_with("@example.com"));
    assert!(access["exp"].as_i64().unwrap() > access["iat"].as_i64().unwrap());
    assert!(access["aud"].is_string() || access["aud"].is_array());
    let sub = s(&access["sub"]).to_owned();

    let refresh_token = s(&tokens["refresh_token"]);
    let r = introspect(&app, rs, refresh_token).await;
    assert_eq!(r["active"], true);
    assert_eq!(r["token_type"], "refresh_token");
    assert_eq!(r["client_id"], id);
    assert_eq!(r["sub"], sub);
    assert_eq!(r["username"], access["username"]);
    assert_eq!(r["iss"], app.base);

    // A client-credentials token: its subject is the client, no username.
    let cc: Value = app
        .token_basic(rs.0, rs.1, &[("grant_type", "client_credentials")])
        .await
        .json()
        .await
        .unwrap();
    let c = introspect(&app, rs, s(&cc["access_token"])).await;
    assert_eq!(c["active"], true);
    assert_eq!(c["sub"], rs_id);
    assert!(c.get("username").is_none());

    // Not access tokens, or not tokens at all: `{"active": false}` and nothing else.
    for token in [
        s(&tokens["id_token"]),
        "garbage",
        "a.b.c",
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
    ] {
        assert_eq!(introspect(&app, rs, token).await, json!({"active": false}));
    }
    // A used refresh token is no longer active.
    assert_eq!(
        refresh(&app, (&id, &secret), refresh_token).await.status(),
        200
    );
    assert_eq!(
        introspect(&app, rs, refresh_token).await,
        json!({"active": false})
    );
}
both!(introspection_describes_each_kind_of_token);

async fn revoking_an_access_token_ends_it_everywhere_but_only_for_its_client(backend: Backend) {
    let (app, _idp) = app_with_idp(backend, &[]).await;
    let (id, secret) = web_client(&app, json!({"skip_consent": true})).await;
    let (other_id, other_secret) = web_client(&app, json!({"skip_consent": true})).await;
    let (rs_id, rs_secret) = app.machine_client("api").await;
    let rs = (rs_id.as_str(), rs_secret.as_str());
    let tokens = sign_in(&app, &id, &secret).await;
    let access = s(&tokens["access_token"]);

    // Another client cannot revoke it, and learns nothing: 200 all the same.
    revoke(&app, (&other_id, &other_secret), &[("token", access)]).await;
    assert_eq!(introspect(&app, rs, access).await["active"], true);
    assert_eq!(userinfo_status(&app, access).await, 200);

    // Its own client can (with a misleading hint, which is not trusted).
    revoke(
        &app,
        (&id, &secret),
        &[("token", access), ("token_type_hint", "refresh_token")],
    )
    .await;
    assert_eq!(introspect(&app, rs, access).await, json!({"active": false}));
    assert_eq!(userinfo_status(&app, access).await, 401);
    // The refresh token lives on (RFC 7009 §2.1 leaves it to the server;
    // Tessera revokes only what was asked).
    let r = refresh(&app, (&id, &secret), s(&tokens["refresh_token"])).await;
    assert_eq!(r.status(), 200);

    // Unknown tokens: 200, nothing happens.
    revoke(&app, (&id, &secret), &[("token", "no-such-token")]).await;
}
both!(revoking_an_access_token_ends_it_everywhere_but_only_for_its_client);

async fn revoking_a_refresh_token_revokes_its_family(backend: Backend) {
    let (app, _idp) = app_with_idp(backend, &[]).await;
    let (id, secret) = web_client(&app, json!({"skip_consent": true})).await;
    let (rs_id, rs_secret) = app.machine_client("api").await;
    let rs = (rs_id.as_str(), rs_secret.as_str());
    let first = sign_in(&app, &id, &secret).await;
    let second: Value = refresh(&app, (&id, &secret), s(&first["refresh_token"]))
        .await
        .json()
        .await
        .unwrap();
    // A second sign-in is another family, untouched by the revocation.
    let other = sign_in(&app, &id, &secret).await;

    revoke(
        &app,
        (&id, &secret),
        &[
            ("token", s(&second["refresh_token"])),
            ("token_type_hint", "refresh_token"),
        ],
    )
    .await;
    let (status, error, _) =
        error_of(refresh(&app, (&id, &secret), s(&second["refresh_token"])).await).await;
    assert_eq!((status, error.as_str()), (400, "invalid_grant"));
    // The access tokens issued along the family die with it.
    for access in [s(&first["access_token"]), s(&second["access_token"])] {
        assert_eq!(introspect(&app, rs, access).await["active"], false);
        assert_eq!(userinfo_status(&app, access).await, 401);
    }
    assert_eq!(
        introspect(&app, rs, s(&second["refresh_token"])).await,
        json!({"active": false})
    );
    assert_eq!(
        introspect(&app, rs, s(&other["access_token"])).await["active"],
        true
    );
    let r = refresh(&app, (&id, &secret), s(&other["refresh_token"])).await;
    assert_eq!(r.status(), 200);

    // A public client identifies itself with its client_id.
    let (public_id, _) = web_client(
        &app,
        json!({"skip_consent": true, "token_endpoint_auth_method": "none"}),
    )
    .await;
    let tokens = sign_in(&app, &public_id, "").await;
    revoke(
        &app,
        (&public_id, ""),
        &[("token", s(&tokens["refresh_token"]))],
    )
    .await;
    let r = app
        .http
        .post(format!("{}/token", app.base))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", s(&tokens["refresh_token"])),
            ("client_id", &public_id),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await.1, "invalid_grant");
}
both!(revoking_a_refresh_token_revokes_its_family);

async fn revocation_and_introspection_refuse_bad_requests_and_change_nothing(backend: Backend) {
    let (app, _idp) = app_with_idp(backend, &[]).await;
    let (id, secret) = web_client(&app, json!({"skip_consent": true})).await;
    let (public_id, _) = web_client(
        &app,
        json!({"skip_consent": true, "token_endpoint_auth_method": "none"}),
    )
    .await;
    let (rs_id, rs_secret) = app.machine_client("api").await;
    let rs = (rs_id.as_str(), rs_secret.as_str());
    let tokens = sign_in(&app, &id, &secret).await;
    let access = s(&tokens["access_token"]);

    for path in ["/revoke", "/introspect"] {
        // Wrong secret, Basic: 401 invalid_client with a Basic challenge.
        let r = call(&app, path, (&id, "wrong"), &[("token", access)]).await;
        let (status, error, headers) = error_of(r).await;
        assert_eq!((status, error.as_str()), (401, "invalid_client"), "{path}");
        assert!(
            headers["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Basic")
        );
        // No client at all.
        let r = app
            .http
            .post(format!("{}{path}", app.base))
            .form(&[("token", access)])
            .send()
            .await
            .unwrap();
        assert_eq!(error_of(r).await.1, "invalid_client", "{path}");
        // No token; a repeated parameter; a JSON body.
        let r = call(&app, path, (&id, &secret), &[]).await;
        assert_eq!(error_of(r).await.1, "invalid_request", "{path}");
        let r = call(
            &app,
            path,
            (&id, &secret),
            &[("token", access), ("token", access)],
        )
        .await;
        assert_eq!(error_of(r).await.1, "invalid_request", "{path}");
        let r = app
            .http
            .post(format!("{}{path}", app.base))
            .basic_auth(&id, Some(&secret))
            .json(&json!({"token": access}))
            .send()
            .await
            .unwrap();
        assert_eq!(error_of(r).await.1, "invalid_request", "{path}");
    }
    // Public clients may revoke their tokens but not introspect.
    let r = call(&app, "/introspect", (&public_id, ""), &[("token", access)]).await;
    let (status, error, _) = error_of(r).await;
    assert_eq!((status, error.as_str()), (401, "invalid_client"));

    // None of that changed anything.
    assert_eq!(introspect(&app, rs, access).await["active"], true);
    assert_eq!(userinfo_status(&app, access).await, 200);
}
both!(revocation_and_introspection_refuse_bad_requests_and_change_nothing);

async fn a_revocation_on_one_instance_reaches_the_other(backend: Backend) {
    let (a, _idp) = app_with_idp(backend, &[]).await;
    // Instances behind one load balancer share the issuer.
    let mut extra = a.extra.clone();
    extra.insert("TESSERA_ISSUER".into(), a.base.clone());
    let b = start(a.env.clone(), extra).await;
    let (id, secret) = web_client(&a, json!({"skip_consent": true})).await;
    let tokens = sign_in(&a, &id, &secret).await;
    let access = s(&tokens["access_token"]).to_owned();
    assert_eq!(userinfo_status(&b, &access).await, 200);
    revoke(&a, (&id, &secret), &[("token", &access)]).await;
    assert_eq!(
        userinfo_status(&a, &access).await,
        401,
        "at once where revoked"
    );
    // The other instance reads revocations every second.
    b.eventually(|| async { userinfo_status(&b, &access).await == 401 })
        .await;
}
both!(a_revocation_on_one_instance_reaches_the_other);
