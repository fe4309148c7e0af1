//! Form and query parsing (RFC 6749 §3.1): any bytes either parse or are
//! refused with `invalid_request`; a parsed set never holds a repeated
//! parameter other than `resource`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::oauth::form::{Params, is_form};

fuzz_target!(|data: &[u8]| {
    let _ = is_form(Some(data));
    match Params::parse(data) {
        Ok(params) => {
            for name in [
                "grant_type",
                "code",
                "client_id",
                "scope",
                "state",
                "redirect_uri",
            ] {
                assert!(params.all(name).len() <= 1, "{name} repeated");
                assert_eq!(params.get(name), params.all(name).first().copied());
            }
        }
        Err(e) => assert_eq!(e.code.as_str(), "invalid_request"),
    }
});
