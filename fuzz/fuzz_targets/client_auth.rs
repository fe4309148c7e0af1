//! Client authentication parsing: the `Authorization` header (Basic, RFC
//! 6749 §2.3.1, form-urlencoded id and secret) and its combination with
//! form credentials. Errors are `invalid_request` or `invalid_client`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::oauth::client_auth::{credentials, parse_basic};

fuzz_target!(|data: &[u8]| {
    if let Err(e) = parse_basic(data) {
        assert!(matches!(
            e.code.as_str(),
            "invalid_request" | "invalid_client"
        ));
    }
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\n');
    let (header, id, secret) = (parts.next(), parts.next(), parts.next());
    let header = header.filter(|h| !h.is_empty()).map(str::as_bytes);
    if let Err(e) = credentials(header, id, secret) {
        assert!(matches!(
            e.code.as_str(),
            "invalid_request" | "invalid_client"
        ));
    }
});
