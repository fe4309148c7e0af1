//! JWT parsing where Tessera reads tokens it is handed: access tokens at
//! `/userinfo` and `/introspect`, and `id_token_hint` at `/logout`. Any
//! string is refused or accepted without panicking; a forged one never
//! passes (the keys are made here and never sign the input).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tessera::oauth::logout::verify_hint_with;
use tessera::oauth::userinfo::{bearer, verify_access_token_with};
use tessera::token::Alg;
use tessera::token::keys::{KeySet, SigningKey};

fn keys() -> &'static KeySet {
    static KEYS: OnceLock<KeySet> = OnceLock::new();
    KEYS.get_or_init(|| {
        let keys = [Alg::RS256, Alg::ES256, Alg::EdDSA]
            .into_iter()
            .map(|alg| SigningKey::generate(alg).expect("key").0)
            .collect();
        KeySet::in_memory(keys).expect("key set")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let issuer = "https://id.example.com";
    assert!(verify_access_token_with(keys(), issuer, text, 0).is_err());
    assert!(verify_hint_with(keys(), issuer, text).is_none());
    let _ = bearer(Some(text), None);
    let _ = bearer(None, Some(text));
});
