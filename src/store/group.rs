//! Group commit for the single-use credentials: codes and refresh tokens
//! redeemed at the same moment are spent in one transaction.
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
//! Every request still gets its own answer and nothing is written outside a
//! transaction. If a batch fails as a whole, its items are retried one by
//! one, so one bad item cannot fail the others.

use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, oneshot};

use super::{Spend, Spent, Store, StoreError, StoreResult};

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
        let (jobs, rx) = mpsc::channel(QUEUE);
        tokio::spawn(collect(
            store,
            rx,
            Arc::new(Semaphore::new(parallel.max(1))),
        ));
        Self { jobs }
    }

    /// Spends one code or refresh token, in whichever batch it lands.
    pub async fn spend(&self, spend: Spend) -> StoreResult<Spent> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { spend, reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> StoreError {
    StoreError::Other(anyhow::anyhow!("the group-commit writer has stopped"))
}

async fn collect(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Job>, slots: Arc<Semaphore>) {
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
        let store = store.clone();
        tokio::spawn(async move {
            run(store.as_ref(), batch).await;
            drop(slot);
        });
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
