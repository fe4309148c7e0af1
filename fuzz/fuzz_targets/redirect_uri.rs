//! Redirect-URI checks and matching: the input is a registered URI and a
//! requested one, separated by a newline. A URI always matches itself once
//! it is registrable; matching never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::oauth::redirect_uri::{check_registered, check_web_uri, matches};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (registered, requested) = text.split_once('\n').unwrap_or((text, text));
    let _ = check_web_uri(registered);
    let registrable = check_registered(registered).is_ok();
    let _ = matches(registered, requested);
    if registrable {
        assert!(
            matches(registered, registered),
            "{registered:?} does not match itself"
        );
    }
});
