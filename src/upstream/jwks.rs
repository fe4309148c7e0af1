//! The upstream's signing keys: fetched from its `jwks_uri`, cached, and
//! refetched when an unknown `kid` appears (key rotation upstream), at most
//! once every `REFETCH_INTERVAL` so a stream of forged `kid`s cannot turn
//! Tessera into a request amplifier.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{JwkSet, PublicKeyUse};

const REFETCH_INTERVAL: Duration = Duration::from_secs(10);

type KeyMap = HashMap<String, (Option<jsonwebtoken::Algorithm>, DecodingKey)>;

pub struct UpstreamKeys {
    http: reqwest::Client,
    uri: RwLock<Option<String>>,
    keys: RwLock<Arc<KeyMap>>,
    /// Held while fetching; remembers when the last fetch started.
    fetch: tokio::sync::Mutex<Option<Instant>>,
}

impl UpstreamKeys {
    pub fn new(http: reqwest::Client) -> Self {
        Self {
            http,
            uri: RwLock::new(None),
            keys: RwLock::new(Arc::new(HashMap::new())),
            fetch: tokio::sync::Mutex::new(None),
        }
    }

    /// Set by discovery.
    pub fn set_uri(&self, uri: String) {
        if let Ok(mut u) = self.uri.write() {
            *u = Some(uri);
        }
    }

    fn lookup(&self, kid: &str, alg: jsonwebtoken::Algorithm) -> Option<DecodingKey> {
        let keys = self.keys.read().ok()?.clone();
        let found = if kid.is_empty() && keys.len() == 1 {
            keys.values().next()
        } else {
            keys.get(kid)
        };
        found
            .filter(|(key_alg, _)| key_alg.is_none_or(|a| a == alg))
            .map(|(_, key)| key.clone())
    }

    /// The key for `kid`, refetching the JWKS once if it is unknown.
    pub async fn get(&self, kid: &str, alg: jsonwebtoken::Algorithm) -> Option<DecodingKey> {
        if let Some(key) = self.lookup(kid, alg) {
            return Some(key);
        }
        let mut last = self.fetch.lock().await;
        // Another request may have fetched while this one waited.
        if let Some(key) = self.lookup(kid, alg) {
            return Some(key);
        }
        if last.is_some_and(|at| at.elapsed() < REFETCH_INTERVAL) {
            return None;
        }
        *last = Some(Instant::now());
        match self.refresh().await {
            Ok(()) => {}
            Err(e) => tracing::warn!(
                error = format!("{e:#}"),
                "fetching the upstream JWKS failed"
            ),
        }
        self.lookup(kid, alg)
    }

    async fn refresh(&self) -> anyhow::Result<()> {
        let uri = self
            .uri
            .read()
            .ok()
            .and_then(|u| u.clone())
            .ok_or_else(|| anyhow::anyhow!("upstream discovery has not run"))?;
        let set: JwkSet = serde_json::from_slice(&super::fetch(&self.http, &uri).await?)?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            if jwk
                .common
                .public_key_use
                .as_ref()
                .is_some_and(|u| *u != PublicKeyUse::Signature)
            {
                continue;
            }
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                continue;
            };
            let alg = jwk
                .common
                .key_algorithm
                .and_then(|a| a.to_string().parse::<jsonwebtoken::Algorithm>().ok());
            keys.insert(jwk.common.key_id.clone().unwrap_or_default(), (alg, key));
        }
        if let Ok(mut current) = self.keys.write() {
            *current = Arc::new(keys);
        }
        Ok(())
    }
}
