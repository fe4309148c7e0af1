//! `POST /token` (RFC 6749 §3.2), with the checks in the order PRODUCT.md
//! fixes, the first failure answering: (1) the form, by the HTTP layer;
//! (2) client authentication; (3) grant type; (4) grant allowed for the
//! client; then, in the grant's module, (5) scope, (6) resource, (7) the
//! grant itself.

use std::sync::Arc;

use serde::Serialize;

use super::client::{AuthMethod, GrantType};
use super::client_auth;
use super::form::Params;
use super::grant;
use crate::app::App;
use crate::audit::{Event, EventType};
use crate::error::{ErrorCode, OAuthError};
use crate::store::ClientRecord;

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// For the audit event: the access token's subject and id.
    #[serde(skip)]
    pub sub: String,
    #[serde(skip)]
    pub jti: String,
}

/// Who is calling an endpoint that clients call directly: the
/// `Authorization` header, and the source address (behind trusted proxies,
/// the forwarded one) when known.
#[derive(Clone, Copy, Debug, Default)]
pub struct Caller<'a> {
    pub authorization: Option<&'a [u8]>,
    pub ip: Option<std::net::IpAddr>,
}

/// The grants this server answers today (advertised in discovery).
pub const SUPPORTED_GRANTS: &[GrantType] = &[
    GrantType::AuthorizationCode,
    GrantType::RefreshToken,
    GrantType::ClientCredentials,
];

/// Client authentication for the endpoints clients call directly (`/token`,
/// `/revoke`, `/introspect`): Basic or form credentials, or a public
/// client's bare `client_id`, checked against the client's registered
/// `token_endpoint_auth_method`. Failures are counted in the metrics.
pub async fn authenticate_client(
    app: &App,
    params: &Params,
    caller: &Caller<'_>,
) -> Result<Arc<ClientRecord>, OAuthError> {
    let credentials = client_auth::credentials(
        caller.authorization,
        params.get("client_id"),
        params.get("client_secret"),
    )?;
    let client = app
        .clients
        .get(app.store.as_ref(), credentials.client_id())
        .await?;
    if let Err(e) =
        client_auth::authenticate(&app.verifier, client.as_deref(), &credentials, caller.ip).await
    {
        if e.code == ErrorCode::InvalidClient {
            app.metrics.client_auth_failure();
            let mut event = Event::new(EventType::ClientAuthFailed, app.now())
                .with("reason", e.description.as_ref());
            match &client {
                Some(c) => event.client_id = Some(c.client_id.clone()),
                None => event = event.with("unknown_client", true),
            }
            if let Some(ip) = caller.ip {
                event = event.with("ip", ip.to_string());
            }
            app.audit.record(event);
        }
        return Err(e);
    }
    let client = client.ok_or_else(|| {
        OAuthError::invalid_client("client authentication failed", credentials.is_basic())
    })?;
    // `TESSERA_RATE_LIMIT_PER_CLIENT`: only a client that proved who it is
    // spends its own budget. A public client's id proves nothing, so anyone
    // could spend its budget and lock it out: those are limited per address.
    if client.metadata.token_endpoint_auth_method != AuthMethod::None {
        if let Err(wait) = app
            .per_client
            .take(&client.client_id, std::time::Instant::now())
        {
            app.metrics.rate_limited();
            return Err(OAuthError {
                retry_after: Some(wait),
                ..OAuthError::new(
                    ErrorCode::TemporarilyUnavailable,
                    "too many requests from this client; retry later",
                )
            });
        }
    }
    Ok(client)
}

pub async fn exchange(
    app: &App,
    params: &Params,
    caller: &Caller<'_>,
) -> Result<TokenResponse, OAuthError> {
    let now = app.now();

    // (2) Client authentication (RFC 6749 §2.3, §3.2.1).
    let client = authenticate_client(app, params, caller).await?;

    // (3) The grant type (RFC 6749 §5.2 unsupported_grant_type).
    let Some(grant_type) = params.get("grant_type") else {
        return Err(OAuthError::invalid_request("grant_type is required"));
    };
    let Some(grant) = GrantType::parse(grant_type).filter(|g| SUPPORTED_GRANTS.contains(g)) else {
        return Err(OAuthError::new(
            ErrorCode::UnsupportedGrantType,
            "this grant type is not supported",
        ));
    };

    // (4) The client may use it (RFC 6749 §5.2 unauthorized_client).
    if !client.metadata.allows_grant(grant) {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            format!(
                "this client is not registered for the {} grant",
                grant.as_str()
            ),
        ));
    }

    let response = match grant {
        GrantType::ClientCredentials => {
            grant::client_credentials::grant(app, &client, params, now)?
        }
        GrantType::AuthorizationCode => {
            grant::authorization_code::grant(app, &client, params, now).await?
        }
        GrantType::RefreshToken => grant::refresh_token::grant(app, &client, params, now).await?,
    };
    app.metrics
        .token_issued(grant.as_str(), app.config.access_token_alg.as_str());
    app.audit.record(
        Event::new(EventType::TokenIssued, now)
            .client(&client.client_id)
            .subject(&response.sub)
            .with("grant_type", grant.as_str())
            .with("jti", response.jti.as_str())
            .with("scope", response.scope.as_str())
            .with("refresh_token", response.refresh_token.is_some())
            .with("id_token", response.id_token.is_some()),
    );
    Ok(response)
}
