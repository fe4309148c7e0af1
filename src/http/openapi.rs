//! The OpenAPI 3.1 document of both listeners, served at `GET /openapi.json`
//! on the admin listener.
//!
//! Each operation is described on its handler (`#[utoipa::path]`) and routed
//! with `utoipa_axum::routes!`, so a route cannot exist without its
//! description. This module holds the document's frame, the answers every
//! operation shares, and the shapes of what handlers parse by hand (forms
//! and queries are parsed strictly in `oauth::form`, not by extractors).

use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::server::Server;
use utoipa::{IntoParams, IntoResponses, Modify, OpenApi, ToSchema};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tessera",
        description = "OAuth 2.1 / OpenID Connect authorization server. The OAuth, OpenID \
            Connect and browser operations are on the public listener (`TESSERA_LISTEN`, \
            the issuer); `/admin/*`, `/metrics` and `/openapi.json` are on the admin \
            listener (`TESSERA_ADMIN_LISTEN`); `/healthz` is on both. Every path names \
            its listener in `servers`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "oauth", description = "OAuth 2.1 endpoints for client applications (RFC 6749, 7009, 7662, 8414)"),
        (name = "openid", description = "OpenID Connect endpoints (Core, Discovery, RP-Initiated Logout)"),
        (name = "browser", description = "Pages a person's browser goes through while signing in"),
        (name = "admin", description = "Client registration (RFC 7591 metadata), users and audit events"),
        (name = "operations", description = "Health, readiness, metrics and this document"),
    )
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut admin = Http::new(HttpAuthScheme::Bearer);
        admin.description = Some("`TESSERA_ADMIN_TOKEN`".to_owned());
        components.add_security_scheme("admin_token", SecurityScheme::Http(admin));
        let mut basic = Http::new(HttpAuthScheme::Basic);
        basic.description = Some(
            "`client_secret_basic`: the client id and secret, each form-urlencoded first \
             (RFC 6749 §2.3.1); `client_secret_post` sends them in the form instead"
                .to_owned(),
        );
        components.add_security_scheme("client_secret_basic", SecurityScheme::Http(basic));
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.bearer_format = Some("JWT".to_owned());
        bearer.description = Some("An access token Tessera issued (RFC 6750)".to_owned());
        components.add_security_scheme("access_token", SecurityScheme::Http(bearer));
    }
}

/// The whole document: the public listener's operations and the admin
/// listener's, each path naming its listener, as JSON.
pub fn document(
    public: utoipa::openapi::OpenApi,
    admin: utoipa::openapi::OpenApi,
    issuer: &str,
    admin_url: &str,
) -> Bytes {
    let mut doc = ApiDoc::openapi();
    let on = |mut api: utoipa::openapi::OpenApi, url: &str, what: &str| {
        for item in api.paths.paths.values_mut() {
            let mut server = Server::new(url);
            server.description = Some(what.to_owned());
            item.servers = Some(vec![server]);
        }
        api
    };
    doc.merge(on(public, issuer, "public listener"));
    doc.merge(on(admin, admin_url, "admin listener"));
    // `/healthz` answers the same on both listeners.
    if let Some(item) = doc.paths.paths.get_mut("/healthz") {
        let mut server = Server::new(admin_url);
        server.description = Some("admin listener".to_owned());
        item.servers.get_or_insert_with(Vec::new).push(server);
    }
    match serde_json::to_vec(&doc) {
        Ok(json) => Bytes::from(json),
        Err(e) => {
            tracing::error!(error = %e, "the OpenAPI document does not serialize");
            Bytes::new()
        }
    }
}

/// The serialized document, handed to its handler.
#[derive(Clone)]
pub struct Document(pub Bytes);

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document of both listeners",
        content_type = "application/json", body = Object)),
)]
pub async fn openapi_json(axum::Extension(doc): axum::Extension<Document>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        doc.0,
    )
        .into_response()
}

// ---- Bodies and answers ------------------------------------------------------

/// An OAuth error (RFC 6749 §5.2, RFC 7591 §3.2.2, RFC 6750 §3.1).
#[derive(Serialize, ToSchema)]
pub struct OAuthErrorBody {
    /// The error code, e.g. `invalid_request`, `invalid_client`, `invalid_grant`,
    /// `temporarily_unavailable`.
    pub error: String,
    pub error_description: Option<String>,
}

/// What `/userinfo` answers when the bearer token is refused: empty when no
/// token was sent (RFC 6750 §3.1), the error otherwise.
#[derive(Serialize, ToSchema)]
pub struct BearerErrorBody {
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// Client authentication failed (RFC 6749 §5.2 `invalid_client`).
#[derive(IntoResponses)]
#[response(
    status = 401,
    headers(("WWW-Authenticate" = String, description = "`Basic`, when Basic authentication was tried"))
)]
#[allow(dead_code, reason = "a description, never built")]
pub struct InvalidClient(OAuthErrorBody);

/// Answers any operation on the public listener may give besides its own.
#[derive(IntoResponses)]
pub enum PublicLimits {
    /// The body is over 64 KiB.
    #[response(status = 413)]
    BodyTooLarge(String),
    /// More than 100 headers, or more than 32 KiB of them.
    #[response(status = 431)]
    HeadersTooLarge(String),
    /// Over `TESSERA_RATE_LIMIT_PER_IP` (or, at the client-authenticating
    /// endpoints, `TESSERA_RATE_LIMIT_PER_CLIENT` or
    /// `TESSERA_RATE_LIMIT_FAILED_AUTH`): `temporarily_unavailable`.
    #[response(status = 429, headers(("Retry-After" = u64, description = "seconds to wait")))]
    TooManyRequests(OAuthErrorBody),
    /// The database does not answer: `temporarily_unavailable`.
    #[response(status = 503)]
    Unavailable(OAuthErrorBody),
}

/// Answers any admin operation may give besides its own.
#[derive(IntoResponses)]
pub enum AdminLimits {
    /// Missing or wrong admin token (`invalid_token`).
    #[response(status = 401, headers(("WWW-Authenticate" = String, description = "Bearer challenge")))]
    Unauthorized(OAuthErrorBody),
    /// Too many failed admin authentications from this address.
    #[response(status = 429, headers(("Retry-After" = u64, description = "seconds to wait")))]
    TooManyRequests(OAuthErrorBody),
    /// The body is over 1 MiB.
    #[response(status = 413)]
    BodyTooLarge(String),
    /// More than 100 headers, or more than 32 KiB of them.
    #[response(status = 431)]
    HeadersTooLarge(String),
    /// The database does not answer: `temporarily_unavailable`.
    #[response(status = 503)]
    Unavailable(OAuthErrorBody),
}

/// Answers of the browser endpoints: a redirect, or a page.
#[derive(IntoResponses)]
pub enum BrowserAnswers {
    /// A page: the consent form, a sign-out confirmation or an explanation.
    #[response(status = 200, content_type = "text/html")]
    Page(String),
    /// After a GET: on to the upstream, the consent page or back to the client
    /// (`code` or `error`, with `state` and `iss`).
    #[response(status = 302, headers(("Location" = String)))]
    Found,
    /// The same after a form POST (RFC 9700 §4.12).
    #[response(status = 303, headers(("Location" = String)))]
    SeeOther,
    /// An unknown client, a redirect URI that is not registered, or any request
    /// that cannot be sent back to the client: a page, never a redirect.
    #[response(status = 400, content_type = "text/html")]
    ErrorPage(String),
    /// Body or headers too large.
    #[response(status = 413)]
    BodyTooLarge(String),
    /// Over `TESSERA_RATE_LIMIT_PER_IP`.
    #[response(status = 429, headers(("Retry-After" = u64, description = "seconds to wait")))]
    TooManyRequests(OAuthErrorBody),
    /// More than 100 headers, or more than 32 KiB of them.
    #[response(status = 431)]
    HeadersTooLarge(String),
    /// Tessera could not finish (database unavailable): a page.
    #[response(status = 503, content_type = "text/html")]
    Unavailable(String),
}

/// `POST /token` (RFC 6749 §4.1.3, §4.4.2, §6). Which parameters apply depends
/// on `grant_type`; each may be sent once, except `resource`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TokenForm {
    #[schema(example = "authorization_code")]
    pub grant_type: String,
    /// `authorization_code`: the code from the redirect.
    pub code: Option<String>,
    /// `authorization_code`: the redirect URI of the authorization request.
    pub redirect_uri: Option<String>,
    /// `authorization_code`: the PKCE verifier (RFC 7636).
    pub code_verifier: Option<String>,
    /// `refresh_token`: the refresh token.
    pub refresh_token: Option<String>,
    /// Space-separated scopes (a subset of what was granted).
    pub scope: Option<String>,
    /// RFC 8707 resource indicators (absolute URIs), may be repeated.
    pub resource: Option<Vec<String>>,
    /// For public clients and `client_secret_post`.
    pub client_id: Option<String>,
    /// For `client_secret_post`.
    pub client_secret: Option<String>,
}

/// `POST /revoke` (RFC 7009 §2.1).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct RevokeForm {
    pub token: String,
    /// `access_token` or `refresh_token`: where to look first.
    pub token_type_hint: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

/// `POST /introspect` (RFC 7662 §2.1).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct IntrospectForm {
    pub token: String,
    pub token_type_hint: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

/// `POST /userinfo` with the token in the form (RFC 6750 §2.2).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UserinfoForm {
    pub access_token: Option<String>,
}

/// The claims of the signed-in user that the token's scopes allow (OIDC Core §5.3).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UserinfoClaims {
    pub sub: String,
    /// With `email`.
    pub email: Option<String>,
    /// With `email`.
    pub email_verified: Option<bool>,
    /// With `profile`.
    pub name: Option<String>,
    /// With `profile`.
    pub picture: Option<String>,
}

/// The authorization request (OIDC Core §3.1.2.1, RFC 6749 §4.1.1, RFC 7636),
/// as the query of a GET or the form of a POST.
#[derive(ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct AuthorizeParams {
    /// `code`, the only response type.
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    /// Exactly as registered (loopback redirect URIs may use any port).
    pub redirect_uri: Option<String>,
    /// Space-separated, a subset of the client's registered scopes.
    pub scope: Option<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    /// BASE64URL(SHA-256(code_verifier)), 43 characters.
    pub code_challenge: Option<String>,
    /// `S256`.
    pub code_challenge_method: Option<String>,
    /// `none`, `login`, `consent` or `select_account`.
    pub prompt: Option<String>,
    /// Seconds since the last sign-in after which the person signs in again.
    pub max_age: Option<String>,
    /// `query`, the only response mode.
    pub response_mode: Option<String>,
    /// RFC 8707 resource indicator; may be repeated.
    pub resource: Option<String>,
}

/// The upstream's answer (`/callback/google`).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// The consent page's form.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ConsentForm {
    /// The consent page's ticket (bound to the browser session: it is also
    /// the CSRF token).
    pub ticket: String,
    /// `allow` or `deny`.
    pub decision: String,
}

/// RP-Initiated Logout 1.0 §2, as the query of a GET or the form of a POST.
#[derive(ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct LogoutParams {
    /// An ID token Tessera issued to the client (expired ones are accepted).
    pub id_token_hint: Option<String>,
    pub client_id: Option<String>,
    /// One of the client's registered `post_logout_redirect_uris`.
    pub post_logout_redirect_uri: Option<String>,
    pub state: Option<String>,
    pub logout_hint: Option<String>,
    pub ui_locales: Option<String>,
    /// The confirmation page's form: `logout`.
    pub decision: Option<String>,
    /// The confirmation page's CSRF token.
    pub csrf: Option<String>,
}

/// A JSON Web Key Set (RFC 7517 §5) of the public signing keys.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}

/// A public key (RFC 7517 §4): RSA (`n`, `e`), EC P-256 (`crv`, `x`, `y`)
/// or Ed25519 (`crv`, `x`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Jwk {
    /// `RSA`, `EC` or `OKP`.
    pub kty: String,
    /// The RFC 7638 thumbprint.
    pub kid: String,
    /// `sig`.
    #[schema(rename = "use")]
    pub use_: String,
    /// `RS256`, `ES256` or `EdDSA`.
    pub alg: String,
    pub n: Option<String>,
    pub e: Option<String>,
    pub crv: Option<String>,
    pub x: Option<String>,
    pub y: Option<String>,
}

/// Authorization server metadata (RFC 8414 §2, OpenID Connect Discovery §3).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ServerMetadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    pub userinfo_endpoint: String,
    pub end_session_endpoint: String,
    pub revocation_endpoint: String,
    pub introspection_endpoint: String,
    pub response_types_supported: Vec<String>,
    pub grant_types_supported: Vec<String>,
    pub subject_types_supported: Vec<String>,
    pub id_token_signing_alg_values_supported: Vec<String>,
    pub scopes_supported: Vec<String>,
    pub code_challenge_methods_supported: Vec<String>,
    pub token_endpoint_auth_methods_supported: Vec<String>,
}

/// A page of clients.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ClientList {
    pub clients: Vec<crate::oauth::clients::ClientView>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// A page of users.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UserList {
    pub users: Vec<crate::store::UserSummary>,
    pub next_cursor: Option<String>,
}

/// A page of audit events, oldest first.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct EventList {
    pub events: Vec<crate::store::EventRecord>,
    pub next_cursor: Option<String>,
}
