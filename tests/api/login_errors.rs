//! Every rejection of the browser flow and of the user grants, with its
//! exact error, status and place (page or redirect); races on single-use
//! credentials.

use serde_json::{Value, json};

use crate::both;
use crate::common::{Backend, error_of};
use crate::login::{
    CHALLENGE, Landing, REDIRECT, VERIFIER, app_with_idp, authorize, code_for, redeem, web_client,
};

async fn an_untrusted_client_or_redirect_uri_gets_a_page_never_a_redirect(backend: Backend) {
    let (app, idp) = app_with_idp(backend, &[]).await;
    let (id, _) = web_client(&app, json!({})).await;
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![("client_id", "nobody")],
        vec![("client_id", "")],
        vec![("redirect_uri", "")],
        vec![("redirect_uri", "https://evil.example/cb")],
        vec![("redirect_uri", "https://app.example/cb/")],
        vec![("redirect_uri", "https://app.example/cb?x=1")],
    ];
    for extra in cases {
        match authorize(&app, &id, &extra).await {
            Landing::Page(p) => assert!(p.starts_with("400"), "{extra:?}: {p}"),
            other => panic!("{extra:?}: {other:?}"),
        }
    }
    // A repeated redirect_uri is ambiguous: a page too.
    let r = app
        .http
        .get(format!(
            "{}/authorize?response_type=code&client_id={id}&redirect_uri={REDIRECT}&redirect_uri={REDIRECT}&scope=openid&code_challenge={CHALLENGE}&code_challenge_method=S256",
            app.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert!(idp.requests().is_empty(), "nothing reached the upstream");
}
both!(an_untrusted_client_or_redirect_uri_gets_a_page_never_a_redirect);

async fn bad_authorization_requests_go_back_with_their_error(backend: Backend) {
    let (app, idp) = app_with_idp(backend, &[]).await;
    let (id, _) = web_client(&app, json!({"scope": "openid profile email api:read"})).await;
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("response_type", "")], "invalid_request"),
        (
            vec![("response_type", "token")],
            "unsupported_response_type",
        ),
        (
            vec![("response_type", "code id_token")],
            "unsupported_response_type",
        ),
        (vec![("response_mode", "fragment")], "invalid_request"),
        (vec![("scope", "")], "invalid_scope"),
        (vec![("scope", "openid api:admin")], "invalid_scope"),
        (vec![("code_challenge", "")], "invalid_request"),
        (vec![("code_challenge_method", "")], "invalid_request"),
        (vec![("code_challenge_method", "plain")], "invalid_request"),
        (vec![("code_challenge", "short")], "invalid_request"),
        (vec![("prompt", "none consent")], "invalid_request"),
        (vec![("max_age", "-1")], "invalid_request"),
        (vec![("request", "eyJ.x.y")], "request_not_supported"),
        (
            vec![("request_uri", "https://x.example/r")],
            "request_uri_not_supported",
        ),
        (vec![("resource", "https://evil.example")], "invalid_target"),
    ];
    for (extra, error) in cases {
        match authorize(&app, &id, &extra).await {
            Landing::Client(q) => {
                assert_eq!(q.get("error").map(String::as_str), Some(error), "{extra:?}");
                assert_eq!(
                    q.get("state").map(String::as_str),
                    Some("st4te"),
                    "{extra:?}"
                );
                assert_eq!(q.get("iss"), Some(&app.base), "{extra:?}");
                assert!(!q.contains_key("code"));
            }
            other => panic!("{extra:?}: {other:?}"),
        }
    }
    assert!(
        idp.requests().is_empty(),
        "no bad request reached the upstream"
    );
    // A client registered without the code grant.
    let cc = app
        .create_client(json!({"grant_types": ["client_credentials"]}))
        .await;
    match authorize(&app, cc["client_id"].as_str().unwrap(), &[]).await {
        Landing::Page(p) => assert!(p.starts_with("400"), "no redirect_uri registered: {p}"),
        other => panic!("{other:?}"),
    }
}
both!(bad_authorization_requests_go_back_with_their_error);

/// Builds a token request's form around a fresh code.
type FormFor = Box<dyn Fn(String) -> Vec<(&'static str, String)>>;

async fn bad_code_redemptions_are_invalid_grant(backend: Backend) {
    let (app, _idp) = app_with_idp(backend, &[]).await;
    let (id, secret) = web_client(&app, json!({"skip_consent": true})).await;
    let (other, other_secret) = web_client(&app, json!({"skip_consent": true})).await;
    let token = |form: Vec<(&'static str, String)>, who: (String, String)| {
        let app = &app;
        async move {
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            app.token_basic(&who.0, &who.1, &form).await
        }
    };
    let me = (id.clone(), secret.clone());
    let cases: Vec<(&str, FormFor, (String, String), &str)> = vec![
        (
            "wrong verifier",
            Box::new(|c| {
                vec![
                    ("grant_type", "authorization_code".into()),
                    ("code", c),
                    ("redirect_uri", REDIRECT.into()),
                    ("code_verifier", "x".repeat(43)),
                ]
            }),
            me.clone(),
            "invalid_grant",
        ),
        (
            "wrong redirect_uri",
            Box::new(|c| {
                vec![
                    ("grant_type", "authorization_code".into()),
                    ("code", c),
                    ("redirect_uri", "https://app.example/other".into()),
                    ("code_verifier", VERIFIER.into()),
                ]
            }),
            me.clone(),
            "invalid_grant",
        ),
        (
            "another client",
            Box::new(|c| {
                vec![
                    ("grant_type", "authorization_code".into()),
                    ("code", c),
                    ("redirect_uri", REDIRECT.into()),
                    ("code_verifier", VERIFIER.into()),
                ]
            }),
            (other.clone(), other_secret.clone()),
            "invalid_grant",
        ),
        (
            "unknown code",
            Box::new(|_| {
                vec![
                    ("grant_type", "authorization_code".into()),
                    ("code", "nope".into()),
                    ("redirect_uri", REDIRECT.into()),
                    ("code_verifier", VERIFIER.into()),
                ]
            }),
            me.clone(),
            "invalid_grant",
        ),
        (
            "no verifier",
            Box::new(|c| {
                vec![
                    ("grant_type", "authorization_code".into()),
                    ("code", c),
                    ("redirect_uri", REDIRECT.into()),
                ]
            }),
            me.clone(),
            "invalid_request",
        ),
        (
            "no code",
            Box::new(|_| {
                vec![
                    ("grant_type", "authorization_code".into()),
                    ("redirect_uri", REDIRECT.into()),
                    ("code_verifier", VERIFIER.into()),
                ]
            }),
            me.clone(),
            "invalid_request",
        ),
        (
            "resource not granted",
            Box::new(|c| {
                vec![
                    ("grant_type", "authorization_code".into()),
                    ("code", c),
                    ("redirect_uri", REDIRECT.into()),
                    ("code_verifier", VERIFIER.into()),
                    ("resource", "https://evil.example".into()),
                ]
            }),
            me.clone(),
            "invalid_target",
        ),
    ];
    for (name, form, who, error) in cases {
        let code = code_for(&app, &id).await;
        let (status, got, _) = error_of(token(form(code.clone()), who).await).await;
        assert_eq!((status, got.as_str()), (400, error), "{name}");
        if error == "invalid_grant" && name != "unknown code" {
            // A refused redemption spends the code: no second guess.
            let (status, got, _) = error_of(redeem(&app, &id, &secret, &code).await).await;
            assert_eq!(
                (status, got.as_str()),
                (400, "invalid_grant"),
                "{name}: retry"
            );
        }
    }
}
both!(bad_code_redemptions_are_invalid_grant);

async fn userinfo_answers_rfc6750_errors(backend: Backend) {
    let (app, _idp) = app_with_idp(backend, &[]).await;
    let url = format!("{}/userinfo", app.base);
    let r = app.http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"tessera\"");
    let r = app
        .http
        .get(&url)
        .bearer_auth("not-a-jwt")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"invalid_token\"")
    );
    // A client-credentials token has no openid scope.
    let (id, secret) = app.machine_client("api:read").await;
    let cc: Value = app
        .token_basic(&id, &secret, &[("grant_type", "client_credentials")])
        .await
        .json()
        .await
        .unwrap();
    let r = app
        .http
        .get(&url)
        .bearer_auth(cc["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"insufficient_scope\"")
    );
    // An ID token is not an access token.
    let (wid, wsecret) = web_client(&app, json!({"skip_consent": true})).await;
    let code = code_for(&app, &wid).await;
    let tokens: Value = redeem(&app, &wid, &wsecret, &code)
        .await
        .json()
        .await
        .unwrap();
    let r = app
        .http
        .get(&url)
        .bearer_auth(tokens["id_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // The token in two places at once; POST with the form body works.
    let access = tokens["access_token"].as_str().unwrap();
    let r = app
        .http
        .post(&url)
        .bearer_auth(access)
        .form(&[("access_token", access)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = app
        .http
        .post(&url)
        .form(&[("access_token", access)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Never from the query string.
    let r = app
        .http
        .get(format!("{url}?access_token={access}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}
both!(userinfo_answers_rfc6750_errors);

async fn of_concurrent_uses_of_one_code_or_refresh_token_exactly_one_wins(backend: Backend) {
    let (app, _idp) = app_with_idp(backend, &[]).await;
    let (id, secret) = web_client(&app, json!({"skip_consent": true})).await;
    let code = code_for(&app, &id).await;
    let attempts = (0..16).map(|_| redeem(&app, &id, &secret, &code));
    let results = futures::future::join_all(attempts).await;
    let statuses: Vec<u16> = results.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 400),
        "{statuses:?}"
    );

    let code = code_for(&app, &id).await;
    let tokens: Value = redeem(&app, &id, &secret, &code)
        .await
        .json()
        .await
        .unwrap();
    let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.as_str()),
    ];
    let attempts = (0..16).map(|_| app.token_basic(&id, &secret, &form));
    let results = futures::future::join_all(attempts).await;
    let mut winners = Vec::new();
    for r in results {
        match r.status().as_u16() {
            200 => winners.push(
                r.json::<Value>().await.unwrap()["refresh_token"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            ),
            400 => {}
            other => panic!("status {other}"),
        }
    }
    assert_eq!(winners.len(), 1);
    // The losers were replays: the family is revoked, the winner's child too.
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", winners[0].as_str()),
    ];
    assert_eq!(app.token_basic(&id, &secret, &form).await.status(), 400);
}
both!(of_concurrent_uses_of_one_code_or_refresh_token_exactly_one_wins);
