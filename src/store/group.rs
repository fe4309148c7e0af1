//! Group commit for the single-use credentials: codes and refresh tokens
//! redeemed at the same moment are spent in one transaction, and read
//! beforehand with one statement.
//!
//! Redemptions are write transactions of four or five statements. On SQLite
//! they are serialized (one writer), and with sqlx every statement is a hop
//! to the connection's worker thread, so one transaction per redemption caps
//! a busy server near a thousand per second, whatever the cores. Here the
//! requests queue on a channel; one collector takes everything that waits,
//! up to `MAX_BATCH`, and hands it to `Store::spend`, which claims and writes
//! the whole batch with one statement per table. The batch grows with the
//! load: an idle server commits each redemption alone, at once.
//!
//! The reads that come first (`GroupRead`: the code or refresh token, its
//! family and user) are batched the same way, one `SELECT … IN` per batch:
//! a hop to a connection's thread and back costs two thread wake-ups, and
//! on SQLite every commit empties the other connections' page caches, so
//! one read for many requests saves both.
//!
//! Every request still gets its own answer and nothing is written outside a
//! transaction. If a batch fails as a whole, its items are retried one by
//! one, so one bad item cannot fail the others.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, oneshot};

use super::{FoundCode, FoundRefresh, Spend, Spent, Store, StoreError, StoreResult};

/// Items per transaction at most (bound parameters stay far below the
/// limits of SQLite and PostgreSQL).
const MAX_BATCH: usize = 128;
/// Requests waiting for a batch at most; past that, senders wait.
const QUEUE: usize = 4096;

struct Job {
    spend: Spend,
    reply: oneshot::Sender<StoreResult<Spent>>,
}

/// The handle the grants spend through. Dropping the last handle ends the
/// collector once the queue is drained.
pub struct GroupCommit {
    jobs: mpsc::Sender<Job>,
}

impl GroupCommit {
    /// Starts the collector. `parallel` batches may be in flight at once:
    /// 1 for SQLite (one writer anyway), a few for PostgreSQL.
    pub fn start(store: Arc<dyn Store>, parallel: usize) -> Self {
        Self {
            jobs: collector(parallel, move |batch| {
                let store = store.clone();
                async move { run(store.as_ref(), batch).await }
            }),
        }
    }

    /// Spends one code or refresh token, in whichever batch it lands.
    pub async fn spend(&self, spend: Spend) -> StoreResult<Spent> {
        ask(&self.jobs, |reply| Job { spend, reply }).await
    }
}

/// Queues a job made around its reply channel and waits for the answer.
async fn ask<J, T>(
    jobs: &mpsc::Sender<J>,
    job: impl FnOnce(oneshot::Sender<StoreResult<T>>) -> J,
) -> StoreResult<T> {
    let (reply, answer) = oneshot::channel();
    jobs.send(job(reply)).await.map_err(|_| stopped())?;
    answer.await.map_err(|_| stopped())?
}

fn stopped() -> StoreError {
    StoreError::Other(anyhow::anyhow!("the group-commit task has stopped"))
}

/// Starts a task that runs the jobs sent to the answered channel in
/// batches: up to `MAX_BATCH` of whatever waits, `parallel` batches at once.
fn collector<J, F, Fut>(parallel: usize, run: F) -> mpsc::Sender<J>
where
    J: Send + 'static,
    F: Fn(Vec<J>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (jobs, mut rx) = mpsc::channel::<J>(QUEUE);
    let slots = Arc::new(Semaphore::new(parallel.max(1)));
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            // While every slot is busy, requests pile up in the channel: the
            // next batch takes them all.
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            let done = run(batch);
            tokio::spawn(async move {
                done.await;
                drop(slot);
            });
        }
    });
    jobs
}

/// A code or refresh token to read, and where its row goes.
enum Lookup {
    Code(String, oneshot::Sender<StoreResult<Option<FoundCode>>>),
    Refresh(String, oneshot::Sender<StoreResult<Option<FoundRefresh>>>),
}

/// The handle the grants read codes and refresh tokens through, batched.
pub struct GroupRead {
    jobs: mpsc::Sender<Lookup>,
}

impl GroupRead {
    /// Starts the collector; `parallel` reads may be in flight at once.
    pub fn start(store: Arc<dyn Store>, parallel: usize) -> Self {
        Self {
            jobs: collector(parallel, move |batch| {
                let store = store.clone();
                async move { read(store.as_ref(), batch).await }
            }),
        }
    }

    /// A code and its user, without claiming it (`Store::find_code`).
    pub async fn code(&self, hash: String) -> StoreResult<Option<FoundCode>> {
        ask(&self.jobs, |reply| Lookup::Code(hash, reply)).await
    }

    /// A refresh token, its family and user, without spending it
    /// (`Store::find_refresh`).
    pub async fn refresh(&self, hash: String) -> StoreResult<Option<FoundRefresh>> {
        ask(&self.jobs, |reply| Lookup::Refresh(hash, reply)).await
    }
}

async fn read(store: &dyn Store, batch: Vec<Lookup>) {
    let mut codes = Vec::new();
    let mut refreshes = Vec::new();
    for lookup in batch {
        match lookup {
            Lookup::Code(hash, reply) => codes.push((hash, reply)),
            Lookup::Refresh(hash, reply) => refreshes.push((hash, reply)),
        }
    }
    if !codes.is_empty() {
        answer(
            codes,
            |h| async move { store.find_codes(&h).await },
            |f| &f.code.code_hash,
        )
        .await;
    }
    if !refreshes.is_empty() {
        answer(
            refreshes,
            |h| async move { store.find_refreshes(&h).await },
            |f| &f.token.token_hash,
        )
        .await;
    }
}

/// Reads one kind of row for a batch and answers each request with the
/// row of its hash (the same hash twice gets the same row twice). A failed
/// batch is read again one by one, so each request gets its own answer.
async fn answer<T, F>(
    requests: Vec<(String, oneshot::Sender<StoreResult<Option<T>>>)>,
    find: impl Fn(Vec<String>) -> F,
    hash_of: impl Fn(&T) -> &String,
) where
    T: Clone,
    F: std::future::Future<Output = StoreResult<Vec<T>>>,
{
    let hashes: Vec<String> = requests.iter().map(|(h, _)| h.clone()).collect();
    match find(hashes).await {
        Ok(rows) => {
            let rows: HashMap<String, T> = rows
                .into_iter()
                .map(|row| (hash_of(&row).clone(), row))
                .collect();
            for (hash, reply) in requests {
                // A requester that went away no longer needs its answer.
                let _ = reply.send(Ok(rows.get(&hash).cloned()));
            }
        }
        Err(e) if requests.len() == 1 => {
            if let Some((_, reply)) = requests.into_iter().next() {
                let _ = reply.send(Err(e));
            }
        }
        Err(_) => {
            for (hash, reply) in requests {
                let result = find(vec![hash]).await.map(|rows| rows.into_iter().next());
                let _ = reply.send(result);
            }
        }
    }
}

async fn run(store: &dyn Store, batch: Vec<Job>) {
    let (spends, replies): (Vec<Spend>, Vec<_>) =
        batch.into_iter().map(|j| (j.spend, j.reply)).unzip();
    match store.spend(&spends).await {
        Ok(results) if results.len() == spends.len() => {
            for (reply, result) in replies.into_iter().zip(results) {
                // A requester that went away no longer needs its answer.
                let _ = reply.send(Ok(result));
            }
        }
        Ok(_) => {
            for reply in replies {
                let _ = reply.send(Err(StoreError::Other(anyhow::anyhow!(
                    "the store answered a batch with the wrong number of results"
                ))));
            }
        }
        Err(e) if spends.len() == 1 => {
            if let Some(reply) = replies.into_iter().next() {
                let _ = reply.send(Err(e));
            }
        }
        Err(_) => {
            for (spend, reply) in spends.iter().zip(replies) {
                let result = store
                    .spend(std::slice::from_ref(spend))
                    .await
                    .and_then(|r| r.into_iter().next().ok_or_else(stopped));
                let _ = reply.send(result);
            }
        }
    }
}
