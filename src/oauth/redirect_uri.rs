//! Redirect URIs: what may be registered (RFC 6749 §3.1.2, RFC 8252 §7,
//! RFC 9700 §2.1) and how a requested one matches a registered one (exact
//! string match, except the RFC 8252 §7.3 loopback rule: any port).

use url::{Host, Url};

const MAX_LEN: usize = 2000;

/// Checks a URI to be registered as a redirect URI: absolute, no fragment,
/// no user info; https, or http on a loopback host (RFC 8252 §7.3), or a
/// private-use scheme in reverse-domain form (RFC 8252 §7.1: it contains a
/// `.`), which keeps `javascript:`, `data:` and `file:` out.
pub fn check_registered(uri: &str) -> Result<Url, &'static str> {
    let url = parse_absolute(uri)?;
    match url.scheme() {
        "https" => require_host(&url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => {
            Err("http is allowed only on a loopback host (127.0.0.1, [::1], localhost); use https")
        }
        scheme if scheme.contains('.') => Ok(url),
        _ => Err(
            "a native app's private-use scheme must be a reverse domain name, like com.example.app",
        ),
    }
}

/// A URI Tessera will call or send browsers to (back-channel logout):
/// https, or http on a loopback host.
pub fn check_web_uri(uri: &str) -> Result<Url, &'static str> {
    let url = parse_absolute(uri)?;
    match url.scheme() {
        "https" => require_host(&url),
        "http" if is_loopback(&url) => Ok(url),
        _ => Err("must be https (http only on a loopback host)"),
    }
}

fn parse_absolute(uri: &str) -> Result<Url, &'static str> {
    if uri.len() > MAX_LEN {
        return Err("is too long");
    }
    if uri.contains('#') {
        return Err("must not contain a fragment");
    }
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters");
    }
    let url = Url::parse(uri).map_err(|_| "must be an absolute URI")?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain user information");
    }
    Ok(url)
}

fn require_host(url: &Url) -> Result<Url, &'static str> {
    match url.host_str() {
        Some(h) if !h.is_empty() => Ok(url.clone()),
        _ => Err("must name a host"),
    }
}

/// `http://127.0.0.1…`, `http://[::1]…` or `http://localhost…`.
pub fn is_loopback(url: &Url) -> bool {
    url.scheme() == "http"
        && match url.host() {
            Some(Host::Ipv4(ip)) => ip.is_loopback(),
            Some(Host::Ipv6(ip)) => ip.is_loopback(),
            Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            None => false,
        }
}

/// Whether a requested redirect URI matches a registered one: the exact
/// string, or for a loopback registration the same URI with any port.
pub fn matches(registered: &str, requested: &str) -> bool {
    if registered == requested {
        return true;
    }
    let (Ok(reg), Ok(req)) = (Url::parse(registered), Url::parse(requested)) else {
        return false;
    };
    if !is_loopback(&reg) || !is_loopback(&req) || requested.contains('#') {
        return false;
    }
    let mut req_any_port = req.clone();
    let mut reg_any_port = reg.clone();
    // Both are http URLs with a host: setting the port cannot fail.
    if req_any_port.set_port(None).is_err() || reg_any_port.set_port(None).is_err() {
        return false;
    }
    reg_any_port.as_str() == req_any_port.as_str() && reg.host() == req.host()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn loopback_redirects_match_on_any_port() {
        assert!(matches("http://127.0.0.1/cb", "http://127.0.0.1:53211/cb"));
        assert!(matches("http://[::1]:80/cb", "http://[::1]:9/cb"));
        assert!(matches(
            "http://localhost:1234/cb",
            "http://localhost:4321/cb"
        ));
        assert!(!matches("http://127.0.0.1/cb", "http://127.0.0.1:5/other"));
        assert!(!matches("http://127.0.0.1/cb", "http://localhost:5/cb"));
        assert!(!matches(
            "https://app.example/cb",
            "https://app.example:444/cb"
        ));
        assert!(!matches(
            "https://app.example/cb",
            "https://app.example/cb/"
        ));
        assert!(!matches("https://app.example/cb", "https://APP.example/cb"));
    }

    proptest! {
        #[test]
        fn a_non_loopback_uri_matches_only_itself(path in "[a-z/]{0,12}", other in "[a-z/]{0,12}") {
            let reg = format!("https://app.example/{path}");
            let req = format!("https://app.example/{other}");
            prop_assert_eq!(matches(&reg, &req), path == other);
        }

        #[test]
        fn matching_never_panics(a in ".{0,60}", b in ".{0,60}") {
            let _ = matches(&a, &b);
            let _ = check_registered(&a);
        }
    }
}
