//! Crash safety: the real `tessera` binary, as a child process, is killed
//! with SIGKILL in the middle of a load of code redemptions and refreshes,
//! then started again on the same database and keys. Every refresh token a
//! client holds whose next request was not in flight at the kill still
//! refreshes; every code redeemed before the kill stays used; the access
//! tokens issued before it still verify; and no refresh family has two live
//! tokens.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::both;
use crate::common::fake_idp::FakeIdp;
use crate::common::{Backend, TestApp, TestEnv, verify_jwt};
use crate::login::{code_for, redeem, web_client};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `tessera serve` on the test's database and keys.
fn spawn(env: &TestEnv, idp: &FakeIdp, public: u16, admin: u16) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
    cmd.arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TESSERA_LISTEN", format!("127.0.0.1:{public}"))
        .env("TESSERA_ADMIN_LISTEN", format!("127.0.0.1:{admin}"))
        .env("TESSERA_ISSUER", format!("http://127.0.0.1:{public}"))
        .env("TESSERA_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (k, v) in env.vars() {
        cmd.env(k, v);
    }
    for (k, v) in idp.vars() {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

async fn wait_ready(app: &TestApp) {
    for _ in 0..200 {
        if let Ok(r) = app.http.get(format!("{}/readyz", app.base)).send().await {
            if r.status() == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server did not become ready");
}

/// What a client knew when the server died.
enum Last {
    /// Its last request was answered: the refresh token it holds now, and
    /// an access token it got.
    Answered { refresh: String, access: String },
    /// Its last request was in flight: no promise about it.
    InFlight,
}

/// A refresh: the answer, or `Err` when the server could not be reached
/// (it was killed). A refusal is a failure of the test.
async fn refresh(app: &TestApp, id: &str, secret: &str, token: &str) -> reqwest::Result<Value> {
    let r = app
        .http
        .post(format!("{}/token", app.base))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", token)])
        .send()
        .await?;
    let status = r.status();
    let body: Value = r.json().await?;
    assert_eq!(status, 200, "refresh refused: {body}");
    Ok(body)
}

async fn a_kill_during_load_loses_nothing_promised(backend: Backend) {
    let idp = FakeIdp::start().await;
    let env = Arc::new(TestEnv::new(backend).await);
    let (public, admin) = (free_port(), free_port());
    let mut child = spawn(&env, &idp, public, admin);
    let app = Arc::new(TestApp::external(
        format!("http://127.0.0.1:{public}"),
        format!("http://127.0.0.1:{admin}"),
        env.clone(),
    ));
    wait_ready(&app).await;
    let (id, secret) = web_client(&app, serde_json::json!({"skip_consent": true})).await;

    // Codes for the load, and clients each refreshing their own family.
    let mut codes = Vec::new();
    for _ in 0..40 {
        codes.push(code_for(&app, &id).await);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut refreshers = Vec::new();
    for n in 0..8u64 {
        let code = codes.pop().unwrap();
        let first: Value = redeem(&app, &id, &secret, &code)
            .await
            .json()
            .await
            .unwrap();
        let (app, id, secret, stop) = (app.clone(), id.clone(), secret.clone(), stop.clone());
        refreshers.push(tokio::spawn(async move {
            let mut last = Last::Answered {
                refresh: first["refresh_token"].as_str().unwrap().to_owned(),
                access: first["access_token"].as_str().unwrap().to_owned(),
            };
            // Even clients stop when told (and are idle at the kill); odd
            // ones go on until the server is gone (in flight at the kill).
            while n % 2 == 1 || !stop.load(Ordering::SeqCst) {
                let Last::Answered { refresh: token, .. } = &last else {
                    break;
                };
                let token = token.clone();
                last = Last::InFlight;
                match refresh(&app, &id, &secret, &token).await {
                    Ok(v) => {
                        last = Last::Answered {
                            refresh: v["refresh_token"].as_str().unwrap().to_owned(),
                            access: v["access_token"].as_str().unwrap().to_owned(),
                        }
                    }
                    Err(_) => break,
                }
                let pause = if n % 2 == 0 {
                    rand::random::<u64>() % 10
                } else {
                    0
                };
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
            last
        }));
    }
    // Code redemptions alongside: the codes answered 200 before the kill.
    let redeemer = {
        let (app, id, secret) = (app.clone(), id.clone(), secret.clone());
        tokio::spawn(async move {
            let mut redeemed = Vec::new();
            for code in codes {
                let sent = app
                    .http
                    .post(format!("{}/token", app.base))
                    .basic_auth(&id, Some(&secret))
                    .form(&[
                        ("grant_type", "authorization_code"),
                        ("code", code.as_str()),
                        ("redirect_uri", crate::login::REDIRECT),
                        ("code_verifier", crate::login::VERIFIER),
                    ])
                    .send()
                    .await;
                let Ok(r) = sent else { break };
                assert_eq!(r.status(), 200, "a fresh code refused");
                if r.bytes().await.is_err() {
                    break;
                }
                redeemed.push(code);
            }
            redeemed
        })
    };

    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, Ordering::SeqCst);
    let mut finished = Vec::new();
    let mut running = Vec::new();
    for (n, r) in refreshers.into_iter().enumerate() {
        if n % 2 == 0 {
            finished.push(r.await.unwrap());
        } else {
            running.push(r);
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let mut held = Vec::new();
    let mut in_flight = 0;
    for r in running {
        finished.push(r.await.unwrap());
    }
    for last in finished {
        match last {
            Last::Answered { refresh, access } => held.push((refresh, access)),
            Last::InFlight => in_flight += 1,
        }
    }
    let redeemed = redeemer.await.unwrap();
    assert!(
        !held.is_empty(),
        "every client was in flight: nothing tested"
    );
    eprintln!(
        "killed with {} clients idle, {in_flight} in flight, {} codes redeemed",
        held.len(),
        redeemed.len()
    );

    // Restarted on the same database and keys.
    let mut child = spawn(&env, &idp, public, admin);
    wait_ready(&app).await;
    let jwks = app.jwks().await;
    for (refresh_token, access) in &held {
        verify_jwt(access, &jwks, &app.base, &app.base, "at+jwt");
        let next = refresh(&app, &id, &secret, refresh_token).await;
        assert!(
            next.is_ok(),
            "a held refresh token must still refresh: {next:?}"
        );
    }
    for code in &redeemed {
        let r = redeem(&app, &id, &secret, code).await;
        assert_eq!(r.status(), 400, "a used code stays used");
    }
    // No family has two live refresh tokens.
    let doubles = live_tokens_per_family(&env).await;
    assert!(
        doubles.values().all(|n| *n <= 1),
        "families with several live refresh tokens: {doubles:?}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}
both!(a_kill_during_load_loses_nothing_promised);

/// Live (unused) refresh tokens per family, read straight from the database.
async fn live_tokens_per_family(env: &TestEnv) -> HashMap<String, i64> {
    let sql =
        "SELECT family_id, COUNT(*) FROM refresh_tokens WHERE used_at IS NULL GROUP BY family_id";
    let rows: Vec<(String, i64)> = if env.database_url.starts_with("sqlite") {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&env.database_url)
            .await
            .unwrap();
        sqlx::query_as(sql).fetch_all(&mut c).await.unwrap()
    } else {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&env.database_url)
            .await
            .unwrap();
        sqlx::query_as(sql).fetch_all(&mut c).await.unwrap()
    };
    rows.into_iter().collect()
}
