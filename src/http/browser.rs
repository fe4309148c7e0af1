//! The pages a person's browser sees: `/authorize`, `/callback/google`,
//! `POST /consent`, `/logout`. Cookies, redirects, templates; the decisions are in
//! `oauth::login`.

use super::openapi::{AuthorizeParams, BrowserAnswers, CallbackParams, ConsentForm, LogoutParams};
use askama::Template;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::app::AppState;
use crate::oauth::login::{self, Next, Outcome};

const SESSION_COOKIE: &str = "tessera_session";
const BROWSER_COOKIE: &str = "tessera_login";

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentTemplate<'a> {
    client_name: &'a str,
    items: Vec<String>,
    ticket: &'a str,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorTemplate<'a> {
    message: &'a str,
}

#[derive(Template)]
#[template(path = "logout.html")]
struct LogoutTemplate<'a> {
    heading: &'a str,
    fields: &'a [(&'static str, String)],
}

#[derive(Template)]
#[template(path = "signed_out.html")]
struct SignedOutTemplate;

/// Scopes in plain words.
fn describe(scope: &str) -> String {
    match scope {
        "openid" => "Know who you are".into(),
        "profile" => "See your name and profile picture".into(),
        "email" => "See your email address".into(),
        "offline_access" => "Stay signed in when you are not using it".into(),
        other => format!("Use “{other}” on your behalf"),
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    max_age: i64,
    secure: bool,
) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}"
    ))
    .ok()
}

/// Pages are never framed, cached or sniffed. No `form-action` in the CSP:
/// browsers apply it to the redirect that follows the consent form, and
/// that redirect goes to the client's own origin.
fn page(status: StatusCode, html: String) -> Response {
    let mut response = (status, Html(html)).into_response();
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

fn error_page(message: &str) -> Response {
    let html = ErrorTemplate { message }
        .render()
        .unwrap_or_else(|_| message.to_owned());
    page(StatusCode::BAD_REQUEST, html)
}

/// RFC 9700 §4.12: 302 after a GET, 303 after a form POST so the body is
/// not re-sent.
fn redirect(url: &str, after_post: bool) -> Response {
    let status = if after_post {
        StatusCode::SEE_OTHER
    } else {
        StatusCode::FOUND
    };
    let Ok(location) = HeaderValue::from_str(url) else {
        return error_page("The address to send you back to is not valid.");
    };
    let mut r = status.into_response();
    r.headers_mut().insert(header::LOCATION, location);
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The parameters of a browser request: the query after a GET, the form
/// body after a POST (anything else than a form is refused: the message
/// for the error page).
fn browser_params(
    post: bool,
    headers: &HeaderMap,
    query: Option<String>,
    body: Bytes,
    what: &str,
) -> Result<Vec<u8>, String> {
    if !post {
        return Ok(query.unwrap_or_default().into_bytes());
    }
    if !crate::oauth::form::is_form(headers.get(header::CONTENT_TYPE).map(HeaderValue::as_bytes)) {
        return Err(format!("The {what} request must be a form."));
    }
    Ok(body.to_vec())
}

fn respond(
    app: &AppState,
    outcome: Result<Outcome, crate::error::OAuthError>,
    after_post: bool,
) -> Response {
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!(error = %e, "browser flow failed");
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorTemplate {
                    message: "Something went wrong on our side. Please try again in a moment.",
                }
                .render()
                .unwrap_or_default(),
            );
        }
    };
    let mut response = match &outcome.next {
        Next::Redirect(url) => redirect(url, after_post),
        Next::Consent(c) => {
            let html = ConsentTemplate {
                client_name: &c.client_name,
                items: c.scopes.iter().map(|s| describe(s)).collect(),
                ticket: &c.ticket,
            }
            .render()
            .unwrap_or_default();
            page(StatusCode::OK, html)
        }
        Next::Page(message) => error_page(message),
    };
    let secure = app.config.issuer_is_https();
    if let Some((raw, ttl)) = &outcome.session {
        if let Some(v) = set_cookie(SESSION_COOKIE, raw, "/", *ttl, secure) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    if let Some(raw) = &outcome.browser {
        if let Some(v) = set_cookie(BROWSER_COOKIE, raw, "/callback", 600, secure) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}

/// OIDC Core §3.1.2.1: `/authorize` by GET (query) or POST (form).
#[utoipa::path(
    method(get, post),
    path = "/authorize",
    tag = "oauth",
    summary = "Authorization endpoint: the start of a sign-in (code flow with PKCE S256)",
    params(AuthorizeParams),
    request_body(content = Option<AuthorizeParams>, content_type = "application/x-www-form-urlencoded",
        description = "POST only: the parameters as a form"),
    responses(BrowserAnswers),
)]
pub async fn authorize(
    State(app): State<AppState>,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let post = method == Method::POST;
    let raw = match browser_params(post, &headers, query, body, "sign-in") {
        Ok(raw) => raw,
        Err(why) => return error_page(&why),
    };
    let outcome = login::authorize(
        &app,
        &raw,
        cookie(&headers, SESSION_COOKIE).as_deref(),
        cookie(&headers, BROWSER_COOKIE).as_deref(),
    )
    .await;
    respond(&app, outcome, post)
}

/// The upstream's redirect URI: `{issuer}/callback/google`.
#[utoipa::path(
    get,
    path = "/callback/google",
    tag = "browser",
    summary = "Where the upstream identity provider sends the browser back",
    params(CallbackParams),
    responses(BrowserAnswers)
)]
pub async fn callback(
    State(app): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let raw = query.unwrap_or_default();
    let outcome = login::callback(
        &app,
        raw.as_bytes(),
        cookie(&headers, BROWSER_COOKIE).as_deref(),
    )
    .await;
    respond(&app, outcome, false)
}

/// The consent form's target.
#[utoipa::path(
    post,
    path = "/consent",
    tag = "browser",
    summary = "The consent page's answer",
    request_body(content = ConsentForm, content_type = "application/x-www-form-urlencoded"),
    responses(BrowserAnswers),
)]
pub async fn consent(State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if !crate::oauth::form::is_form(headers.get(header::CONTENT_TYPE).map(HeaderValue::as_bytes)) {
        return error_page("The consent answer must be a form.");
    }
    let outcome = login::consent(&app, &body, cookie(&headers, SESSION_COOKIE).as_deref()).await;
    respond(&app, outcome, true)
}

/// RP-initiated logout: `GET|POST /logout` (`oauth::logout`).
#[utoipa::path(
    method(get, post),
    path = "/logout",
    tag = "openid",
    summary = "RP-Initiated Logout 1.0",
    params(LogoutParams),
    request_body(content = Option<LogoutParams>, content_type = "application/x-www-form-urlencoded",
        description = "POST only: the parameters as a form"),
    responses(BrowserAnswers),
)]
pub async fn logout(
    State(app): State<AppState>,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    use crate::oauth::logout::{self, LogoutNext};
    let post = method == Method::POST;
    let raw = match browser_params(post, &headers, query, body, "sign-out") {
        Ok(raw) => raw,
        Err(why) => return error_page(&why),
    };
    let session = cookie(&headers, SESSION_COOKIE);
    let outcome = match logout::logout(&app, &raw, session.as_deref(), post).await {
        Ok(o) => o,
        Err(e) => return respond(&app, Err(e), post),
    };
    let mut response = match &outcome.next {
        LogoutNext::Refused(why) => error_page(why),
        LogoutNext::Confirm { heading, fields } => page(
            StatusCode::OK,
            LogoutTemplate { heading, fields }
                .render()
                .unwrap_or_default(),
        ),
        LogoutNext::SignedOut => page(
            StatusCode::OK,
            SignedOutTemplate.render().unwrap_or_default(),
        ),
        LogoutNext::Redirect(url) => redirect(url, post),
    };
    if outcome.ended {
        let secure = app.config.issuer_is_https();
        if let Some(v) = set_cookie(SESSION_COOKIE, "", "/", 0, secure) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}
