//! API keys look like `<key-id-uuid>:<secret>`. Only a SHA-256 of the secret is stored; the
//! check is constant-time, and costs the same for an unknown key id (see `verify`).
use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

/// A key as presented, borrowing its secret from the header (no copy per request).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresentedKey<'a> {
    pub key_id: Uuid,
    pub secret: &'a str,
}

/// Parses the value of an `Authorization` header: `Bearer <key>` or `Key <key>`.
pub fn parse_authorization(header: &str) -> Option<PresentedKey<'_>> {
    let (scheme, token) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") && !scheme.eq_ignore_ascii_case("key") {
        return None;
    }
    parse_key(token.trim())
}

pub fn parse_key(token: &str) -> Option<PresentedKey<'_>> {
    let (id, secret) = token.split_once(':')?;
    let key_id = Uuid::parse_str(id).ok()?;
    if secret.is_empty() || secret.len() > 256 {
        return None;
    }
    Some(PresentedKey { key_id, secret })
}

/// A freshly made key: the full token to show once, and the hash to store.
pub struct NewKey {
    pub key_id: Uuid,
    pub token: String,
    pub secret_hash: String,
}

pub fn generate() -> NewKey {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let key_id = Uuid::new_v4();
    NewKey { key_id, token: format!("{key_id}:{secret}"), secret_hash: hash_secret(&secret) }
}

pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Constant-time comparison of a presented secret against a stored hash.
pub fn secret_matches(secret: &str, stored_hash: &str) -> bool {
    #[cfg(test)]
    COMPARISONS.with(|n| n.set(n.get() + 1));
    // Hex into a buffer on the stack: this runs on every authenticated request.
    let mut hex = [0u8; 64];
    hex::encode_to_slice(Sha256::digest(secret.as_bytes()), &mut hex).expect("32 bytes are 64 hex digits");
    // Compared eight bytes at a time: `subtle` compares a byte slice byte by byte, each behind
    // an optimisation barrier (a thousand instructions per request for 64 bytes). The length
    // of a stored hash is not secret (every hash is 64 hex digits).
    let Ok(stored) = <&[u8; 64]>::try_from(stored_hash.as_bytes()) else { return false };
    let word = |bytes: &[u8; 64], i: usize| u64::from_ne_bytes(bytes[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    let same = (0..8).fold(subtle::Choice::from(1), |same, i| same & word(&hex, i).ct_eq(&word(stored, i)));
    same.into()
}

/// A stored hash no secret has (it is not hex): what an unknown key id's secret is checked
/// against, so that the answer for an id that does not exist costs the same as for one that does.
const NO_KEY_HASH: &str = "unknown-key-unknown-key-unknown-key-unknown-key-unknown-key-0000";

/// Whether `secret` opens the key stored as `(secret_hash, revoked)`, or `None` when the key id is
/// unknown. Every outcome (unknown id, revoked key, wrong secret, right secret) hashes the secret
/// and compares it once, so how long the check takes does not tell which ids exist.
pub fn verify(secret: &str, stored: Option<(&str, bool)>) -> bool {
    let (hash, usable) = match stored {
        Some((hash, revoked)) => (hash, !revoked),
        None => (NO_KEY_HASH, false),
    };
    // `&` rather than `&&`: the comparison runs whatever `usable` is.
    secret_matches(secret, hash) & usable
}

// How many secret comparisons this thread made (tests prove every path makes one).
#[cfg(test)]
thread_local! {
    static COMPARISONS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

#[cfg(test)]
pub fn comparisons_on_this_thread() -> u64 {
    COMPARISONS.with(|n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_verify_and_parse() {
        let key = generate();
        let parsed = parse_key(&key.token).unwrap();
        assert_eq!(parsed.key_id, key.key_id);
        assert!(secret_matches(parsed.secret, &key.secret_hash));
        assert!(!secret_matches("wrong", &key.secret_hash));
        assert!(!key.secret_hash.contains(parsed.secret));
    }

    #[test]
    fn a_stored_hash_differing_in_any_one_digit_or_in_length_does_not_match() {
        let key = generate();
        let secret = parse_key(&key.token).unwrap().secret;
        for i in 0..key.secret_hash.len() {
            let mut other = key.secret_hash.clone().into_bytes();
            other[i] = if other[i] == b'0' { b'1' } else { b'0' };
            assert!(!secret_matches(secret, std::str::from_utf8(&other).unwrap()), "digit {i}");
        }
        assert!(!secret_matches(secret, &key.secret_hash[..63]));
        assert!(!secret_matches(secret, &format!("{}0", key.secret_hash)));
        assert!(!secret_matches(secret, ""));
    }

    #[test]
    fn unknown_and_revoked_keys_are_checked_like_known_ones() {
        let key = generate();
        let secret = parse_key(&key.token).unwrap().secret;
        assert_eq!(NO_KEY_HASH.len(), key.secret_hash.len(), "the stand-in compares as many bytes");
        let cases = [
            (Some((key.secret_hash.as_str(), false)), true),
            (Some((key.secret_hash.as_str(), true)), false),
            (None, false),
        ];
        for (stored, opens) in cases {
            let before = comparisons_on_this_thread();
            assert_eq!(verify(secret, stored), opens, "{stored:?}");
            assert!(!verify("wrong", stored), "{stored:?}");
            assert_eq!(comparisons_on_this_thread() - before, 2, "one comparison per check: {stored:?}");
        }
        assert!(!verify(NO_KEY_HASH, None), "nothing opens an unknown id");
    }

    #[test]
    fn both_schemes_are_accepted() {
        let key = generate();
        for header in [format!("Bearer {}", key.token), format!("Key {}", key.token), format!("bearer  {}", key.token)]
        {
            assert_eq!(parse_authorization(&header).unwrap().key_id, key.key_id, "{header}");
        }
        assert!(parse_authorization(&format!("Basic {}", key.token)).is_none());
        assert!(parse_authorization(&key.token).is_none());
        assert!(parse_authorization("Bearer not-a-uuid:secret").is_none());
        assert!(parse_authorization(&format!("Bearer {}:", key.key_id)).is_none());
    }
}
