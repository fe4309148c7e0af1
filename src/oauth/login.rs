//! The browser flow (PRODUCT.md "The flows"): `/authorize` → upstream
//! login → `/callback/google` → consent → code. Framework-free: each step
//! takes the request's values and cookies and says what to answer.

use super::authorize::{self, AuthorizeRequest, ErrorTarget, PageError};
use super::form::Params;
use crate::app::App;
use crate::audit::{Event, EventType};
use crate::error::{ErrorCode, OAuthError};
use crate::secret::{random_token, sha256_b64};
use crate::store::{ClientRecord, CodeRecord, PendingRequest, Session, UpstreamProfile};
use crate::upstream::UpstreamError;

/// Codes live 60 seconds (PRODUCT.md).
pub const CODE_TTL: i64 = 60;
/// An upstream login or a consent page must be finished within 10 minutes.
const PENDING_TTL: i64 = 600;

/// What to answer.
#[derive(Debug)]
pub enum Next {
    /// Send the browser here (the client, or the upstream).
    Redirect(String),
    /// Show the consent page.
    Consent(ConsentPage),
    /// Show an error page with status 400: nothing can be redirected.
    Page(String),
}

#[derive(Debug)]
pub struct ConsentPage {
    pub client_name: String,
    pub scopes: Vec<String>,
    /// The one-time ticket the form posts back (also its CSRF token).
    pub ticket: String,
}

/// The answer and the cookies to set.
#[derive(Debug)]
pub struct Outcome {
    pub next: Next,
    /// A new session id (raw) for the session cookie.
    pub session: Option<(String, i64)>,
    /// A browser-binding id (raw) for the login cookie.
    pub browser: Option<String>,
}

impl Outcome {
    fn just(next: Next) -> Self {
        Self {
            next,
            session: None,
            browser: None,
        }
    }
}

impl From<PageError> for Outcome {
    fn from(e: PageError) -> Self {
        Self::just(Next::Page(e.message()))
    }
}

fn back(app: &App, target: &ErrorTarget, e: &OAuthError) -> Outcome {
    Outcome::just(Next::Redirect(authorize::redirect_url(
        target,
        &app.config.issuer,
        Err(e),
    )))
}

async fn client(
    app: &App,
    client_id: Option<&str>,
) -> Result<Option<std::sync::Arc<ClientRecord>>, OAuthError> {
    match client_id {
        Some(id) => Ok(app.clients.get(app.store.as_ref(), id).await?),
        None => Ok(None),
    }
}

/// `GET|POST /authorize` (RFC 6749 §4.1.1, OIDC Core §3.1.2).
pub async fn authorize(
    app: &App,
    raw: &[u8],
    session_cookie: Option<&str>,
    browser_cookie: Option<&str>,
) -> Result<Outcome, OAuthError> {
    let now = app.now();
    let params = match Params::parse(raw) {
        Ok(p) => p,
        Err(e) => {
            return Ok(PageError::Malformed(format!(
                "The sign-in request is malformed: {}.",
                e.description
            ))
            .into());
        }
    };
    let client = client(app, params.get("client_id")).await?;
    let target = match authorize::trusted_redirect(client.as_deref(), &params) {
        Ok(t) => t,
        Err(e) => return Ok(e.into()),
    };
    let Some(client) = client else {
        return Ok(PageError::UnknownClient.into());
    };
    let request = match authorize::validate(&app.config, &client, &target, &params) {
        Ok(r) => r,
        Err(e) => return Ok(back(app, &target, &e)),
    };
    let session = match session_cookie {
        Some(raw) => {
            app.store
                .get_session(&sha256_b64(raw.as_bytes()), now)
                .await?
        }
        None => None,
    };
    let too_old = |s: &Session| {
        request
            .max_age
            .is_some_and(|max| now.saturating_sub(s.auth_time) > max)
    };
    match session {
        Some(s) if !request.prompt.login && !too_old(&s) => {
            continue_signed_in(app, &client, request, &s, now).await
        }
        existing => {
            if request.prompt.none {
                let e = OAuthError::new(ErrorCode::LoginRequired, "the user is not signed in");
                return Ok(back(app, &target, &e));
            }
            let reauthenticate = existing.is_some() || request.prompt.select_account;
            start_upstream(app, request, &target, reauthenticate, browser_cookie, now).await
        }
    }
}

async fn start_upstream(
    app: &App,
    request: AuthorizeRequest,
    target: &ErrorTarget,
    reauthenticate: bool,
    browser_cookie: Option<&str>,
    now: i64,
) -> Result<Outcome, OAuthError> {
    let Some(upstream) = &app.upstream else {
        let e = OAuthError::new(
            ErrorCode::TemporarilyUnavailable,
            "sign-in is not configured on this server",
        );
        return Ok(back(app, target, &e));
    };
    let start = match upstream.start_login(reauthenticate) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot start the upstream login");
            let e = OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                "the identity provider is not reachable; retry shortly",
            );
            return Ok(back(app, target, &e));
        }
    };
    let browser = browser_cookie.map_or_else(|| random_token(32), str::to_owned);
    app.store
        .insert_pending(&PendingRequest {
            state_hash: sha256_b64(start.state.as_bytes()),
            browser_hash: sha256_b64(browser.as_bytes()),
            nonce: start.nonce,
            pkce_verifier: start.pkce_verifier.expose_secret().to_owned(),
            request: serde_json::to_string(&request).map_err(OAuthError::internal)?,
            created_at: now,
            expires_at: now + PENDING_TTL,
        })
        .await?;
    Ok(Outcome {
        next: Next::Redirect(start.url.to_string()),
        session: None,
        browser: Some(browser),
    })
}

/// Signed in: consent (unless remembered or skipped), then the code.
async fn continue_signed_in(
    app: &App,
    client: &ClientRecord,
    request: AuthorizeRequest,
    session: &Session,
    now: i64,
) -> Result<Outcome, OAuthError> {
    let target = ErrorTarget {
        redirect_uri: request.redirect_uri.clone(),
        state: request.state.clone(),
    };
    let granted = app
        .store
        .get_consent(&session.sub, &client.client_id)
        .await?;
    let covered =
        granted.is_some_and(|g| request.scope.iter().all(|s| g.split(' ').any(|x| x == s)));
    if client.metadata.skip_consent || (covered && !request.prompt.consent) {
        return issue_code(app, &request, session, now).await;
    }
    if request.prompt.none {
        let e = OAuthError::new(
            ErrorCode::ConsentRequired,
            "the user has not granted these scopes",
        );
        return Ok(back(app, &target, &e));
    }
    let ticket = random_token(32);
    app.store
        .insert_pending(&PendingRequest {
            state_hash: sha256_b64(ticket.as_bytes()),
            browser_hash: session.id_hash.clone(),
            nonce: String::new(),
            pkce_verifier: String::new(),
            request: serde_json::to_string(&request).map_err(OAuthError::internal)?,
            created_at: now,
            expires_at: now + PENDING_TTL,
        })
        .await?;
    Ok(Outcome::just(Next::Consent(ConsentPage {
        client_name: client
            .metadata
            .client_name
            .clone()
            .unwrap_or_else(|| client.client_id.clone()),
        scopes: request.scope.clone(),
        ticket,
    })))
}

/// RFC 6749 §4.1.2: a code bound to everything the token request must match.
async fn issue_code(
    app: &App,
    request: &AuthorizeRequest,
    session: &Session,
    now: i64,
) -> Result<Outcome, OAuthError> {
    let code = random_token(32);
    app.store
        .insert_code(&CodeRecord {
            code_hash: sha256_b64(code.as_bytes()),
            client_id: request.client_id.clone(),
            sub: session.sub.clone(),
            sid: Some(session.sid.clone()),
            redirect_uri: request.redirect_uri.clone(),
            scope: request.scope.join(" "),
            audience: serde_json::to_string(&request.audience).map_err(OAuthError::internal)?,
            code_challenge: request.code_challenge.clone(),
            nonce: request.nonce.clone(),
            auth_time: session.auth_time,
            created_at: now,
            expires_at: now + CODE_TTL,
        })
        .await?;
    let target = ErrorTarget {
        redirect_uri: request.redirect_uri.clone(),
        state: request.state.clone(),
    };
    Ok(Outcome::just(Next::Redirect(authorize::redirect_url(
        &target,
        &app.config.issuer,
        Ok(&code),
    ))))
}

/// Reads back a pending request and its client.
async fn resume(
    app: &App,
    pending: &PendingRequest,
) -> Result<Option<(AuthorizeRequest, std::sync::Arc<ClientRecord>)>, OAuthError> {
    let request: AuthorizeRequest =
        serde_json::from_str(&pending.request).map_err(OAuthError::internal)?;
    Ok(client(app, Some(&request.client_id))
        .await?
        .map(|c| (request, c)))
}

/// `GET /callback/google`: the upstream sends the browser back here.
pub async fn callback(
    app: &App,
    raw_query: &[u8],
    browser_cookie: Option<&str>,
) -> Result<Outcome, OAuthError> {
    let now = app.now();
    let params = match Params::parse(raw_query) {
        Ok(p) => p,
        Err(_) => {
            return Ok(PageError::Malformed("The sign-in answer is malformed.".into()).into());
        }
    };
    let expired = || {
        Outcome::from(PageError::Malformed(
            "This sign-in has expired or was already used. Start again from the application."
                .into(),
        ))
    };
    let Some(state) = params.get("state") else {
        return Ok(expired());
    };
    let Some(pending) = app
        .store
        .take_pending(&sha256_b64(state.as_bytes()), now)
        .await?
    else {
        return Ok(expired());
    };
    // The state is bound to the browser that started the login.
    let same_browser = browser_cookie.is_some_and(|b| {
        crate::secret::ct_eq(
            sha256_b64(b.as_bytes()).as_bytes(),
            pending.browser_hash.as_bytes(),
        )
    });
    if !same_browser || pending.pkce_verifier.is_empty() {
        login_failed(app, None, None, "state_from_another_browser", now);
        return Ok(PageError::Malformed(
            "This sign-in was started in another browser. Start again from the application.".into(),
        )
        .into());
    }
    let Some((request, client)) = resume(app, &pending).await? else {
        return Ok(PageError::UnknownClient.into());
    };
    let target = ErrorTarget {
        redirect_uri: request.redirect_uri.clone(),
        state: request.state.clone(),
    };
    if let Some(error) = params.get("error") {
        login_failed(
            app,
            Some(&client.client_id),
            None,
            &format!("upstream_error:{}", truncate(error, 64)),
            now,
        );
        let e = OAuthError::new(
            ErrorCode::AccessDenied,
            "the sign-in was cancelled or refused at the identity provider",
        );
        return Ok(back(app, &target, &e));
    }
    let Some(upstream) = &app.upstream else {
        let e = OAuthError::new(
            ErrorCode::TemporarilyUnavailable,
            "sign-in is not configured on this server",
        );
        return Ok(back(app, &target, &e));
    };
    let identity = match upstream
        .finish_login(
            params.get("code").unwrap_or_default(),
            &pending.pkce_verifier,
            &pending.nonce,
            now,
        )
        .await
    {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(error = %e, "upstream sign-in failed");
            let reason = match &e {
                UpstreamError::DomainNotAllowed(_) => "domain_not_allowed",
                UpstreamError::Unavailable(_) => "upstream_unavailable",
                UpstreamError::IdToken(_) => "invalid_id_token",
            };
            login_failed(app, Some(&client.client_id), None, reason, now);
            let oauth = match &e {
                UpstreamError::DomainNotAllowed(why) => {
                    OAuthError::new(ErrorCode::AccessDenied, why.clone())
                }
                UpstreamError::Unavailable(_) => OAuthError::new(
                    ErrorCode::TemporarilyUnavailable,
                    "the identity provider is not reachable; retry shortly",
                ),
                UpstreamError::IdToken(_) => OAuthError::new(
                    ErrorCode::ServerError,
                    "the identity provider's answer could not be verified",
                ),
            };
            return Ok(back(app, &target, &oauth));
        }
    };
    let upstream_issuer = identity.issuer.clone();
    let user = app
        .store
        .upsert_user(
            &UpstreamProfile {
                issuer: identity.issuer,
                subject: identity.subject,
                email: identity.email,
                email_verified: identity.email_verified,
                name: identity.name,
                picture: identity.picture,
            },
            now,
        )
        .await?;
    if user.disabled_at.is_some() {
        login_failed(
            app,
            Some(&client.client_id),
            Some(&user.sub),
            "user_disabled",
            now,
        );
        let e = OAuthError::new(ErrorCode::AccessDenied, "this account is disabled");
        return Ok(back(app, &target, &e));
    }
    let raw_session = random_token(32);
    let ttl = i64::try_from(app.config.session_ttl.as_secs()).unwrap_or(86_400);
    let session = Session {
        id_hash: sha256_b64(raw_session.as_bytes()),
        sid: random_token(16),
        sub: user.sub,
        auth_time: now,
        created_at: now,
        expires_at: now + ttl,
    };
    app.store.insert_session(&session).await?;
    app.audit.record(
        Event::new(EventType::LoginSucceeded, now)
            .client(&client.client_id)
            .subject(&session.sub)
            .with("sid", session.sid.as_str())
            .with("upstream_issuer", upstream_issuer),
    );
    let mut outcome = continue_signed_in(app, &client, request, &session, now).await?;
    outcome.session = Some((raw_session, ttl));
    Ok(outcome)
}

/// `POST /consent`: the answer to the consent page.
pub async fn consent(
    app: &App,
    raw_form: &[u8],
    session_cookie: Option<&str>,
) -> Result<Outcome, OAuthError> {
    let now = app.now();
    let params = match Params::parse(raw_form) {
        Ok(p) => p,
        Err(_) => return Ok(PageError::Malformed("The consent form is malformed.".into()).into()),
    };
    let gone = || {
        Outcome::from(PageError::Malformed(
            "This page has expired or was already answered. Start again from the application."
                .into(),
        ))
    };
    let session = match session_cookie {
        Some(raw) => {
            app.store
                .get_session(&sha256_b64(raw.as_bytes()), now)
                .await?
        }
        None => None,
    };
    let (Some(session), Some(ticket)) = (session, params.get("ticket")) else {
        return Ok(gone());
    };
    let Some(pending) = app
        .store
        .take_pending(&sha256_b64(ticket.as_bytes()), now)
        .await?
    else {
        return Ok(gone());
    };
    // CSRF: the ticket was issued to this session's page.
    if !crate::secret::ct_eq(pending.browser_hash.as_bytes(), session.id_hash.as_bytes()) {
        return Ok(gone());
    }
    let Some((request, client)) = resume(app, &pending).await? else {
        return Ok(PageError::UnknownClient.into());
    };
    let target = ErrorTarget {
        redirect_uri: request.redirect_uri.clone(),
        state: request.state.clone(),
    };
    match params.get("decision") {
        Some("allow") => {
            let mut granted: Vec<String> = app
                .store
                .get_consent(&session.sub, &client.client_id)
                .await?
                .map(|g| {
                    g.split(' ')
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            for s in &request.scope {
                if !granted.contains(s) {
                    granted.push(s.clone());
                }
            }
            let scope = granted.join(" ");
            app.store
                .save_consent(&session.sub, &client.client_id, &scope, now)
                .await?;
            app.audit.record(
                Event::new(EventType::ConsentGranted, now)
                    .client(&client.client_id)
                    .subject(&session.sub)
                    .with("scope", scope),
            );
            issue_code(app, &request, &session, now).await
        }
        Some("deny") => {
            app.audit.record(
                Event::new(EventType::ConsentDenied, now)
                    .client(&client.client_id)
                    .subject(&session.sub)
                    .with("scope", request.scope.join(" ")),
            );
            let e = OAuthError::new(ErrorCode::AccessDenied, "the user denied the request");
            Ok(back(app, &target, &e))
        }
        _ => Ok(PageError::Malformed("The consent form has no decision.".into()).into()),
    }
}

/// A sign-in that did not complete, for the audit trail.
fn login_failed(app: &App, client_id: Option<&str>, sub: Option<&str>, reason: &str, now: i64) {
    let mut event = Event::new(EventType::LoginFailed, now).with("reason", reason);
    event.client_id = client_id.map(str::to_owned);
    event.sub = sub.map(str::to_owned);
    app.audit.record(event);
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}
