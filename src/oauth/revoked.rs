//! The revoked access tokens (`jti`s), held in memory so that checking an
//! access token (`/userinfo`, `/introspect`) needs no database query.
//!
//! Every instance polls the `revoked_jtis` table (`poll`, every second, from
//! `serve`): the rows revoked since its last look, with an overlap of
//! `OVERLAP` seconds for transactions still committing when it looked and
//! for small clock differences between instances, and the whole table once a
//! minute. A revocation made by this instance is in its own set at once; one
//! made by another instance (or by a replay detected in a grant) is seen
//! within a poll. Entries leave with the token's own expiry.

use std::collections::HashMap;
use std::sync::RwLock;

use crate::store::{Store, StoreResult};

/// Seconds re-read before the last poll.
const OVERLAP: i64 = 10;
/// Seconds between full reloads.
const FULL_RELOAD: i64 = 60;

#[derive(Default)]
pub struct RevokedJtis {
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    /// jti → the token's `exp`.
    jtis: HashMap<String, i64>,
    last_poll: Option<i64>,
    last_full: i64,
}

impl RevokedJtis {
    pub fn is_revoked(&self, jti: &str) -> bool {
        self.read().jtis.contains_key(jti)
    }

    /// Records revocations this instance just wrote.
    pub fn insert(&self, revoked: impl IntoIterator<Item = (String, i64)>) {
        let mut inner = self.write();
        inner.jtis.extend(revoked);
    }

    /// Brings the set up to date with the database.
    pub async fn poll(&self, store: &dyn Store, now: i64) -> StoreResult<()> {
        let (since, full) = {
            let inner = self.read();
            match inner.last_poll {
                Some(last) if now - inner.last_full < FULL_RELOAD => (last - OVERLAP, false),
                _ => (i64::MIN, true),
            }
        };
        let rows = store.revoked_since(since, now).await?;
        let mut inner = self.write();
        if full {
            inner.jtis = rows.into_iter().collect();
            inner.last_full = now;
        } else {
            inner.jtis.retain(|_, exp| *exp > now);
            inner.jtis.extend(rows);
        }
        inner.last_poll = Some(now);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.read().jtis.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
