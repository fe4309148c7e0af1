//! Database faults under a running server. PostgreSQL: Tessera talks to the
//! database through a TCP proxy the test controls, and the test cuts it
//! (the shared cluster is never stopped). SQLite: another connection holds
//! the file's write lock. Either way requests that need the database get
//! 503 `temporarily_unavailable`, health checks say so, nothing panics, and
//! the service comes back by itself once the database does.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::common::{Backend, TestApp, TestEnv, error_of, start};

/// A TCP proxy to `target` that can be cut (every connection dropped, new
/// ones closed at once) and restored.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    cuts: watch::Sender<u64>,
}

impl Proxy {
    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let (cuts, _) = watch::channel(0u64);
        let (up2, cuts2) = (up.clone(), cuts.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if !up2.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let target = target.clone();
                let mut cut = cuts2.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Self { port, up, cuts }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cuts.send_modify(|n| *n += 1);
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

async fn status(app: &TestApp, path: &str) -> u16 {
    app.http
        .get(format!("{}{path}", app.base))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn create_client(app: &TestApp) -> reqwest::Response {
    app.admin_request(reqwest::Method::POST, "/admin/clients")
        .json(&json!({"grant_types": ["client_credentials"], "scope": "x"}))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_lost_and_regained() {
    let env = Arc::new(TestEnv::new(Backend::Postgres).await);
    let mut url = url::Url::parse(&env.database_url).unwrap();
    let target = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
    let proxy = Proxy::start(target).await;
    url.set_port(Some(proxy.port)).unwrap();
    let extra = [
        ("TESSERA_DATABASE_URL", url.as_str()),
        ("TESSERA_DATABASE_CONNECT_TIMEOUT", "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let app = start(env, extra).await;
    let (id, secret) = app.machine_client("x").await;
    let cc = [("grant_type", "client_credentials")];
    assert_eq!(app.token_basic(&id, &secret, &cc).await.status(), 200);

    proxy.cut();
    // Past the client cache's second, /token needs the database.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (status_code, code, _) = error_of(app.token_basic(&id, &secret, &cc).await).await;
    assert_eq!(
        (status_code, code.as_str()),
        (503, "temporarily_unavailable")
    );
    assert_eq!(status(&app, "/healthz").await, 503);
    assert_eq!(status(&app, "/readyz").await, 503);
    let r = create_client(&app).await;
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    // What needs no database still works.
    assert_eq!(status(&app, "/jwks").await, 200);

    proxy.restore();
    app.eventually(|| async { status(&app, "/healthz").await == 200 })
        .await;
    assert_eq!(app.token_basic(&id, &secret, &cc).await.status(), 200);
    assert_eq!(create_client(&app).await.status(), 201);
    assert_eq!(status(&app, "/readyz").await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_locked_and_released() {
    use sqlx::Connection;
    let env = Arc::new(TestEnv::new(Backend::Sqlite).await);
    let extra = [("TESSERA_DATABASE_STATEMENT_TIMEOUT", "1")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let app = start(env.clone(), extra).await;
    let (id, secret) = app.machine_client("x").await;
    let cc = [("grant_type", "client_credentials")];

    // Another process holds the write lock.
    let mut other = sqlx::SqliteConnection::connect(&env.database_url)
        .await
        .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .unwrap();
    let r = create_client(&app).await;
    assert_eq!(r.status(), 503, "a write waits the busy timeout, then 503");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    // Reads go on (WAL): tokens are still issued.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(app.token_basic(&id, &secret, &cc).await.status(), 200);

    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    assert_eq!(create_client(&app).await.status(), 201);
}
