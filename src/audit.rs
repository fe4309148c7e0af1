//! Audit events: one structured record for every security-relevant action
//! (sign-ins, consents, tokens issued and revoked, replays, client and key
//! changes, failed authentications, admin actions on users). Each event is
//! logged at once (target `tessera::audit`, one line, JSON data) and written
//! to the `audit_events` table by a background writer that batches what
//! arrives together into one INSERT, so the grants do not wait on it.
//! Events never carry secrets, codes or tokens: only identifiers (`jti`,
//! `sid`, `kid`, client ids, subjects) and reasons.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::store::Store;

macro_rules! event_types {
    ($($variant:ident => $name:literal,)*) => {
        /// What happened. The names are the `type` of the admin API's events.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum EventType {
            $($variant,)*
        }

        impl EventType {
            pub const ALL: &'static [EventType] = &[$(EventType::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(EventType::$variant => $name,)*
                }
            }

            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|t| t.as_str() == s)
            }
        }
    };
}

event_types! {
    LoginSucceeded => "login.succeeded",
    LoginFailed => "login.failed",
    ConsentGranted => "consent.granted",
    ConsentDenied => "consent.denied",
    ConsentWithdrawn => "consent.withdrawn",
    TokenIssued => "token.issued",
    TokenReplayed => "token.replayed",
    TokenRevoked => "token.revoked",
    Logout => "logout",
    BackchannelLogoutFailed => "backchannel_logout.failed",
    ClientCreated => "client.created",
    ClientUpdated => "client.updated",
    ClientDeleted => "client.deleted",
    ClientSecretRotated => "client.secret_rotated",
    ClientAuthFailed => "client.auth_failed",
    KeyCreated => "key.created",
    KeyRotated => "key.rotated",
    KeyStateChanged => "key.state_changed",
    AdminAuthFailed => "admin.auth_failed",
    UserDisabled => "user.disabled",
    UserEnabled => "user.enabled",
    UserSessionsEnded => "user.sessions_ended",
}

/// One event, as recorded.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub at: i64,
    pub kind: EventType,
    pub client_id: Option<String>,
    pub sub: Option<String>,
    /// Further fields, never secrets or tokens: the members of a JSON
    /// object written as they are added (`"k":v,"k2":v2`), so that an event
    /// on the token path costs one buffer, not a map of owned values.
    data: Vec<u8>,
}

impl Event {
    pub fn new(kind: EventType, at: i64) -> Self {
        Self {
            at,
            kind,
            client_id: None,
            sub: None,
            data: Vec::new(),
        }
    }

    pub fn client(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    pub fn subject(mut self, sub: impl Into<String>) -> Self {
        self.sub = Some(sub.into());
        self
    }

    /// Adds a field; each key is added once.
    pub fn with(mut self, key: &str, value: impl serde::Serialize) -> Self {
        if !self.data.is_empty() {
            self.data.push(b',');
        }
        // Writing strings, numbers and booleans into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.data, key);
        self.data.push(b':');
        let _ = serde_json::to_writer(&mut self.data, &value);
        self
    }

    /// The `data` column and log field: a JSON object.
    pub fn data_json(&self) -> String {
        let mut out = String::with_capacity(self.data.len() + 2);
        out.push('{');
        out.push_str(std::str::from_utf8(&self.data).unwrap_or_default());
        out.push('}');
        out
    }
}

/// Who made an administrative change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Actor {
    AdminApi,
    Cli,
}

impl Actor {
    pub fn as_str(self) -> &'static str {
        match self {
            Actor::AdminApi => "admin_api",
            Actor::Cli => "cli",
        }
    }
}

/// An administrative change's event sink: the events it records carry
/// `"actor"` (admin API or CLI).
#[derive(Clone, Copy)]
pub struct By<'a> {
    pub audit: &'a Audit,
    pub actor: Actor,
}

impl By<'_> {
    pub fn record(&self, event: Event) {
        self.audit.record(event.with("actor", self.actor.as_str()));
    }
}

enum Msg {
    Event(Event),
    /// Answered once everything queued before it is written.
    Flush(oneshot::Sender<()>),
}

/// The handle every part of the server records events through.
#[derive(Clone)]
pub struct Audit {
    queue: mpsc::Sender<Msg>,
    dropped: Arc<std::sync::atomic::AtomicU64>,
}

/// Events waiting for the writer; past this the newest are logged but not
/// stored (and counted), rather than holding up requests.
const QUEUE: usize = 16_384;
/// Events per transaction.
const BATCH: usize = 512;
/// How long the first event of a batch waits for others.
const LINGER: std::time::Duration = std::time::Duration::from_millis(20);

impl Audit {
    /// Starts the writer on the current runtime.
    pub fn start(store: Arc<dyn Store>) -> Self {
        let (queue, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write(store, rx));
        Self {
            queue,
            dropped: Arc::default(),
        }
    }

    /// Logs the event and queues it for the database.
    pub fn record(&self, event: Event) {
        tracing::info!(
            target: "tessera::audit",
            r#type = event.kind.as_str(),
            client_id = event.client_id.as_deref(),
            sub = event.sub.as_deref(),
            data = %event.data_json(),
            "audit"
        );
        if let Err(e) = self.queue.try_send(Msg::Event(event)) {
            self.dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if matches!(e, mpsc::error::TrySendError::Full(_)) {
                tracing::warn!("audit queue full: an event was logged but not stored");
            }
        }
    }

    /// Waits until every event recorded before this call is written (or
    /// its write failed).
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.queue.send(Msg::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Events that were logged but could not be stored.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The writer: takes everything waiting (up to `BATCH`) and writes it in
/// one statement; a failed write is retried a few times with back-off, then
/// given up (the events are in the log already).
async fn write(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Msg>) {
    let mut events = Vec::with_capacity(BATCH);
    let mut flushes = Vec::new();
    loop {
        let Some(first) = rx.recv().await else {
            return;
        };
        // An event waits a moment for others, so that a busy server
        // writes them a batch per commit rather than a commit each; a
        // flush is answered at once.
        if matches!(first, Msg::Event(_)) && rx.len() < BATCH {
            tokio::time::sleep(LINGER).await;
        }
        let mut next = Some(first);
        while let Some(msg) = next {
            match msg {
                Msg::Event(e) => events.push(e),
                Msg::Flush(f) => flushes.push(f),
            }
            next = if events.len() < BATCH {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        if !events.is_empty() {
            store_with_retries(store.as_ref(), &events).await;
            events.clear();
        }
        for f in flushes.drain(..) {
            let _ = f.send(());
        }
    }
}

async fn store_with_retries(store: &dyn Store, events: &[Event]) {
    let mut delay = std::time::Duration::from_millis(100);
    for attempt in 1..=5 {
        match store.insert_events(events).await {
            Ok(()) => return,
            Err(e) if attempt < 5 => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    events = events.len(),
                    "storing audit events failed; retrying"
                );
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => tracing::error!(
                error = format!("{e:#}"),
                events = events.len(),
                "storing audit events failed; they are only in the log"
            ),
        }
    }
}

/// Records key changes: each new key as `inserted` (`key.created` at
/// start-up, `key.rotated` for a rotation), each state change as
/// `key.state_changed`.
pub fn key_changes(
    audit: &Audit,
    changes: &[crate::store::KeyChange],
    inserted: EventType,
    actor: Option<Actor>,
    now: i64,
) {
    for change in changes {
        let event = match change {
            crate::store::KeyChange::Insert(r) => Event::new(inserted, now)
                .with("kid", r.kid.as_str())
                .with("alg", r.alg.as_str())
                .with("state", r.state.as_str()),
            crate::store::KeyChange::Transition { kid, to, .. } => {
                Event::new(EventType::KeyStateChanged, now)
                    .with("kid", kid.as_str())
                    .with("state", to.as_str())
            }
        };
        match actor {
            Some(actor) => By { audit, actor }.record(event),
            None => audit.record(event),
        }
    }
}

pub const DEFAULT_PAGE: u32 = 100;
pub const MAX_PAGE: u32 = 1000;

#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("type must be one of: {}", EventType::ALL.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", "))]
    UnknownType,
    #[error("since must be unix seconds or an RFC 3339 time, like 2026-11-27T00:00:00Z")]
    BadSince,
    #[error("cursor is not one this server gave")]
    BadCursor,
    #[error("limit must be a whole number from 1 to 1000")]
    BadLimit,
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// What `GET /admin/events` may ask for.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only events of this type (e.g. `token.issued`).
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub kind: Option<String>,
    /// Only events about this client.
    pub client_id: Option<String>,
    /// Only events about this user.
    pub sub: Option<String>,
    /// Only events at or after this time: Unix seconds or RFC 3339.
    pub since: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// From 1 to 1000; 100 when omitted.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
}

/// A page of events, oldest first, and the cursor of the next page (`None`
/// on the last one).
pub async fn list(
    store: &dyn Store,
    q: &ListQuery,
) -> Result<(Vec<crate::store::EventRecord>, Option<String>), ListError> {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let given = |v: &Option<String>| v.as_deref().filter(|v| !v.is_empty()).map(str::to_owned);
    let kind = match given(&q.kind) {
        Some(k) => Some(EventType::parse(&k).ok_or(ListError::UnknownType)?.as_str()),
        None => None,
    };
    let since = match given(&q.since) {
        Some(s) => Some(parse_time(&s).ok_or(ListError::BadSince)?),
        None => None,
    };
    let after = match given(&q.cursor) {
        Some(c) => Some(
            URL_SAFE_NO_PAD
                .decode(c)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.parse::<i64>().ok())
                .ok_or(ListError::BadCursor)?,
        ),
        None => None,
    };
    // An empty `limit` is not a number: refused like any other.
    let limit = match q.limit.clone() {
        None => DEFAULT_PAGE,
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or(ListError::BadLimit)?,
    };
    let (client_id, sub) = (given(&q.client_id), given(&q.sub));
    let filter = crate::store::EventFilter {
        kind,
        client_id: client_id.as_deref(),
        sub: sub.as_deref(),
        since,
        after,
    };
    let mut page = store.list_events(&filter, limit + 1).await?;
    let more = page.len() > limit as usize;
    page.truncate(limit as usize);
    let next = more
        .then(|| {
            page.last()
                .map(|e| URL_SAFE_NO_PAD.encode(e.id.to_string()))
        })
        .flatten();
    Ok((page, next))
}

/// Unix seconds or an RFC 3339 date-time.
fn parse_time(s: &str) -> Option<i64> {
    if let Ok(n) = s.parse::<i64>() {
        return Some(n);
    }
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(time::OffsetDateTime::unix_timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_round_trips_by_name() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(*t));
        }
        assert_eq!(EventType::parse("token.minted"), None);
    }

    #[test]
    fn since_is_unix_seconds_or_rfc3339() {
        assert_eq!(parse_time("1700000000"), Some(1_700_000_000));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Some(1_700_000_000));
        assert_eq!(parse_time("2023-11-14T23:13:20+01:00"), Some(1_700_000_000));
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time("2023-11-14"), None);
    }

    #[test]
    fn data_is_a_json_object() {
        let e = Event::new(EventType::TokenIssued, 7)
            .client("c")
            .with("grant_type", "refresh_token")
            .with("refresh", true);
        assert_eq!(
            e.data_json(),
            r#"{"grant_type":"refresh_token","refresh":true}"#
        );
    }
}
