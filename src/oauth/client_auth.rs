//! Client authentication at the token endpoint (RFC 6749 §2.3): what the
//! client presented, and whether it proves who the client is.
//!
//! Argon2id costs ~20 ms and 19 MiB a verification, so successful
//! verifications are cached, keyed by a keyed hash of (client id, the stored
//! hash string, the presented secret): a rotation changes the stored hash and
//! so misses the cache, failures are never cached, and the presented secret
//! is never kept. Cold verifications run on the blocking pool behind a
//! semaphore sized to the cores, and past a bounded queue the answer is 503
//! rather than more memory (see docs/client-authentication.md).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{Output, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::Engine;
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use crate::error::OAuthError;
use crate::oauth::client::AuthMethod;
use crate::ratelimit::Limiter;
use crate::secret::Secret;
use crate::store::ClientRecord;

/// What the client presented.
#[derive(Debug)]
pub enum Credentials {
    /// `Authorization: Basic` (RFC 6749 §2.3.1).
    Basic { client_id: String, secret: Secret },
    /// `client_id` and `client_secret` in the form body.
    Post { client_id: String, secret: Secret },
    /// Only `client_id`: a public client identifying itself.
    Public { client_id: String },
}

impl Credentials {
    pub fn client_id(&self) -> &str {
        match self {
            Self::Basic { client_id, .. }
            | Self::Post { client_id, .. }
            | Self::Public { client_id } => client_id,
        }
    }

    pub fn is_basic(&self) -> bool {
        matches!(self, Self::Basic { .. })
    }

    fn method(&self) -> AuthMethod {
        match self {
            Self::Basic { .. } => AuthMethod::ClientSecretBasic,
            Self::Post { .. } => AuthMethod::ClientSecretPost,
            Self::Public { .. } => AuthMethod::None,
        }
    }
}

/// Reads the credentials from the `Authorization` header and the form.
/// Basic together with a body secret, or a Basic id that differs from the
/// body `client_id`, is ambiguous: `invalid_request`.
pub fn credentials(
    authorization: Option<&[u8]>,
    form_client_id: Option<&str>,
    form_secret: Option<&str>,
) -> Result<Credentials, OAuthError> {
    if let Some(header) = authorization {
        let (client_id, secret) = parse_basic(header)?;
        if form_secret.is_some() {
            return Err(OAuthError::invalid_request(
                "use one client authentication method: Basic or client_secret in the body, not both",
            ));
        }
        if form_client_id.is_some_and(|id| id != client_id) {
            return Err(OAuthError::invalid_request(
                "client_id in the body differs from the one in the Authorization header",
            ));
        }
        return Ok(Credentials::Basic { client_id, secret });
    }
    match (form_client_id, form_secret) {
        (Some(id), Some(secret)) => Ok(Credentials::Post {
            client_id: id.to_owned(),
            secret: Secret::new(secret.to_owned()),
        }),
        (Some(id), None) => Ok(Credentials::Public {
            client_id: id.to_owned(),
        }),
        (None, Some(_)) => Err(OAuthError::invalid_client(
            "client_secret without client_id",
            false,
        )),
        (None, None) => Err(OAuthError::invalid_client(
            "client authentication is required",
            false,
        )),
    }
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 §2.3.1,
/// RFC 7617). The scheme name is case-insensitive.
pub fn parse_basic(header: &[u8]) -> Result<(String, Secret), OAuthError> {
    let bad = || OAuthError::invalid_client("malformed Basic credentials", true);
    let text = std::str::from_utf8(header).map_err(|_| bad())?;
    let (scheme, rest) = text.split_once(' ').ok_or_else(bad)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::invalid_client(
            "the token endpoint accepts Basic client authentication only",
            true,
        ));
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
    let id = form_decode(id);
    let secret = form_decode(secret);
    if id.is_empty() || secret.is_empty() {
        return Err(bad());
    }
    Ok((id, Secret::new(secret)))
}

/// The `application/x-www-form-urlencoded` decoding of one value.
fn form_decode(s: &str) -> String {
    form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Checks the presented credentials against the registered client.
/// An unknown client is verified against a dummy hash so the answer takes
/// the same time as a wrong secret.
pub async fn authenticate(
    verifier: &SecretVerifier,
    client: Option<&ClientRecord>,
    presented: &Credentials,
    ip: Option<IpAddr>,
) -> Result<(), OAuthError> {
    let basic = presented.is_basic();
    let fail = || OAuthError::invalid_client("client authentication failed", basic);
    let secret = match presented {
        Credentials::Basic { secret, .. } | Credentials::Post { secret, .. } => Some(secret),
        Credentials::Public { .. } => None,
    };
    let Some(client) = client else {
        // An unknown client id: counted against the source address.
        if let Some(ip) = ip {
            let limiter = &verifier.failures.by_address;
            limiter.check(&ip, Instant::now()).map_err(throttled)?;
            let _ = limiter.take(&ip, Instant::now());
        }
        if let Some(secret) = secret {
            verifier.burn(secret).await?;
        }
        return Err(fail());
    };
    let registered = client.metadata.token_endpoint_auth_method;
    if registered != presented.method() {
        return Err(OAuthError::invalid_client(
            format!("this client authenticates with {}", registered.as_str()),
            basic,
        ));
    }
    match (secret, client.secret_hash.as_deref()) {
        (None, None) => Ok(()),
        (Some(secret), Some(hash)) => {
            if verifier.verify(&client.client_id, hash, secret).await? {
                Ok(())
            } else {
                Err(fail())
            }
        }
        _ => Err(fail()),
    }
}

/// Argon2id with the OWASP parameters the contract names: m = 19456 KiB, t = 2, p = 1.
fn argon2() -> Argon2<'static> {
    // These constants are valid Argon2 parameters; `Params::new` only fails
    // outside the algorithm's ranges.
    let params = Params::new(19_456, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Argon2's working memory (19 MiB a run), kept for the next run. Freed,
/// a block this size stays in the malloc arena of the thread that ran it,
/// so runs spread over the blocking pool's threads would each leave one
/// behind (measured: 340 MiB resident under `bench/soak.sh`). Runs are
/// bounded to one per core (`SecretVerifier`), and so is this pool.
static BLOCKS: Mutex<Vec<Vec<Block>>> = Mutex::new(Vec::new());

fn with_blocks<R>(count: usize, run: impl FnOnce(&mut [Block]) -> R) -> R {
    let pooled = BLOCKS
        .lock()
        .ok()
        .and_then(|mut pool| pool.pop())
        .filter(|b| b.len() == count);
    let mut blocks = pooled.unwrap_or_else(|| vec![Block::default(); count]);
    let result = run(&mut blocks);
    let keep = std::thread::available_parallelism().map_or(2, usize::from);
    if let Ok(mut pool) = BLOCKS.lock() {
        if pool.len() < keep {
            pool.push(blocks);
        }
    }
    result
}

/// Argon2id of `secret` with `salt` (raw bytes) into `out`, in pooled memory.
fn argon2_into(
    argon: &Argon2<'_>,
    params: &Params,
    secret: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> bool {
    with_blocks(params.block_count(), |blocks| {
        argon
            .hash_password_into_with_memory(secret, salt, out, blocks)
            .is_ok()
    })
}

/// Hashes a new client secret (PHC string). Blocking: call from
/// `spawn_blocking` (or `SecretVerifier::hash`).
pub fn hash_secret_blocking(secret: &Secret) -> anyhow::Result<String> {
    let salt = crate::secret::random_bytes(16);
    let argon = argon2();
    let mut out = [0u8; 32];
    if !argon2_into(
        &argon,
        argon.params(),
        secret.expose_secret().as_bytes(),
        &salt,
        &mut out,
    ) {
        anyhow::bail!("argon2 failed");
    }
    let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    let output = Output::new(&out).map_err(|e| anyhow::anyhow!("argon2 output: {e}"))?;
    Ok(PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: argon
            .params()
            .try_into()
            .map_err(|e| anyhow::anyhow!("argon2 params: {e}"))?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    }
    .to_string())
}

/// Whether `secret` matches the PHC string `hash` (its own algorithm,
/// version and parameters), compared in constant time.
fn verify_blocking(hash: &str, secret: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (
        Algorithm::try_from(parsed.algorithm),
        Params::try_from(&parsed),
    ) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let argon = Argon2::new(algorithm, version, params.clone());
    let mut out = vec![0u8; expected.len()];
    argon2_into(&argon, &params, secret.as_bytes(), salt, &mut out)
        && bool::from(expected.as_bytes().ct_eq(&out))
}

/// What an unknown client's secret is checked against, so that it costs
/// the time of a real verification: the hash of a random secret that was
/// thrown away (with the parameters of `argon2()`).
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$Y70G5wlAvrZfN6z59FtplQ$IR2sGYVFiKvyIm/pF2V1tvGzOqIo2EWtfwC6aGLi6wg";

const CACHE_TTL: Duration = Duration::from_secs(300);
const CACHE_CAPACITY: usize = 10_000;

/// Verifies client secrets: cached successes, bounded Argon2 work.
pub struct SecretVerifier {
    /// Keyed hash of (client id, stored hash, secret) → when it was verified.
    cache: Mutex<HashMap<[u8; 32], Instant>>,
    cache_key: aws_lc_rs::hmac::Key,
    /// One permit per core: Argon2 runs this many at once.
    workers: Arc<Semaphore>,
    /// Requests allowed to wait for a worker; past it, 503.
    queue: Arc<Semaphore>,
    failures: FailureLimiter,
}

/// `TESSERA_RATE_LIMIT_FAILED_AUTH`: failed authentications per minute,
/// counted per client id, and per source address for client ids that are
/// not registered (so that made-up ids cannot fill the limiter's memory).
struct FailureLimiter {
    by_client: Limiter<String>,
    by_address: Limiter<IpAddr>,
}

fn throttled(wait: u64) -> OAuthError {
    OAuthError {
        retry_after: Some(wait),
        ..OAuthError::new(
            crate::error::ErrorCode::TemporarilyUnavailable,
            "too many failed authentications; retry later",
        )
    }
}

impl SecretVerifier {
    /// `failures_per_minute`: `TESSERA_RATE_LIMIT_FAILED_AUTH` (0 = off).
    pub fn new(failures_per_minute: u32) -> anyhow::Result<Self> {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        Ok(Self {
            cache: Mutex::new(HashMap::new()),
            cache_key: aws_lc_rs::hmac::Key::new(
                aws_lc_rs::hmac::HMAC_SHA256,
                &crate::secret::random_bytes(32),
            ),
            workers: Arc::new(Semaphore::new(cores)),
            queue: Arc::new(Semaphore::new(cores * 16)),
            failures: FailureLimiter {
                by_client: Limiter::per_minute(failures_per_minute),
                by_address: Limiter::per_minute(failures_per_minute),
            },
        })
    }

    fn key(&self, client_id: &str, hash: &str, secret: &Secret) -> [u8; 32] {
        let mut ctx = aws_lc_rs::hmac::Context::with_key(&self.cache_key);
        for part in [
            client_id.as_bytes(),
            hash.as_bytes(),
            secret.expose_secret().as_bytes(),
        ] {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part);
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }

    fn cached(&self, key: &[u8; 32]) -> bool {
        let Ok(cache) = self.cache.lock() else {
            return false;
        };
        cache.get(key).is_some_and(|at| at.elapsed() < CACHE_TTL)
    }

    fn remember(&self, key: [u8; 32]) {
        let Ok(mut cache) = self.cache.lock() else {
            return;
        };
        if cache.len() >= CACHE_CAPACITY {
            cache.retain(|_, at| at.elapsed() < CACHE_TTL);
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
        }
        cache.insert(key, Instant::now());
    }

    /// Whether `secret` matches the stored hash. A secret already verified
    /// is accepted even while the client's failure budget is spent, so an
    /// attacker guessing secrets cannot lock a working client out; any other
    /// attempt then gets 429 until the budget refills. Errors when overloaded
    /// or throttled.
    pub async fn verify(
        &self,
        client_id: &str,
        hash: &str,
        secret: &Secret,
    ) -> Result<bool, OAuthError> {
        let key = self.key(client_id, hash, secret);
        if self.cached(&key) {
            return Ok(true);
        }
        let owned = client_id.to_owned();
        self.failures
            .by_client
            .check(&owned, Instant::now())
            .map_err(throttled)?;
        let ok = self
            .run_argon(hash.to_owned(), secret.expose_secret().to_owned())
            .await?;
        if ok {
            self.remember(key);
        } else {
            let _ = self.failures.by_client.take(&owned, Instant::now());
        }
        Ok(ok)
    }

    /// Spends the time of a verification on the dummy hash.
    async fn burn(&self, secret: &Secret) -> Result<(), OAuthError> {
        self.run_argon(DUMMY_HASH.to_owned(), secret.expose_secret().to_owned())
            .await
            .map(|_| ())
    }

    async fn run_argon(&self, hash: String, secret: String) -> Result<bool, OAuthError> {
        let _queued = self
            .queue
            .clone()
            .try_acquire_owned()
            .map_err(|_| OAuthError::overloaded())?;
        let _worker = self
            .workers
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| OAuthError::overloaded())?;
        tokio::task::spawn_blocking(move || verify_blocking(&hash, &secret))
            .await
            .map_err(OAuthError::internal)
    }

    /// Hashes a new secret on the blocking pool.
    pub async fn hash(secret: Secret) -> anyhow::Result<(Secret, String)> {
        tokio::task::spawn_blocking(move || {
            let hash = hash_secret_blocking(&secret)?;
            Ok((secret, hash))
        })
        .await?
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used)]
    use super::*;

    fn basic(raw: &str) -> Vec<u8> {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
        .into_bytes()
    }

    #[test]
    fn secrets_hash_and_verify_as_standard_argon2id_phc_strings() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let secret = Secret::new("s3cret-s3cret".to_owned());
        let ours = hash_secret_blocking(&secret).unwrap();
        assert!(
            ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{ours}"
        );
        assert!(verify_blocking(&ours, "s3cret-s3cret"));
        assert!(!verify_blocking(&ours, "s3cret-s3creT"));
        // What the argon2 crate's own verifier says of ours, and we of its
        // hashes (those stored before the memory pool).
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(argon2().verify_password(b"s3cret-s3cret", &parsed).is_ok());
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let theirs = argon2().hash_password(b"other", &salt).unwrap().to_string();
        assert!(verify_blocking(&theirs, "other"));
        assert!(!verify_blocking(&theirs, "s3cret-s3cret"));
        // Other parameters verify too (a smaller memory than the pool's).
        let small = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(1024, 1, 1, None).unwrap(),
        )
        .hash_password(b"small", &salt)
        .unwrap()
        .to_string();
        assert!(verify_blocking(&small, "small"));
        assert!(!verify_blocking("not a hash", "small"));
        // The dummy hash is one of ours: an unknown client costs the same.
        let dummy = Params::try_from(&PasswordHash::new(DUMMY_HASH).unwrap()).unwrap();
        let params = argon2().params().clone();
        assert_eq!(
            (dummy.m_cost(), dummy.t_cost(), dummy.p_cost()),
            (params.m_cost(), params.t_cost(), params.p_cost())
        );
        assert!(!verify_blocking(DUMMY_HASH, "s3cret-s3cret"));
    }

    #[test]
    fn basic_credentials_are_form_urlencoded() {
        let (id, secret) = parse_basic(&basic("my%3Aclient:s%2Bcr+t")).unwrap();
        assert_eq!(id, "my:client");
        assert_eq!(secret.expose_secret(), "s+cr t");
    }

    #[test]
    fn two_methods_at_once_are_an_invalid_request() {
        let err = credentials(Some(&basic("a:b")), None, Some("b")).unwrap_err();
        assert_eq!(err.code.as_str(), "invalid_request");
        let err = credentials(Some(&basic("a:b")), Some("c"), None).unwrap_err();
        assert_eq!(err.code.as_str(), "invalid_request");
        assert!(credentials(Some(&basic("a:b")), Some("a"), None).is_ok());
    }

    #[test]
    fn malformed_basic_is_invalid_client_with_a_challenge() {
        for header in [
            b"Basic !!!".to_vec(),
            basic("nocolon"),
            basic(":x"),
            b"Bearer abc".to_vec(),
        ] {
            let err = parse_basic(&header).unwrap_err();
            assert_eq!(err.code.as_str(), "invalid_client");
            assert!(err.basic_challenge);
        }
    }

    #[tokio::test]
    async fn a_verified_secret_is_cached_and_a_wrong_one_never_is() {
        let v = SecretVerifier::new(20).unwrap();
        let secret = Secret::new("right".into());
        let hash = hash_secret_blocking(&secret).unwrap();
        assert!(v.verify("c", &hash, &secret).await.unwrap());
        assert!(v.cached(&v.key("c", &hash, &secret)));
        let wrong = Secret::new("wrong".into());
        assert!(!v.verify("c", &hash, &wrong).await.unwrap());
        assert!(!v.cached(&v.key("c", &hash, &wrong)));
        // Another stored hash (a rotation) misses the cache.
        let rotated = hash_secret_blocking(&Secret::new("new".into())).unwrap();
        assert!(!v.verify("c", &rotated, &secret).await.unwrap());
    }

    #[tokio::test]
    async fn past_the_failure_budget_only_a_known_good_secret_gets_in() {
        let v = SecretVerifier::new(2).unwrap();
        let good = Secret::new("good".into());
        let hash = hash_secret_blocking(&good).unwrap();
        assert!(v.verify("c", &hash, &good).await.unwrap());
        let wrong = Secret::new("wrong".into());
        assert!(!v.verify("c", &hash, &wrong).await.unwrap());
        assert!(!v.verify("c", &hash, &wrong).await.unwrap());
        let throttled = v.verify("c", &hash, &wrong).await.unwrap_err();
        assert!(throttled.retry_after.is_some_and(|s| (1..=30).contains(&s)));
        assert!(
            v.verify("c", &hash, &good).await.unwrap(),
            "the cached good secret still works"
        );
        // Another client is not affected.
        assert!(!v.verify("d", &hash, &wrong).await.unwrap());
    }
}
