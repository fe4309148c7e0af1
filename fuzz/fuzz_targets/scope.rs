//! Scope parsing (RFC 6749 §3.3): what parses joins back to a string that
//! parses to the same list.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::oauth::scope::parse;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(scopes) = parse(text) {
        let joined = scopes.join(" ");
        assert_eq!(parse(&joined).as_ref(), Ok(&scopes));
    }
});
