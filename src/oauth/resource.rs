//! Resource indicators (RFC 8707): which API a token is for. Each requested
//! `resource` must be the default audience or one of `TESSERA_RESOURCES`
//! (a single trailing slash ignored); it becomes `aud`.

use crate::config::Config;
use crate::error::{ErrorCode, OAuthError};

fn trim_slash(s: &str) -> &str {
    s.strip_suffix('/').unwrap_or(s)
}

/// The audiences for the requested resources, in request order, in their
/// configured spelling; none requested = the default audience.
pub fn audiences(config: &Config, requested: &[&str]) -> Result<Vec<String>, OAuthError> {
    if requested.is_empty() {
        return Ok(vec![config.default_audience.clone()]);
    }
    let mut out: Vec<String> = Vec::with_capacity(requested.len());
    for r in requested {
        // RFC 8707 §2: an absolute URI without a fragment.
        let absolute = url::Url::parse(r).is_ok_and(|u| u.fragment().is_none() && !r.contains('#'));
        let known = std::iter::once(&config.default_audience)
            .chain(&config.resources)
            .find(|k| trim_slash(k) == trim_slash(r));
        match known {
            Some(k) if absolute => {
                if !out.contains(k) {
                    out.push(k.clone());
                }
            }
            _ => {
                return Err(OAuthError::new(
                    ErrorCode::InvalidTarget,
                    "resource is not an API this server issues tokens for",
                ));
            }
        }
    }
    Ok(out)
}
