//! The command line (PRODUCT.md "Interface contract"): `serve` (the
//! default), `migrate`, `client …`, `keys …` and `user …`, the last three straight on
//! the database, with a table by default and the admin API's JSON with `--json`.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};

use crate::app::{self, Clock, SystemClock};
use crate::audit::{Actor, Audit, By, EventType};
use crate::config::{Config, ConfigError};
use crate::oauth::client::MetadataRequest;
use crate::oauth::clients::{self, ClientOpError, ClientView, DEFAULT_PAGE};
use crate::oauth::users::{self, UserOpError};
use crate::store::{KeyChange, KeyState, Store};
use crate::token::Alg;
use crate::token::keys::KeyDir;
use crate::token::rotation::{self, RotateMode};

#[derive(Debug, Parser)]
#[command(
    name = "tessera",
    version,
    about = "An OAuth 2.1 / OpenID Connect authorization server"
)]
pub struct Cli {
    /// TOML configuration file (environment variables override it).
    #[arg(long, global = true, env = "TESSERA_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the public and admin listeners (the default).
    Serve,
    /// Apply database migrations.
    Migrate,
    /// Manage registered clients.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Look after users: list, show, disable, end sessions, withdraw consents.
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// List users (ordered by sub).
    List {
        /// Only the user with this email (case ignored).
        #[arg(long)]
        email: Option<String>,
        #[arg(long, default_value_t = crate::oauth::users::DEFAULT_PAGE)]
        limit: u32,
        #[arg(long)]
        cursor: Option<String>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Show a user with upstream links, sessions, consents and refresh families.
    Show {
        /// (Ids may start with `-`: they are base64url.)
        #[arg(allow_hyphen_values = true)]
        sub: String,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Refuse sign-in and refresh, and end every session.
    Disable {
        #[arg(allow_hyphen_values = true)]
        sub: String,
    },
    /// Allow sign-in and refresh again.
    Enable {
        #[arg(allow_hyphen_values = true)]
        sub: String,
    },
    /// End every live session (the user signs in again at the next /authorize).
    EndSessions {
        #[arg(allow_hyphen_values = true)]
        sub: String,
    },
    /// Withdraw the user's consent to a client; its refresh tokens die.
    RevokeConsent {
        #[arg(allow_hyphen_values = true)]
        sub: String,
        #[arg(allow_hyphen_values = true)]
        client_id: String,
    },
}

#[derive(Debug, Args)]
pub struct JsonFlag {
    /// Print the admin API's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client from RFC 7591 metadata JSON.
    Create {
        /// File holding the metadata, or `-` for standard input.
        #[arg(long, default_value = "-")]
        metadata: String,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// List clients.
    List {
        #[arg(long, default_value_t = DEFAULT_PAGE)]
        limit: u32,
        #[arg(long)]
        cursor: Option<String>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Show one client.
    Show {
        #[arg(allow_hyphen_values = true)]
        client_id: String,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Delete a client.
    Delete {
        #[arg(allow_hyphen_values = true)]
        client_id: String,
    },
    /// Replace a confidential client's secret (printed once).
    RotateSecret {
        #[arg(allow_hyphen_values = true)]
        client_id: String,
        #[command(flatten)]
        out: JsonFlag,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List signing keys and their states.
    List {
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Add a new signing key (pending until every JWKS cache has seen it).
    Rotate {
        /// Only this algorithm (default: every algorithm in use).
        #[arg(long, value_parser = ["RS256", "ES256", "EdDSA"])]
        alg: Option<String>,
        /// Sign with the new key at once; the old one stays published until its tokens expire.
        #[arg(long)]
        now: bool,
        /// With --now: remove the old key from the JWKS at once (a compromised key).
        #[arg(long, requires = "now")]
        retire_old: bool,
    },
}

/// A command's failure, with the process exit code it maps to.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Exit code 2.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Exit code 2: the request itself is wrong (bad metadata, bad cursor).
    #[error("{0}")]
    Usage(String),
    /// Exit code 1.
    #[error(transparent)]
    Runtime(#[from] anyhow::Error),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Config(_) | CliError::Usage(_) => 2,
            CliError::Runtime(_) => 1,
        }
    }
}

impl From<ClientOpError> for CliError {
    fn from(e: ClientOpError) -> Self {
        match e {
            ClientOpError::Metadata(m) => CliError::Usage(format!("{}: {m}", m.code())),
            ClientOpError::IdMismatch | ClientOpError::BadCursor => CliError::Usage(e.to_string()),
            ClientOpError::NotFound => CliError::Runtime(anyhow::anyhow!("no such client")),
            ClientOpError::Store(e) => CliError::Runtime(e.into()),
            ClientOpError::Other(e) => CliError::Runtime(e),
        }
    }
}

impl From<crate::store::StoreError> for CliError {
    fn from(e: crate::store::StoreError) -> Self {
        CliError::Runtime(e.into())
    }
}

pub async fn run(cli: Cli, config: Config) -> Result<(), CliError> {
    let command = cli.command.unwrap_or(Command::Serve);
    if let Command::Serve = command {
        return crate::serve::serve(config).await.map_err(CliError::Runtime);
    }
    let config = &config;
    match command {
        // Served above.
        Command::Serve => Ok(()),
        Command::Migrate => {
            let store = crate::store::connect(config).await?;
            store.migrate().await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Client(cmd) => {
            on_database(config, |store, audit| async move {
                client(cmd, config, store.as_ref(), &audit).await
            })
            .await
        }
        Command::Keys(cmd) => {
            on_database(config, |store, audit| async move {
                keys(cmd, config, store.as_ref(), &audit).await
            })
            .await
        }
        Command::User(cmd) => {
            on_database(config, |store, audit| async move {
                user(cmd, store.as_ref(), &audit).await
            })
            .await
        }
    }
}

/// Runs an administrative command on the (migrated) database; the audit
/// events it records are written before the process exits.
async fn on_database<F, Fut>(config: &Config, command: F) -> Result<(), CliError>
where
    F: FnOnce(Arc<dyn Store>, Audit) -> Fut,
    Fut: std::future::Future<Output = Result<(), CliError>>,
{
    let store = open(config).await?;
    let audit = Audit::start(store.clone());
    let result = command(store, audit.clone()).await;
    audit.flush().await;
    result
}

impl From<UserOpError> for CliError {
    fn from(e: UserOpError) -> Self {
        match e {
            UserOpError::BadCursor => CliError::Usage(e.to_string()),
            UserOpError::Store(e) => CliError::Runtime(e.into()),
            other => CliError::Runtime(anyhow::anyhow!("{other}")),
        }
    }
}

async fn user(cmd: UserCommand, store: &dyn Store, audit: &Audit) -> Result<(), CliError> {
    let now = SystemClock.now();
    let by = By {
        audit,
        actor: Actor::Cli,
    };
    match cmd {
        UserCommand::List {
            email,
            limit,
            cursor,
            out,
        } => {
            let (page, next) =
                users::list(store, email.as_deref(), cursor.as_deref(), limit).await?;
            if out.json {
                return print_json(&serde_json::json!({"users": page, "next_cursor": next}));
            }
            println!("{:<24} {:<9} {:<36} NAME", "SUB", "STATE", "EMAIL");
            for u in &page {
                println!(
                    "{:<24} {:<9} {:<36} {}",
                    u.sub,
                    if u.disabled_at.is_some() {
                        "disabled"
                    } else {
                        "active"
                    },
                    u.email.as_deref().unwrap_or("-"),
                    u.name.as_deref().unwrap_or("-")
                );
            }
            if let Some(next) = next {
                println!("more: --cursor {next}");
            }
            Ok(())
        }
        UserCommand::Show { sub, out } => {
            let details = store
                .user_details(&sub, now)
                .await?
                .ok_or(UserOpError::NotFound)?;
            if out.json {
                return print_json(&details);
            }
            let u = &details.user;
            println!("sub                {}", u.sub);
            println!("email              {}", u.email.as_deref().unwrap_or("-"));
            println!("name               {}", u.name.as_deref().unwrap_or("-"));
            println!(
                "state              {}",
                if u.disabled_at.is_some() {
                    "disabled"
                } else {
                    "active"
                }
            );
            for l in &details.upstream_links {
                println!("upstream           {} {}", l.issuer, l.subject);
            }
            println!("live sessions      {}", details.sessions.len());
            for c in &details.consents {
                println!("consent            {} ({})", c.client_id, c.scope);
            }
            for f in &details.refresh_families {
                let state = if f.revoked_at.is_some() {
                    "revoked"
                } else {
                    "live"
                };
                println!("refresh family     {} {} {state}", f.id, f.client_id);
            }
            Ok(())
        }
        UserCommand::Disable { sub } => {
            users::set_disabled(store, by, &sub, true, now).await?;
            println!("disabled {sub}");
            Ok(())
        }
        UserCommand::Enable { sub } => {
            users::set_disabled(store, by, &sub, false, now).await?;
            println!("enabled {sub}");
            Ok(())
        }
        UserCommand::EndSessions { sub } => {
            let n = users::end_sessions(store, by, &sub, now).await?;
            println!("ended {n} session(s) of {sub}");
            Ok(())
        }
        UserCommand::RevokeConsent { sub, client_id } => {
            users::withdraw_consent(store, by, None, &sub, &client_id, now).await?;
            println!("withdrew the consent of {sub} to {client_id}");
            Ok(())
        }
    }
}

async fn open(config: &Config) -> Result<Arc<dyn Store>, CliError> {
    let store = crate::store::connect(config).await?;
    store.migrate().await?;
    Ok(store)
}

/// The algorithms in use: configured, asked for by clients, or holding an active key.
async fn algs_in_use(store: &dyn Store, config: &Config) -> Result<Vec<Alg>, CliError> {
    let mut algs = app::configured_algs(config);
    let from_clients = store.client_id_token_algs().await?;
    let active = store.list_keys().await?;
    for alg in from_clients.into_iter().chain(
        active
            .iter()
            .filter(|k| k.state == KeyState::Active)
            .map(|k| k.alg),
    ) {
        if !algs.contains(&alg) {
            algs.push(alg);
        }
    }
    Ok(algs)
}

fn print_json(value: &impl serde::Serialize) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).map_err(anyhow::Error::from)?;
    println!("{text}");
    Ok(())
}

fn print_client(view: &ClientView, json: bool) -> Result<(), CliError> {
    if json {
        return print_json(view);
    }
    let m = &view.metadata;
    let grants: Vec<_> = m.grant_types.iter().map(|g| g.as_str()).collect();
    println!("client_id          {}", view.client_id);
    if let Some(secret) = &view.client_secret {
        println!("client_secret      {secret}   (shown once: store it now)");
    }
    println!(
        "client_name        {}",
        m.client_name.as_deref().unwrap_or("-")
    );
    println!("grant_types        {}", grants.join(" "));
    println!(
        "auth_method        {}",
        m.token_endpoint_auth_method.as_str()
    );
    println!("scope              {}", m.scope);
    println!("redirect_uris      {}", m.redirect_uris.join(" "));
    println!("skip_consent       {}", m.skip_consent);
    Ok(())
}

async fn client(
    cmd: ClientCommand,
    config: &Config,
    store: &dyn Store,
    audit: &Audit,
) -> Result<(), CliError> {
    let now = SystemClock.now();
    let by = By {
        audit,
        actor: Actor::Cli,
    };
    match cmd {
        ClientCommand::Create { metadata, out } => {
            let text = read_input(&metadata)?;
            let request: MetadataRequest = serde_json::from_str(&text)
                .map_err(|e| CliError::Usage(format!("invalid_client_metadata: {e}")))?;
            let algs = algs_in_use(store, config).await?;
            let view = clients::create(store, by, request, &algs, now).await?;
            print_client(&view, out.json)
        }
        ClientCommand::List { limit, cursor, out } => {
            let (page, next) = clients::list(store, cursor.as_deref(), limit).await?;
            if out.json {
                return print_json(&serde_json::json!({"clients": page, "next_cursor": next}));
            }
            println!(
                "{:<24} {:<22} {:<30} NAME",
                "CLIENT_ID", "AUTH_METHOD", "GRANTS"
            );
            for v in &page {
                let grants: Vec<_> = v.metadata.grant_types.iter().map(|g| g.as_str()).collect();
                println!(
                    "{:<24} {:<22} {:<30} {}",
                    v.client_id,
                    v.metadata.token_endpoint_auth_method.as_str(),
                    grants.join(","),
                    v.metadata.client_name.as_deref().unwrap_or("-")
                );
            }
            if let Some(next) = next {
                println!("more: --cursor {next}");
            }
            Ok(())
        }
        ClientCommand::Show { client_id, out } => {
            let record = store
                .get_client(&client_id)
                .await?
                .ok_or(ClientOpError::NotFound)?;
            print_client(&ClientView::new(&record, None), out.json)
        }
        ClientCommand::Delete { client_id } => {
            clients::delete(store, by, &client_id, now).await?;
            println!("deleted {client_id}");
            Ok(())
        }
        ClientCommand::RotateSecret { client_id, out } => {
            let view = clients::rotate_secret(store, by, &client_id, now).await?;
            print_client(&view, out.json)
        }
    }
}

fn read_input(source: &str) -> Result<String, CliError> {
    let mut text = String::new();
    if source == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| CliError::Usage(format!("cannot read standard input: {e}")))?;
    } else {
        text = std::fs::read_to_string(source)
            .map_err(|e| CliError::Usage(format!("cannot read {source}: {e}")))?;
    }
    Ok(text)
}

fn key_json(k: &crate::store::KeyRecord) -> serde_json::Value {
    serde_json::json!({
        "kid": k.kid,
        "alg": k.alg.as_str(),
        "state": k.state.as_str(),
        "created_at": k.created_at,
        "activated_at": k.activated_at,
        "retiring_at": k.retiring_at,
        "retired_at": k.retired_at,
    })
}

async fn keys(
    cmd: KeysCommand,
    config: &Config,
    store: &dyn Store,
    audit: &Audit,
) -> Result<(), CliError> {
    match cmd {
        KeysCommand::List { out } => {
            let keys = store.list_keys().await?;
            if out.json {
                let list: Vec<_> = keys.iter().map(key_json).collect();
                return print_json(&serde_json::json!({ "keys": list }));
            }
            println!("{:<44} {:<6} {:<9} CREATED", "KID", "ALG", "STATE");
            for k in &keys {
                let created = time::OffsetDateTime::from_unix_timestamp(k.created_at)
                    .ok()
                    .and_then(|t| {
                        t.format(&time::format_description::well_known::Rfc3339)
                            .ok()
                    })
                    .unwrap_or_default();
                println!(
                    "{:<44} {:<6} {:<9} {created}",
                    k.kid,
                    k.alg.as_str(),
                    k.state.as_str()
                );
            }
            Ok(())
        }
        KeysCommand::Rotate {
            alg,
            now,
            retire_old,
        } => {
            let algs = match alg {
                Some(a) => vec![
                    a.parse()
                        .map_err(|()| CliError::Usage(format!("unknown algorithm {a}")))?,
                ],
                None => algs_in_use(store, config).await?,
            };
            let dir = KeyDir::new(&config.keys_dir);
            let changes = rotate_keys(
                store,
                audit,
                &dir,
                &algs,
                RotateMode { now, retire_old },
                SystemClock.now(),
            )
            .await?;
            for change in &changes {
                match change {
                    KeyChange::Insert(r) => {
                        println!("new {} key {} ({})", r.alg, r.kid, r.state.as_str())
                    }
                    KeyChange::Transition { kid, to, .. } => {
                        println!("key {kid} is now {}", to.as_str())
                    }
                }
            }
            if !now {
                println!(
                    "the new key signs once it has been published for {} s (TESSERA_JWKS_MAX_AGE)",
                    config.jwks_max_age.as_secs()
                );
            }
            Ok(())
        }
    }
}

/// `tessera keys rotate`: one locked change per algorithm; the private key
/// files of keys retired at once are deleted.
pub async fn rotate_keys(
    store: &dyn Store,
    audit: &Audit,
    dir: &KeyDir,
    algs: &[Alg],
    mode: RotateMode,
    now: i64,
) -> anyhow::Result<Vec<KeyChange>> {
    let mut all = Vec::new();
    for &alg in algs {
        let d = dir.clone();
        let changes = store
            .change_keys(&move |records| rotation::rotate(records, alg, mode, &d, now))
            .await?;
        for change in &changes {
            if let KeyChange::Transition {
                kid,
                to: KeyState::Retired,
                ..
            } = change
            {
                dir.remove(kid);
            }
        }
        crate::audit::key_changes(
            audit,
            &changes,
            EventType::KeyRotated,
            Some(Actor::Cli),
            now,
        );
        all.extend(changes);
    }
    Ok(all)
}
