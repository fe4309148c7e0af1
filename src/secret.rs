//! Secrets as types, random tokens, and the digests under which they are stored.
//!
//! A `Secret` cannot be printed, logged or cloned by accident: `Debug` is
//! redacted, there is no `Display`, and the value is reached only through
//! `expose_secret()` at the point of use.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A secret string (client secret, admin token, upstream secret).
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// Constant-time equality: the time taken does not depend on where the
    /// two values first differ.
    pub fn ct_eq(&self, other: &str) -> bool {
        ct_eq(self.0.as_bytes(), other.as_bytes())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// Constant-time comparison of two byte strings (length is not hidden).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

/// `n` bytes from a CSPRNG (rand's `ThreadRng`: ChaCha12 seeded and
/// periodically reseeded from the operating system), base64url without padding.
/// 16 bytes give the 22 characters of a `client_id`, 32 the 43 of a secret
/// or an opaque token.
pub fn random_token(n: usize) -> String {
    URL_SAFE_NO_PAD.encode(random_bytes(n))
}

pub fn random_bytes(n: usize) -> Vec<u8> {
    use rand::RngCore;
    let mut buf = vec![0u8; n];
    rand::rng().fill_bytes(&mut buf);
    buf
}

/// SHA-256 of a value, base64url: how opaque tokens and codes are stored.
pub fn sha256_b64(value: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, value))
}

pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn b64url_decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_shows_in_debug_output() {
        let s = Secret::new("hunter2hunter2".into());
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn tokens_have_the_lengths_of_the_contract() {
        assert_eq!(random_token(16).len(), 22);
        assert_eq!(random_token(32).len(), 43);
        assert_ne!(random_token(32), random_token(32));
    }
}
