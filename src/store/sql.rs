//! The SQL both backends share. sqlx's runtime `query` + `bind` with `$n`
//! parameters runs the same text on SQLite and PostgreSQL; the macro stamps
//! the shared `Store` methods onto each backend, which supplies `pool`,
//! `begin_locked()` (a write transaction holding the key lock) and
//! `run_migrations()`.

use sqlx::FromRow;

use super::{ClientRecord, KeyRecord, KeyState, StoreError};
use crate::oauth::client::ClientMetadata;
use crate::token::Alg;

#[derive(FromRow)]
pub(super) struct ClientRow {
    client_id: String,
    secret_hash: Option<String>,
    metadata: String,
    client_id_issued_at: i64,
    updated_at: i64,
}

impl TryFrom<ClientRow> for ClientRecord {
    type Error = StoreError;

    fn try_from(row: ClientRow) -> Result<Self, StoreError> {
        Ok(ClientRecord {
            metadata: serde_json::from_str(&row.metadata).map_err(|e| {
                StoreError::Corrupt(format!("metadata of client {}: {e}", row.client_id))
            })?,
            client_id: row.client_id,
            secret_hash: row.secret_hash,
            client_id_issued_at: row.client_id_issued_at,
            updated_at: row.updated_at,
        })
    }
}

pub(super) fn metadata_json(client: &ClientRecord) -> Result<String, StoreError> {
    serde_json::to_string(&client.metadata).map_err(|e| StoreError::Other(e.into()))
}

#[derive(FromRow)]
pub(super) struct KeyRow {
    kid: String,
    alg: String,
    state: String,
    created_at: i64,
    activated_at: Option<i64>,
    retiring_at: Option<i64>,
    retired_at: Option<i64>,
}

impl TryFrom<KeyRow> for KeyRecord {
    type Error = StoreError;

    fn try_from(row: KeyRow) -> Result<Self, StoreError> {
        Ok(KeyRecord {
            alg: row.alg.parse().map_err(|()| {
                StoreError::Corrupt(format!("key {} has algorithm {}", row.kid, row.alg))
            })?,
            state: KeyState::parse(&row.state).ok_or_else(|| {
                StoreError::Corrupt(format!("key {} has state {}", row.kid, row.state))
            })?,
            kid: row.kid,
            created_at: row.created_at,
            activated_at: row.activated_at,
            retiring_at: row.retiring_at,
            retired_at: row.retired_at,
        })
    }
}

fn parse_metadata(rows: Vec<(String,)>) -> Result<Vec<ClientMetadata>, StoreError> {
    rows.into_iter()
        .map(|(m,)| {
            serde_json::from_str(&m)
                .map_err(|e| StoreError::Corrupt(format!("client metadata: {e}")))
        })
        .collect()
}

/// Distinct `id_token_signed_response_alg` values, from every client's metadata.
pub(super) fn id_token_algs(rows: Vec<(String,)>) -> Result<Vec<Alg>, StoreError> {
    let mut algs = Vec::new();
    for m in parse_metadata(rows)? {
        if !algs.contains(&m.id_token_signed_response_alg) {
            algs.push(m.id_token_signed_response_alg);
        }
    }
    Ok(algs)
}

/// The web origins of every client's redirect URIs (private-use schemes have none).
pub(super) fn redirect_origins(rows: Vec<(String,)>) -> Result<Vec<String>, StoreError> {
    let mut origins = Vec::new();
    for m in parse_metadata(rows)? {
        for uri in &m.redirect_uris {
            let Ok(url) = url::Url::parse(uri) else {
                continue;
            };
            if matches!(url.scheme(), "http" | "https") {
                let origin = url.origin().ascii_serialization();
                if !origins.contains(&origin) {
                    origins.push(origin);
                }
            }
        }
    }
    Ok(origins)
}

pub(super) const SELECT_CLIENT: &str =
    "SELECT client_id, secret_hash, metadata, client_id_issued_at, updated_at FROM clients";
pub(super) const SELECT_KEYS: &str = "SELECT kid, alg, state, created_at, activated_at, retiring_at, retired_at \
     FROM signing_keys ORDER BY created_at, kid";

/// The column a key's transition to `state` stamps.
pub(super) fn transition_sql(state: KeyState) -> &'static str {
    match state {
        KeyState::Pending => "UPDATE signing_keys SET state = 'pending' WHERE kid = $1 AND $2 = $2",
        KeyState::Active => {
            "UPDATE signing_keys SET state = 'active', activated_at = $2 WHERE kid = $1"
        }
        KeyState::Retiring => {
            "UPDATE signing_keys SET state = 'retiring', retiring_at = $2 WHERE kid = $1"
        }
        KeyState::Retired => {
            "UPDATE signing_keys SET state = 'retired', retired_at = $2 WHERE kid = $1"
        }
    }
}

macro_rules! shared_store_impl {
    ($backend:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::Store for $backend {
            async fn ping(&self) -> $crate::store::StoreResult<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            fn pool_stats(&self) -> (u32, u32) {
                (self.pool.size(), u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX))
            }

            async fn migrate(&self) -> $crate::store::StoreResult<()> {
                self.run_migrations().await
            }

            async fn insert_client(&self, c: &$crate::store::ClientRecord) -> $crate::store::StoreResult<bool> {
                let done = sqlx::query(
                    "INSERT INTO clients (client_id, secret_hash, metadata, client_id_issued_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (client_id) DO NOTHING",
                )
                .bind(&c.client_id)
                .bind(&c.secret_hash)
                .bind($crate::store::sql::metadata_json(c)?)
                .bind(c.client_id_issued_at)
                .bind(c.updated_at)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn get_client(&self, client_id: &str) -> $crate::store::StoreResult<Option<$crate::store::ClientRecord>> {
                let sql = format!("{} WHERE client_id = $1", $crate::store::sql::SELECT_CLIENT);
                let row: Option<$crate::store::sql::ClientRow> =
                    sqlx::query_as(&sql).bind(client_id).fetch_optional(&self.pool).await?;
                row.map(TryInto::try_into).transpose()
            }

            async fn list_clients(
                &self,
                after: Option<(i64, &str)>,
                limit: u32,
            ) -> $crate::store::StoreResult<Vec<$crate::store::ClientRecord>> {
                let (at, id) = after.unwrap_or((i64::MIN, ""));
                let sql = format!(
                    "{} WHERE client_id_issued_at > $1 OR (client_id_issued_at = $1 AND client_id > $2) \
                     ORDER BY client_id_issued_at, client_id LIMIT $3",
                    $crate::store::sql::SELECT_CLIENT
                );
                let rows: Vec<$crate::store::sql::ClientRow> = sqlx::query_as(&sql)
                    .bind(at)
                    .bind(id)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn update_client(&self, c: &$crate::store::ClientRecord) -> $crate::store::StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE clients SET secret_hash = $2, metadata = $3, updated_at = $4 WHERE client_id = $1",
                )
                .bind(&c.client_id)
                .bind(&c.secret_hash)
                .bind($crate::store::sql::metadata_json(c)?)
                .bind(c.updated_at)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn delete_client(&self, client_id: &str) -> $crate::store::StoreResult<bool> {
                let done = sqlx::query("DELETE FROM clients WHERE client_id = $1")
                    .bind(client_id)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn client_id_token_algs(&self) -> $crate::store::StoreResult<Vec<$crate::token::Alg>> {
                let rows: Vec<(String,)> = sqlx::query_as("SELECT metadata FROM clients").fetch_all(&self.pool).await?;
                $crate::store::sql::id_token_algs(rows)
            }

            async fn redirect_origins(&self) -> $crate::store::StoreResult<Vec<String>> {
                let rows: Vec<(String,)> = sqlx::query_as("SELECT metadata FROM clients").fetch_all(&self.pool).await?;
                $crate::store::sql::redirect_origins(rows)
            }

            async fn list_keys(&self) -> $crate::store::StoreResult<Vec<$crate::store::KeyRecord>> {
                let rows: Vec<$crate::store::sql::KeyRow> =
                    sqlx::query_as($crate::store::sql::SELECT_KEYS).fetch_all(&self.pool).await?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn change_keys(
                &self,
                plan: &$crate::store::KeyPlanner<'_>,
            ) -> $crate::store::StoreResult<Vec<$crate::store::KeyChange>> {
                let mut tx = self.begin_locked().await?;
                let rows: Vec<$crate::store::sql::KeyRow> =
                    sqlx::query_as($crate::store::sql::SELECT_KEYS).fetch_all(&mut *tx).await?;
                let records = rows
                    .into_iter()
                    .map(TryInto::try_into)
                    .collect::<Result<Vec<$crate::store::KeyRecord>, _>>()?;
                let changes = plan(&records)?;
                for change in &changes {
                    match change {
                        $crate::store::KeyChange::Insert(r) => {
                            sqlx::query(
                                "INSERT INTO signing_keys (kid, alg, state, created_at, activated_at, retiring_at, retired_at) \
                                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                            )
                            .bind(&r.kid)
                            .bind(r.alg.as_str())
                            .bind(r.state.as_str())
                            .bind(r.created_at)
                            .bind(r.activated_at)
                            .bind(r.retiring_at)
                            .bind(r.retired_at)
                            .execute(&mut *tx)
                            .await?;
                        }
                        $crate::store::KeyChange::Transition { kid, to, at } => {
                            sqlx::query($crate::store::sql::transition_sql(*to))
                                .bind(kid)
                                .bind(*at)
                                .execute(&mut *tx)
                                .await?;
                        }
                    }
                }
                tx.commit().await?;
                Ok(changes)
            }
        }
    };
}

pub(super) use shared_store_impl;
