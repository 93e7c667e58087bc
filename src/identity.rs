//! Customer identity: the key a loader derived (`email:<address>` shared across platforms, or
//! `<source>:...` for a platform's own ids) becomes a pseudonymous `customer_id`. The e-mail never
//! reaches an output. With `CLV_ID_KEY` set the id is an HMAC-SHA-256 under that secret, so ids
//! cannot be recomputed from a list of e-mails by someone without the key.

use sha2::{Digest, Sha256};

pub const ID_KEY_ENV: &str = "CLV_ID_KEY";

#[derive(Clone)]
pub struct Hasher {
    secret: Option<Vec<u8>>,
}

impl Hasher {
    pub fn from_env() -> Self {
        Hasher { secret: std::env::var(ID_KEY_ENV).ok().filter(|s| !s.is_empty()).map(String::into_bytes) }
    }

    pub fn new(secret: Option<&[u8]>) -> Self {
        Hasher { secret: secret.map(<[u8]>::to_vec) }
    }

    /// 32 hex characters (128 bits of SHA-256): collisions are negligible at any customer count.
    pub fn customer_id(&self, key: &str) -> String {
        crate::sources::hex(&self.customer_digest(key).to_be_bytes())
    }

    /// The 128 bits [`customer_id`](Self::customer_id) writes in hex, as a number: numbers sort
    /// as their hex ids do.
    pub fn customer_digest(&self, key: &str) -> u128 {
        let digest = match &self.secret {
            None => Sha256::new().chain_update(b"clv-customer-v1\0").chain_update(key.as_bytes()).finalize().to_vec(),
            Some(secret) => hmac_sha256(secret, key.as_bytes()),
        };
        u128::from_be_bytes(digest[..16].try_into().expect("SHA-256 has 32 bytes"))
    }
}

/// HMAC (RFC 2104) over SHA-256.
fn hmac_sha256(secret: &[u8], message: &[u8]) -> Vec<u8> {
    const BLOCK: usize = 64;
    let mut key = if secret.len() > BLOCK { Sha256::digest(secret).to_vec() } else { secret.to_vec() };
    key.resize(BLOCK, 0);
    let pad = |b: u8| key.iter().map(|k| k ^ b).collect::<Vec<u8>>();
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(message).finalize();
    Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(crate::sources::hex(&mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    /// Unify ranks customers by digest instead of by id text: the two orders must agree.
    #[test]
    fn digests_sort_as_their_ids() {
        for hasher in [Hasher::new(None), Hasher::new(Some(b"k"))] {
            let keys: Vec<String> = (0..2000).map(|i| format!("email:c{i}@example.com")).collect();
            let mut by_id: Vec<&String> = keys.iter().collect();
            by_id.sort_by_key(|k| hasher.customer_id(k));
            let mut by_digest: Vec<&String> = keys.iter().collect();
            by_digest.sort_by_key(|k| hasher.customer_digest(k));
            assert_eq!(by_id, by_digest);
            assert_eq!(
                hasher.customer_id(&keys[0]),
                crate::sources::hex(&hasher.customer_digest(&keys[0]).to_be_bytes())
            );
        }
    }

    #[test]
    fn ids_are_stable_keyed_and_not_the_email() {
        let plain = Hasher::new(None);
        let a = plain.customer_id("email:jane@example.com");
        assert_eq!(a, plain.customer_id("email:jane@example.com"));
        assert_eq!(a.len(), 32);
        assert!(!a.contains("jane"));
        assert_ne!(a, plain.customer_id("email:john@example.com"));
        assert_ne!(a, Hasher::new(Some(b"secret")).customer_id("email:jane@example.com"));
    }
}
