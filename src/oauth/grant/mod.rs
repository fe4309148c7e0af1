//! One module per grant type (RFC 6749 §4, §6), and what the user grants share:
//! the access token, the ID token and the refresh token they mint.

pub mod authorization_code;
pub mod client_credentials;
pub mod refresh_token;

use serde_json::{Map, Value, json};

use crate::app::App;
use crate::audit::{Event, EventType};
use crate::error::{ErrorCode, OAuthError};
use crate::secret::{random_token, sha256_b64};
use crate::store::{ClientRecord, RefreshRecord, Spend, SpendKind, Spent, User};
use crate::token::jwt;

/// The user claims a scope set releases (OIDC Core §5.4), shared by the ID
/// token and `/userinfo`.
pub fn user_claims<'a>(
    user: &User,
    scopes: impl Iterator<Item = &'a str> + Clone,
) -> Map<String, Value> {
    let mut claims = Map::new();
    if scopes.clone().any(|s| s == "email") {
        if let Some(email) = &user.email {
            claims.insert("email".into(), json!(email));
            claims.insert("email_verified".into(), json!(user.email_verified));
        }
    }
    if scopes.clone().any(|s| s == "profile") {
        if let Some(name) = &user.name {
            claims.insert("name".into(), json!(name));
        }
        if let Some(picture) = &user.picture {
            claims.insert("picture".into(), json!(picture));
        }
    }
    claims
}

/// What a user grant mints.
pub struct UserTokens<'a> {
    pub client: &'a ClientRecord,
    pub user: &'a User,
    pub sid: Option<&'a str>,
    /// This access token's scope.
    pub scope: &'a str,
    /// Whether `openid` was granted (an ID token comes back).
    pub openid: bool,
    pub audience: &'a [String],
    pub auth_time: i64,
    pub nonce: Option<&'a str>,
}

pub struct Minted {
    pub sub: String,
    pub access_token: String,
    pub jti: String,
    pub exp: i64,
    pub id_token: Option<String>,
}

pub fn mint(app: &App, t: &UserTokens<'_>, now: i64) -> Result<Minted, OAuthError> {
    let keys = app.keys.current();
    let ttl = app.config.access_token_ttl.as_secs();
    let exp = now.saturating_add_unsigned(ttl);
    let jti = random_token(16);
    let audience = jwt::Audience::from_list(t.audience.to_vec());
    let access_token = jwt::mint_access_token(
        &keys,
        app.config.access_token_alg,
        &jwt::AccessClaims {
            iss: &app.config.issuer,
            sub: &t.user.sub,
            aud: &audience,
            exp,
            iat: now,
            jti: jti.clone(),
            client_id: &t.client.client_id,
            scope: t.scope,
            auth_time: Some(t.auth_time),
        },
    )
    .map_err(OAuthError::internal)?;
    let id_token = if t.openid {
        let alg = t.client.metadata.id_token_signed_response_alg;
        let claims = jwt::IdClaims {
            iss: &app.config.issuer,
            sub: &t.user.sub,
            aud: &t.client.client_id,
            exp: now.saturating_add_unsigned(app.config.id_token_ttl.as_secs()),
            iat: now,
            auth_time: t.auth_time,
            nonce: t.nonce,
            at_hash: jwt::at_hash(alg, &access_token),
            azp: &t.client.client_id,
            sid: t.sid,
            profile: user_claims(t.user, t.scope.split(' ')),
        };
        Some(jwt::mint_id_token(&keys, alg, &claims).map_err(OAuthError::internal)?)
    } else {
        None
    };
    Ok(Minted {
        sub: t.user.sub.clone(),
        access_token,
        jti,
        exp,
        id_token,
    })
}

/// A new refresh token for `family_id`: the raw value and its record,
/// idle lifetime capped by the family's absolute one.
pub fn new_refresh_token(
    app: &App,
    family_id: &str,
    family_expires_at: i64,
    now: i64,
) -> (String, RefreshRecord) {
    let raw = random_token(32);
    let idle = now.saturating_add_unsigned(app.config.refresh_token_idle_ttl.as_secs());
    let record = RefreshRecord {
        token_hash: sha256_b64(raw.as_bytes()),
        family_id: family_id.to_owned(),
        created_at: now,
        expires_at: idle.min(family_expires_at),
    };
    (raw, record)
}

impl Minted {
    /// What to write beside the spent code or refresh token, and the answer.
    pub fn issue(
        self,
        app: &App,
        scope: String,
        family: Option<crate::store::Family>,
        refresh: Option<(String, RefreshRecord)>,
    ) -> (
        crate::store::Issued,
        crate::oauth::token_endpoint::TokenResponse,
    ) {
        let (raw, record) = refresh.map_or((None, None), |(raw, record)| (Some(raw), Some(record)));
        (
            crate::store::Issued {
                family,
                refresh: record,
                access_jti: self.jti.clone(),
                access_exp: self.exp,
            },
            crate::oauth::token_endpoint::TokenResponse {
                access_token: self.access_token,
                token_type: "Bearer",
                expires_in: app.config.access_token_ttl.as_secs(),
                scope,
                refresh_token: raw,
                id_token: self.id_token,
                sub: self.sub,
                jti: self.jti,
            },
        )
    }
}

pub fn invalid_grant(d: &'static str) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidGrant, d)
}

/// RFC 8707 §2.2 at the token endpoint: requested resources may only
/// narrow what was granted.
pub fn narrow_audience(
    requested: &[String],
    granted: &[String],
) -> Result<Vec<String>, OAuthError> {
    if requested.is_empty() {
        return Ok(granted.to_vec());
    }
    if requested.iter().all(|r| granted.contains(r)) {
        Ok(requested.to_vec())
    } else {
        Err(OAuthError::new(
            ErrorCode::InvalidTarget,
            "resource was not part of the grant",
        ))
    }
}

/// Whose code or refresh token is being spent, and who presented it.
pub(super) struct Owner<'a> {
    pub client_id: &'a str,
    pub sub: &'a str,
    pub presented_by: &'a str,
}

/// Spends a code or refresh token through the group commit. A replay has
/// revoked access tokens in the database: this instance's revoked set
/// learns them at once (other instances within their next poll).
pub(super) async fn redeem(
    app: &App,
    spend: Spend,
    owner: &Owner<'_>,
) -> Result<Spent, OAuthError> {
    let kind = spend.kind;
    let now = spend.now;
    let spent = app.spends.spend(spend).await?;
    if spent == Spent::Replayed {
        app.audit.record(
            Event::new(EventType::TokenReplayed, now)
                .client(owner.client_id)
                .subject(owner.sub)
                .with(
                    "token_type",
                    match kind {
                        SpendKind::Code => "authorization_code",
                        SpendKind::Refresh => "refresh_token",
                    },
                )
                .with("presented_by", owner.presented_by),
        );
        if let Err(e) = app.revoked.poll(app.store.as_ref(), app.now()).await {
            tracing::warn!(error = format!("{e:#}"), "reading revoked tokens failed");
        }
    }
    Ok(spent)
}
