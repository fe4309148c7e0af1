//! Client registration operations shared by the admin API and the CLI, and
//! the short-lived cache of client rows the token endpoint reads.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use super::client::{ClientMetadata, MetadataError, MetadataRequest};
use super::client_auth::SecretVerifier;
use crate::audit::{By, Event, EventType};
use crate::secret::{Secret, random_token};
use crate::store::{ClientRecord, Store, StoreError};
use crate::token::Alg;

/// Rows are re-read at least this often, so a rotation or deletion made by
/// another instance or the CLI takes effect within a second.
const ROW_TTL: Duration = Duration::from_secs(1);
const CAPACITY: usize = 10_000;

#[derive(Default)]
pub struct ClientCache {
    rows: Mutex<HashMap<String, (Instant, Arc<ClientRecord>)>>,
}

impl ClientCache {
    /// The client row, from the cache if read within the last second.
    pub async fn get(
        &self,
        store: &dyn Store,
        client_id: &str,
    ) -> Result<Option<Arc<ClientRecord>>, StoreError> {
        if let Ok(rows) = self.rows.lock() {
            if let Some((at, row)) = rows.get(client_id) {
                if at.elapsed() < ROW_TTL {
                    return Ok(Some(row.clone()));
                }
            }
        }
        let Some(row) = store.get_client(client_id).await? else {
            self.forget(client_id);
            return Ok(None);
        };
        let row = Arc::new(row);
        if let Ok(mut rows) = self.rows.lock() {
            if rows.len() >= CAPACITY {
                rows.retain(|_, (at, _)| at.elapsed() < ROW_TTL);
                if rows.len() >= CAPACITY {
                    rows.clear();
                }
            }
            rows.insert(client_id.to_owned(), (Instant::now(), row.clone()));
        }
        Ok(Some(row))
    }

    /// Drops a row this instance changed.
    pub fn forget(&self, client_id: &str) {
        if let Ok(mut rows) = self.rows.lock() {
            rows.remove(client_id);
        }
    }
}

/// A client as the admin API and the CLI show it (RFC 7591 §3.2.1), with
/// its secret only right after it was made.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClientView {
    pub client_id: String,
    pub client_id_issued_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret_expires_at: Option<i64>,
    #[serde(flatten)]
    pub metadata: ClientMetadata,
}

impl ClientView {
    pub fn new(record: &ClientRecord, secret: Option<Secret>) -> Self {
        let shown = secret.is_some();
        Self {
            client_id: record.client_id.clone(),
            client_id_issued_at: record.client_id_issued_at,
            client_secret: secret.map(|s| s.expose_secret().to_owned()),
            client_secret_expires_at: shown.then_some(0),
            metadata: record.metadata.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientOpError {
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error("no such client")]
    NotFound,
    #[error("the client_id in the body does not match the one in the path")]
    IdMismatch,
    #[error("cursor is not one this server gave")]
    BadCursor,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// A new secret and its hash, for a confidential client.
async fn new_secret(metadata: &ClientMetadata) -> anyhow::Result<Option<(Secret, String)>> {
    if !metadata.token_endpoint_auth_method.is_confidential() {
        return Ok(None);
    }
    Ok(Some(
        SecretVerifier::hash(Secret::new(random_token(32))).await?,
    ))
}

/// Registers a client (RFC 7591 §3.1): 201 with the secret shown once.
pub async fn create(
    store: &dyn Store,
    by: By<'_>,
    request: MetadataRequest,
    algs: &[Alg],
    now: i64,
) -> Result<ClientView, ClientOpError> {
    let metadata = request.validate(algs)?;
    let secret = new_secret(&metadata).await?;
    loop {
        let record = ClientRecord {
            client_id: random_token(16),
            secret_hash: secret.as_ref().map(|(_, h)| h.clone()),
            metadata: metadata.clone(),
            client_id_issued_at: now,
            updated_at: now,
        };
        // 128 random bits collide never in practice; if they do, draw again.
        if store.insert_client(&record).await? {
            by.record(Event::new(EventType::ClientCreated, now).client(&record.client_id));
            return Ok(ClientView::new(&record, secret.map(|(s, _)| s)));
        }
    }
}

/// Full replace (`PUT`): omitted fields take their defaults. A client that
/// becomes confidential gets a new secret; one that becomes public loses it.
pub async fn replace(
    store: &dyn Store,
    by: By<'_>,
    client_id: &str,
    request: MetadataRequest,
    algs: &[Alg],
    now: i64,
) -> Result<ClientView, ClientOpError> {
    if request
        .client_id
        .as_deref()
        .is_some_and(|id| id != client_id)
    {
        return Err(ClientOpError::IdMismatch);
    }
    let mut record = store
        .get_client(client_id)
        .await?
        .ok_or(ClientOpError::NotFound)?;
    let metadata = request.validate(algs)?;
    let mut shown = None;
    match (
        metadata.token_endpoint_auth_method.is_confidential(),
        record.secret_hash.is_some(),
    ) {
        (true, false) => {
            let (secret, hash) = new_secret(&metadata)
                .await?
                .ok_or(ClientOpError::NotFound)?;
            record.secret_hash = Some(hash);
            shown = Some(secret);
        }
        (false, true) => record.secret_hash = None,
        _ => {}
    }
    record.metadata = metadata;
    record.updated_at = now;
    if !store.update_client(&record).await? {
        return Err(ClientOpError::NotFound);
    }
    by.record(
        Event::new(EventType::ClientUpdated, now)
            .client(client_id)
            .with("new_secret", shown.is_some()),
    );
    Ok(ClientView::new(&record, shown))
}

/// Replaces a confidential client's secret; the old one stops working.
pub async fn rotate_secret(
    store: &dyn Store,
    by: By<'_>,
    client_id: &str,
    now: i64,
) -> Result<ClientView, ClientOpError> {
    let mut record = store
        .get_client(client_id)
        .await?
        .ok_or(ClientOpError::NotFound)?;
    let Some((secret, hash)) = new_secret(&record.metadata).await? else {
        return Err(MetadataError::InvalidClientMetadata(
            "a public client (token_endpoint_auth_method none) has no secret to rotate".into(),
        )
        .into());
    };
    record.secret_hash = Some(hash);
    record.updated_at = now;
    if !store.update_client(&record).await? {
        return Err(ClientOpError::NotFound);
    }
    by.record(Event::new(EventType::ClientSecretRotated, now).client(client_id));
    Ok(ClientView::new(&record, Some(secret)))
}

/// Deletes a client; its codes, refresh tokens and consents go with it.
pub async fn delete(
    store: &dyn Store,
    by: By<'_>,
    client_id: &str,
    now: i64,
) -> Result<(), ClientOpError> {
    if !store.delete_client(client_id).await? {
        return Err(ClientOpError::NotFound);
    }
    by.record(Event::new(EventType::ClientDeleted, now).client(client_id));
    Ok(())
}

pub const DEFAULT_PAGE: u32 = 50;
pub const MAX_PAGE: u32 = 200;

/// A page of clients and the opaque cursor of the next one.
pub async fn list(
    store: &dyn Store,
    cursor: Option<&str>,
    limit: u32,
) -> Result<(Vec<ClientView>, Option<String>), ClientOpError> {
    let after = match cursor {
        Some(c) => Some(decode_cursor(c).ok_or(ClientOpError::BadCursor)?),
        None => None,
    };
    let limit = limit.clamp(1, MAX_PAGE);
    let rows = store
        .list_clients(after.as_ref().map(|(at, id)| (*at, id.as_str())), limit + 1)
        .await?;
    let more = rows.len() > limit as usize;
    let page: Vec<_> = rows.into_iter().take(limit as usize).collect();
    let next = if more {
        page.last()
            .map(|r| URL_SAFE_NO_PAD.encode(format!("{}:{}", r.client_id_issued_at, r.client_id)))
    } else {
        None
    };
    Ok((
        page.iter().map(|r| ClientView::new(r, None)).collect(),
        next,
    ))
}

fn decode_cursor(cursor: &str) -> Option<(i64, String)> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).ok()?).ok()?;
    let (at, id) = raw.split_once(':')?;
    Some((at.parse().ok()?, id.to_owned()))
}
