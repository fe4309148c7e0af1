//! `bench-soak`: the load and soak run (`bench/soak.sh`).
//!
//! Starts a small OpenID provider in-process (the tests' fake Google,
//! `tests/api/common/fake_idp.rs`, signing in 500 different users in turn),
//! runs the real `tessera` binary against it as a child process, registers
//! clients through the admin API, then lets WORKERS loops run a mix until
//! the time is up:
//!
//! - `login`: a whole browser sign-in with a fresh cookie jar — `/authorize`,
//!   the upstream, `/callback/google`, the consent page when the user has not
//!   consented yet, `POST /consent` — ending with the code's redemption,
//!   timed apart as `code`;
//! - `refresh` (rotation: the new refresh token replaces the old),
//!   `client_credentials`, `introspect` (the answer must say `active`),
//!   `userinfo`, `jwks`.
//!
//! Every answer is checked; anything unexpected is an error. Prints the
//! throughput, p50/p99 latency and errors of each operation, and the
//! server's RSS sampled over the run; exits 1 on any error, when the RSS of
//! the last quarter of the run is more than 10% (and 8 MiB) above that of
//! the second quarter (a leak), or when the last quarter did less than half
//! the operations of the second (something slows down as tables grow).
//!
//! Usage: `bench-soak --bin PATH --seconds N [--database URL] [--workers N]`
//! (default: SQLite in a temporary directory, 16 workers). A `postgres://`
//! URL names a server: a fresh database is created there and dropped after.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a benchmark tool: fail loudly"
)]

#[allow(
    dead_code,
    reason = "the tests' fake provider; not all of it is used here"
)]
#[path = "../tests/api/common/fake_idp.rs"]
mod fake_idp;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};
use sqlx::Connection;

const REDIRECT: &str = "http://127.0.0.1:9/cb";
const ADMIN_TOKEN: &str = "soak-admin-token-0123456789-0123456789";
const USERS: usize = 500;

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
enum Op {
    Login,
    Code,
    Refresh,
    ClientCredentials,
    Introspect,
    Userinfo,
    Jwks,
}

impl Op {
    const ALL: [Op; 7] = [
        Op::Login,
        Op::Code,
        Op::Refresh,
        Op::ClientCredentials,
        Op::Introspect,
        Op::Userinfo,
        Op::Jwks,
    ];

    fn name(self) -> &'static str {
        match self {
            Op::Login => "login (whole sign-in)",
            Op::Code => "code redemption",
            Op::Refresh => "refresh",
            Op::ClientCredentials => "client_credentials",
            Op::Introspect => "introspect",
            Op::Userinfo => "userinfo",
            Op::Jwks => "jwks",
        }
    }
}

struct Args {
    bin: String,
    seconds: u64,
    database: Option<String>,
    workers: usize,
}

fn args() -> Args {
    let mut args = Args {
        bin: "target/release/tessera".into(),
        seconds: 60,
        database: None,
        workers: 16,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let v = it.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--bin" => args.bin = v,
            "--seconds" => args.seconds = v.parse().unwrap(),
            "--database" => args.database = Some(v),
            "--workers" => args.workers = v.parse().unwrap(),
            _ => panic!("unknown argument {a}"),
        }
    }
    args
}

/// Where the server runs and the clients it knows.
struct Target {
    issuer: String,
    http: reqwest::Client,
    /// Confidential, consent page, refresh tokens, may introspect.
    web: (String, String),
    /// Public (PKCE only), `skip_consent`, refresh tokens.
    spa: String,
    /// `client_credentials`.
    machine: (String, String),
    /// Operations finished since the last sample.
    done: std::sync::atomic::AtomicU64,
}

#[derive(Default)]
struct Tally {
    micros: HashMap<Op, Vec<u32>>,
    errors: HashMap<Op, u64>,
    samples: Vec<String>,
}

impl Tally {
    fn record(&mut self, op: Op, started: Instant, result: Result<(), String>) {
        let us = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
        match result {
            Ok(()) => self.micros.entry(op).or_default().push(us),
            Err(e) => {
                *self.errors.entry(op).or_default() += 1;
                if self.samples.len() < 10 {
                    self.samples.push(format!("{}: {e}", op.name()));
                }
            }
        }
    }
}

/// A browser's cookies: name → (value, path).
#[derive(Default)]
struct Jar(HashMap<String, (String, String)>);

impl Jar {
    fn take(&mut self, response: &reqwest::Response) {
        for v in response.headers().get_all(SET_COOKIE) {
            let v = v.to_str().unwrap();
            let mut parts = v.split(';').map(str::trim);
            let (name, value) = parts.next().unwrap().split_once('=').unwrap();
            let path = parts
                .find_map(|p| p.strip_prefix("Path="))
                .unwrap_or("/")
                .to_owned();
            let expired = v.contains("Max-Age=0");
            if expired || value.is_empty() {
                self.0.remove(name);
            } else {
                self.0.insert(name.to_owned(), (value.to_owned(), path));
            }
        }
    }

    fn header(&self, path: &str) -> String {
        self.0
            .iter()
            .filter(|(_, (_, p))| path.starts_with(p.as_str()))
            .map(|(n, (v, _))| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn location(r: &reqwest::Response) -> Result<String, String> {
    r.headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| format!("{} without Location", r.status()))
}

fn query_param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// GET (or form POST) with the jar's cookies for that path; no redirects.
async fn browse(
    http: &reqwest::Client,
    jar: &mut Jar,
    url: &str,
    form: Option<&[(&str, &str)]>,
) -> Result<reqwest::Response, String> {
    let path = url::Url::parse(url)
        .map_err(|e| e.to_string())?
        .path()
        .to_owned();
    let request = match form {
        Some(f) => http.post(url).form(f),
        None => http.get(url),
    };
    let cookies = jar.header(&path);
    let request = if cookies.is_empty() {
        request
    } else {
        request.header(COOKIE, cookies)
    };
    let r = request.send().await.map_err(|e| e.to_string())?;
    jar.take(&r);
    Ok(r)
}

/// A whole sign-in through the upstream, ending with the code's
/// redemption: the token response.
async fn login(t: &Target, spa: bool, tally: &mut Tally) -> Result<Value, String> {
    let mut jar = Jar::default();
    let verifier = b64(&rand::random::<[u8; 32]>());
    let challenge =
        b64(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()).as_ref());
    let state = b64(&rand::random::<[u8; 12]>());
    let client_id = if spa {
        t.spa.as_str()
    } else {
        t.web.0.as_str()
    };
    let mut url = url::Url::parse(&format!("{}/authorize", t.issuer)).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", "openid profile email offline_access")
        .append_pair("state", &state)
        .append_pair("nonce", &b64(&rand::random::<[u8; 12]>()))
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    // /authorize → the upstream → /callback/google.
    let r = browse(&t.http, &mut jar, url.as_str(), None).await?;
    if r.status() != StatusCode::FOUND {
        return Err(format!("/authorize answered {}", r.status()));
    }
    let upstream = location(&r)?;
    let r = browse(&t.http, &mut jar, &upstream, None).await?;
    let callback = location(&r)?;
    let r = browse(&t.http, &mut jar, &callback, None).await?;
    // Consent when the user has not consented to this client yet.
    let back = match r.status() {
        StatusCode::FOUND => location(&r)?,
        StatusCode::OK => {
            let html = r.text().await.map_err(|e| e.to_string())?;
            let ticket = html
                .split("name=\"ticket\" value=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .ok_or("a 200 after the callback that is not the consent page")?
                .to_owned();
            let consent = format!("{}/consent", t.issuer);
            let r = browse(
                &t.http,
                &mut jar,
                &consent,
                Some(&[("ticket", ticket.as_str()), ("decision", "allow")]),
            )
            .await?;
            if r.status() != StatusCode::SEE_OTHER {
                return Err(format!("/consent answered {}", r.status()));
            }
            location(&r)?
        }
        s => return Err(format!("/callback/google answered {s}")),
    };
    if !back.starts_with(REDIRECT) || query_param(&back, "state").as_deref() != Some(&state) {
        return Err(format!("sent back to an unexpected place: {back}"));
    }
    let code = query_param(&back, "code").ok_or_else(|| format!("no code: {back}"))?;
    let started = Instant::now();
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier.as_str()),
    ];
    let request = if spa {
        form.push(("client_id", client_id));
        t.http.post(format!("{}/token", t.issuer)).form(&form)
    } else {
        t.http
            .post(format!("{}/token", t.issuer))
            .basic_auth(&t.web.0, Some(&t.web.1))
            .form(&form)
    };
    let result = token_response(request).await;
    tally.record(
        Op::Code,
        started,
        result.as_ref().map(|_| ()).map_err(Clone::clone),
    );
    let tokens = result?;
    for field in ["access_token", "id_token", "refresh_token"] {
        if tokens[field].as_str().is_none() {
            return Err(format!("the code's token response has no {field}"));
        }
    }
    Ok(tokens)
}

async fn token_response(request: reqwest::RequestBuilder) -> Result<Value, String> {
    let r = request.send().await.map_err(|e| e.to_string())?;
    let status = r.status();
    let body: Value = r.json().await.map_err(|e| e.to_string())?;
    if status != StatusCode::OK {
        return Err(format!("{status} {body}"));
    }
    Ok(body)
}

/// What a worker holds between operations.
struct Held {
    spa: bool,
    refresh: String,
    access: String,
}

async fn worker(t: Arc<Target>, n: usize, stop: Arc<AtomicBool>) -> Tally {
    let mut tally = Tally::default();
    let mut held: Vec<Held> = Vec::new();
    let mut i: usize = n;
    while !stop.load(Ordering::Relaxed) {
        i = i.wrapping_add(1);
        // Per 20 steps: 1 login, 5 refreshes, 4 client_credentials,
        // 3 introspections, 2 userinfo, 5 JWKS fetches.
        let step = i % 20;
        let op = match step {
            0 => Op::Login,
            1..=5 => Op::Refresh,
            6..=9 => Op::ClientCredentials,
            10..=12 => Op::Introspect,
            13..=14 => Op::Userinfo,
            _ => Op::Jwks,
        };
        let op = if held.is_empty() && matches!(op, Op::Refresh | Op::Introspect | Op::Userinfo) {
            Op::Login
        } else {
            op
        };
        let started = Instant::now();
        let result = match op {
            Op::Login => {
                let spa = i % 40 < 20;
                match login(&t, spa, &mut tally).await {
                    Ok(tokens) => {
                        let h = Held {
                            spa,
                            refresh: tokens["refresh_token"].as_str().unwrap().to_owned(),
                            access: tokens["access_token"].as_str().unwrap().to_owned(),
                        };
                        // Keep a few families per worker; older ones are dropped.
                        if held.len() >= 4 {
                            held.remove(0);
                        }
                        held.push(h);
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
            Op::Refresh => {
                let h = held.last_mut().unwrap();
                let form = [
                    ("grant_type", "refresh_token"),
                    ("refresh_token", h.refresh.as_str()),
                ];
                let request = t.http.post(format!("{}/token", t.issuer));
                let request = if h.spa {
                    request.form(&[
                        ("grant_type", "refresh_token"),
                        ("refresh_token", h.refresh.as_str()),
                        ("client_id", t.spa.as_str()),
                    ])
                } else {
                    request.basic_auth(&t.web.0, Some(&t.web.1)).form(&form)
                };
                match token_response(request).await {
                    Ok(body) => match (
                        body["refresh_token"].as_str(),
                        body["access_token"].as_str(),
                    ) {
                        (Some(r), Some(a)) => {
                            h.refresh = r.to_owned();
                            h.access = a.to_owned();
                            Ok(())
                        }
                        _ => Err(format!("no rotated refresh token: {body}")),
                    },
                    Err(e) => Err(e),
                }
            }
            Op::ClientCredentials => token_response(
                t.http
                    .post(format!("{}/token", t.issuer))
                    .basic_auth(&t.machine.0, Some(&t.machine.1))
                    .form(&[("grant_type", "client_credentials"), ("scope", "read")]),
            )
            .await
            .and_then(|b| {
                b["access_token"]
                    .as_str()
                    .map(|_| ())
                    .ok_or_else(|| format!("no access token: {b}"))
            }),
            Op::Introspect => {
                let h = &held[i % held.len()];
                token_response(
                    t.http
                        .post(format!("{}/introspect", t.issuer))
                        .basic_auth(&t.web.0, Some(&t.web.1))
                        .form(&[("token", h.access.as_str())]),
                )
                .await
                .and_then(|b| {
                    if b["active"] == json!(true) {
                        Ok(())
                    } else {
                        Err(format!("a live access token introspected as {b}"))
                    }
                })
            }
            Op::Userinfo => {
                let h = &held[i % held.len()];
                match t
                    .http
                    .get(format!("{}/userinfo", t.issuer))
                    .bearer_auth(&h.access)
                    .send()
                    .await
                {
                    Ok(r) if r.status() == StatusCode::OK => {
                        let b: Value = r.json().await.unwrap_or_default();
                        if b["sub"].as_str().is_some() {
                            Ok(())
                        } else {
                            Err(format!("userinfo without sub: {b}"))
                        }
                    }
                    Ok(r) => Err(format!("userinfo answered {}", r.status())),
                    Err(e) => Err(e.to_string()),
                }
            }
            Op::Jwks => match t.http.get(format!("{}/jwks", t.issuer)).send().await {
                Ok(r) if r.status() == StatusCode::OK => match r.bytes().await {
                    Ok(b) if b.len() > 100 => Ok(()),
                    Ok(_) => Err("a short JWKS".into()),
                    Err(e) => Err(e.to_string()),
                },
                Ok(r) => Err(format!("/jwks answered {}", r.status())),
                Err(e) => Err(e.to_string()),
            },
            Op::Code => unreachable!("timed inside login"),
        };
        tally.record(op, started, result);
        t.done.fetch_add(1, Ordering::Relaxed);
    }
    tally
}

/// The server's resident memory in KiB: all of it, and the anonymous part
/// (heap and stacks; the rest is mapped files: the binary, SQLite's memory
/// map of the database).
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("RssAnon:"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Server {
    child: Child,
    _dir: tempfile::TempDir,
    drop_database: Option<(String, String)>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_server(a: &Args, idp: &fake_idp::FakeIdp) -> (Server, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let (database, drop_database) = match &a.database {
        Some(url) if url.starts_with("postgres") => {
            let name = format!("tessera_soak_{}", std::process::id());
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
                .execute(&mut conn)
                .await
                .unwrap();
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
                .unwrap();
            let mut db = url::Url::parse(url).unwrap();
            db.set_path(&name);
            (db.to_string(), Some((url.clone(), name)))
        }
        Some(url) => (url.clone(), None),
        None => (
            format!("sqlite://{}/tessera.db", dir.path().display()),
            None,
        ),
    };
    let (public, admin) = (free_port(), free_port());
    let issuer = format!("http://127.0.0.1:{public}");
    let child = Command::new(&a.bin)
        .arg("serve")
        .env("TESSERA_ISSUER", &issuer)
        .env("TESSERA_LISTEN", format!("127.0.0.1:{public}"))
        .env("TESSERA_ADMIN_LISTEN", format!("127.0.0.1:{admin}"))
        .env("TESSERA_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("TESSERA_DATABASE_URL", &database)
        .env("TESSERA_KEYS_DIR", dir.path().join("keys"))
        .env("TESSERA_LOG", "warn")
        .envs(idp.vars())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", a.bin));
    let server = Server {
        child,
        _dir: dir,
        drop_database,
    };
    (server, issuer, format!("http://127.0.0.1:{admin}"))
}

async fn register(http: &reqwest::Client, admin: &str, metadata: Value) -> (String, String) {
    let r = http
        .post(format!("{admin}/admin/clients"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&metadata)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    (
        v["client_id"].as_str().unwrap().to_owned(),
        v["client_secret"].as_str().unwrap_or_default().to_owned(),
    )
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

#[tokio::main]
async fn main() {
    let a = args();
    let idp = fake_idp::FakeIdp::start().await;
    idp.rotate_users(USERS);
    let (mut server, issuer, admin) = start_server(&a, &idp).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let ready = Instant::now();
    loop {
        if let Ok(r) = http.get(format!("{issuer}/readyz")).send().await {
            if r.status() == StatusCode::OK {
                break;
            }
        }
        assert!(
            ready.elapsed() < Duration::from_secs(30),
            "the server did not get ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let web = register(
        &http,
        &admin,
        json!({"client_name": "Soak web app", "redirect_uris": [REDIRECT],
               "grant_types": ["authorization_code", "refresh_token"],
               "scope": "openid profile email offline_access"}),
    )
    .await;
    let spa = register(
        &http,
        &admin,
        json!({"client_name": "Soak SPA", "redirect_uris": [REDIRECT],
               "grant_types": ["authorization_code", "refresh_token"],
               "token_endpoint_auth_method": "none", "skip_consent": true,
               "scope": "openid profile email offline_access"}),
    )
    .await
    .0;
    let machine = register(
        &http,
        &admin,
        json!({"client_name": "Soak machine", "grant_types": ["client_credentials"],
               "response_types": [], "scope": "read"}),
    )
    .await;
    let target = Arc::new(Target {
        issuer,
        http,
        web,
        spa,
        machine,
        done: std::sync::atomic::AtomicU64::new(0),
    });
    let pid = server.child.id();
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let workers: Vec<_> = (0..a.workers)
        .map(|n| tokio::spawn(worker(target.clone(), n, stop.clone())))
        .collect();
    // RSS every tenth of the run (at most every 60 s, at least every 2 s).
    let interval = Duration::from_secs((a.seconds / 10).clamp(2, 60));
    let mut rss = vec![(0u64, rss_kib(pid))];
    let mut throughput = Vec::new();
    let deadline = start + Duration::from_secs(a.seconds);
    let mut sampled = start;
    while Instant::now() < deadline {
        let next = (Instant::now() + interval).min(deadline);
        tokio::time::sleep_until(next.into()).await;
        let seconds = sampled.elapsed().as_secs_f64();
        sampled = Instant::now();
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!("the server exited during the run: {status}");
        }
        rss.push((start.elapsed().as_secs(), rss_kib(pid)));
        // Operations per second over the interval (the last may be short).
        throughput.push((target.done.swap(0, Ordering::Relaxed) as f64 / seconds) as u64);
    }
    stop.store(true, Ordering::Relaxed);
    let mut total = Tally::default();
    for w in workers {
        let t = w.await.unwrap();
        for (op, v) in t.micros {
            total.micros.entry(op).or_default().extend(v);
        }
        for (op, n) in t.errors {
            *total.errors.entry(op).or_default() += n;
        }
        total.samples.extend(t.samples);
    }
    let elapsed = start.elapsed().as_secs_f64();

    println!(
        "\n{} workers, {:.0} s, {}\n",
        a.workers,
        elapsed,
        if a.database
            .as_deref()
            .is_some_and(|d| d.starts_with("postgres"))
        {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    );
    println!("| operation | done | per second | p50 ms | p99 ms | max ms | errors |");
    println!("|---|---|---|---|---|---|---|");
    let mut errors = 0;
    let mut all = 0usize;
    for op in Op::ALL {
        let mut v = total.micros.remove(&op).unwrap_or_default();
        v.sort_unstable();
        let e = total.errors.get(&op).copied().unwrap_or(0);
        errors += e;
        if op != Op::Login {
            all += v.len();
        }
        println!(
            "| {} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {} |",
            op.name(),
            v.len(),
            v.len() as f64 / elapsed,
            percentile(&v, 0.50),
            percentile(&v, 0.99),
            percentile(&v, 1.0),
            e
        );
    }
    println!(
        "\nrequests that are one operation (all but login): {:.0}/s; a login is 5 to 6 requests",
        all as f64 / elapsed
    );
    println!(
        "\nover the run (RSS in MiB, of which anonymous; operations per second since the last line):"
    );
    println!("| second | RSS | anonymous | operations/s |");
    println!("|---|---|---|---|");
    for (i, (s, (all, anon))) in rss.iter().enumerate() {
        let done = i.checked_sub(1).and_then(|j| throughput.get(j));
        println!(
            "| {s} | {:.1} | {:.1} | {} |",
            *all as f64 / 1024.0,
            *anon as f64 / 1024.0,
            done.map_or(String::new(), u64::to_string)
        );
    }
    // A leak shows as growth after warm-up: the last quarter of the run
    // against the second.
    let quarter = |q: usize| {
        let n = rss.len();
        let part: Vec<u64> = rss[n * q / 4..(n * (q + 1) / 4).max(n * q / 4 + 1).min(n)]
            .iter()
            .map(|(_, (k, _))| *k)
            .collect();
        part.iter().sum::<u64>() as f64 / part.len() as f64
    };
    let (second, last) = (quarter(1), quarter(3));
    let grew = last - second;
    let leak = grew > second * 0.10 && grew > 8.0 * 1024.0;
    println!(
        "RSS second quarter {:.1} MiB, last quarter {:.1} MiB: {}",
        second / 1024.0,
        last / 1024.0,
        if leak { "GREW (leak?)" } else { "flat" }
    );
    // A slowdown shows the same way: a plan or a scan that gets worse as
    // the tables grow.
    let rate = |q: usize| {
        let n = throughput.len();
        let part = &throughput[n * q / 4..(n * (q + 1) / 4).max(n * q / 4 + 1).min(n)];
        part.iter().sum::<u64>() as f64 / part.len() as f64
    };
    let (early, late) = (rate(1), rate(3));
    let slowed = late < early * 0.5;
    println!(
        "operations per second: second quarter {early:.0}, last quarter {late:.0}: {}",
        if slowed { "SLOWED DOWN" } else { "steady" }
    );
    for s in &total.samples {
        println!("error: {s}");
    }
    drop(server.child.kill());
    let _ = server.child.wait();
    if let Some((url, name)) = server.drop_database.take() {
        if let Ok(mut conn) = sqlx::PgConnection::connect(&url).await {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn)
                .await;
        }
    }
    if errors > 0 || leak || slowed {
        std::process::exit(1);
    }
}
