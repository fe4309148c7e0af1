//! Request parameters (RFC 6749 §3.1, §3.2): form bodies and query strings.
//! "Parameters sent without a value MUST be treated as if they were omitted
//! from the request"; "request and response parameters MUST NOT be included
//! more than once" — except `resource` (RFC 8707 §2).

use crate::error::OAuthError;

/// Parameters that may repeat.
const REPEATABLE: &[&str] = &["resource"];

/// Parsed parameters, empty values dropped, repeats refused.
#[derive(Debug, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    pub fn parse(raw: &[u8]) -> Result<Self, OAuthError> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (name, value) in form_urlencoded::parse(raw) {
            if value.is_empty() {
                continue;
            }
            if !REPEATABLE.contains(&name.as_ref()) && pairs.iter().any(|(n, _)| *n == name) {
                return Err(OAuthError::invalid_request(format!(
                    "parameter `{}` is repeated",
                    truncate(&name)
                )));
            }
            pairs.push((name.into_owned(), value.into_owned()));
        }
        Ok(Self { pairs })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Parameter names are echoed in errors; keep them short.
fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Whether a `Content-Type` is `application/x-www-form-urlencoded` (any
/// parameters, such as a charset, allowed).
pub fn is_form(content_type: Option<&[u8]>) -> bool {
    content_type
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn empty_values_count_as_absent_and_repeats_are_refused() {
        let p = Params::parse(b"a=1&b=&resource=x&resource=y").unwrap();
        assert_eq!(p.get("a"), Some("1"));
        assert_eq!(p.get("b"), None);
        assert_eq!(p.all("resource"), vec!["x", "y"]);
        let e = Params::parse(b"scope=a&scope=b").unwrap_err();
        assert_eq!(e.code.as_str(), "invalid_request");
        assert!(Params::parse(b"scope=&scope=b").is_ok());
    }

    #[test]
    fn the_content_type_must_be_a_form() {
        assert!(is_form(Some(b"application/x-www-form-urlencoded")));
        assert!(is_form(Some(
            b"Application/X-WWW-Form-Urlencoded; charset=UTF-8"
        )));
        assert!(!is_form(Some(b"application/json")));
        assert!(!is_form(None));
    }

    proptest! {
        #[test]
        fn parsing_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Params::parse(&raw);
        }
    }
}
