//! Credentials: secret API keys (shown once, stored as a digest) and public embed keys.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// A freshly minted secret key. The plain text leaves the process once, in the response.
pub struct NewApiKey {
    pub plain: String,
    pub digest: String,
    /// Enough of the key to recognise it in a list without revealing it.
    pub hint: String,
}

/// `sk_` and 32 random bytes. Keys are high-entropy, so a plain SHA-256 digest is a safe
/// store-side form (no slow hash needed) and keeps per-request lookup a single index probe.
pub fn new_api_key() -> NewApiKey {
    let plain = format!("sk_{}", random_token(32));
    let digest = api_key_digest(&plain);
    let hint = format!("{}…", &plain[..7]);
    NewApiKey {
        plain,
        digest,
        hint,
    }
}

pub fn api_key_digest(plain: &str) -> String {
    hex::encode(Sha256::digest(plain.as_bytes()))
}

/// A random bearer secret (session cookies, invite links, CSRF tokens): 32 bytes, URL-safe.
/// Stored, where it is stored, as `api_key_digest` of it, for the same reason as API keys.
pub fn new_secret_token() -> String {
    random_token(32)
}

/// The embed key. Not a secret: it sits in every subscriber page's HTML.
pub fn new_public_key() -> String {
    format!("pk_{}", random_token(18))
}

/// Whether `s` could be a public key at all (`pk_` and URL-safe characters): anything else is
/// answered as unknown without a lookup.
pub fn is_public_key_shaped(s: &str) -> bool {
    s.strip_prefix("pk_").is_some_and(|rest| {
        !rest.is_empty()
            && rest.len() <= 64
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// Constant-time comparison for the operator token (compares digests so lengths never leak).
pub fn tokens_match(given: &str, expected: &str) -> bool {
    let a = Sha256::digest(given.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_are_prefixed_unique_and_stored_as_digests() {
        let a = new_api_key();
        let b = new_api_key();
        assert!(a.plain.starts_with("sk_"));
        assert_ne!(a.plain, b.plain);
        assert_eq!(a.digest, api_key_digest(&a.plain));
        assert!(!a.digest.contains(&a.plain[3..]));
    }

    #[test]
    fn public_keys_start_with_pk() {
        assert!(new_public_key().starts_with("pk_"));
        assert!(is_public_key_shaped(&new_public_key()));
        for bad in [
            "",
            "pk_",
            "sk_abc",
            "pk_a\u{0}b",
            "pk_a b",
            &format!("pk_{}", "a".repeat(65)),
        ] {
            assert!(!is_public_key_shaped(bad), "{bad:?}");
        }
    }

    #[test]
    fn operator_tokens_compare_exactly() {
        assert!(tokens_match("secret", "secret"));
        assert!(!tokens_match("secret", "secret2"));
        assert!(!tokens_match("", "secret"));
    }
}
