//! Signing keys: generation with aws-lc-rs, PKCS#8 PEM files, RFC 7638
//! thumbprints, the published JWKS, and the in-memory key set that signs.
//!
//! Private keys are parsed once and held as aws-lc-rs key pairs: building a
//! signer from key bytes on every token (what `jsonwebtoken::encode` does)
//! costs about as much as an RSA signature. `jsonwebtoken` is used only to
//! validate.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, anyhow};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use serde_json::{Value, json};

use super::Alg;
use crate::secret::b64url;
use crate::store::{KeyRecord, KeyState, Store};

enum Pair {
    Rsa(signature::RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A private key held in memory, ready to sign.
pub struct SigningKey {
    pub kid: String,
    pub alg: Alg,
    pair: Pair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new key pair and its PKCS#8 v1 DER encoding.
    pub fn generate(alg: Alg) -> anyhow::Result<(Self, Vec<u8>)> {
        let der = match alg {
            Alg::RS256 => signature::RsaKeyPair::generate(KeySize::Rsa2048)
                .map_err(|_| anyhow!("RSA key generation failed"))?
                .as_der()
                .map_err(|_| anyhow!("RSA key encoding failed"))?
                .as_ref()
                .to_vec(),
            Alg::ES256 => EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)
                .map_err(|_| anyhow!("P-256 key generation failed"))?
                .to_pkcs8v1()
                .map_err(|_| anyhow!("P-256 key encoding failed"))?
                .as_ref()
                .to_vec(),
            Alg::EdDSA => Ed25519KeyPair::generate()
                .map_err(|_| anyhow!("Ed25519 key generation failed"))?
                .to_pkcs8v1()
                .map_err(|_| anyhow!("Ed25519 key encoding failed"))?
                .as_ref()
                .to_vec(),
        };
        let key = Self::from_pkcs8(alg, &der)?;
        Ok((key, der))
    }

    /// Parses a PKCS#8 DER private key; the `kid` is its RFC 7638 thumbprint.
    pub fn from_pkcs8(alg: Alg, der: &[u8]) -> anyhow::Result<Self> {
        let pair = match alg {
            Alg::RS256 => Pair::Rsa(
                signature::RsaKeyPair::from_pkcs8(der)
                    .map_err(|e| anyhow!("not an RSA PKCS#8 key: {e}"))?,
            ),
            Alg::ES256 => Pair::Ec(
                EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map_err(|e| anyhow!("not a P-256 PKCS#8 key: {e}"))?,
            ),
            Alg::EdDSA => Pair::Ed(
                Ed25519KeyPair::from_pkcs8(der)
                    .map_err(|e| anyhow!("not an Ed25519 PKCS#8 key: {e}"))?,
            ),
        };
        let mut key = Self {
            kid: String::new(),
            alg,
            pair,
        };
        key.kid = key.thumbprint()?;
        Ok(key)
    }

    /// The required public members of the JWK, in lexicographic order
    /// (RFC 7638 §3.2), as (name, value) pairs.
    fn required_members(&self) -> anyhow::Result<Vec<(&'static str, String)>> {
        Ok(match &self.pair {
            Pair::Rsa(p) => {
                let public = p.public_key();
                vec![
                    (
                        "e",
                        b64url(public.exponent().big_endian_without_leading_zero()),
                    ),
                    ("kty", "RSA".into()),
                    (
                        "n",
                        b64url(public.modulus().big_endian_without_leading_zero()),
                    ),
                ]
            }
            Pair::Ec(p) => {
                // Uncompressed point: 0x04 || x (32 bytes) || y (32 bytes).
                let point = p.public_key().as_ref();
                let (x, y) = point
                    .get(1..33)
                    .zip(point.get(33..65))
                    .ok_or_else(|| anyhow!("unexpected P-256 public key encoding"))?;
                vec![
                    ("crv", "P-256".into()),
                    ("kty", "EC".into()),
                    ("x", b64url(x)),
                    ("y", b64url(y)),
                ]
            }
            Pair::Ed(p) => vec![
                ("crv", "Ed25519".into()),
                ("kty", "OKP".into()),
                ("x", b64url(p.public_key().as_ref())),
            ],
        })
    }

    /// RFC 7638 JWK thumbprint (SHA-256, base64url).
    fn thumbprint(&self) -> anyhow::Result<String> {
        let members = self.required_members()?;
        let mut canonical = String::from("{");
        for (i, (name, value)) in members.iter().enumerate() {
            if i > 0 {
                canonical.push(',');
            }
            // Every value is base64url or a fixed name: nothing to escape.
            canonical.push_str(&format!("\"{name}\":\"{value}\""));
        }
        canonical.push('}');
        Ok(crate::secret::sha256_b64(canonical.as_bytes()))
    }

    /// The public JWK as published at `/jwks` (RFC 7517 §4).
    pub fn public_jwk(&self) -> anyhow::Result<Value> {
        let mut jwk = serde_json::Map::new();
        for (name, value) in self.required_members()? {
            jwk.insert(name.into(), Value::String(value));
        }
        jwk.insert("kid".into(), json!(self.kid));
        jwk.insert("use".into(), json!("sig"));
        jwk.insert("alg".into(), json!(self.alg.as_str()));
        Ok(Value::Object(jwk))
    }

    /// The JWS signature of `message` (RFC 7515 §5.1 step 5).
    pub fn sign(&self, message: &[u8]) -> anyhow::Result<Vec<u8>> {
        match &self.pair {
            Pair::Rsa(p) => {
                let mut sig = vec![0u8; p.public_modulus_len()];
                p.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &aws_lc_rs::rand::SystemRandom::new(),
                    message,
                    &mut sig,
                )
                .map_err(|_| anyhow!("RSA signing failed"))?;
                Ok(sig)
            }
            Pair::Ec(p) => Ok(p
                .sign(&aws_lc_rs::rand::SystemRandom::new(), message)
                .map_err(|_| anyhow!("ECDSA signing failed"))?
                .as_ref()
                .to_vec()),
            Pair::Ed(p) => Ok(p.sign(message).as_ref().to_vec()),
        }
    }

    /// The verification key in the form `jsonwebtoken` wants.
    pub fn decoding_key(&self) -> anyhow::Result<jsonwebtoken::DecodingKey> {
        let members: HashMap<_, _> = self.required_members()?.into_iter().collect();
        let get = |k: &str| members.get(k).map(String::as_str).unwrap_or_default();
        Ok(match self.alg {
            Alg::RS256 => jsonwebtoken::DecodingKey::from_rsa_components(get("n"), get("e"))?,
            Alg::ES256 => jsonwebtoken::DecodingKey::from_ec_components(get("x"), get("y"))?,
            Alg::EdDSA => jsonwebtoken::DecodingKey::from_ed_components(get("x"))?,
        })
    }
}

/// The folder of PEM files `{kid}.pem` (PKCS#8, mode 0600).
#[derive(Clone, Debug)]
pub struct KeyDir(PathBuf);

impl KeyDir {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self(path.into())
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    fn file(&self, kid: &str) -> anyhow::Result<PathBuf> {
        // A kid is base64url (RFC 7638 thumbprint): it cannot name another folder.
        if kid.is_empty()
            || !kid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(anyhow!("invalid kid {kid:?}"));
        }
        Ok(self.0.join(format!("{kid}.pem")))
    }

    /// Writes a new private key, readable by the owner only.
    pub fn write(&self, kid: &str, der: &[u8]) -> anyhow::Result<()> {
        use std::io::Write;
        let path = self.file(kid)?;
        let text = pem::encode(&pem::Pem::new("PRIVATE KEY", der.to_vec()));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options
            .open(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        Ok(())
    }

    pub fn read(&self, record: &KeyRecord) -> anyhow::Result<SigningKey> {
        let path = self.file(&record.kid)?;
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "signing key {} is missing from {}",
                record.kid,
                self.0.display()
            )
        })?;
        let block = pem::parse(text).with_context(|| format!("{} is not PEM", path.display()))?;
        let key = SigningKey::from_pkcs8(record.alg, block.contents())?;
        if key.kid != record.kid {
            return Err(anyhow!(
                "{} does not hold key {}",
                path.display(),
                record.kid
            ));
        }
        Ok(key)
    }

    pub fn remove(&self, kid: &str) {
        if let Ok(path) = self.file(kid) {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// What an instance signs and publishes at one moment. Replaced whole when
/// the key records change; readers never see a half-updated set.
pub struct KeySet {
    /// The signing key per algorithm (state `active`).
    active: HashMap<Alg, Arc<SigningKey>>,
    /// Every published key (pending, active, retiring) by kid, for validation.
    verifying: HashMap<String, (Alg, jsonwebtoken::DecodingKey)>,
    /// The `/jwks` body, serialized once.
    pub jwks: bytes::Bytes,
    /// The records this set was built from, to notice changes.
    pub records: Vec<KeyRecord>,
}

impl KeySet {
    /// Reads the PEM file of every published key.
    pub fn build(dir: &KeyDir, records: Vec<KeyRecord>) -> anyhow::Result<Self> {
        let mut active = HashMap::new();
        let mut verifying = HashMap::new();
        let mut jwks = Vec::new();
        for record in records.iter().filter(|r| r.state.is_published()) {
            let key = dir.read(record)?;
            jwks.push(key.public_jwk()?);
            verifying.insert(key.kid.clone(), (key.alg, key.decoding_key()?));
            if record.state == KeyState::Active {
                active.insert(key.alg, Arc::new(key));
            }
        }
        let body = serde_json::to_vec(&json!({ "keys": jwks }))?;
        Ok(Self {
            active,
            verifying,
            jwks: body.into(),
            records,
        })
    }

    /// A set of keys held only in memory, every one active (fuzzing and
    /// tests).
    pub fn in_memory(keys: Vec<SigningKey>) -> anyhow::Result<Self> {
        let mut active = HashMap::new();
        let mut verifying = HashMap::new();
        let mut jwks = Vec::new();
        for key in keys {
            jwks.push(key.public_jwk()?);
            verifying.insert(key.kid.clone(), (key.alg, key.decoding_key()?));
            active.insert(key.alg, Arc::new(key));
        }
        Ok(Self {
            active,
            verifying,
            jwks: serde_json::to_vec(&json!({ "keys": jwks }))?.into(),
            records: Vec::new(),
        })
    }

    /// The key that signs with `alg` now.
    pub fn signer(&self, alg: Alg) -> Option<&Arc<SigningKey>> {
        self.active.get(&alg)
    }

    /// The verification key of a published `kid`.
    pub fn verifier(&self, kid: &str) -> Option<&(Alg, jsonwebtoken::DecodingKey)> {
        self.verifying.get(kid)
    }

    pub fn has_all_signers(&self, algs: &[Alg]) -> bool {
        algs.iter().all(|a| self.active.contains_key(a))
    }
}

/// The key set of a running instance, swapped atomically on reload.
pub struct Keys {
    dir: KeyDir,
    current: arc_swap::ArcSwap<KeySet>,
}

impl Keys {
    pub fn new(dir: KeyDir, set: KeySet) -> Self {
        Self {
            dir,
            current: arc_swap::ArcSwap::from_pointee(set),
        }
    }

    /// The current set. A guard, not an `Arc` clone: readers on the hot
    /// path do not contend on a shared reference count.
    pub fn current(&self) -> arc_swap::Guard<Arc<KeySet>> {
        self.current.load()
    }

    pub fn dir(&self) -> &KeyDir {
        &self.dir
    }

    /// Re-reads the key records; rebuilds the set only when they changed.
    /// Returns whether anything changed.
    pub async fn reload(&self, store: &dyn Store) -> anyhow::Result<bool> {
        let records = store.list_keys().await?;
        if records == self.current.load().records {
            return Ok(false);
        }
        let dir = self.dir.clone();
        let set = tokio::task::spawn_blocking(move || KeySet::build(&dir, records)).await??;
        self.current.store(Arc::new(set));
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn every_algorithm_round_trips_through_pkcs8_with_a_stable_kid() {
        for alg in Alg::ALL {
            let (key, der) = SigningKey::generate(alg).unwrap();
            let again = SigningKey::from_pkcs8(alg, &der).unwrap();
            assert_eq!(key.kid, again.kid);
            assert_eq!(key.kid.len(), 43);
        }
    }

    #[test]
    fn rfc7638_thumbprint_of_the_spec_example() {
        // RFC 7638 §3.1: the example RSA key's thumbprint.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let canonical = format!("{{\"e\":\"AQAB\",\"kty\":\"RSA\",\"n\":\"{n}\"}}");
        assert_eq!(
            crate::secret::sha256_b64(canonical.as_bytes()),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn a_signature_verifies_with_the_published_key() {
        for alg in Alg::ALL {
            let (key, _) = SigningKey::generate(alg).unwrap();
            let token = crate::token::jwt::sign(&key, "JWT", &json!({"sub": "x"})).unwrap();
            let mut v = jsonwebtoken::Validation::new(alg.jsonwebtoken());
            v.required_spec_claims.clear();
            v.validate_exp = false;
            let data =
                jsonwebtoken::decode::<Value>(&token, &key.decoding_key().unwrap(), &v).unwrap();
            assert_eq!(data.claims["sub"], "x");
            assert_eq!(data.header.kid.as_deref(), Some(key.kid.as_str()));
        }
    }
}
