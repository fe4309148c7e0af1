//! Scopes (RFC 6749 §3.3): `scope = scope-token *( SP scope-token )`,
//! `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.

/// The OpenID Connect scopes: they concern a signed-in user, never a client
/// acting for itself.
pub const OPENID_SCOPES: &[&str] = &[
    "openid",
    "profile",
    "email",
    "address",
    "phone",
    "offline_access",
];

const MAX_SCOPES: usize = 100;
const MAX_TOKEN: usize = 200;

fn is_scope_char(c: char) -> bool {
    matches!(c, '\x21' | '\x23'..='\x5b' | '\x5d'..='\x7e')
}

/// Parses a scope string into its tokens, in order, without duplicates.
/// Runs of spaces are tolerated; any other separator or character is not.
pub fn parse(s: &str) -> Result<Vec<String>, &'static str> {
    let mut out: Vec<String> = Vec::new();
    for token in s.split(' ').filter(|t| !t.is_empty()) {
        if token.len() > MAX_TOKEN || !token.chars().all(is_scope_char) {
            return Err(
                "a scope token is made of printable ASCII characters other than space, `\"` and `\\`",
            );
        }
        if !out.iter().any(|t| t == token) {
            out.push(token.to_owned());
        }
    }
    if out.len() > MAX_SCOPES {
        return Err("too many scopes");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn scopes_keep_request_order_without_duplicates() {
        assert_eq!(parse("b a  b c").unwrap(), vec!["b", "a", "c"]);
        assert!(parse("").unwrap().is_empty());
        assert!(parse("a\tb").is_err());
        assert!(parse("a\"b").is_err());
        assert!(parse("é").is_err());
    }

    proptest! {
        #[test]
        fn parsed_tokens_are_valid_and_rejoin_to_an_equivalent_scope(s in "[ -~]{0,80}") {
            if let Ok(tokens) = parse(&s) {
                for t in &tokens {
                    prop_assert!(!t.is_empty() && t.chars().all(is_scope_char));
                }
                prop_assert_eq!(parse(&tokens.join(" ")).unwrap(), tokens);
            }
        }
    }
}
