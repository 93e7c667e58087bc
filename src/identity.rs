//! Customer identity: the key a loader derived (`email:<address>` shared across platforms, or
//! `<source>:...` for a platform's own ids) becomes a pseudonymous `customer_id`. The e-mail never
//! reaches an output. With `CLV_ID_KEY` set the id is an HMAC-SHA-256 under that secret, so ids
//! cannot be recomputed from a list of e-mails by someone without the key.

use sha2::{Digest, Sha256};

pub const ID_KEY_ENV: &str = "CLV_ID_KEY";

/// SHA-256 states with the constant part of every id's input already absorbed: the id prefix, or
/// for the keyed ids HMAC's inner and outer pad blocks (two of HMAC's four compressions per id
/// are the same for every customer).
#[derive(Clone)]
pub struct Hasher {
    inner: Sha256,
    /// HMAC's outer state when keyed.
    outer: Option<Sha256>,
}

impl Hasher {
    pub fn from_env() -> Self {
        let secret = std::env::var(ID_KEY_ENV).ok().filter(|s| !s.is_empty());
        Hasher::new(secret.as_deref().map(str::as_bytes))
    }

    pub fn new(secret: Option<&[u8]>) -> Self {
        match secret {
            None => Hasher { inner: Sha256::new().chain_update(b"clv-customer-v1\0"), outer: None },
            Some(secret) => {
                let (inner, outer) = hmac_states(secret);
                Hasher { inner, outer: Some(outer) }
            }
        }
    }

    /// 32 hex characters (128 bits of SHA-256): collisions are negligible at any customer count.
    pub fn customer_id(&self, key: &str) -> String {
        crate::sources::hex(&self.customer_digest(key).to_be_bytes())
    }

    /// The 128 bits [`customer_id`](Self::customer_id) writes in hex, as a number: numbers sort
    /// as their hex ids do.
    pub fn customer_digest(&self, key: &str) -> u128 {
        let digest = self.inner.clone().chain_update(key.as_bytes()).finalize();
        let digest = match &self.outer {
            None => digest,
            Some(outer) => outer.clone().chain_update(digest).finalize(),
        };
        u128::from_be_bytes(digest[..16].try_into().expect("SHA-256 has 32 bytes"))
    }
}

/// HMAC's (RFC 2104, over SHA-256) inner and outer states once the key's pad blocks are absorbed.
fn hmac_states(secret: &[u8]) -> (Sha256, Sha256) {
    const BLOCK: usize = 64;
    let mut key = if secret.len() > BLOCK { Sha256::digest(secret).to_vec() } else { secret.to_vec() };
    key.resize(BLOCK, 0);
    let pad = |b: u8| key.iter().map(|k| k ^ b).collect::<Vec<u8>>();
    (Sha256::new().chain_update(pad(0x36)), Sha256::new().chain_update(pad(0x5c)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keyed ids are HMAC-SHA-256 (RFC 4231 test case 2, its first 128 bits); plain ids are
    /// SHA-256 of the prefix and the key.
    #[test]
    fn ids_are_hmac_or_prefixed_sha256() {
        let keyed = Hasher::new(Some(b"Jefe")).customer_id("what do ya want for nothing?");
        assert_eq!(keyed, "5bdcc146bf60754e6a042426089575c7");
        let long_key = [0xaau8; 131]; // RFC 4231 case 6: a key longer than the block is hashed first
        let keyed = Hasher::new(Some(&long_key)).customer_id("Test Using Larger Than Block-Size Key - Hash Key First");
        assert_eq!(keyed, "60e431591ee0b67f0d8a26aacbf5b77f");
        let plain = Sha256::digest(b"clv-customer-v1\0email:jane@example.com");
        assert_eq!(Hasher::new(None).customer_id("email:jane@example.com"), crate::sources::hex(&plain[..16]));
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
