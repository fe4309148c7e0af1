//! Signing keys: persistence across restarts, rotation by the CLI picked up
//! by a running server, agreement between instances starting together, and
//! scheduled rotation shared by two instances.

use std::sync::Arc;

use serde_json::Value;

use crate::both;
use crate::common::{Backend, TestApp, TestEnv, spawn_app, spawn_app_with};

async fn token_kid(app: &TestApp, id: &str, secret: &str) -> String {
    let body: Value = app
        .token_basic(id, secret, &[("grant_type", "client_credentials")])
        .await
        .json()
        .await
        .unwrap();
    let header = jsonwebtoken::decode_header(body["access_token"].as_str().unwrap()).unwrap();
    header.kid.unwrap()
}

fn cli_ok(app: &TestApp, args: &[&str]) -> String {
    let out = app.cli(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

async fn a_restart_keeps_the_same_keys(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, secret) = app.machine_client("").await;
    let before = TestApp::kids(&app.jwks().await);
    let kid = token_kid(&app, &id, &secret).await;
    let app = app.restart().await;
    assert_eq!(TestApp::kids(&app.jwks().await), before);
    assert_eq!(token_kid(&app, &id, &secret).await, kid);
}
both!(a_restart_keeps_the_same_keys);

async fn rotation_publishes_first_then_signs_then_retires(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, secret) = app.machine_client("").await;
    let first = token_kid(&app, &id, &secret).await;

    // A plain rotation: the new key is published but does not sign yet.
    cli_ok(&app, &["keys", "rotate"]);
    app.eventually(|| async { app.jwks().await["keys"].as_array().unwrap().len() == 2 })
        .await;
    assert_eq!(token_kid(&app, &id, &secret).await, first);
    let listed: Value = serde_json::from_str(&cli_ok(&app, &["keys", "list", "--json"])).unwrap();
    let mut states: Vec<_> = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["state"].as_str().unwrap().to_owned())
        .collect();
    states.sort();
    assert_eq!(states, ["active", "pending"]);

    // --now: new tokens carry the new kid; the old key stays published.
    cli_ok(&app, &["keys", "rotate", "--now"]);
    app.eventually(|| async { token_kid(&app, &id, &secret).await != first })
        .await;
    let second = token_kid(&app, &id, &secret).await;
    let kids = TestApp::kids(&app.jwks().await);
    assert!(kids.contains(&first) && kids.contains(&second), "{kids:?}");

    // --now --retire-old: the old key leaves the JWKS at once.
    cli_ok(&app, &["keys", "rotate", "--now", "--retire-old"]);
    app.eventually(|| async { !TestApp::kids(&app.jwks().await).contains(&second) })
        .await;
    let third = token_kid(&app, &id, &secret).await;
    assert_ne!(third, second);
    assert!(TestApp::kids(&app.jwks().await).contains(&third));
}
both!(rotation_publishes_first_then_signs_then_retires);

async fn a_pending_key_signs_once_published_longer_than_the_jwks_max_age(backend: Backend) {
    let app = spawn_app_with(backend, &[("TESSERA_JWKS_MAX_AGE", "1")]).await;
    let (id, secret) = app.machine_client("").await;
    let first = token_kid(&app, &id, &secret).await;
    cli_ok(&app, &["keys", "rotate"]);
    app.eventually(|| async { token_kid(&app, &id, &secret).await != first })
        .await;
    // The old key is retiring: still published for the tokens it signed.
    assert!(TestApp::kids(&app.jwks().await).contains(&first));
}
both!(a_pending_key_signs_once_published_longer_than_the_jwks_max_age);

async fn instances_starting_together_agree_on_one_key(backend: Backend) {
    let env = Arc::new(TestEnv::new(backend).await);
    let extra = std::collections::HashMap::from([(
        "TESSERA_ACCESS_TOKEN_ALG".to_owned(),
        "ES256".to_owned(),
    )]);
    let (a, b) = tokio::join!(
        crate::common::start(env.clone(), extra.clone()),
        crate::common::start(env.clone(), extra.clone())
    );
    let (ka, kb) = (
        TestApp::kids(&a.jwks().await),
        TestApp::kids(&b.jwks().await),
    );
    assert_eq!(ka.len(), 2, "one RS256 and one ES256 key: {ka:?}");
    assert_eq!(ka, kb);
    let pem_files = std::fs::read_dir(&env.keys_dir).unwrap().count();
    assert_eq!(pem_files, 2);
}
both!(instances_starting_together_agree_on_one_key);

/// Issue 4 point 4: two instances on one database and keys folder. The
/// scheduled rotation is done by one of them at a time (under the database
/// lock), both start signing with the new key once it has been published
/// longer than the JWKS max-age, and each verifies the other's tokens.
async fn two_instances_rotate_on_schedule_and_trust_each_others_tokens(backend: Backend) {
    let env = Arc::new(TestEnv::new(backend).await);
    let mut extra = std::collections::HashMap::from([
        ("TESSERA_KEY_ROTATION_PERIOD".to_owned(), "3".to_owned()),
        ("TESSERA_JWKS_MAX_AGE".to_owned(), "1".to_owned()),
    ]);
    let a = crate::common::start(env.clone(), extra.clone()).await;
    extra.insert("TESSERA_ISSUER".to_owned(), a.base.clone());
    let b = crate::common::start(env.clone(), extra).await;
    let (id, secret) = a.machine_client("").await;
    let first = token_kid(&a, &id, &secret).await;
    assert_eq!(token_kid(&b, &id, &secret).await, first);

    a.eventually(|| async {
        token_kid(&a, &id, &secret).await != first && token_kid(&b, &id, &secret).await != first
    })
    .await;
    let tokens: Vec<String> = futures::future::join_all([&a, &b].map(|app| async {
        let body: Value = app
            .token_basic(&id, &secret, &[("grant_type", "client_credentials")])
            .await
            .json()
            .await
            .unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }))
    .await;
    for jwks in [a.jwks().await, b.jwks().await] {
        for token in &tokens {
            crate::common::verify_jwt(token, &jwks, &a.base, &a.base, "at+jwt");
        }
    }

    // One rotation per period, not one per instance: no two RS256 keys were
    // made in the same period.
    let listed: Value = serde_json::from_str(&cli_ok(&a, &["keys", "list", "--json"])).unwrap();
    let mut created: Vec<i64> = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["alg"] == "RS256")
        .map(|k| k["created_at"].as_i64().unwrap())
        .collect();
    created.sort_unstable();
    assert!(created.len() >= 2, "{created:?}");
    for pair in created.windows(2) {
        assert!(
            pair[1] - pair[0] >= 2,
            "two keys in one period: {created:?}"
        );
    }
}
both!(two_instances_rotate_on_schedule_and_trust_each_others_tokens);
