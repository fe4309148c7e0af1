//! A real headless Chromium (Debian's `chromium` and `chromium-driver`,
//! driven over WebDriver with fantoccini) goes through the whole sign-in:
//! the client's link → Tessera's /authorize → the test upstream → the consent
//! page (saved as docs/consent.png) → Allow → the client's redirect URI with
//! a code that redeems.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{ClientBuilder, Locator};
use serde_json::json;

use crate::common::Backend;
use crate::login::{VERIFIER, app_with_idp};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// S256 of `VERIFIER`.
const CHALLENGE: &str = "jFJ5owK9BMosC5BZe7GT7EBmwJC2OlXa1zyf-EDuX8U";

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The relying party's redirect URI: a page saying it got the browser back.
async fn client_app() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().route(
        "/callback",
        axum::routing::get(|| async {
            axum::response::Html(
                "<!doctype html><title>signed in</title><p id=done>back at the client</p>",
            )
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://127.0.0.1:{port}/callback")
}

async fn a_person_signs_in_with_a_real_browser(backend: Backend) {
    if !std::path::Path::new(CHROMEDRIVER).exists() {
        // .ci/run installs it; a developer machine may not have it.
        assert!(
            std::env::var_os("CI").is_none(),
            "{CHROMEDRIVER} is missing (apt-get install chromium chromium-driver)"
        );
        eprintln!("skipped: {CHROMEDRIVER} is not installed");
        return;
    }
    let (app, _idp) = app_with_idp(backend, &[]).await;
    let redirect_uri = client_app().await;
    let registered = app
        .create_client(json!({
            "client_name": "Photo Album",
            "redirect_uris": ["http://127.0.0.1/callback"],
            "grant_types": ["authorization_code", "refresh_token"],
        }))
        .await;
    let client_id = registered["client_id"].as_str().unwrap();
    let client_secret = registered["client_secret"].as_str().unwrap();

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _driver = Driver(
        Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let profile = tempfile::tempdir().unwrap();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--no-first-run",
                "--disable-sync", "--window-size=480,800",
                format!("--user-data-dir={}", profile.path().display()),
            ],
        }),
    );
    // fantoccini speaks plain HTTP to chromedriver here, but its rustls
    // build needs a process-wide crypto provider chosen.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut browser = None;
    for _ in 0..50 {
        match ClientBuilder::rustls()
            .unwrap()
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(c) => {
                browser = Some(c);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let browser = browser.expect("chromedriver did not start");

    let mut authorize = url::Url::parse(&format!("{}/authorize", app.base)).unwrap();
    authorize
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", &redirect_uri)
        .append_pair("scope", "openid profile email")
        .append_pair("state", "browser-state")
        .append_pair("nonce", "browser-nonce")
        .append_pair("code_challenge", CHALLENGE)
        .append_pair("code_challenge_method", "S256");
    browser.goto(authorize.as_str()).await.unwrap();
    let allow = browser
        .wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css(r#"button[name="decision"][value="allow"]"#))
        .await
        .unwrap_or_else(|e| panic!("no consent page: {e}"));
    assert!(browser.source().await.unwrap().contains("Photo Album"));
    if backend == Backend::Sqlite {
        let png = browser.screenshot().await.unwrap();
        std::fs::write(
            concat!(env!("CARGO_MANIFEST_DIR"), "/docs/consent.png"),
            png,
        )
        .unwrap();
    }
    allow.click().await.unwrap();
    browser
        .wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Id("done"))
        .await
        .unwrap_or_else(|e| panic!("not back at the client: {e}"));
    let landed = browser.current_url().await.unwrap();
    browser.close().await.unwrap();

    assert!(landed.as_str().starts_with(&redirect_uri), "{landed}");
    let query: std::collections::HashMap<String, String> =
        landed.query_pairs().into_owned().collect();
    assert_eq!(query["state"], "browser-state");
    assert_eq!(query["iss"], app.base);
    let form = [
        ("grant_type", "authorization_code"),
        ("code", query["code"].as_str()),
        ("redirect_uri", redirect_uri.as_str()),
        ("code_verifier", VERIFIER),
    ];
    let r = app.token_basic(client_id, client_secret, &form).await;
    assert_eq!(r.status(), 200, "the code the browser brought back redeems");
}
crate::both!(a_person_signs_in_with_a_real_browser);
