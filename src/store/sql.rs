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

/// A code and whether it was used.
#[derive(FromRow)]
pub(super) struct CodeRow {
    #[sqlx(flatten)]
    pub code: super::CodeRecord,
    /// The code's user (same `sub` column).
    #[sqlx(flatten)]
    pub user: super::User,
    pub used_at: Option<i64>,
}

/// A refresh token with its family.
#[derive(FromRow)]
pub(super) struct RefreshRow {
    pub token_hash: String,
    pub family_id: String,
    pub token_created_at: i64,
    pub token_expires_at: i64,
    pub used_at: Option<i64>,
    #[sqlx(flatten)]
    pub family: super::Family,
    /// The family's user (same `sub` column).
    #[sqlx(flatten)]
    pub user: super::User,
    pub revoked_at: Option<i64>,
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
                    "INSERT INTO clients (client_id, secret_hash, metadata, client_id_issued_at, updated_at, backchannel_logout_uri) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (client_id) DO NOTHING",
                )
                .bind(&c.client_id)
                .bind(&c.secret_hash)
                .bind($crate::store::sql::metadata_json(c)?)
                .bind(c.client_id_issued_at)
                .bind(c.updated_at)
                .bind(&c.metadata.backchannel_logout_uri)
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
                    "UPDATE clients SET secret_hash = $2, metadata = $3, updated_at = $4, backchannel_logout_uri = $5 \
                     WHERE client_id = $1",
                )
                .bind(&c.client_id)
                .bind(&c.secret_hash)
                .bind($crate::store::sql::metadata_json(c)?)
                .bind(c.updated_at)
                .bind(&c.metadata.backchannel_logout_uri)
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

            async fn upsert_user(
                &self,
                p: &$crate::store::UpstreamProfile,
                now: i64,
            ) -> $crate::store::StoreResult<$crate::store::User> {
                // A concurrent first login of the same person loses the race
                // on the link's primary key; the retry then finds the link.
                let mut attempt = 0;
                loop {
                    attempt += 1;
                    match self.upsert_user_once(p, now).await {
                        Err($crate::store::StoreError::Database(e)) if attempt < 3 && $crate::store::sql::is_unique_violation(&e) => continue,
                        other => return other,
                    }
                }
            }

            async fn get_user(&self, sub: &str) -> $crate::store::StoreResult<Option<$crate::store::User>> {
                Ok(sqlx::query_as($crate::store::sql::SELECT_USER)
                    .bind(sub)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn insert_pending(&self, r: &$crate::store::PendingRequest) -> $crate::store::StoreResult<()> {
                sqlx::query(
                    "INSERT INTO login_requests (state_hash, browser_hash, nonce, pkce_verifier, request, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&r.state_hash)
                .bind(&r.browser_hash)
                .bind(&r.nonce)
                .bind(&r.pkce_verifier)
                .bind(&r.request)
                .bind(r.created_at)
                .bind(r.expires_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn take_pending(&self, state_hash: &str, now: i64) -> $crate::store::StoreResult<Option<$crate::store::PendingRequest>> {
                let row: Option<$crate::store::PendingRequest> = sqlx::query_as(
                    "DELETE FROM login_requests WHERE state_hash = $1 \
                     RETURNING state_hash, browser_hash, nonce, pkce_verifier, request, created_at, expires_at",
                )
                .bind(state_hash)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.filter(|r| r.expires_at > now))
            }

            async fn insert_session(&self, s: &$crate::store::Session) -> $crate::store::StoreResult<()> {
                sqlx::query(
                    "INSERT INTO sessions (id_hash, sid, sub, auth_time, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&s.id_hash)
                .bind(&s.sid)
                .bind(&s.sub)
                .bind(s.auth_time)
                .bind(s.created_at)
                .bind(s.expires_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn get_session(&self, id_hash: &str, now: i64) -> $crate::store::StoreResult<Option<$crate::store::Session>> {
                Ok(sqlx::query_as(
                    "SELECT s.id_hash, s.sid, s.sub, s.auth_time, s.created_at, s.expires_at \
                     FROM sessions s JOIN users u ON u.sub = s.sub \
                     WHERE s.id_hash = $1 AND s.ended_at IS NULL AND s.expires_at > $2 AND u.disabled_at IS NULL",
                )
                .bind(id_hash)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn end_session(&self, id_hash: &str, now: i64) -> $crate::store::StoreResult<Option<$crate::store::Session>> {
                let mut tx = self.begin_write().await?;
                $crate::store::sql::queue_logouts!(tx, "s.id_hash = $1", id_hash, now);
                let ended: Option<$crate::store::Session> = sqlx::query_as(
                    "UPDATE sessions SET ended_at = $2 WHERE id_hash = $1 AND ended_at IS NULL AND expires_at > $2 \
                     RETURNING id_hash, sid, sub, auth_time, created_at, expires_at",
                )
                .bind(id_hash)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(ended)
            }

            async fn claim_logout_deliveries(
                &self,
                now: i64,
                lease_until: i64,
                limit: u32,
            ) -> $crate::store::StoreResult<Vec<$crate::store::LogoutDelivery>> {
                // The conditions are repeated outside the sub-select: on
                // PostgreSQL a row another instance leased meanwhile is
                // re-checked after its lock is released, and skipped.
                let mut tx = self.begin_write().await?;
                let rows = sqlx::query_as(
                    "UPDATE logout_deliveries SET locked_until = $2 \
                     WHERE (sid, client_id) IN (SELECT sid, client_id FROM logout_deliveries \
                       WHERE next_attempt_at <= $1 AND locked_until <= $1 ORDER BY next_attempt_at LIMIT $3) \
                     AND next_attempt_at <= $1 AND locked_until <= $1 \
                     RETURNING sid, client_id, sub, created_at, attempts",
                )
                .bind(now)
                .bind(lease_until)
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(rows)
            }

            async fn finish_logout_delivery(&self, sid: &str, client_id: &str) -> $crate::store::StoreResult<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query("DELETE FROM logout_deliveries WHERE sid = $1 AND client_id = $2")
                    .bind(sid)
                    .bind(client_id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn retry_logout_delivery(
                &self,
                sid: &str,
                client_id: &str,
                next_attempt_at: i64,
                error: &str,
            ) -> $crate::store::StoreResult<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "UPDATE logout_deliveries SET attempts = attempts + 1, next_attempt_at = $3, \
                     locked_until = 0, last_error = $4 WHERE sid = $1 AND client_id = $2",
                )
                .bind(sid)
                .bind(client_id)
                .bind(next_attempt_at)
                .bind(error)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn get_consent(&self, sub: &str, client_id: &str) -> $crate::store::StoreResult<Option<String>> {
                let row: Option<(String,)> = sqlx::query_as("SELECT scope FROM consents WHERE sub = $1 AND client_id = $2")
                    .bind(sub)
                    .bind(client_id)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map(|(s,)| s))
            }

            async fn save_consent(&self, sub: &str, client_id: &str, scope: &str, now: i64) -> $crate::store::StoreResult<()> {
                sqlx::query(
                    "INSERT INTO consents (sub, client_id, scope, granted_at, updated_at) VALUES ($1, $2, $3, $4, $4) \
                     ON CONFLICT (sub, client_id) DO UPDATE SET scope = excluded.scope, updated_at = excluded.updated_at",
                )
                .bind(sub)
                .bind(client_id)
                .bind(scope)
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn insert_code(&self, c: &$crate::store::CodeRecord) -> $crate::store::StoreResult<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO authorization_codes (code_hash, client_id, sub, sid, redirect_uri, scope, audience, \
                     code_challenge, nonce, auth_time, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                )
                .bind(&c.code_hash)
                .bind(&c.client_id)
                .bind(&c.sub)
                .bind(&c.sid)
                .bind(&c.redirect_uri)
                .bind(&c.scope)
                .bind(&c.audience)
                .bind(&c.code_challenge)
                .bind(&c.nonce)
                .bind(c.auth_time)
                .bind(c.created_at)
                .bind(c.expires_at)
                .execute(&mut *tx)
                .await?;
                if let Some(sid) = &c.sid {
                    sqlx::query(
                        "INSERT INTO session_clients (sid, client_id, created_at) VALUES ($1, $2, $3) \
                         ON CONFLICT (sid, client_id) DO NOTHING",
                    )
                    .bind(sid)
                    .bind(&c.client_id)
                    .bind(c.created_at)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn find_codes(
                &self,
                code_hashes: &[String],
            ) -> $crate::store::StoreResult<Vec<$crate::store::FoundCode>> {
                // One prepared statement for every batch size: the hashes
                // travel as one JSON array (`Self::HASH_LIST`).
                let sql = format!(
                    "SELECT c.code_hash, c.client_id, c.sub, c.sid, c.redirect_uri, c.scope, c.audience, c.code_challenge, \
                     c.nonce, c.auth_time, c.created_at, c.expires_at, c.used_at, \
                     u.email, u.email_verified, u.name, u.picture, u.disabled_at \
                     FROM authorization_codes c JOIN users u ON u.sub = c.sub WHERE c.code_hash {}",
                    Self::HASH_LIST
                );
                let rows: Vec<$crate::store::sql::CodeRow> = sqlx::query_as(&sql)
                    .bind($crate::store::sql::json_list(code_hashes)?)
                    .fetch_all(&self.pool)
                    .await?;
                Ok(rows
                    .into_iter()
                    .map(|row| $crate::store::FoundCode { code: row.code, user: row.user, used: row.used_at.is_some() })
                    .collect())
            }

            async fn find_refreshes(
                &self,
                token_hashes: &[String],
            ) -> $crate::store::StoreResult<Vec<$crate::store::FoundRefresh>> {
                let sql = format!(
                    "SELECT t.token_hash, t.family_id, t.created_at AS token_created_at, t.expires_at AS token_expires_at, \
                     t.used_at, f.id, f.client_id, f.sub, f.sid, f.scope, f.audience, f.auth_time, f.created_at, \
                     f.expires_at, f.revoked_at, u.email, u.email_verified, u.name, u.picture, u.disabled_at \
                     FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id JOIN users u ON u.sub = f.sub \
                     WHERE t.token_hash {}",
                    Self::HASH_LIST
                );
                let rows: Vec<$crate::store::sql::RefreshRow> = sqlx::query_as(&sql)
                    .bind($crate::store::sql::json_list(token_hashes)?)
                    .fetch_all(&self.pool)
                    .await?;
                Ok(rows
                    .into_iter()
                    .map(|row| $crate::store::FoundRefresh {
                        token: $crate::store::RefreshRecord {
                            token_hash: row.token_hash,
                            family_id: row.family_id,
                            created_at: row.token_created_at,
                            expires_at: row.token_expires_at,
                        },
                        family: row.family,
                        family_revoked: row.revoked_at.is_some(),
                        user: row.user,
                        used: row.used_at.is_some(),
                    })
                    .collect())
            }

            async fn spend(
                &self,
                batch: &[$crate::store::Spend],
            ) -> $crate::store::StoreResult<Vec<$crate::store::Spent>> {
                use std::collections::HashMap;
                use $crate::store::sql::{in_list, values_list};
                use $crate::store::{SpendKind, Spent};
                let now = batch.iter().map(|s| s.now).max().unwrap_or_default();
                let mut tx = self.begin_write().await?;

                // 1. Claim every code, and every refresh token that issued a
                //    successor and whose family is live, with one UPDATE each.
                let codes: Vec<&str> = batch
                    .iter()
                    .filter(|s| s.kind == SpendKind::Code)
                    .map(|s| s.hash.as_str())
                    .collect();
                let mut claimed_codes: HashMap<String, ()> = HashMap::new();
                if !codes.is_empty() {
                    let sql = format!(
                        "UPDATE authorization_codes SET used_at = $1 \
                         WHERE used_at IS NULL AND code_hash IN ({}) RETURNING code_hash",
                        in_list(2, codes.len())
                    );
                    let mut q = sqlx::query_as::<_, (String,)>(&sql).bind(now);
                    for h in &codes {
                        q = q.bind(*h);
                    }
                    claimed_codes = q.fetch_all(&mut *tx).await?.into_iter().map(|(h,)| (h, ())).collect();
                }
                let refreshes: Vec<&str> = batch
                    .iter()
                    .filter(|s| s.kind == SpendKind::Refresh && s.issued.is_some())
                    .map(|s| s.hash.as_str())
                    .collect();
                let mut claimed_refresh: HashMap<String, String> = HashMap::new();
                if !refreshes.is_empty() {
                    let sql = format!(
                        "UPDATE refresh_tokens SET used_at = $1 \
                         WHERE used_at IS NULL AND token_hash IN ({}) \
                         AND EXISTS (SELECT 1 FROM refresh_families f \
                         WHERE f.id = refresh_tokens.family_id AND f.revoked_at IS NULL) \
                         RETURNING token_hash, family_id",
                        in_list(2, refreshes.len())
                    );
                    let mut q = sqlx::query_as::<_, (String, String)>(&sql).bind(now);
                    for h in &refreshes {
                        q = q.bind(*h);
                    }
                    claimed_refresh = q.fetch_all(&mut *tx).await?.into_iter().collect();
                }

                // 2. What the winners issued; the first item with a hash wins.
                let mut results: Vec<Option<Spent>> = vec![None; batch.len()];
                let mut families = Vec::new();
                let mut tokens = Vec::new();
                let mut code_rows = Vec::new();
                for (s, result) in batch.iter().zip(results.iter_mut()) {
                    let won = match s.kind {
                        SpendKind::Code => claimed_codes.remove(&s.hash).is_some(),
                        SpendKind::Refresh => match (&s.issued, claimed_refresh.remove(&s.hash)) {
                            (Some(issued), Some(family)) => {
                                if let Some(r) = &issued.refresh {
                                    tokens.push((r, family, issued));
                                }
                                true
                            }
                            _ => false,
                        },
                    };
                    if !won {
                        continue;
                    }
                    *result = Some(Spent::Claimed);
                    if let (SpendKind::Code, Some(issued)) = (s.kind, &s.issued) {
                        if let Some(f) = &issued.family {
                            families.push(f);
                        }
                        if let Some(r) = &issued.refresh {
                            tokens.push((r, r.family_id.clone(), issued));
                        }
                        code_rows.push((s.hash.as_str(), issued));
                    }
                }

                // 3. Written with one multi-row statement per table.
                if !families.is_empty() {
                    let sql = format!(
                        "INSERT INTO refresh_families (id, client_id, sub, sid, scope, audience, auth_time, created_at, expires_at) VALUES {}",
                        values_list(1, families.len(), 9)
                    );
                    let mut q = sqlx::query(&sql);
                    for f in &families {
                        q = q.bind(&f.id).bind(&f.client_id).bind(&f.sub).bind(&f.sid).bind(&f.scope)
                            .bind(&f.audience).bind(f.auth_time).bind(f.created_at).bind(f.expires_at);
                    }
                    q.execute(&mut *tx).await?;
                }
                if !tokens.is_empty() {
                    let sql = format!(
                        "INSERT INTO refresh_tokens (token_hash, family_id, created_at, expires_at, access_jti, access_exp) VALUES {}",
                        values_list(1, tokens.len(), 6)
                    );
                    let mut q = sqlx::query(&sql);
                    for (r, family, issued) in &tokens {
                        q = q.bind(&r.token_hash).bind(family).bind(r.created_at).bind(r.expires_at)
                            .bind(&issued.access_jti).bind(issued.access_exp);
                    }
                    q.execute(&mut *tx).await?;
                }
                if !code_rows.is_empty() {
                    // What a code issued, revoked if the code comes back.
                    let sql = format!(
                        "UPDATE authorization_codes SET family_id = v.column2, access_jti = v.column3, \
                         access_exp = CAST(v.column4 AS BIGINT) \
                         FROM (VALUES {}) AS v WHERE authorization_codes.code_hash = v.column1",
                        values_list(1, code_rows.len(), 4)
                    );
                    let mut q = sqlx::query(&sql);
                    for (hash, issued) in &code_rows {
                        q = q.bind(*hash).bind(issued.family.as_ref().map(|f| f.id.as_str()))
                            .bind(&issued.access_jti).bind(issued.access_exp);
                    }
                    q.execute(&mut *tx).await?;
                }

                // 4. The others, one by one (rare): unknown, replayed, or
                //    (a refresh token) of a family revoked meanwhile.
                let losers = batch.iter().zip(results.iter_mut()).filter(|(_, r)| r.is_none());
                for (s, result) in losers {
                    *result = Some(match s.kind {
                        SpendKind::Code => {
                            let used: Option<(Option<String>, Option<String>, Option<i64>)> = sqlx::query_as(
                                "SELECT family_id, access_jti, access_exp FROM authorization_codes WHERE code_hash = $1",
                            )
                            .bind(&s.hash)
                            .fetch_optional(&mut *tx)
                            .await?;
                            match used {
                                None => Spent::Unknown,
                                Some((family, jti, exp)) => {
                                    if let (Some(jti), Some(exp)) = (jti, exp) {
                                        sqlx::query("INSERT INTO revoked_jtis (jti, expires_at, revoked_at) VALUES ($1, $2, $3) ON CONFLICT (jti) DO NOTHING")
                                            .bind(jti).bind(exp).bind(now).execute(&mut *tx).await?;
                                    }
                                    if let Some(family) = family {
                                        $crate::store::sql::revoke_family!(tx, &family, now, "code_replay");
                                    }
                                    Spent::Replayed
                                }
                            }
                        }
                        SpendKind::Refresh => {
                            let row: Option<(String, Option<i64>)> = sqlx::query_as(
                                "SELECT family_id, used_at FROM refresh_tokens WHERE token_hash = $1",
                            )
                            .bind(&s.hash)
                            .fetch_optional(&mut *tx)
                            .await?;
                            match row {
                                None => Spent::Unknown,
                                Some((family, Some(_))) => {
                                    $crate::store::sql::revoke_family!(tx, &family, now, "refresh_reuse");
                                    Spent::Replayed
                                }
                                // Unused: a refusal (nothing spent) or a family revoked meanwhile.
                                Some((_, None)) if s.issued.is_none() => Spent::Unknown,
                                Some((_, None)) => Spent::Revoked,
                            }
                        }
                    });
                }
                tx.commit().await?;
                Ok(results.into_iter().map(|r| r.unwrap_or(Spent::Unknown)).collect())
            }

            async fn is_revoked(&self, jti: &str) -> $crate::store::StoreResult<bool> {
                let row: Option<(i64,)> = sqlx::query_as("SELECT expires_at FROM revoked_jtis WHERE jti = $1")
                    .bind(jti)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.is_some())
            }

            async fn list_users(
                &self,
                email: Option<&str>,
                after: Option<&str>,
                limit: u32,
            ) -> $crate::store::StoreResult<Vec<$crate::store::UserSummary>> {
                Ok(sqlx::query_as(
                    "SELECT sub, email, email_verified, name, picture, created_at, updated_at, disabled_at \
                     FROM users WHERE sub > $1 AND ($2 IS NULL OR lower(email) = lower($2)) \
                     ORDER BY sub LIMIT $3",
                )
                .bind(after.unwrap_or(""))
                .bind(email)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?)
            }

            async fn user_details(
                &self,
                sub: &str,
                now: i64,
            ) -> $crate::store::StoreResult<Option<$crate::store::UserDetails>> {
                let user: Option<$crate::store::UserSummary> = sqlx::query_as(
                    "SELECT sub, email, email_verified, name, picture, created_at, updated_at, disabled_at \
                     FROM users WHERE sub = $1",
                )
                .bind(sub)
                .fetch_optional(&self.pool)
                .await?;
                let Some(user) = user else {
                    return Ok(None);
                };
                let upstream_links = sqlx::query_as(
                    "SELECT issuer, subject, created_at, last_login_at FROM upstream_links WHERE sub = $1 ORDER BY created_at",
                )
                .bind(sub)
                .fetch_all(&self.pool)
                .await?;
                let sessions = sqlx::query_as(
                    "SELECT sid, auth_time, created_at, expires_at FROM sessions \
                     WHERE sub = $1 AND ended_at IS NULL AND expires_at > $2 ORDER BY created_at",
                )
                .bind(sub)
                .bind(now)
                .fetch_all(&self.pool)
                .await?;
                let consents = sqlx::query_as(
                    "SELECT client_id, scope, granted_at, updated_at FROM consents WHERE sub = $1 ORDER BY client_id",
                )
                .bind(sub)
                .fetch_all(&self.pool)
                .await?;
                let refresh_families = sqlx::query_as(
                    "SELECT id, client_id, scope, created_at, expires_at, revoked_at FROM refresh_families \
                     WHERE sub = $1 AND expires_at > $2 ORDER BY created_at",
                )
                .bind(sub)
                .bind(now)
                .fetch_all(&self.pool)
                .await?;
                Ok(Some($crate::store::UserDetails {
                    user,
                    upstream_links,
                    sessions,
                    consents,
                    refresh_families,
                }))
            }

            async fn set_user_disabled(&self, sub: &str, disabled: bool, now: i64) -> $crate::store::StoreResult<bool> {
                let mut tx = self.begin_write().await?;
                let sql = if disabled {
                    "UPDATE users SET disabled_at = COALESCE(disabled_at, $2), updated_at = $2 WHERE sub = $1"
                } else {
                    "UPDATE users SET disabled_at = NULL, updated_at = $2 WHERE sub = $1"
                };
                if disabled {
                    $crate::store::sql::queue_logouts!(tx, "s.sub = $1", sub, now);
                }
                let found = sqlx::query(sql).bind(sub).bind(now).execute(&mut *tx).await?.rows_affected() == 1;
                if found && disabled {
                    sqlx::query("UPDATE sessions SET ended_at = $2 WHERE sub = $1 AND ended_at IS NULL")
                        .bind(sub)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(found)
            }

            async fn end_user_sessions(&self, sub: &str, now: i64) -> $crate::store::StoreResult<u64> {
                let mut tx = self.begin_write().await?;
                $crate::store::sql::queue_logouts!(tx, "s.sub = $1", sub, now);
                let n = sqlx::query("UPDATE sessions SET ended_at = $2 WHERE sub = $1 AND ended_at IS NULL AND expires_at > $2")
                    .bind(sub)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                tx.commit().await?;
                Ok(n)
            }

            async fn delete_consent(
                &self,
                sub: &str,
                client_id: &str,
                now: i64,
            ) -> $crate::store::StoreResult<Option<Vec<(String, i64)>>> {
                let mut tx = self.begin_write().await?;
                let deleted = sqlx::query("DELETE FROM consents WHERE sub = $1 AND client_id = $2")
                    .bind(sub)
                    .bind(client_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if deleted == 0 {
                    return Ok(None);
                }
                let families: Vec<(String,)> = sqlx::query_as(
                    "SELECT id FROM refresh_families WHERE sub = $1 AND client_id = $2 AND revoked_at IS NULL",
                )
                .bind(sub)
                .bind(client_id)
                .fetch_all(&mut *tx)
                .await?;
                let mut revoked = Vec::new();
                for (family,) in families {
                    $crate::store::sql::revoke_family!(tx, &family, now, "consent_withdrawn");
                    revoked.extend($crate::store::sql::live_access_tokens!(tx, &family, now));
                }
                tx.commit().await?;
                Ok(Some(revoked))
            }

            async fn insert_events(&self, events: &[$crate::audit::Event]) -> $crate::store::StoreResult<()> {
                if events.is_empty() {
                    return Ok(());
                }
                // Multi-row INSERTs of a few fixed sizes
                // (`sql::fixed_chunks`): few statements per batch, and few
                // distinct ones, which stay in the connection's statement
                // cache.
                let mut tx = self.begin_write().await?;
                for chunk in $crate::store::sql::fixed_chunks(events) {
                    let sql = format!(
                        "INSERT INTO audit_events (at, type, client_id, sub, data) VALUES {}",
                        Self::rows_of_parameters(chunk.len(), 5)
                    );
                    let mut q = sqlx::query(&sql);
                    for e in chunk {
                        q = q
                            .bind(e.at)
                            .bind(e.kind.as_str())
                            .bind(e.client_id.as_deref())
                            .bind(e.sub.as_deref())
                            .bind(e.data_json());
                    }
                    q.execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn list_events(
                &self,
                f: &$crate::store::EventFilter<'_>,
                limit: u32,
            ) -> $crate::store::StoreResult<Vec<$crate::store::EventRecord>> {
                // Only the filters given are in the statement, so that the
                // planner can pick the index of one (a `$n IS NULL OR …`
                // term keeps SQLite on a walk of the whole table).
                let sql = $crate::store::sql::events_query(f);
                let mut q = sqlx::query_as::<_, (i64, i64, String, Option<String>, Option<String>, String)>(&sql)
                    .bind(f.after.unwrap_or(0))
                    .bind(i64::from(limit));
                for value in [f.kind, f.client_id, f.sub].into_iter().flatten() {
                    q = q.bind(value);
                }
                if let Some(since) = f.since {
                    q = q.bind(since);
                }
                let rows = q.fetch_all(&self.pool).await?;
                rows.into_iter()
                    .map(|(id, at, kind, client_id, sub, data)| {
                        Ok($crate::store::EventRecord {
                            data: serde_json::from_str(&data).map_err(|e| {
                                $crate::store::StoreError::Corrupt(format!("audit event {id}: {e}"))
                            })?,
                            id,
                            at,
                            kind,
                            client_id,
                            sub,
                        })
                    })
                    .collect()
            }

            async fn delete_expired(&self, now: i64, batch: i64, audit_retention: i64) -> $crate::store::StoreResult<u64> {
                let mut deleted = 0;
                for (sql, before) in $crate::store::sql::expiry_deletes(audit_retention) {
                    loop {
                        let mut tx = self.begin_write().await?;
                        let n = sqlx::query(sql)
                            .bind(now - before)
                            .bind(batch)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected();
                        tx.commit().await?;
                        deleted += n;
                        if n < batch as u64 {
                            break;
                        }
                    }
                }
                Ok(deleted)
            }

            async fn revoke_access_token(&self, jti: &str, exp: i64, now: i64) -> $crate::store::StoreResult<()> {
                sqlx::query("INSERT INTO revoked_jtis (jti, expires_at, revoked_at) VALUES ($1, $2, $3) ON CONFLICT (jti) DO NOTHING")
                    .bind(jti)
                    .bind(exp)
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn revoke_family(
                &self,
                family_id: &str,
                now: i64,
                reason: &str,
            ) -> $crate::store::StoreResult<Vec<(String, i64)>> {
                let mut tx = self.begin_write().await?;
                $crate::store::sql::revoke_family!(tx, family_id, now, reason);
                let live = $crate::store::sql::live_access_tokens!(tx, family_id, now);
                tx.commit().await?;
                Ok(live)
            }

            async fn revoked_since(&self, since: i64, now: i64) -> $crate::store::StoreResult<Vec<(String, i64)>> {
                Ok(sqlx::query_as("SELECT jti, expires_at FROM revoked_jtis WHERE revoked_at >= $1 AND expires_at > $2")
                    .bind(since)
                    .bind(now)
                    .fetch_all(&self.pool)
                    .await?)
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

/// Revokes a refresh family and the access tokens its refresh tokens came with.
macro_rules! revoke_family {
    ($tx:ident, $family:expr, $now:expr, $reason:expr) => {
        sqlx::query("UPDATE refresh_families SET revoked_at = $2, revoked_reason = $3 WHERE id = $1 AND revoked_at IS NULL")
            .bind($family)
            .bind($now)
            .bind($reason)
            .execute(&mut *$tx)
            .await?;
        sqlx::query(
            "INSERT INTO revoked_jtis (jti, expires_at, revoked_at) \
             SELECT access_jti, access_exp, $2 FROM refresh_tokens \
             WHERE family_id = $1 AND access_jti IS NOT NULL AND access_exp IS NOT NULL \
             ON CONFLICT (jti) DO NOTHING",
        )
        .bind($family)
        .bind($now)
        .execute(&mut *$tx)
        .await?;
    };
}
pub(super) use revoke_family;

/// What ending the live sessions matching `$cond` (on `sessions s`, with
/// `$1` bound to `$key`) sets off, run just before they are marked ended:
/// a back-channel logout is queued for every client with a
/// `backchannel_logout_uri` they signed in to, and the refresh-token
/// families they started are revoked with their access tokens — except
/// those granted `offline_access`, which outlive the session (Back-Channel
/// Logout 1.0 §2.7).
macro_rules! queue_logouts {
    ($tx:ident, $cond:literal, $key:expr, $now:expr) => {
        sqlx::query(concat!(
            "UPDATE refresh_families SET revoked_at = $2, revoked_reason = 'logout' \
             WHERE revoked_at IS NULL AND (' ' || scope || ' ') NOT LIKE '% offline_access %' \
             AND sid IN (SELECT s.sid FROM sessions s WHERE ",
            $cond,
            " AND s.ended_at IS NULL AND s.expires_at > $2)"
        ))
        .bind($key)
        .bind($now)
        .execute(&mut *$tx)
        .await?;
        sqlx::query(concat!(
            "INSERT INTO revoked_jtis (jti, expires_at, revoked_at) \
             SELECT rt.access_jti, rt.access_exp, $2 FROM refresh_tokens rt \
             JOIN refresh_families f ON f.id = rt.family_id \
             WHERE f.revoked_at = $2 AND f.revoked_reason = 'logout' \
             AND rt.access_jti IS NOT NULL AND rt.access_exp > $2 \
             AND f.sid IN (SELECT s.sid FROM sessions s WHERE ",
            $cond,
            " AND s.ended_at IS NULL AND s.expires_at > $2) \
             ON CONFLICT (jti) DO NOTHING"
        ))
        .bind($key)
        .bind($now)
        .execute(&mut *$tx)
        .await?;
        sqlx::query(concat!(
            "INSERT INTO logout_deliveries (sid, client_id, sub, created_at, next_attempt_at) \
             SELECT sc.sid, sc.client_id, s.sub, $2, $2 FROM sessions s \
             JOIN session_clients sc ON sc.sid = s.sid \
             JOIN clients c ON c.client_id = sc.client_id \
             WHERE ",
            $cond,
            " AND s.ended_at IS NULL AND s.expires_at > $2 AND c.backchannel_logout_uri IS NOT NULL \
             ON CONFLICT (sid, client_id) DO NOTHING"
        ))
        .bind($key)
        .bind($now)
        .execute(&mut *$tx)
        .await?;
    };
}
pub(super) use queue_logouts;

/// The access tokens issued along a family that have not expired yet, as
/// `(jti, exp)`: what a family revocation just revoked.
macro_rules! live_access_tokens {
    ($tx:ident, $family:expr, $now:expr) => {{
        let live: Vec<(String, i64)> = sqlx::query_as(
            "SELECT access_jti, access_exp FROM refresh_tokens \
             WHERE family_id = $1 AND access_jti IS NOT NULL AND access_exp > $2",
        )
        .bind($family)
        .bind($now)
        .fetch_all(&mut *$tx)
        .await?;
        live
    }};
}
pub(super) use live_access_tokens;

/// Housekeeping: each statement deletes up to `$2` rows that expired before
/// `$1` (now minus the second value, in seconds); audit events once older
/// than the retention. Used codes are kept an
/// hour past their expiry, so a late replay still revokes what they issued;
/// a family's refresh tokens go with the family (`ON DELETE CASCADE`).
pub(super) fn expiry_deletes(audit_retention: i64) -> [(&'static str, i64); 7] {
    [
        (
            "DELETE FROM login_requests WHERE state_hash IN \
         (SELECT state_hash FROM login_requests WHERE expires_at <= $1 LIMIT $2)",
            0,
        ),
        (
            "DELETE FROM sessions WHERE id_hash IN \
         (SELECT id_hash FROM sessions WHERE expires_at <= $1 LIMIT $2)",
            0,
        ),
        (
            "DELETE FROM authorization_codes WHERE code_hash IN \
         (SELECT code_hash FROM authorization_codes WHERE expires_at <= $1 LIMIT $2)",
            3600,
        ),
        (
            "DELETE FROM refresh_tokens WHERE token_hash IN \
         (SELECT token_hash FROM refresh_tokens WHERE expires_at <= $1 LIMIT $2)",
            0,
        ),
        (
            "DELETE FROM refresh_families WHERE id IN \
         (SELECT id FROM refresh_families WHERE expires_at <= $1 LIMIT $2)",
            0,
        ),
        (
            "DELETE FROM revoked_jtis WHERE jti IN \
         (SELECT jti FROM revoked_jtis WHERE expires_at <= $1 LIMIT $2)",
            0,
        ),
        (
            // Oldest first by time: a walk of the time index that stops at
            // once when nothing has expired (by id, SQLite walked the table).
            "DELETE FROM audit_events WHERE id IN \
         (SELECT id FROM audit_events WHERE at <= $1 ORDER BY at LIMIT $2)",
            audit_retention,
        ),
    ]
}

/// The events query for a filter: `$1` the cursor, `$2` the limit, then
/// one parameter per filter given, in the order type, client, user, since.
pub(super) fn events_query(f: &super::EventFilter<'_>) -> String {
    let mut sql =
        String::from("SELECT id, at, type, client_id, sub, data FROM audit_events WHERE id > $1");
    let mut n = 2;
    let mut term = |sql: &mut String, column: &str, op: &str| {
        n += 1;
        sql.push_str(&format!(" AND {column} {op} ${n}"));
    };
    if let Some(kind) = f.kind {
        term(&mut sql, "type", "=");
        // The type index leaves `token.issued` out (migration 0003): this
        // term, spelled as in the index, lets the planner use it.
        if kind != crate::audit::EventType::TokenIssued.as_str() {
            sql.push_str(" AND type <> 'token.issued'");
        }
    }
    if f.client_id.is_some() {
        term(&mut sql, "client_id", "=");
    }
    if f.sub.is_some() {
        term(&mut sql, "sub", "=");
    }
    if f.since.is_some() {
        term(&mut sql, "at", ">=");
    }
    sql.push_str(" ORDER BY id LIMIT $2");
    sql
}

/// Row counts of the multi-row INSERTs `fixed_chunks` makes, largest first.
const CHUNK_SIZES: [usize; 4] = [128, 32, 8, 1];

/// `items` split into consecutive chunks of the sizes in `CHUNK_SIZES`,
/// the largest that fits first: a statement per 128 rows of a large batch,
/// and only four distinct statements whatever the batch sizes (a chunk per
/// length would fill sqlx's statement cache and evict the hot ones).
pub(super) fn fixed_chunks<T>(mut items: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        let size = CHUNK_SIZES.into_iter().find(|&n| n <= items.len())?;
        let (chunk, rest) = items.split_at(size);
        items = rest;
        Some(chunk)
    })
}

/// A list of hashes as the one JSON array `HASH_LIST` reads.
pub(super) fn json_list(items: &[String]) -> Result<String, super::StoreError> {
    serde_json::to_string(items).map_err(|e| super::StoreError::Other(e.into()))
}

/// `$start, $start+1, …`: `n` numbered parameters for an `IN` list.
pub(super) fn in_list(start: usize, n: usize) -> String {
    let mut out = String::with_capacity(n * 5);
    for i in 0..n {
        if i > 0 {
            out.push_str(", ");
        }
        out.push('$');
        out.push_str(&(start + i).to_string());
    }
    out
}

/// `($start, …), (…)`: `rows` rows of `cols` numbered parameters each.
pub(super) fn values_list(start: usize, rows: usize, cols: usize) -> String {
    (0..rows)
        .map(|r| format!("({})", in_list(start + r * cols, cols)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The one-transaction user upsert, stamped onto each backend (it needs the
/// backend's write transaction).
macro_rules! upsert_user_once {
    ($backend:ty) => {
        impl $backend {
            async fn upsert_user_once(
                &self,
                p: &$crate::store::UpstreamProfile,
                now: i64,
            ) -> $crate::store::StoreResult<$crate::store::User> {
                let mut tx = self.begin_write().await?;
                let linked: Option<(String,)> = sqlx::query_as("SELECT sub FROM upstream_links WHERE issuer = $1 AND subject = $2")
                    .bind(&p.issuer)
                    .bind(&p.subject)
                    .fetch_optional(&mut *tx)
                    .await?;
                let sub = match linked {
                    Some((sub,)) => {
                        sqlx::query("UPDATE users SET email = $2, email_verified = $3, name = $4, picture = $5, updated_at = $6 WHERE sub = $1")
                            .bind(&sub).bind(&p.email).bind(p.email_verified).bind(&p.name).bind(&p.picture).bind(now)
                            .execute(&mut *tx).await?;
                        sqlx::query("UPDATE upstream_links SET last_login_at = $3 WHERE issuer = $1 AND subject = $2")
                            .bind(&p.issuer).bind(&p.subject).bind(now)
                            .execute(&mut *tx).await?;
                        sub
                    }
                    None => {
                        let sub = $crate::secret::random_token(16);
                        sqlx::query("INSERT INTO users (sub, email, email_verified, name, picture, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)")
                            .bind(&sub).bind(&p.email).bind(p.email_verified).bind(&p.name).bind(&p.picture).bind(now)
                            .execute(&mut *tx).await?;
                        sqlx::query("INSERT INTO upstream_links (issuer, subject, sub, created_at, last_login_at) VALUES ($1, $2, $3, $4, $4)")
                            .bind(&p.issuer).bind(&p.subject).bind(&sub).bind(now)
                            .execute(&mut *tx).await?;
                        sub
                    }
                };
                let user: $crate::store::User = sqlx::query_as($crate::store::sql::SELECT_USER)
                    .bind(&sub)
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(user)
            }
        }
    };
}
pub(super) use upsert_user_once;

pub(super) const SELECT_USER: &str =
    "SELECT sub, email, email_verified, name, picture, disabled_at FROM users WHERE sub = $1";

/// A unique-constraint violation (PostgreSQL 23505; SQLite 2067 / 1555).
pub(super) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().is_some_and(|c| c == "23505" || c == "2067" || c == "1555"))
}

#[cfg(test)]
mod tests {
    use super::fixed_chunks;

    #[test]
    fn fixed_chunks_cover_every_item_in_order_with_four_sizes() {
        for n in [0usize, 1, 7, 8, 9, 31, 32, 127, 128, 129, 300, 512] {
            let items: Vec<usize> = (0..n).collect();
            let chunks: Vec<&[usize]> = fixed_chunks(&items).collect();
            let joined: Vec<usize> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
            assert_eq!(joined, items, "{n} items");
            assert!(
                chunks.iter().all(|c| [128, 32, 8, 1].contains(&c.len())),
                "{n} items"
            );
        }
        let sizes: Vec<usize> = fixed_chunks(&[0u8; 300]).map(<[u8]>::len).collect();
        assert_eq!(sizes, [128, 128, 32, 8, 1, 1, 1, 1]);
    }
}
