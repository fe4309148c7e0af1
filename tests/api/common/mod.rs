//! Test harness: a real Tessera on port 0 (both listeners), a fresh
//! database per test (SQLite file or a PostgreSQL database of its own,
//! dropped afterwards), and a reqwest client with redirects off.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tessera::app::{App, SystemClock};
use tessera::config::Config;
use tokio::net::TcpListener;

pub mod fake_idp;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs a test body on both databases: `both!(name)` expects
/// `async fn name(backend: Backend)` in scope.
#[macro_export]
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::common::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::common::Backend::Postgres).await
            }
        }
    };
}

/// A database and keys folder of one test; dropped with it.
pub struct TestEnv {
    pub database_url: String,
    pub keys_dir: std::path::PathBuf,
    _dir: tempfile::TempDir,
    pg_database: Option<String>,
}

pub fn postgres_admin_url() -> String {
    std::env::var("TESSERA_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn with_database(url: &str, name: &str) -> String {
    let mut u = url::Url::parse(url).expect("TESSERA_TEST_POSTGRES_URL is a URL");
    u.set_path(&format!("/{name}"));
    u.to_string()
}

impl TestEnv {
    pub async fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let keys_dir = dir.path().join("keys");
        std::fs::create_dir(&keys_dir).unwrap();
        let (database_url, pg_database) = match backend {
            Backend::Sqlite => (
                format!("sqlite://{}", dir.path().join("tessera.db").display()),
                None,
            ),
            Backend::Postgres => {
                use sqlx::Connection;
                let admin = postgres_admin_url();
                let name = format!(
                    "tessera_test_{}",
                    tessera::secret::random_token(9)
                        .to_lowercase()
                        .replace(['-', '_'], "x")
                );
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("PostgreSQL at {admin} (TESSERA_TEST_POSTGRES_URL): {e}")
                    });
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                (with_database(&admin, &name), Some(name))
            }
        };
        Self {
            database_url,
            keys_dir,
            _dir: dir,
            pg_database,
        }
    }

    /// The `TESSERA_*` variables a server or the CLI of this test uses.
    pub fn vars(&self) -> HashMap<String, String> {
        HashMap::from([
            ("TESSERA_DATABASE_URL".into(), self.database_url.clone()),
            (
                "TESSERA_KEYS_DIR".into(),
                self.keys_dir.display().to_string(),
            ),
            ("TESSERA_ADMIN_TOKEN".into(), ADMIN_TOKEN.into()),
        ])
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let Some(name) = self.pg_database.take() else {
            return;
        };
        // Drop runs inside the test's runtime: use a thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                use sqlx::Connection;
                if let Ok(mut conn) = sqlx::PgConnection::connect(&postgres_admin_url()).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

pub struct TestApp {
    pub base: String,
    pub admin: String,
    pub http: reqwest::Client,
    pub env: Arc<TestEnv>,
    pub extra: HashMap<String, String>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, &[]).await
}

pub async fn spawn_app_with(backend: Backend, extra: &[(&str, &str)]) -> TestApp {
    let env = Arc::new(TestEnv::new(backend).await);
    let extra = extra
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    start(env, extra).await
}

/// Starts a server on an existing database and keys folder.
pub async fn start(env: Arc<TestEnv>, extra: HashMap<String, String>) -> TestApp {
    let public = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://127.0.0.1:{}", public.local_addr().unwrap().port());
    let admin_base = format!("http://127.0.0.1:{}", admin.local_addr().unwrap().port());
    let mut vars = env.vars();
    vars.insert("TESSERA_ISSUER".into(), base.clone());
    vars.extend(extra.clone());
    let mut config = Config::from_sources(None, &vars).unwrap();
    config.key_poll_interval = Duration::from_millis(200);
    let app = Arc::new(App::start(config, Arc::new(SystemClock)).await.unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel();
    let handle = tokio::spawn(async move {
        tessera::serve::run(app, public, admin, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    TestApp {
        base,
        admin: admin_base,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_store(true)
            .build()
            .unwrap(),
        env,
        extra,
        shutdown: Some(tx),
        handle: Some(handle),
    }
}

/// Sends a request and reads its answer's JSON (any status).
async fn json_of(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

impl TestApp {
    /// A server this test does not run in-process (a child process): the
    /// same helpers drive it.
    pub fn external(base: String, admin: String, env: Arc<TestEnv>) -> TestApp {
        TestApp {
            base,
            admin,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .cookie_store(true)
                .build()
                .unwrap(),
            env,
            extra: HashMap::new(),
            shutdown: None,
            handle: None,
        }
    }

    /// Stops this server (graceful) and starts another on the same database and keys.
    pub async fn restart(mut self) -> TestApp {
        self.stop().await;
        start(self.env.clone(), self.extra.clone()).await
    }

    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.unwrap();
        }
    }

    pub fn admin_request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.admin))
            .bearer_auth(ADMIN_TOKEN)
    }

    /// An admin API call without a body, its answer's JSON (any status).
    pub async fn admin_json(&self, method: reqwest::Method, path: &str) -> Value {
        json_of(self.admin_request(method, path)).await
    }

    /// Registers a client through the admin API; panics unless 201.
    pub async fn create_client(&self, metadata: Value) -> Value {
        let r = self
            .admin_request(reqwest::Method::POST, "/admin/clients")
            .json(&metadata)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        r.json().await.unwrap()
    }

    /// A confidential machine-to-machine client with the given scope.
    pub async fn machine_client(&self, scope: &str) -> (String, String) {
        let c = self
            .create_client(json!({"client_name": "svc", "grant_types": ["client_credentials"], "scope": scope}))
            .await;
        (
            c["client_id"].as_str().unwrap().to_owned(),
            c["client_secret"].as_str().unwrap().to_owned(),
        )
    }

    pub async fn token_basic(
        &self,
        id: &str,
        secret: &str,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        self.http
            .post(format!("{}/token", self.base))
            .basic_auth(id, Some(secret))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// A browser's GET of a public path: with an `Origin` header.
    pub async fn get_from_origin(&self, path: &str, origin: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .header("origin", origin)
            .send()
            .await
            .unwrap()
    }

    pub async fn jwks(&self) -> Value {
        json_of(self.http.get(format!("{}/jwks", self.base))).await
    }

    pub fn kids(jwks: &Value) -> Vec<String> {
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Runs the real `tessera` binary against this test's database and keys.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default());
        for (k, v) in self.env.vars() {
            cmd.env(k, v);
        }
        for (k, v) in &self.extra {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    /// Waits until `check` holds (key changes are polled every 200 ms in tests).
    pub async fn eventually<F, Fut>(&self, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        for _ in 0..100 {
            if check().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("condition not reached within 10 s");
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Verifies a JWT as a resource server would: the `kid` found in the
/// published JWKS, its algorithm, `typ`, issuer and audience checked.
pub fn verify_jwt(
    token: &str,
    jwks: &Value,
    issuer: &str,
    audience: &str,
    typ: &str,
) -> (jsonwebtoken::Header, Value) {
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some(typ));
    let kid = header.kid.clone().expect("kid");
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks.clone()).unwrap();
    let jwk = set
        .find(&kid)
        .unwrap_or_else(|| panic!("kid {kid} is not in the JWKS"));
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut v = jsonwebtoken::Validation::new(header.alg);
    v.set_issuer(&[issuer]);
    v.set_audience(&[audience]);
    v.set_required_spec_claims(&["exp", "iat", "iss", "sub", "aud"]);
    v.leeway = 5;
    let data = jsonwebtoken::decode::<Value>(token, &key, &v).unwrap();
    (data.header, data.claims)
}

pub async fn error_of(r: reqwest::Response) -> (u16, String, reqwest::header::HeaderMap) {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body: Value = r.json().await.unwrap();
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
        headers,
    )
}
