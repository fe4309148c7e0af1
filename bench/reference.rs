//! The bench's reference servers (not part of Tessera): the ceilings
//! Tessera is measured against in one run on the same machine.
//!
//! `bench-reference sign KEY.pem ALG ADDR ISSUER`: a bare axum handler that
//! signs the same access-token claims with the same key, already parsed in
//! memory — no database, no client authentication. The signing ceiling.
//!
//! `bench-reference jwks FILE ADDR`: a bare axum handler returning the same
//! JWKS bytes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark tool: fail loudly"
)]

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tessera::token::Alg;
use tessera::token::jwt::{self, AccessClaims, Audience};
use tessera::token::keys::SigningKey;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["sign", key, alg, addr, issuer] => sign(key, alg, addr, issuer).await,
        ["jwks", file, addr] => jwks(file, addr).await,
        _ => {
            eprintln!("usage: bench-reference sign KEY.pem ALG ADDR ISSUER | jwks FILE ADDR");
            std::process::exit(2);
        }
    }
}

async fn sign(pem_path: &str, alg: &str, addr: &str, issuer: &str) {
    let alg: Alg = alg.parse().expect("alg");
    let pem = pem::parse(std::fs::read(pem_path).unwrap()).unwrap();
    let key = Arc::new(SigningKey::from_pkcs8(alg, pem.contents()).unwrap());
    let issuer = Arc::new(issuer.to_owned());
    let app = Router::new().route(
        "/token",
        post(move || {
            let key = key.clone();
            let issuer = issuer.clone();
            async move {
                let now = time::OffsetDateTime::now_utc().unix_timestamp();
                let aud = Audience::One(issuer.to_string());
                let claims = AccessClaims {
                    iss: &issuer,
                    sub: "0123456789abcdefghijkl",
                    aud: &aud,
                    exp: now + 900,
                    iat: now,
                    jti: tessera::secret::random_token(16),
                    client_id: "0123456789abcdefghijkl",
                    scope: "api:read",
                    auth_time: None,
                };
                let token = jwt::sign(&key, jwt::ACCESS_TOKEN_TYP, &claims).unwrap();
                let body = serde_json::json!({
                    "access_token": token, "token_type": "Bearer", "expires_in": 900, "scope": "api:read"
                });
                ([(header::CACHE_CONTROL, "no-store"), (header::PRAGMA, "no-cache")], axum::Json(body)).into_response()
            }
        }),
    );
    serve(addr, app).await;
}

async fn jwks(file: &str, addr: &str) {
    let body = bytes::Bytes::from(std::fs::read(file).unwrap());
    let app = Router::new().route(
        "/jwks",
        get(move || {
            let body = body.clone();
            async move { ([(header::CONTENT_TYPE, "application/json")], body) }
        }),
    );
    serve(addr, app).await;
}

async fn serve(addr: &str, app: Router) {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    axum::serve(listener, app).await.unwrap();
}
