//! The bearer token of mutating calls: drawn at random per process unless configured, compared
//! in constant time.

use crate::OpsError;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;

/// 32 hex digits from the operating system's random source.
pub(crate) fn random_token() -> Result<String, OpsError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| OpsError::Random(e.to_string()))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Whether `t` can be a token: non-empty visible ASCII (it travels in a header and a URL).
pub(crate) fn valid_token(t: &str) -> bool {
    !t.is_empty()
        && t.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'#' && b != b'&')
}

/// Compares without an early exit on the first differing byte.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for (i, x) in a.iter().enumerate() {
        diff |= x ^ b.get(i).copied().unwrap_or(!x);
    }
    diff == 0
}

/// Whether `headers` carry `Authorization: Bearer <token>`.
pub(crate) fn authorized(headers: &HeaderMap, token: &str) -> bool {
    let Some(v) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(given) = v.strip_prefix("Bearer ") else {
        return false;
    };
    ct_eq(given.trim().as_bytes(), token.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_hex_and_compare_exactly() {
        let (a, b) = (random_token().unwrap(), random_token().unwrap());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(!ct_eq(b"ab", b"abc"));
        assert!(!ct_eq(b"", b"a"));
        assert!(valid_token("s3cret-Token_1"));
        assert!(!valid_token(""));
        assert!(!valid_token("a b"));
        assert!(!valid_token("a#b"));
    }

    #[test]
    fn only_the_bearer_scheme_with_the_token_is_authorized() {
        let mut h = HeaderMap::new();
        assert!(!authorized(&h, "t0k"));
        h.insert(AUTHORIZATION, "Basic t0k".parse().unwrap());
        assert!(!authorized(&h, "t0k"));
        h.insert(AUTHORIZATION, "Bearer t0x".parse().unwrap());
        assert!(!authorized(&h, "t0k"));
        h.insert(AUTHORIZATION, "Bearer t0k".parse().unwrap());
        assert!(authorized(&h, "t0k"));
    }
}
