//! RP-initiated logout (`GET|POST /logout`): with a valid `id_token_hint`
//! at once, without one after a confirmation page; a bad hint or an
//! unregistered `post_logout_redirect_uri` is a 400 page, never a redirect,
//! and leaves the session alone.

use serde_json::{Value, json};

use crate::both;
use crate::common::{Backend, TestApp};
use crate::login::{Landing, app_with_idp, authorize, code_for, redeem, web_client};

const BYE: &str = "https://app.example/bye";

/// Whether the browser still has a session (`prompt=none` gets a code).
async fn signed_in(app: &TestApp, client_id: &str) -> bool {
    matches!(
        authorize(app, client_id, &[("prompt", "none")]).await,
        Landing::Client(q) if q.contains_key("code")
    )
}

/// A signed-in browser, its client, and the ID token it got.
async fn setup(backend: Backend) -> (TestApp, crate::common::fake_idp::FakeIdp, String, String) {
    let (app, idp) = app_with_idp(backend, &[]).await;
    let (id, secret) = web_client(
        &app,
        json!({"skip_consent": true, "post_logout_redirect_uris": [BYE]}),
    )
    .await;
    let code = code_for(&app, &id).await;
    let tokens: Value = redeem(&app, &id, &secret, &code)
        .await
        .json()
        .await
        .unwrap();
    let id_token = tokens["id_token"].as_str().unwrap().to_owned();
    assert!(signed_in(&app, &id).await);
    (app, idp, id, id_token)
}

async fn get_logout(app: &TestApp, query: &[(&str, &str)]) -> reqwest::Response {
    app.http
        .get(format!("{}/logout", app.base))
        .query(query)
        .send()
        .await
        .unwrap()
}

async fn a_valid_id_token_hint_signs_out_at_once(backend: Backend) {
    let (app, _idp, id, id_token) = setup(backend).await;
    let r = get_logout(
        &app,
        &[
            ("id_token_hint", &id_token),
            ("post_logout_redirect_uri", BYE),
            ("state", "s1"),
        ],
    )
    .await;
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], format!("{BYE}?state=s1"));
    assert!(!signed_in(&app, &id).await, "the session has ended");
    // The client may name itself too; it must be the hint's audience.
    let r = get_logout(&app, &[("id_token_hint", &id_token), ("client_id", &id)]).await;
    assert_eq!(r.status(), 200, "signed out, nowhere to go back to");
    assert!(r.text().await.unwrap().contains("signed out"));
}
both!(a_valid_id_token_hint_signs_out_at_once);

async fn without_a_hint_the_user_confirms_first(backend: Backend) {
    let (app, _idp, id, _) = setup(backend).await;
    let r = get_logout(
        &app,
        &[
            ("client_id", id.as_str()),
            ("post_logout_redirect_uri", BYE),
            ("state", "s2"),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains(r#"<button type="submit" name="decision" value="logout">"#));
    assert!(
        signed_in(&app, &id).await,
        "nothing ends before the confirmation"
    );
    let csrf = html
        .split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    // A forged confirmation (wrong token) is refused and changes nothing.
    let confirm = |csrf: String| {
        app.http
            .post(format!("{}/logout", app.base))
            .form(&[
                ("csrf", csrf.as_str()),
                ("client_id", id.as_str()),
                ("post_logout_redirect_uri", BYE),
                ("state", "s2"),
                ("decision", "logout"),
            ])
            .send()
    };
    let r = confirm("forged".into()).await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(signed_in(&app, &id).await);
    let r = confirm(csrf).await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], format!("{BYE}?state=s2"));
    assert!(!signed_in(&app, &id).await);
}
both!(without_a_hint_the_user_confirms_first);

async fn bad_logout_requests_get_a_page_and_change_nothing(backend: Backend) {
    let (app, _idp, id, id_token) = setup(backend).await;
    let (other, _) = web_client(&app, json!({"post_logout_redirect_uris": [BYE]})).await;
    let cases: [&[(&str, &str)]; 5] = [
        // Not registered for this client (and no open redirects).
        &[
            ("id_token_hint", &id_token),
            ("post_logout_redirect_uri", "https://evil.example/"),
        ],
        // A redirect without any client to check it against.
        &[("post_logout_redirect_uri", BYE)],
        // Not an ID token of this server.
        &[
            ("id_token_hint", "not.a.token"),
            ("post_logout_redirect_uri", BYE),
        ],
        // The hint was issued to another client.
        &[("id_token_hint", &id_token), ("client_id", &other)],
        // An unknown client.
        &[
            ("client_id", "no-such-client"),
            ("post_logout_redirect_uri", BYE),
        ],
    ];
    for query in cases {
        let r = get_logout(&app, query).await;
        assert_eq!(r.status(), 400, "{query:?}");
        assert!(r.headers().get("location").is_none());
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
    }
    assert!(signed_in(&app, &id).await, "none of that ended the session");
}
both!(bad_logout_requests_get_a_page_and_change_nothing);
