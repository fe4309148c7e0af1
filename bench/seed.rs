//! `bench-seed`: pre-creates single-use credentials for the bench, in the
//! database a running Tessera uses (same `TESSERA_*` settings).
//!
//! `bench-seed codes CLIENT_ID COUNT OUT`: authorization codes for one
//! signed-in user (verifier `bench/seed.rs` VERIFIER), raw values to OUT.
//! `bench-seed refresh CLIENT_ID SECRET COUNT OUT`: refresh tokens, each
//! from a real code redemption through the token endpoint's own code.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark tool: fail loudly"
)]

use std::io::Write;
use std::sync::Arc;

use base64::Engine;
use tessera::app::{App, SystemClock};
use tessera::config::Config;
use tessera::oauth::form::Params;
use tessera::secret::{random_token, sha256_b64};
use tessera::store::{CodeRecord, UpstreamProfile};

pub const VERIFIER: &str = "bench-verifier-0123456789-0123456789-0123456789";
pub const REDIRECT: &str = "https://bench.example/cb";

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut config = Config::from_env(None).expect("configuration");
    config.key_poll_interval = std::time::Duration::from_secs(3600);
    let app = Arc::new(
        App::start(config, Arc::new(SystemClock))
            .await
            .expect("start"),
    );
    match args.as_slice() {
        ["codes", client_id, count, out] => {
            let codes = make_codes(&app, client_id, count.parse().unwrap()).await;
            write(out, &codes);
        }
        ["refresh", client_id, secret, count, out] => {
            let codes = make_codes(&app, client_id, count.parse().unwrap()).await;
            let basic = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{client_id}:{secret}"))
            );
            let mut tokens = Vec::with_capacity(codes.len());
            for code in codes {
                let body = format!(
                    "grant_type=authorization_code&code={code}&redirect_uri={}&code_verifier={VERIFIER}",
                    form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
                );
                let params = Params::parse(body.as_bytes()).unwrap();
                let response = tessera::oauth::token_endpoint::exchange(
                    &app,
                    &params,
                    &tessera::oauth::token_endpoint::Caller {
                        authorization: Some(basic.as_bytes()),
                        ip: None,
                    },
                )
                .await
                .expect("code redemption");
                tokens.push(
                    response
                        .refresh_token
                        .expect("the client has the refresh_token grant"),
                );
            }
            write(out, &tokens);
        }
        _ => {
            eprintln!(
                "usage: bench-seed codes CLIENT_ID COUNT OUT | refresh CLIENT_ID SECRET COUNT OUT"
            );
            std::process::exit(2);
        }
    }
}

async fn make_codes(app: &App, client_id: &str, count: usize) -> Vec<String> {
    let now = app.now();
    let user = app
        .store
        .upsert_user(
            &UpstreamProfile {
                issuer: "https://bench.example".into(),
                subject: "bench-user".into(),
                email: Some("bench@example.com".into()),
                email_verified: true,
                name: Some("Bench User".into()),
                picture: None,
            },
            now,
        )
        .await
        .unwrap();
    // One browser session for all the codes (codes name their session, and
    // the session's clients are recorded for back-channel logout).
    let sid = random_token(16);
    app.store
        .insert_session(&tessera::store::Session {
            id_hash: sha256_b64(random_token(32).as_bytes()),
            sid: sid.clone(),
            sub: user.sub.clone(),
            auth_time: now,
            created_at: now,
            expires_at: now + 86_400,
        })
        .await
        .unwrap();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, VERIFIER.as_bytes());
    let challenge = tessera::secret::b64url(digest.as_ref());
    let mut codes = Vec::with_capacity(count);
    for _ in 0..count {
        let code = random_token(32);
        app.store
            .insert_code(&CodeRecord {
                code_hash: sha256_b64(code.as_bytes()),
                client_id: client_id.to_owned(),
                sub: user.sub.clone(),
                sid: Some(sid.clone()),
                redirect_uri: REDIRECT.into(),
                scope: "openid profile email".into(),
                audience: serde_json::to_string(&[&app.config.default_audience]).unwrap(),
                code_challenge: challenge.clone(),
                nonce: Some(random_token(16)),
                auth_time: now,
                created_at: now,
                expires_at: now + 3600,
            })
            .await
            .unwrap();
        codes.push(code);
    }
    codes
}

fn write(path: &str, lines: &[String]) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
}
