//! Settings: an optional TOML file overridden by `TESSERA_*` environment
//! variables, parsed once into typed, validated values.
//!
//! Every setting has one name (the environment variable). The file uses the
//! same name without the prefix, lower-case, with the Google ones under a
//! `[google]` table. A bad value stops start-up with a message that names the
//! variable (exit code 2, see `main.rs`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::secret::Secret;
use crate::token::Alg;

/// A configuration error: always names the setting at fault.
#[derive(Debug, thiserror::Error)]
#[error("{name}: {message}")]
pub struct ConfigError {
    pub name: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(name: &str, message: impl Into<String>) -> Self {
        Self {
            name: name.to_owned(),
            message: message.into(),
        }
    }
}

/// Where the data lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `sqlite://PATH`: the file is created if missing.
    Sqlite(PathBuf),
    /// `postgres://…` or `postgresql://…`, passed to the driver as written.
    Postgres(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// An address or CIDR block whose `X-Forwarded-For` is believed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl IpNet {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_matches(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_matches(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_matches(net: &[u8], ip: &[u8], prefix: u8) -> bool {
    let mut bits = u32::from(prefix);
    for (a, b) in net.iter().zip(ip) {
        if bits == 0 {
            return true;
        }
        let take = bits.min(8);
        let mask = (0xffu16 << (8 - take)) as u8;
        if a & mask != b & mask {
            return false;
        }
        bits -= take;
    }
    true
}

/// `TESSERA_GOOGLE_ALLOWED_DOMAINS`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllowedDomains {
    /// `*`: any Google Workspace domain (the `hd` claim must be present).
    AnyWorkspace,
    /// These Workspace domains only.
    Only(Vec<String>),
}

/// Tessera's own client at the upstream OpenID provider.
#[derive(Debug)]
pub struct UpstreamConfig {
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
    pub issuer: String,
    pub allowed_domains: Option<AllowedDomains>,
    pub timeout: Duration,
}

/// Every setting of PRODUCT.md's table, typed and validated.
#[derive(Debug)]
pub struct Config {
    /// Scheme, host and optional port, no trailing slash: the `iss` of every token.
    pub issuer: String,
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub admin_token: Option<Secret>,
    pub database_url: DatabaseUrl,
    pub database_max_connections: u32,
    /// How long a request waits for a database connection (and PostgreSQL
    /// for its TCP connect) before it answers 503.
    pub database_connect_timeout: Duration,
    /// PostgreSQL's `statement_timeout`; SQLite's busy timeout (how long a
    /// write waits for the file lock).
    pub database_statement_timeout: Duration,
    pub keys_dir: PathBuf,
    pub access_token_alg: Alg,
    pub access_token_ttl: Duration,
    pub default_audience: String,
    pub resources: Vec<String>,
    pub id_token_ttl: Duration,
    pub refresh_token_idle_ttl: Duration,
    pub refresh_token_max_ttl: Duration,
    pub session_ttl: Duration,
    pub jwks_max_age: Duration,
    /// `None` = rotate only by command.
    pub key_rotation_period: Option<Duration>,
    pub log_format: LogFormat,
    pub trusted_proxies: Vec<IpNet>,
    pub upstream: UpstreamConfig,
    /// Requests per second per source address; 0 = off.
    pub rate_limit_per_ip: u32,
    /// Requests per second per authenticated confidential client at
    /// `/token`, `/introspect` and `/revoke` (burst twice that); 0 = off.
    pub rate_limit_per_client: u32,
    /// Failed client authentications per minute per client id.
    pub rate_limit_failed_auth: u32,
    /// How long audit events are kept in the database.
    pub audit_retention: Duration,
    /// How often an instance re-reads the key records (not a public setting:
    /// PRODUCT.md promises "within 10 seconds"; tests shorten it).
    pub key_poll_interval: Duration,
}

const PREFIX: &str = "TESSERA_";

/// The settings and, for each, whether the TOML key lives under `[google]`.
const NAMES: &[&str] = &[
    "ISSUER",
    "LISTEN",
    "ADMIN_LISTEN",
    "ADMIN_TOKEN",
    "DATABASE_URL",
    "DATABASE_MAX_CONNECTIONS",
    "DATABASE_CONNECT_TIMEOUT",
    "DATABASE_STATEMENT_TIMEOUT",
    "KEYS_DIR",
    "ACCESS_TOKEN_ALG",
    "ACCESS_TOKEN_TTL",
    "DEFAULT_AUDIENCE",
    "RESOURCES",
    "ID_TOKEN_TTL",
    "REFRESH_TOKEN_IDLE_TTL",
    "REFRESH_TOKEN_MAX_TTL",
    "SESSION_TTL",
    "JWKS_MAX_AGE",
    "KEY_ROTATION_PERIOD",
    "LOG_FORMAT",
    "TRUSTED_PROXIES",
    "GOOGLE_CLIENT_ID",
    "GOOGLE_CLIENT_SECRET",
    "GOOGLE_ISSUER",
    "GOOGLE_ALLOWED_DOMAINS",
    "UPSTREAM_TIMEOUT",
    "RATE_LIMIT_PER_IP",
    "RATE_LIMIT_PER_CLIENT",
    "RATE_LIMIT_FAILED_AUTH",
    "AUDIT_RETENTION",
];

/// Raw values by setting name (without prefix), file first, then environment.
struct Sources {
    values: HashMap<&'static str, String>,
}

impl Sources {
    fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

impl Config {
    /// Reads the process environment and the file it or `file` names.
    pub fn from_env(file: Option<&Path>) -> Result<Self, ConfigError> {
        let env: HashMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with(PREFIX))
            .collect();
        let file = file
            .map(Path::to_path_buf)
            .or_else(|| env.get("TESSERA_CONFIG").map(PathBuf::from));
        let text = match &file {
            Some(path) => Some(std::fs::read_to_string(path).map_err(|e| {
                ConfigError::new(
                    "TESSERA_CONFIG",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?),
            None => None,
        };
        Self::from_sources(text.as_deref(), &env)
    }

    /// Builds the settings from a TOML text and environment variables
    /// (full `TESSERA_*` names); the environment wins.
    pub fn from_sources(
        toml_text: Option<&str>,
        env: &HashMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let mut values = HashMap::new();
        if let Some(text) = toml_text {
            read_toml(text, &mut values)?;
        }
        for name in NAMES {
            if let Some(v) = env.get(&format!("{PREFIX}{name}")) {
                values.insert(*name, v.clone());
            }
        }
        Self::parse(&Sources { values })
    }

    fn parse(s: &Sources) -> Result<Self, ConfigError> {
        let issuer = issuer(s.get("ISSUER").unwrap_or("http://127.0.0.1:8080"))?;
        let default_audience = match s.get("DEFAULT_AUDIENCE") {
            Some(v) => absolute_uri("TESSERA_DEFAULT_AUDIENCE", v)?,
            None => issuer.clone(),
        };
        let resources = match s.get("RESOURCES") {
            Some(v) => list(v)
                .map(|r| absolute_uri("TESSERA_RESOURCES", r))
                .collect::<Result<_, _>>()?,
            None => Vec::new(),
        };
        let refresh_token_idle_ttl = seconds(s, "REFRESH_TOKEN_IDLE_TTL", 1_209_600)?;
        let refresh_token_max_ttl = seconds(s, "REFRESH_TOKEN_MAX_TTL", 7_776_000)?;
        if refresh_token_idle_ttl > refresh_token_max_ttl {
            return Err(ConfigError::new(
                "TESSERA_REFRESH_TOKEN_IDLE_TTL",
                "must not exceed TESSERA_REFRESH_TOKEN_MAX_TTL",
            ));
        }
        let key_rotation_period = match number(s, "KEY_ROTATION_PERIOD", 2_592_000)? {
            0 => None,
            n => Some(Duration::from_secs(n)),
        };
        let database_max_connections = number(s, "DATABASE_MAX_CONNECTIONS", 10)?;
        if database_max_connections == 0 || database_max_connections > 10_000 {
            return Err(ConfigError::new(
                "TESSERA_DATABASE_MAX_CONNECTIONS",
                "must be between 1 and 10000",
            ));
        }
        Ok(Self {
            listen: socket_addr(s, "LISTEN", "127.0.0.1:8080")?,
            admin_listen: socket_addr(s, "ADMIN_LISTEN", "127.0.0.1:8081")?,
            admin_token: admin_token(s.get("ADMIN_TOKEN"))?,
            database_url: database_url(s.get("DATABASE_URL").unwrap_or("sqlite://tessera.db"))?,
            database_max_connections: u32::try_from(database_max_connections).unwrap_or(10),
            keys_dir: keys_dir(s.get("KEYS_DIR").unwrap_or("keys"))?,
            access_token_alg: s
                .get("ACCESS_TOKEN_ALG")
                .unwrap_or("RS256")
                .parse()
                .map_err(|_| {
                    ConfigError::new("TESSERA_ACCESS_TOKEN_ALG", "must be RS256, ES256 or EdDSA")
                })?,
            access_token_ttl: seconds(s, "ACCESS_TOKEN_TTL", 900)?,
            default_audience,
            resources,
            id_token_ttl: seconds(s, "ID_TOKEN_TTL", 3600)?,
            refresh_token_idle_ttl,
            refresh_token_max_ttl,
            session_ttl: seconds(s, "SESSION_TTL", 86_400)?,
            jwks_max_age: seconds(s, "JWKS_MAX_AGE", 300)?,
            key_rotation_period,
            log_format: match s.get("LOG_FORMAT").unwrap_or("text") {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => {
                    return Err(ConfigError::new(
                        "TESSERA_LOG_FORMAT",
                        "must be text or json",
                    ));
                }
            },
            trusted_proxies: match s.get("TRUSTED_PROXIES") {
                Some(v) => list(v).map(ip_net).collect::<Result<_, _>>()?,
                None => Vec::new(),
            },
            upstream: upstream(s)?,
            rate_limit_per_ip: u32_number(s, "RATE_LIMIT_PER_IP", 0)?,
            rate_limit_per_client: u32_number(s, "RATE_LIMIT_PER_CLIENT", 0)?,
            rate_limit_failed_auth: u32_number(s, "RATE_LIMIT_FAILED_AUTH", 20)?,
            audit_retention: seconds(s, "AUDIT_RETENTION", 7_776_000)?,
            database_connect_timeout: seconds(s, "DATABASE_CONNECT_TIMEOUT", 5)?,
            database_statement_timeout: seconds(s, "DATABASE_STATEMENT_TIMEOUT", 10)?,
            key_poll_interval: Duration::from_secs(5),
            issuer,
        })
    }

    /// Whether cookies must carry `Secure`.
    pub fn issuer_is_https(&self) -> bool {
        self.issuer.starts_with("https://")
    }
}

/// Flattens the TOML file into setting names; unknown keys are an error
/// (a typo must not silently fall back to a default).
fn read_toml(text: &str, out: &mut HashMap<&'static str, String>) -> Result<(), ConfigError> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::new("TESSERA_CONFIG", e.message().to_owned()))?;
    for (key, value) in &table {
        if key == "google" {
            let Some(google) = value.as_table() else {
                return Err(ConfigError::new(
                    "TESSERA_CONFIG",
                    "`google` must be a table",
                ));
            };
            for (gkey, gvalue) in google {
                let name = format!("GOOGLE_{}", gkey.to_uppercase());
                insert_toml_value(out, &name, gkey, gvalue)?;
            }
        } else if key.starts_with("google_") {
            return Err(ConfigError::new(
                "TESSERA_CONFIG",
                format!("`{key}`: Google settings go under a [google] table"),
            ));
        } else {
            insert_toml_value(out, &key.to_uppercase(), key, value)?;
        }
    }
    Ok(())
}

fn insert_toml_value(
    out: &mut HashMap<&'static str, String>,
    name: &str,
    key: &str,
    value: &toml::Value,
) -> Result<(), ConfigError> {
    let Some(known) = NAMES.iter().find(|n| **n == name) else {
        return Err(ConfigError::new(
            "TESSERA_CONFIG",
            format!("unknown key `{key}`"),
        ));
    };
    let text = match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Array(items) => items
            .iter()
            .map(|i| match i {
                toml::Value::String(s) => Ok(s.clone()),
                _ => Err(ConfigError::new(
                    &format!("{PREFIX}{name}"),
                    format!("`{key}` must be a list of strings"),
                )),
            })
            .collect::<Result<Vec<_>, _>>()?
            .join(","),
        _ => {
            return Err(ConfigError::new(
                &format!("{PREFIX}{name}"),
                format!("`{key}` must be a string or an integer"),
            ));
        }
    };
    out.insert(known, text);
    Ok(())
}

fn list(v: &str) -> impl Iterator<Item = &str> {
    v.split(',').map(str::trim).filter(|s| !s.is_empty())
}

fn number(s: &Sources, name: &str, default: u64) -> Result<u64, ConfigError> {
    match s.get(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| ConfigError::new(&format!("{PREFIX}{name}"), "must be a whole number")),
    }
}

fn u32_number(s: &Sources, name: &str, default: u32) -> Result<u32, ConfigError> {
    let n = number(s, name, u64::from(default))?;
    u32::try_from(n).map_err(|_| ConfigError::new(&format!("{PREFIX}{name}"), "is too large"))
}

/// A positive number of seconds (at most ten years, so sums never overflow).
fn seconds(s: &Sources, name: &str, default: u64) -> Result<Duration, ConfigError> {
    let n = number(s, name, default)?;
    if n == 0 || n > 315_360_000 {
        return Err(ConfigError::new(
            &format!("{PREFIX}{name}"),
            "must be a number of seconds between 1 and 315360000",
        ));
    }
    Ok(Duration::from_secs(n))
}

fn socket_addr(s: &Sources, name: &str, default: &str) -> Result<SocketAddr, ConfigError> {
    s.get(name).unwrap_or(default).parse().map_err(|_| {
        ConfigError::new(
            &format!("{PREFIX}{name}"),
            "must be an address like 127.0.0.1:8080",
        )
    })
}

/// RFC 8414 §2: the issuer is an https URL with no query or fragment; Tessera
/// also forbids a path so that every endpoint is `{issuer}/name`.
pub fn issuer(v: &str) -> Result<String, ConfigError> {
    let bad = |m: &str| ConfigError::new("TESSERA_ISSUER", m.to_owned());
    let url = url::Url::parse(v).map_err(|_| {
        bad("must be a URL: scheme, host and optional port, like https://id.example.com")
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("scheme must be https (or http on a loopback host)"));
    }
    if url.host_str().is_none() || !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must name a host and no user"));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() || v.ends_with('/') {
        return Err(bad(
            "must be scheme, host and optional port only: no path, query, fragment or trailing slash",
        ));
    }
    if url.scheme() == "http" && !is_loopback_host(&url) {
        return Err(bad("must use https unless the host is loopback"));
    }
    let mut canonical = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default());
    if let Some(port) = url.port() {
        canonical.push_str(&format!(":{port}"));
    }
    Ok(canonical)
}

/// `localhost`, `127.0.0.0/8` or `[::1]`.
pub fn is_loopback_host(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// An absolute URI without a fragment (RFC 8707 §2 for resource indicators).
fn absolute_uri(name: &str, v: &str) -> Result<String, ConfigError> {
    match url::Url::parse(v) {
        Ok(u) if u.fragment().is_none() && !u.cannot_be_a_base() => Ok(v.to_owned()),
        _ => Err(ConfigError::new(
            name,
            format!("`{v}` is not an absolute URI without a fragment"),
        )),
    }
}

/// Any non-empty token is accepted (deployments and test harnesses choose
/// their own); a short one is warned about at start (`serve.rs`).
fn admin_token(v: Option<&str>) -> Result<Option<Secret>, ConfigError> {
    match v {
        None => Ok(None),
        Some(t) if t.chars().any(char::is_whitespace) => Err(ConfigError::new(
            "TESSERA_ADMIN_TOKEN",
            "must not contain spaces (it is sent as `Authorization: Bearer <token>`)",
        )),
        Some(t) => Ok(Some(Secret::new(t.to_owned()))),
    }
}

pub fn database_url(v: &str) -> Result<DatabaseUrl, ConfigError> {
    let bad = |m: &str| ConfigError::new("TESSERA_DATABASE_URL", m.to_owned());
    if let Some(path) = v.strip_prefix("sqlite://") {
        let path = path.split('?').next().unwrap_or_default();
        if path.is_empty() {
            return Err(bad("sqlite:// needs a file path, like sqlite://tessera.db"));
        }
        return Ok(DatabaseUrl::Sqlite(PathBuf::from(path)));
    }
    if v.starts_with("postgres://") || v.starts_with("postgresql://") {
        let url = url::Url::parse(v).map_err(|_| bad("is not a valid postgres:// URL"))?;
        if url.host_str().is_none_or(str::is_empty)
            && url.query().is_none_or(|q| !q.contains("host="))
        {
            return Err(bad("postgres:// URL must name a host"));
        }
        return Ok(DatabaseUrl::Postgres(v.to_owned()));
    }
    Err(bad("must start with sqlite:// or postgres://"))
}

/// The keys folder is created (mode 0700) if missing; an existing one must be
/// a readable directory.
fn keys_dir(v: &str) -> Result<PathBuf, ConfigError> {
    let path = PathBuf::from(v);
    let bad = |m: String| ConfigError::new("TESSERA_KEYS_DIR", m);
    if !path.exists() {
        create_private_dir(&path).map_err(|e| bad(format!("cannot create {v}: {e}")))?;
    }
    if !path.is_dir() {
        return Err(bad(format!("{v} is not a directory")));
    }
    std::fs::read_dir(&path).map_err(|e| bad(format!("cannot read {v}: {e}")))?;
    Ok(path)
}

fn create_private_dir(path: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path)
}

/// An address or CIDR block (`10.0.0.0/8`, `::1`).
pub fn ip_net(v: &str) -> Result<IpNet, ConfigError> {
    let bad = || {
        ConfigError::new(
            "TESSERA_TRUSTED_PROXIES",
            format!("`{v}` is not an address or CIDR block"),
        )
    };
    let (addr, prefix) = match v.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (v, None),
    };
    let addr: IpAddr = addr.parse().map_err(|_| bad())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
        None => max,
    };
    Ok(IpNet { addr, prefix })
}

fn upstream(s: &Sources) -> Result<UpstreamConfig, ConfigError> {
    let upstream_issuer = s
        .get("GOOGLE_ISSUER")
        .unwrap_or("https://accounts.google.com");
    match url::Url::parse(upstream_issuer) {
        Ok(u) if u.scheme() == "https" || (u.scheme() == "http" && is_loopback_host(&u)) => {}
        _ => {
            return Err(ConfigError::new(
                "TESSERA_GOOGLE_ISSUER",
                "must be an https URL (http only on a loopback host)",
            ));
        }
    }
    let client_id = s.get("GOOGLE_CLIENT_ID").map(str::to_owned);
    let client_secret = s
        .get("GOOGLE_CLIENT_SECRET")
        .map(|v| Secret::new(v.to_owned()));
    if client_id.is_some() != client_secret.is_some() {
        return Err(ConfigError::new(
            "TESSERA_GOOGLE_CLIENT_SECRET",
            "TESSERA_GOOGLE_CLIENT_ID and TESSERA_GOOGLE_CLIENT_SECRET must be set together",
        ));
    }
    let allowed_domains = match s.get("GOOGLE_ALLOWED_DOMAINS") {
        None => None,
        Some("*") => Some(AllowedDomains::AnyWorkspace),
        Some(v) => {
            let domains: Vec<String> = list(v).map(str::to_ascii_lowercase).collect();
            if domains.is_empty()
                || domains.iter().any(|d| {
                    !d.contains('.')
                        || !d
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
                })
            {
                return Err(ConfigError::new(
                    "TESSERA_GOOGLE_ALLOWED_DOMAINS",
                    "must be `*` or a comma-separated list of domains",
                ));
            }
            Some(AllowedDomains::Only(domains))
        }
    };
    Ok(UpstreamConfig {
        client_id,
        client_secret,
        issuer: upstream_issuer.trim_end_matches('/').to_owned(),
        allowed_domains,
        timeout: seconds(s, "UPSTREAM_TIMEOUT", 10)?,
    })
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used)]
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn keys() -> (String, String) {
        let dir = std::env::temp_dir().join(format!("tessera-config-test-{}", std::process::id()));
        ("TESSERA_KEYS_DIR".into(), dir.display().to_string())
    }

    fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut e = env(pairs);
        let (k, v) = keys();
        e.entry(k).or_insert(v);
        Config::from_sources(None, &e)
    }

    #[test]
    fn defaults_make_a_working_configuration() {
        let c = load(&[]).unwrap();
        assert_eq!(c.issuer, "http://127.0.0.1:8080");
        assert_eq!(c.default_audience, c.issuer);
        assert_eq!(c.access_token_alg, Alg::RS256);
        assert_eq!(c.database_url, DatabaseUrl::Sqlite("tessera.db".into()));
        assert_eq!(c.rate_limit_failed_auth, 20);
        assert!(c.admin_token.is_none());
    }

    #[test]
    fn an_issuer_must_be_scheme_host_and_port_only() {
        for bad in [
            "https://id.example.com/",
            "https://id.example.com/path",
            "http://id.example.com",
            "https://id.example.com?x=1",
            "ftp://id.example.com",
            "id.example.com",
        ] {
            let e = load(&[("TESSERA_ISSUER", bad)]).unwrap_err();
            assert_eq!(e.name, "TESSERA_ISSUER", "{bad}");
        }
        for good in [
            "https://id.example.com",
            "http://localhost:9000",
            "http://[::1]:8080",
        ] {
            assert_eq!(load(&[("TESSERA_ISSUER", good)]).unwrap().issuer, good);
        }
    }

    #[test]
    fn each_bad_value_names_its_variable() {
        for (name, value) in [
            ("TESSERA_ACCESS_TOKEN_ALG", "HS256"),
            ("TESSERA_DATABASE_URL", "mysql://x"),
            ("TESSERA_RESOURCES", "https://api.example.com,not a uri"),
            ("TESSERA_ACCESS_TOKEN_TTL", "0"),
            ("TESSERA_LOG_FORMAT", "yaml"),
            ("TESSERA_TRUSTED_PROXIES", "10.0.0.0/33"),
            ("TESSERA_LISTEN", "nowhere"),
            ("TESSERA_ADMIN_TOKEN", "has a space"),
            ("TESSERA_GOOGLE_ALLOWED_DOMAINS", "not_a_domain"),
        ] {
            let e = load(&[(name, value)]).unwrap_err();
            assert_eq!(e.name, name, "{value}: {e}");
        }
    }

    #[test]
    fn the_environment_overrides_the_file() {
        let (_, v) = keys();
        let toml = format!(
            "issuer = \"https://file.example.com\"\naccess_token_ttl = 60\nkeys_dir = \"{v}\"\n[google]\nclient_id = \"abc\"\nclient_secret = \"def\"\n"
        );
        let c = Config::from_sources(
            Some(&toml),
            &env(&[("TESSERA_ISSUER", "https://env.example.com")]),
        )
        .unwrap();
        assert_eq!(c.issuer, "https://env.example.com");
        assert_eq!(c.access_token_ttl, Duration::from_secs(60));
        assert_eq!(c.upstream.client_id.as_deref(), Some("abc"));
    }

    #[test]
    fn an_unknown_file_key_is_refused() {
        let e = Config::from_sources(Some("isuer = \"x\""), &HashMap::new()).unwrap_err();
        assert_eq!(e.name, "TESSERA_CONFIG");
    }

    #[test]
    fn cidr_blocks_match_their_addresses() {
        let net = ip_net("10.1.0.0/16").unwrap();
        assert!(net.contains("10.1.200.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(ip_net("::1").unwrap().contains("::1".parse().unwrap()));
    }
}
