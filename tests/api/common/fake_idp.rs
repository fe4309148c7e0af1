//! A small OpenID provider standing in for Google: discovery, JWKS, an
//! authorization endpoint that signs the configured user in at once, and a
//! token endpoint that checks the code, PKCE and client credentials and
//! returns a real signed ID token. Tests choose the user and can make it
//! misbehave (bad signature, wrong audience, …).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine;
use serde_json::{Value, json};
use tessera::token::Alg;
use tessera::token::keys::SigningKey;

pub const CLIENT_ID: &str = "tessera-at-fake-idp";
pub const CLIENT_SECRET: &str = "fake-idp-secret";

#[derive(Clone, Debug)]
pub struct User {
    pub sub: String,
    pub email: String,
    pub email_verified: bool,
    pub name: String,
    pub hd: Option<String>,
}

impl User {
    pub fn new(sub: &str) -> Self {
        Self {
            sub: sub.into(),
            email: format!("{sub}@example.com"),
            email_verified: true,
            name: format!("User {sub}"),
            hd: None,
        }
    }
}

/// Ways the provider can misbehave in its next ID tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tamper {
    None,
    BadSignature,
    WrongAudience,
    WrongNonce,
    Expired,
    WrongIssuer,
    /// The user cancels at the provider: `error=access_denied`.
    Cancel,
    /// The token endpoint fails.
    TokenEndpointDown,
    /// The token endpoint answers 200 with a body of many megabytes.
    HugeTokenResponse,
    /// The token endpoint answers 200 with something that is not JSON.
    GarbageTokenResponse,
    /// The token endpoint answers after longer than Tessera waits.
    SlowTokenEndpoint,
    /// The token endpoint answers 307 to another URL that would answer
    /// properly: Tessera must not follow it.
    RedirectingTokenEndpoint,
}

struct Pending {
    nonce: String,
    challenge: String,
    redirect_uri: String,
    user: User,
}

struct Inner {
    issuer: String,
    key: SigningKey,
    other_key: SigningKey,
    user: User,
    tamper: Tamper,
    codes: HashMap<String, Pending>,
    /// Every authorization request received (its query), for assertions.
    requests: Vec<HashMap<String, String>>,
    /// With `rotate_users(n)`: sign in `user0` … `user{n-1}` in turn (and
    /// keep no request log), for load runs.
    pool: usize,
    next: usize,
}

#[derive(Clone)]
pub struct FakeIdp {
    inner: Arc<Mutex<Inner>>,
    pub issuer: String,
}

impl FakeIdp {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let (key, _) = SigningKey::generate(Alg::RS256).unwrap();
        // Same kid, other key material: a forged signature.
        let (mut other_key, _) = SigningKey::generate(Alg::RS256).unwrap();
        other_key.kid = key.kid.clone();
        let inner = Arc::new(Mutex::new(Inner {
            issuer: issuer.clone(),
            key,
            other_key,
            user: User::new("alice"),
            tamper: Tamper::None,
            codes: HashMap::new(),
            requests: Vec::new(),
            pool: 0,
            next: 0,
        }));
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/token/elsewhere", post(issue))
            .with_state(inner.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { inner, issuer }
    }

    pub fn sign_in_as(&self, user: User) {
        self.inner.lock().unwrap().user = user;
    }

    /// Sign in `n` different users in turn instead of one (load runs).
    #[allow(dead_code, reason = "used by bench/soak.rs")]
    pub fn rotate_users(&self, n: usize) {
        let mut inner = self.inner.lock().unwrap();
        inner.pool = n;
        inner.requests = Vec::new();
    }

    pub fn tamper(&self, tamper: Tamper) {
        self.inner.lock().unwrap().tamper = tamper;
    }

    pub fn requests(&self) -> Vec<HashMap<String, String>> {
        self.inner.lock().unwrap().requests.clone()
    }

    /// The `TESSERA_GOOGLE_*` variables pointing Tessera here.
    pub fn vars(&self) -> Vec<(String, String)> {
        vec![
            ("TESSERA_GOOGLE_ISSUER".into(), self.issuer.clone()),
            ("TESSERA_GOOGLE_CLIENT_ID".into(), CLIENT_ID.into()),
            ("TESSERA_GOOGLE_CLIENT_SECRET".into(), CLIENT_SECRET.into()),
        ]
    }
}

type Shared = State<Arc<Mutex<Inner>>>;

async fn discovery(State(inner): Shared) -> Json<Value> {
    let issuer = inner.lock().unwrap().issuer.clone();
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
    }))
}

async fn jwks(State(inner): Shared) -> Json<Value> {
    let key = inner.lock().unwrap().key.public_jwk().unwrap();
    Json(json!({ "keys": [key] }))
}

async fn authorize(State(inner): Shared, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut inner = inner.lock().unwrap();
    let user = if inner.pool > 0 {
        inner.next = (inner.next + 1) % inner.pool;
        User::new(&format!("user{}", inner.next))
    } else {
        inner.requests.push(q.clone());
        inner.user.clone()
    };
    let redirect_uri = q.get("redirect_uri").cloned().unwrap_or_default();
    let state = q.get("state").cloned().unwrap_or_default();
    if inner.tamper == Tamper::Cancel {
        return Redirect::to(&format!("{redirect_uri}?error=access_denied&state={state}"))
            .into_response();
    }
    assert_eq!(q.get("client_id").map(String::as_str), Some(CLIENT_ID));
    assert_eq!(
        q.get("code_challenge_method").map(String::as_str),
        Some("S256")
    );
    let code = tessera::secret::random_token(16);
    let pending = Pending {
        nonce: q.get("nonce").cloned().unwrap_or_default(),
        challenge: q.get("code_challenge").cloned().unwrap_or_default(),
        redirect_uri: redirect_uri.clone(),
        user,
    };
    inner.codes.insert(code.clone(), pending);
    let url = format!(
        "{redirect_uri}?code={code}&state={}",
        url::form_urlencoded::byte_serialize(state.as_bytes()).collect::<String>()
    );
    Redirect::to(&url).into_response()
}

fn oauth_error(status: StatusCode, error: &str) -> Response {
    (status, Json(json!({ "error": error }))).into_response()
}

async fn token(
    State(inner): Shared,
    headers: axum::http::HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let tamper = inner.lock().unwrap().tamper;
    match tamper {
        Tamper::TokenEndpointDown => return (StatusCode::BAD_GATEWAY, "down").into_response(),
        Tamper::HugeTokenResponse => {
            let huge = format!("{{\"access_token\":\"{}\"}}", "A".repeat(8 << 20));
            return ([(header::CONTENT_TYPE, "application/json")], huge).into_response();
        }
        Tamper::GarbageTokenResponse => {
            return ([(header::CONTENT_TYPE, "application/json")], "<html>oops").into_response();
        }
        Tamper::SlowTokenEndpoint => {
            tokio::time::sleep(std::time::Duration::from_secs(4)).await;
        }
        Tamper::RedirectingTokenEndpoint => {
            let issuer = inner.lock().unwrap().issuer.clone();
            return Redirect::temporary(&format!("{issuer}/token/elsewhere")).into_response();
        }
        _ => {}
    }
    issue(State(inner), headers, Form(form)).await
}

/// The token endpoint proper: checks the client, the code and PKCE, and
/// signs the ID token.
async fn issue(
    State(inner): Shared,
    headers: axum::http::HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let mut inner = inner.lock().unwrap();
    // Client authentication: Basic (the oauth2 crate's default) or body.
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let expected = format!("{CLIENT_ID}:{CLIENT_SECRET}");
    let body_auth = form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
        && form.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET);
    if basic.as_deref() != Some(expected.as_str()) && !body_auth {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    let Some(pending) = form.get("code").and_then(|c| inner.codes.remove(c)) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    };
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    if tessera::secret::b64url(digest.as_ref()) != pending.challenge
        || form.get("redirect_uri") != Some(&pending.redirect_uri)
    {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let tamper = inner.tamper;
    let user = &pending.user;
    let mut claims = json!({
        "iss": if tamper == Tamper::WrongIssuer { "https://evil.example" } else { inner.issuer.as_str() },
        "aud": if tamper == Tamper::WrongAudience { "someone-else" } else { CLIENT_ID },
        "sub": user.sub,
        "iat": now,
        "exp": if tamper == Tamper::Expired { now - 3600 } else { now + 3600 },
        "nonce": if tamper == Tamper::WrongNonce { "not-the-nonce".to_owned() } else { pending.nonce.clone() },
        "email": user.email,
        "email_verified": user.email_verified,
        "name": user.name,
        "picture": format!("https://pictures.example/{}.png", user.sub),
    });
    if let Some(hd) = &user.hd {
        claims["hd"] = json!(hd);
    }
    let key = if tamper == Tamper::BadSignature {
        &inner.other_key
    } else {
        &inner.key
    };
    let id_token = tessera::token::jwt::sign(key, "JWT", &claims).unwrap();
    Json(json!({
        "access_token": tessera::secret::random_token(16),
        "token_type": "Bearer",
        "expires_in": 3600,
        "id_token": id_token,
        "scope": "openid email profile",
    }))
    .into_response()
}
