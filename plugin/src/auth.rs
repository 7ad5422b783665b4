//! Authentication (RFC 7644 §2): OAuth 2.0 bearer tokens (RFC 6750), checked by digest.

use sha2::{Digest, Sha256};

use crate::error::ScimError;
use crate::http::Request;
use crate::store::Settings;

/// The SHA-256 digest of a token, as the host stores it.
pub fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Checks the request's bearer token against the host's token digests.
///
/// Every stored digest is compared, in constant time, whatever the outcome, so that the time
/// taken says nothing about which token, or how much of one, was right.
pub fn authenticate(request: &Request, settings: &Settings) -> Result<(), ScimError> {
    if request.header("Cookie").is_some() {
        // A SCIM client authenticates with its token alone. A cookie means a browser, and a
        // browser's ambient session must never be able to drive provisioning.
        return Err(unauthorized(
            "a request with a session cookie is refused: use the bearer token",
        ));
    }

    presented_token(request, settings).map(|_| ())
}

/// Which of the host's tokens the request presents: the index in `settings.tokens` of the
/// unexpired token whose digest matches the one `Authorization: Bearer` header. A host keys
/// per-token state (a rate limit) by it.
///
/// Every stored digest is compared, in constant time, whatever the outcome.
pub fn presented_token(request: &Request, settings: &Settings) -> Result<usize, ScimError> {
    let mut authorizations = request
        .headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("Authorization"));
    let Some((_, authorization)) = authorizations.next() else {
        return Err(unauthorized("the Authorization header is missing"));
    };
    if authorizations.next().is_some() {
        // Two credentials make it ambiguous which one a proxy or log saw; refuse both.
        return Err(invalid_token("more than one Authorization header"));
    }

    let Some(token) = bearer_token(authorization) else {
        return Err(invalid_token(
            "the Authorization header is not a bearer token",
        ));
    };

    let presented = token_digest(token);
    let mut matched = None;
    for (index, stored) in settings.tokens.iter().enumerate() {
        let unexpired = stored.expires_at.is_none_or(|at| settings.now < at);
        if constant_time_eq(&presented, &stored.digest) & unexpired {
            matched = Some(index);
        }
    }
    matched.ok_or_else(|| invalid_token("the bearer token is not valid"))
}

/// The token of an `Authorization: Bearer …` header; the scheme is case-insensitive.
fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Compares two byte strings without branching on their contents.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

/// 401 for a request without usable credentials (RFC 6750 §3).
fn unauthorized(detail: &str) -> ScimError {
    ScimError {
        challenge: Some("Bearer realm=\"SCIM\""),
        ..ScimError::new(401, detail)
    }
}

/// 401 for wrong, malformed or expired credentials (RFC 6750 §3.1 `invalid_token`).
fn invalid_token(detail: &str) -> ScimError {
    ScimError {
        challenge: Some("Bearer realm=\"SCIM\", error=\"invalid_token\""),
        ..ScimError::new(401, detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Token;

    fn settings_with(token: &str, expires_at: Option<u64>) -> Settings {
        Settings {
            enabled: true,
            tokens: vec![Token {
                digest: token_digest(token).to_vec(),
                expires_at,
            }],
            base_url: "https://vault.example.com/scim/v2".into(),
            now: 1_000,
        }
    }

    fn request_with(headers: &[(&str, &str)]) -> Request {
        Request {
            method: "GET".into(),
            path: "/Users".into(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            ..Request::default()
        }
    }

    #[test]
    fn right_token_is_accepted_with_any_scheme_case() {
        let settings = settings_with("s3cret", None);
        assert!(
            authenticate(
                &request_with(&[("Authorization", "Bearer s3cret")]),
                &settings
            )
            .is_ok()
        );
        assert!(
            authenticate(
                &request_with(&[("authorization", "bearer s3cret")]),
                &settings
            )
            .is_ok()
        );
    }

    #[test]
    fn missing_wrong_malformed_and_expired_tokens_are_401() {
        let settings = settings_with("s3cret", Some(999));
        for headers in [
            vec![],
            vec![("Authorization", "Bearer s3cret")],
            vec![("Authorization", "Bearer wrong")],
            vec![("Authorization", "Basic czNjcmV0")],
            vec![("Authorization", "Bearer")],
        ] {
            let error = authenticate(&request_with(&headers), &settings).unwrap_err();
            assert_eq!(error.status, 401, "{headers:?}");
        }
    }

    #[test]
    fn presented_token_names_the_matching_unexpired_token() {
        let mut settings = settings_with("old", Some(999));
        settings.tokens.push(Token {
            digest: token_digest("new").to_vec(),
            expires_at: None,
        });
        let bearer = |token: &str| request_with(&[("Authorization", &format!("Bearer {token}"))]);
        assert_eq!(presented_token(&bearer("new"), &settings), Ok(1));
        assert!(presented_token(&bearer("old"), &settings).is_err());
        assert!(presented_token(&bearer("other"), &settings).is_err());
    }

    #[test]
    fn two_authorization_headers_are_refused_even_if_one_is_right() {
        let settings = settings_with("s3cret", None);
        let request = request_with(&[
            ("Authorization", "Bearer s3cret"),
            ("Authorization", "Bearer other"),
        ]);
        assert_eq!(authenticate(&request, &settings).unwrap_err().status, 401);
    }

    #[test]
    fn session_cookie_is_refused_even_with_a_valid_token() {
        let settings = settings_with("s3cret", None);
        let request = request_with(&[("Authorization", "Bearer s3cret"), ("Cookie", "sid=1")]);
        assert_eq!(authenticate(&request, &settings).unwrap_err().status, 401);
    }

    #[test]
    fn constant_time_eq_compares_lengths_and_bytes() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
