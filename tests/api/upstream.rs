//! Tessera as a client of its upstream (the fake provider standing in for
//! Google): discovery, the authorization request, the code exchange and
//! every check on the upstream's ID token, over real HTTP.

use std::collections::HashMap;

use tessera::config::Config;
use tessera::upstream::id_token::IdTokenError;
use tessera::upstream::{Upstream, UpstreamError};

use crate::common::fake_idp::{FakeIdp, Tamper, User};

fn upstream(idp: &FakeIdp, extra: &[(&str, &str)]) -> Upstream {
    let dir = tempfile::tempdir().unwrap();
    let mut vars: HashMap<String, String> = idp.vars().into_iter().collect();
    vars.insert("TESSERA_KEYS_DIR".into(), dir.path().display().to_string());
    vars.insert("TESSERA_UPSTREAM_TIMEOUT".into(), "2".into());
    for (k, v) in extra {
        vars.insert((*k).into(), (*v).into());
    }
    let config = Config::from_sources(None, &vars).unwrap();
    Upstream::from_config(&config).unwrap().unwrap()
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Plays the browser: follows the authorization URL to the provider and
/// reads the code and state it sends back to Tessera's callback.
async fn login(
    up: &Upstream,
) -> Result<tessera::upstream::id_token::UpstreamIdentity, UpstreamError> {
    let start = up.start_login(false).unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = http.get(start.url.as_str()).send().await.unwrap();
    let location = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    assert!(
        location
            .as_str()
            .starts_with("http://127.0.0.1:8080/callback/google?"),
        "{location}"
    );
    let q: HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(q.get("state"), Some(&start.state));
    up.finish_login(
        &q["code"],
        start.pkce_verifier.expose_secret(),
        &start.nonce,
        now(),
    )
    .await
}

#[tokio::test]
async fn a_login_through_the_upstream_yields_the_verified_identity() {
    let idp = FakeIdp::start().await;
    let up = upstream(&idp, &[]);
    assert!(!up.is_ready());
    up.discover().await.unwrap();
    assert!(up.is_ready());
    idp.sign_in_as(User {
        email_verified: false,
        ..User::new("alice")
    });
    let who = login(&up).await.unwrap();
    assert_eq!(who.subject, "alice");
    assert_eq!(who.issuer, idp.issuer);
    assert_eq!(who.email.as_deref(), Some("alice@example.com"));
    assert!(!who.email_verified);
    let request = idp.requests().pop().unwrap();
    assert_eq!(request["response_type"], "code");
    assert_eq!(request["scope"], "openid email profile");
    assert_eq!(request["nonce"].len(), 43);
    assert!(!request.contains_key("prompt"));
}

#[tokio::test]
async fn every_bad_upstream_id_token_is_refused() {
    let idp = FakeIdp::start().await;
    let up = upstream(&idp, &[]);
    up.discover().await.unwrap();
    let cases = [
        (Tamper::BadSignature, IdTokenError::BadSignature),
        (Tamper::WrongAudience, IdTokenError::Audience),
        (Tamper::WrongNonce, IdTokenError::Nonce),
        (Tamper::Expired, IdTokenError::Expired),
        (
            Tamper::WrongIssuer,
            IdTokenError::Issuer("https://evil.example".into()),
        ),
    ];
    for (tamper, expected) in cases {
        idp.tamper(tamper);
        match login(&up).await {
            Err(UpstreamError::IdToken(e)) => assert_eq!(e, expected, "{tamper:?}"),
            other => panic!("{tamper:?}: {other:?}"),
        }
    }
    idp.tamper(Tamper::TokenEndpointDown);
    assert!(matches!(
        login(&up).await,
        Err(UpstreamError::Unavailable(_))
    ));
    idp.tamper(Tamper::None);
    assert!(login(&up).await.is_ok());
}

#[tokio::test]
async fn allowed_domains_need_the_hd_claim() {
    let idp = FakeIdp::start().await;
    let up = upstream(&idp, &[("TESSERA_GOOGLE_ALLOWED_DOMAINS", "example.com")]);
    up.discover().await.unwrap();
    idp.sign_in_as(User::new("nohd"));
    assert!(matches!(
        login(&up).await,
        Err(UpstreamError::DomainNotAllowed(_))
    ));
    idp.sign_in_as(User {
        hd: Some("other.com".into()),
        ..User::new("other")
    });
    assert!(matches!(
        login(&up).await,
        Err(UpstreamError::DomainNotAllowed(_))
    ));
    idp.sign_in_as(User {
        hd: Some("example.com".into()),
        ..User::new("ok")
    });
    assert_eq!(
        login(&up).await.unwrap().hosted_domain.as_deref(),
        Some("example.com")
    );
    assert_eq!(
        idp.requests().last().unwrap()["hd"],
        "example.com",
        "one domain is sent as the hd hint"
    );

    let any = upstream(&idp, &[("TESSERA_GOOGLE_ALLOWED_DOMAINS", "*")]);
    any.discover().await.unwrap();
    idp.sign_in_as(User {
        hd: Some("whatever.org".into()),
        ..User::new("ws")
    });
    assert!(login(&any).await.is_ok());
    assert_eq!(idp.requests().last().unwrap()["hd"], "*");
}

#[tokio::test]
async fn reauthentication_asks_google_to_select_the_account_again() {
    let idp = FakeIdp::start().await;
    let up = upstream(&idp, &[]);
    up.discover().await.unwrap();
    let start = up.start_login(true).unwrap();
    let q: HashMap<_, _> = start.url.query_pairs().into_owned().collect();
    assert_eq!(q["prompt"], "select_account");
}

#[tokio::test]
async fn discovery_refuses_a_document_for_another_issuer_and_an_unreachable_upstream() {
    let idp = FakeIdp::start().await;
    let wrong = upstream(
        &idp,
        &[(
            "TESSERA_GOOGLE_ISSUER",
            &format!("{}/", idp.issuer.replace("127.0.0.1", "localhost")),
        )],
    );
    assert!(wrong.discover().await.is_err());
    let down = upstream(&idp, &[("TESSERA_GOOGLE_ISSUER", "http://127.0.0.1:9")]);
    assert!(down.discover().await.is_err());
    assert!(
        down.start_login(false).is_err(),
        "no login before discovery"
    );
}
