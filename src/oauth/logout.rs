//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0, PRODUCT.md
//! "Logout"): `GET|POST /logout` with `id_token_hint`, `client_id`,
//! `post_logout_redirect_uri` and `state`. A valid hint proves which app
//! sent the browser: the session ends and the browser goes back at once.
//! Without one, a confirmation page asks first (its form carries a token
//! bound to the session cookie). A bad hint or an unregistered
//! `post_logout_redirect_uri` is a 400 page, never a redirect.

use std::sync::Arc;

use serde::Deserialize;

use crate::app::App;
use crate::audit::{Event, EventType};
use crate::error::OAuthError;
use crate::oauth::form::Params;
use crate::secret::sha256_b64;
use crate::store::ClientRecord;

/// Where the browser goes next.
#[derive(Debug)]
pub enum LogoutNext {
    /// Back to the client (`post_logout_redirect_uri` with `state`).
    Redirect(String),
    /// Ask first: the page's heading and the form's hidden fields.
    Confirm {
        heading: String,
        fields: Vec<(&'static str, String)>,
    },
    /// Signed out, and nowhere registered to go back to.
    SignedOut,
    /// A 400 page: the request is not one Tessera will act on.
    Refused(&'static str),
}

pub struct LogoutOutcome {
    pub next: LogoutNext,
    /// The session cookie must be cleared.
    pub ended: bool,
}

#[derive(Deserialize)]
struct HintClaims {
    sub: String,
    aud: serde_json::Value,
}

/// The CSRF token of the confirmation form: bound to the session cookie.
fn csrf_for(session: Option<&str>) -> String {
    session.map_or_else(
        || "-".to_owned(),
        |raw| sha256_b64(format!("logout:{raw}").as_bytes()),
    )
}

/// An ID token Tessera issued (signature, issuer; expiry not required).
fn verify_hint(app: &App, token: &str) -> Option<(Vec<String>, String)> {
    verify_hint_with(&app.keys.current(), &app.config.issuer, token)
}

/// `verify_hint` against a key set and issuer: the hint's audiences and
/// subject.
pub fn verify_hint_with(
    keys: &crate::token::keys::KeySet,
    issuer: &str,
    token: &str,
) -> Option<(Vec<String>, String)> {
    let header = jsonwebtoken::decode_header(token).ok()?;
    if header.typ.as_deref() == Some(crate::token::jwt::ACCESS_TOKEN_TYP) {
        return None;
    }
    let (alg, key) = keys.verifier(header.kid.as_deref()?)?;
    if alg.jsonwebtoken() != header.alg {
        return None;
    }
    let mut validation = jsonwebtoken::Validation::new(alg.jsonwebtoken());
    validation.set_issuer(&[issuer]);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["iss", "sub", "aud"]);
    let claims = jsonwebtoken::decode::<HintClaims>(token, key, &validation)
        .ok()?
        .claims;
    let aud = match claims.aud {
        serde_json::Value::String(s) => vec![s],
        serde_json::Value::Array(a) => a
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => return None,
    };
    Some((aud, claims.sub))
}

pub async fn logout(
    app: &App,
    raw: &[u8],
    session: Option<&str>,
    post: bool,
) -> Result<LogoutOutcome, OAuthError> {
    let refused = |why| {
        Ok(LogoutOutcome {
            next: LogoutNext::Refused(why),
            ended: false,
        })
    };
    let Ok(params) = Params::parse(raw) else {
        return refused("The sign-out request is not valid.");
    };
    let hint = match params.get("id_token_hint").filter(|h| !h.is_empty()) {
        None => None,
        Some(token) => match verify_hint(app, token) {
            Some(h) => Some(h),
            None => return refused("The sign-out request carries an ID token that is not valid."),
        },
    };
    let client_id = match (params.get("client_id"), &hint) {
        (Some(id), Some((aud, _))) if !aud.iter().any(|a| a == id) => {
            return refused("The ID token was not issued to this client.");
        }
        (Some(id), _) => Some(id.to_owned()),
        (None, Some((aud, _))) if aud.len() == 1 => aud.first().cloned(),
        (None, _) => None,
    };
    let client: Option<Arc<ClientRecord>> = match &client_id {
        Some(id) => match app.clients.get(app.store.as_ref(), id).await? {
            Some(c) => Some(c),
            None => return refused("The application that sent you here is not registered."),
        },
        None => None,
    };
    let redirect = match params.get("post_logout_redirect_uri") {
        None => None,
        Some(uri) => {
            let registered = client.as_ref().is_some_and(|c| {
                c.metadata
                    .post_logout_redirect_uris
                    .iter()
                    .any(|r| r == uri)
            });
            if !registered {
                return refused(
                    "The address to send you back to is not registered for this application.",
                );
            }
            let mut url = url::Url::parse(uri).map_err(OAuthError::internal)?;
            if let Some(state) = params.get("state") {
                url.query_pairs_mut().append_pair("state", state);
            }
            Some(url.to_string())
        }
    };

    let confirmed = post && params.get("decision") == Some("logout");
    if confirmed {
        let expected = csrf_for(session);
        let presented = params.get("csrf").unwrap_or_default();
        if !crate::secret::ct_eq(expected.as_bytes(), presented.as_bytes()) {
            return refused(
                "This sign-out form has expired. Go back to the application and sign out again.",
            );
        }
    }
    if hint.is_none() && !confirmed {
        let name = client.as_ref().and_then(|c| c.metadata.client_name.clone());
        let mut fields = vec![("csrf", csrf_for(session))];
        if let Some(id) = &client_id {
            fields.push(("client_id", id.clone()));
        }
        if let Some(uri) = params.get("post_logout_redirect_uri") {
            fields.push(("post_logout_redirect_uri", uri.to_owned()));
        }
        if let Some(state) = params.get("state") {
            fields.push(("state", state.to_owned()));
        }
        return Ok(LogoutOutcome {
            next: LogoutNext::Confirm {
                heading: match name {
                    Some(n) => format!("Sign out of {n}?"),
                    None => "Sign out?".to_owned(),
                },
                fields,
            },
            ended: false,
        });
    }
    let ended = match session {
        Some(raw) => {
            let now = app.now();
            if let Some(ended) = app
                .store
                .end_session(&sha256_b64(raw.as_bytes()), now)
                .await?
            {
                let mut event = Event::new(EventType::Logout, now)
                    .subject(ended.sub)
                    .with("sid", ended.sid);
                event.client_id = client_id.clone();
                app.audit.record(event);
                app.logouts_queued.notify_one();
                // The session's refresh families were revoked with their
                // access tokens: this instance knows at once.
                if let Err(e) = app.revoked.poll(app.store.as_ref(), now).await {
                    tracing::warn!(error = format!("{e:#}"), "reading revoked tokens failed");
                }
            }
            true
        }
        None => false,
    };
    Ok(LogoutOutcome {
        next: redirect.map_or(LogoutNext::SignedOut, LogoutNext::Redirect),
        ended,
    })
}
