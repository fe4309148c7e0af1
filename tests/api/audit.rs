//! Audit events: every security-relevant action leaves one, readable through
//! `GET /admin/events` with filters and cursor pages, carrying identifiers
//! and reasons but never a secret, code or token.

use serde_json::{Value, json};

use crate::both;
use crate::common::{Backend, TestApp, spawn_app};
use crate::login::{Landing, REDIRECT, app_with_idp, authorize, decide, redeem, web_client};

async fn events(app: &TestApp, query: &str) -> Vec<Value> {
    let r = app
        .admin_request(reqwest::Method::GET, &format!("/admin/events{query}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    body["events"].as_array().unwrap().clone()
}

/// Every event `query` finds, following `next_cursor` page by page.
async fn every_page(app: &TestApp, query: &str) -> Vec<Value> {
    let mut seen = Vec::new();
    let mut page = format!("/admin/events?{query}");
    loop {
        let body: Value = app.admin_json(reqwest::Method::GET, &page).await;
        seen.extend(body["events"].as_array().unwrap().iter().cloned());
        match body["next_cursor"].as_str() {
            Some(c) => page = format!("/admin/events?{query}&cursor={c}"),
            None => return seen,
        }
    }
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

/// No secret in `events`: none of `secrets` appears anywhere in them.
fn assert_no_secrets(events: &[Value], secrets: &[&str]) {
    let text = serde_json::to_string(events).unwrap();
    for s in secrets {
        assert!(!s.is_empty());
        assert!(!text.contains(s), "an event holds a secret: {text}");
    }
}

async fn client_changes_and_token_requests_are_recorded(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, secret) = app.machine_client("api:read").await;
    let r = app
        .token_basic(&id, &secret, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(r.status(), 200);
    let token: Value = r.json().await.unwrap();
    let access_token = token["access_token"].as_str().unwrap();
    let wrong = "not-the-secret-at-all-0123456789abcdefghijkl";
    let r = app
        .token_basic(&id, wrong, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(r.status(), 401);
    let rotated: Value = app
        .admin_json(
            reqwest::Method::POST,
            &format!("/admin/clients/{id}/secret"),
        )
        .await;
    let r = app
        .admin_request(reqwest::Method::PUT, &format!("/admin/clients/{id}"))
        .json(&json!({"client_name": "svc 2", "grant_types": ["client_credentials"], "scope": "api:read"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = app
        .admin_request(reqwest::Method::DELETE, &format!("/admin/clients/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = app
        .http
        .get(format!("{}/admin/clients", app.admin))
        .bearer_auth("a-wrong-admin-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let mine = events(&app, &format!("?client_id={id}")).await;
    assert_eq!(
        types(&mine),
        [
            "client.created",
            "token.issued",
            "client.auth_failed",
            "client.secret_rotated",
            "client.updated",
            "client.deleted",
        ]
    );
    let jti = {
        let payload = access_token.split('.').nth(1).unwrap();
        let claims: Value =
            serde_json::from_slice(&tessera::secret::b64url_decode(payload).unwrap()).unwrap();
        claims["jti"].as_str().unwrap().to_owned()
    };
    let issued = &mine[1];
    assert_eq!(issued["sub"], id.as_str());
    assert_eq!(issued["data"]["grant_type"], "client_credentials");
    assert_eq!(issued["data"]["jti"], jti.as_str());
    assert_eq!(issued["data"]["scope"], "api:read");
    assert_eq!(mine[0]["data"]["actor"], "admin_api");
    assert!(mine[2]["data"]["reason"].as_str().is_some());
    for e in &mine {
        assert!(e["id"].as_i64().is_some() && e["at"].as_i64().is_some());
    }
    let denied = events(&app, "?type=admin.auth_failed").await;
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0]["data"]["path"], "/admin/clients");
    assert_eq!(denied[0]["data"]["ip"], "127.0.0.1");
    assert_no_secrets(
        &events(&app, "").await,
        &[
            &secret,
            wrong,
            access_token,
            rotated["client_secret"].as_str().unwrap(),
            "a-wrong-admin-token",
        ],
    );
}
both!(client_changes_and_token_requests_are_recorded);

async fn a_users_sign_in_and_grants_are_recorded(backend: Backend) {
    let (app, _idp) = app_with_idp(backend, &[]).await;
    let (id, secret) = web_client(&app, json!({})).await;
    // Consent denied, then granted.
    let Landing::Consent(ticket) = authorize(&app, &id, &[]).await else {
        panic!("consent page expected")
    };
    decide(&app, &ticket, "deny").await;
    let Landing::Consent(ticket) = authorize(&app, &id, &[]).await else {
        panic!("consent page expected")
    };
    let Landing::Client(q) = decide(&app, &ticket, "allow").await else {
        panic!("code expected")
    };
    let code = q["code"].clone();
    let tokens: Value = redeem(&app, &id, &secret, &code)
        .await
        .json()
        .await
        .unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let form = [("grant_type", "refresh_token"), ("refresh_token", refresh)];
    assert_eq!(app.token_basic(&id, &secret, &form).await.status(), 200);
    // The same refresh token again: a replay.
    assert_eq!(app.token_basic(&id, &secret, &form).await.status(), 400);
    // The code again: a replay too.
    assert_eq!(redeem(&app, &id, &secret, &code).await.status(), 400);

    let mine = events(&app, &format!("?client_id={id}")).await;
    let sub = mine
        .iter()
        .find(|e| e["type"] == "login.succeeded")
        .unwrap()["sub"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        types(&mine),
        [
            "client.created",
            "login.succeeded",
            "consent.denied",
            "consent.granted",
            "token.issued",
            "token.issued",
            "token.replayed",
            "token.replayed",
        ]
    );
    assert_eq!(mine[3]["data"]["scope"], "openid profile email");
    assert_eq!(mine[4]["data"]["grant_type"], "authorization_code");
    assert_eq!(mine[4]["data"]["refresh_token"], true);
    assert_eq!(mine[4]["data"]["id_token"], true);
    assert_eq!(mine[5]["data"]["grant_type"], "refresh_token");
    assert_eq!(mine[6]["data"]["token_type"], "refresh_token");
    assert_eq!(mine[7]["data"]["token_type"], "authorization_code");
    for e in &mine[1..] {
        assert_eq!(e["sub"], sub.as_str(), "{e}");
    }

    // The user is disabled: the next sign-in is refused, and recorded.
    let r = app
        .admin_request(
            reqwest::Method::POST,
            &format!("/admin/users/{sub}/disable"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    authorize(&app, &id, &[]).await;
    let theirs = events(&app, &format!("?sub={sub}&type=login.failed")).await;
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0]["data"]["reason"], "user_disabled");
    assert_eq!(
        types(&events(&app, &format!("?sub={sub}&type=user.disabled")).await),
        ["user.disabled"]
    );
    assert_no_secrets(
        &events(&app, "").await,
        &[
            &secret,
            &code,
            refresh,
            tokens["access_token"].as_str().unwrap(),
            tokens["id_token"].as_str().unwrap(),
        ],
    );
    let _ = REDIRECT;
}
both!(a_users_sign_in_and_grants_are_recorded);

async fn events_are_filtered_and_paged(backend: Backend) {
    let app = spawn_app(backend).await;
    for _ in 0..3 {
        app.machine_client("x").await;
    }
    let all = events(&app, "?type=client.created").await;
    assert_eq!(all.len(), 3);
    // Pages of two, oldest first, each event once.
    let seen = every_page(&app, "type=client.created&limit=2").await;
    assert_eq!(seen, all);
    // `since`, as unix seconds or RFC 3339.
    let first_at = all[0]["at"].as_i64().unwrap();
    let since = format!("?since={first_at}&type=client.created");
    assert_eq!(events(&app, &since).await.len(), 3);
    assert!(
        events(&app, &format!("?since={}", first_at + 3600))
            .await
            .is_empty()
    );
    assert!(events(&app, "?since=2999-01-01T00:00:00Z").await.is_empty());
    assert_eq!(
        events(&app, "?since=2000-01-01T00:00:00Z&type=client.created")
            .await
            .len(),
        3
    );
    // Bad filters are 400 invalid_request.
    for bad in [
        "?type=client.exploded",
        "?since=last-tuesday",
        "?cursor=@@@",
        "?limit=0",
        "?limit=5000",
    ] {
        let r = app
            .admin_request(reqwest::Method::GET, &format!("/admin/events{bad}"))
            .send()
            .await
            .unwrap();
        let (status, code, _) = crate::common::error_of(r).await;
        assert_eq!((status, code.as_str()), (400, "invalid_request"), "{bad}");
    }
    let r = app
        .http
        .get(format!("{}/admin/events", app.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}
both!(events_are_filtered_and_paged);

async fn the_cli_records_its_changes(backend: Backend) {
    let app = spawn_app(backend).await;
    let out = app.cli(&["keys", "rotate", "--now"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created = events(&app, "?type=key.rotated").await;
    assert!(!created.is_empty());
    for e in &created {
        assert_eq!(e["data"]["actor"], "cli");
        assert!(e["data"]["kid"].as_str().is_some());
    }
    assert!(
        events(&app, "?type=key.state_changed")
            .await
            .iter()
            .any(|e| e["data"]["state"] == "retiring" && e["data"]["actor"] == "cli")
    );
    // The keys made at first start.
    assert!(!events(&app, "?type=key.created").await.is_empty());
}
both!(the_cli_records_its_changes);

/// Each filter, alone and combined, answers exactly the events of the whole
/// list that match it (the query names only the filters given, and the
/// type index leaves `token.issued` out: both paths are exercised).
async fn every_filter_answers_what_the_whole_list_holds(backend: Backend) {
    let app = spawn_app(backend).await;
    let (a, a_secret) = app.machine_client("api:read").await;
    let (b, b_secret) = app.machine_client("api:read").await;
    for (id, secret) in [(&a, &a_secret), (&a, &a_secret), (&b, &b_secret)] {
        let r = app
            .token_basic(id, secret, &[("grant_type", "client_credentials")])
            .await;
        assert_eq!(r.status(), 200);
    }
    let r = app
        .token_basic(
            &a,
            "not-the-secret-at-all-0123456789abcdefghijkl",
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(r.status(), 401);

    let all = events(&app, "?limit=200").await;
    let since = all.iter().find(|e| e["type"] == "token.issued").unwrap()["at"]
        .as_i64()
        .unwrap();
    type Filter = Box<dyn Fn(&Value) -> bool>;
    let is = |key: &'static str, value: String| -> Filter {
        Box::new(move |e| e[key] == value.as_str())
    };
    let cases: Vec<(String, Vec<Filter>)> = vec![
        (
            "type=token.issued".into(),
            vec![is("type", "token.issued".into())],
        ),
        (
            "type=client.auth_failed".into(),
            vec![is("type", "client.auth_failed".into())],
        ),
        (
            "type=client.created".into(),
            vec![is("type", "client.created".into())],
        ),
        (format!("client_id={a}"), vec![is("client_id", a.clone())]),
        (
            format!("client_id={b}&type=token.issued"),
            vec![
                is("client_id", b.clone()),
                is("type", "token.issued".into()),
            ],
        ),
        (
            format!("client_id={a}&type=client.auth_failed"),
            vec![
                is("client_id", a.clone()),
                is("type", "client.auth_failed".into()),
            ],
        ),
        (format!("sub={a}"), vec![is("sub", a.clone())]),
        (
            format!("sub={a}&type=token.issued"),
            vec![is("sub", a.clone()), is("type", "token.issued".into())],
        ),
        (
            format!("since={since}&type=token.issued"),
            vec![
                Box::new(move |e: &Value| e["at"].as_i64().unwrap() >= since),
                is("type", "token.issued".into()),
            ],
        ),
        (
            format!("since={since}&client_id={b}&sub={b}&type=token.issued"),
            vec![
                Box::new(move |e: &Value| e["at"].as_i64().unwrap() >= since),
                is("client_id", b.clone()),
                is("sub", b.clone()),
                is("type", "token.issued".into()),
            ],
        ),
    ];
    let ids = |events: &[Value]| {
        events
            .iter()
            .map(|e| e["id"].as_i64().unwrap())
            .collect::<Vec<_>>()
    };
    for (query, filters) in &cases {
        let expected: Vec<Value> = all
            .iter()
            .filter(|e| filters.iter().all(|f| f(e)))
            .cloned()
            .collect();
        assert!(!expected.is_empty(), "{query}: nothing to find");
        let got = events(&app, &format!("?{query}&limit=200")).await;
        assert_eq!(ids(&got), ids(&expected), "{query}");
        // The same, a page of one at a time.
        let paged = every_page(&app, &format!("{query}&limit=1")).await;
        assert_eq!(ids(&paged), ids(&expected), "{query}, page by page");
    }
}
both!(every_filter_answers_what_the_whole_list_holds);
