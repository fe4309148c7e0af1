//! Running the server: both listeners in one process, the key-maintenance
//! task, and graceful shutdown.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::app::{App, AppState, Clock, SystemClock};
use crate::config::Config;
use crate::token::rotation::{self, Schedule};

/// Serves the public and admin routers on pre-bound listeners until
/// `shutdown` completes, then lets in-flight requests finish.
pub async fn run(
    app: Arc<App>,
    public: TcpListener,
    admin: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let state = AppState(app.clone());
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };

    let maintenance = tokio::spawn(maintain_keys(app.clone(), stopped(stop_rx.clone())));
    let revocations = tokio::spawn(follow_revocations(app.clone(), stopped(stop_rx.clone())));
    let housekeeping = tokio::spawn(housekeeping(app.clone(), stopped(stop_rx.clone())));
    let mut logouts = tokio::spawn(deliver_logouts(app.clone(), stopped(stop_rx.clone())));
    let discovery = app
        .upstream
        .clone()
        .map(crate::upstream::Upstream::spawn_discovery);
    // Handlers can see the peer address (`ConnectInfo<SocketAddr>`).
    let admin_addr = admin.local_addr()?;
    let (public_router, admin_router) = crate::http::routers(state, admin_addr);
    let public_server = axum::serve(
        public,
        public_router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(stopped(stop_rx.clone()));
    let admin_server = axum::serve(
        admin,
        admin_router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(stopped(stop_rx));
    let (public_result, admin_result) =
        tokio::join!(public_server.into_future(), admin_server.into_future());
    maintenance.abort();
    revocations.abort();
    housekeeping.abort();
    // Deliveries in flight finish and record their outcome (stopped
    // halfway, they would stay leased for a minute); each is bounded by the
    // delivery timeout.
    let drain = crate::oauth::backchannel::TIMEOUT + std::time::Duration::from_secs(5);
    if tokio::time::timeout(drain, &mut logouts).await.is_err() {
        logouts.abort();
    }
    if let Some(d) = discovery {
        d.abort();
    }
    app.audit.flush().await;
    public_result?;
    admin_result?;
    Ok(())
}

/// Every few seconds: apply due key transitions (pending → active, retiring
/// → retired, scheduled rotation) under the database lock, then pick up any
/// change another instance or the CLI made.
async fn maintain_keys(app: Arc<App>, stop: impl Future<Output = ()>) {
    let schedule = Schedule {
        publish_before_use: app.config.jwks_max_age,
        max_token_ttl: app.config.access_token_ttl.max(app.config.id_token_ttl),
        rotation_period: app.config.key_rotation_period,
    };
    let mut tick = ticks(tokio::time::Instant::now(), app.config.key_poll_interval);
    tokio::pin!(stop);
    while next_tick(&mut tick, &mut stop).await {
        let now = app.now();
        let dir = app.keys.dir().clone();
        let algs = app.signing_algs.clone();
        let planned = app
            .store
            .change_keys(&move |records| rotation::maintain(records, &algs, schedule, &dir, now))
            .await;
        match planned {
            Ok(changes) => {
                crate::audit::key_changes(
                    &app.audit,
                    &changes,
                    crate::audit::EventType::KeyRotated,
                    None,
                    now,
                );
                for change in changes {
                    if let crate::store::KeyChange::Transition {
                        kid,
                        to: crate::store::KeyState::Retired,
                        ..
                    } = change
                    {
                        app.keys.dir().remove(&kid);
                    }
                }
            }
            Err(e) => tracing::warn!(
                error = format!("{e:#}"),
                "key maintenance failed; will retry"
            ),
        }
        if let Err(e) = app.keys.reload(app.store.as_ref()).await {
            tracing::warn!(
                error = format!("{e:#}"),
                "reloading signing keys failed; still signing with the previous set"
            );
        }
    }
}

/// Every second: the access tokens revoked by any instance (or by a replay
/// a grant detected) join this instance's in-memory revoked set.
async fn follow_revocations(app: Arc<App>, stop: impl Future<Output = ()>) {
    let mut tick = ticks(tokio::time::Instant::now(), REVOCATION_POLL);
    tokio::pin!(stop);
    while next_tick(&mut tick, &mut stop).await {
        if let Err(e) = app.revoked.poll(app.store.as_ref(), app.now()).await {
            tracing::warn!(
                error = format!("{e:#}"),
                "reading revoked tokens failed; will retry"
            );
        }
    }
}

/// Every `HOUSEKEEPING` (from a random point, so instances started together
/// do not run in step): deletes expired codes, pending logins, sessions,
/// refresh tokens and families, and revoked JTIs, in small batches.
async fn housekeeping(app: Arc<App>, stop: impl Future<Output = ()>) {
    let offset = std::time::Duration::from_millis(rand::random::<u64>() % 60_000);
    let mut tick = ticks(tokio::time::Instant::now() + offset, HOUSEKEEPING);
    tokio::pin!(stop);
    while next_tick(&mut tick, &mut stop).await {
        let retention = i64::try_from(app.config.audit_retention.as_secs()).unwrap_or(i64::MAX);
        match app.store.delete_expired(app.now(), 500, retention).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "deleted expired records"),
            Err(e) => tracing::warn!(error = format!("{e:#}"), "housekeeping failed; will retry"),
        }
    }
}

/// Every second, and at once when this instance queued one: back-channel
/// logouts that are due go out (`oauth::backchannel`).
async fn deliver_logouts(app: Arc<App>, stop: impl Future<Output = ()>) {
    let mut tick = ticks(tokio::time::Instant::now(), LOGOUT_POLL);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = stop.as_mut() => return,
            _ = tick.tick() => {}
            () = app.logouts_queued.notified() => {}
        }
        loop {
            match crate::oauth::backchannel::deliver_due(&app).await {
                // A full claim: there may be more waiting.
                Ok(n) if n >= crate::oauth::backchannel::CLAIM as usize => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "reading back-channel logouts failed; will retry"
                    );
                    break;
                }
            }
        }
    }
}

/// How often each instance looks for back-channel logouts to deliver.
pub const LOGOUT_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// How often each instance deletes expired records.
pub const HOUSEKEEPING: std::time::Duration = std::time::Duration::from_secs(300);

/// The clock of a background task: from `start`, every `period`; a late
/// tick is not made up for.
fn ticks(start: tokio::time::Instant, period: std::time::Duration) -> tokio::time::Interval {
    let mut tick = tokio::time::interval_at(start, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick
}

/// Waits for the next tick; `false` once the server is stopping.
async fn next_tick(
    tick: &mut tokio::time::Interval,
    stop: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
) -> bool {
    tokio::select! {
        () = stop.as_mut() => false,
        _ = tick.tick() => true,
    }
}

/// How often each instance reads the revocations made elsewhere.
pub const REVOCATION_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// `tessera serve`: binds the configured addresses and runs until SIGTERM or Ctrl-C.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let public = TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {} (TESSERA_LISTEN): {e}", config.listen))?;
    let admin = TcpListener::bind(config.admin_listen).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {} (TESSERA_ADMIN_LISTEN): {e}",
            config.admin_listen
        )
    })?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let app = Arc::new(App::start(config, clock).await?);
    tracing::info!(
        issuer = %app.config.issuer,
        public = %public.local_addr()?,
        admin = %admin.local_addr()?,
        millis = started.elapsed().as_millis() as u64,
        "tessera is serving"
    );
    match &app.config.admin_token {
        None => {
            tracing::warn!("TESSERA_ADMIN_TOKEN is unset: the admin API answers 401 to everything")
        }
        Some(t) if t.expose_secret().len() < 32 => {
            tracing::warn!(
                "TESSERA_ADMIN_TOKEN is short: use at least 32 random characters (openssl rand -base64 32)"
            )
        }
        Some(_) => {}
    }
    run(app, public, admin, shutdown_signal()).await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
