//! Secret keys, payloads and keyed pseudo-random streams.

use sha2::{Digest, Sha256};
use std::fmt;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum WatermarkError {
    /// A serialised key had the wrong length.
    #[error("watermark key must be {expected} bytes, got {got}")]
    KeyLength { expected: usize, got: usize },
    /// The operating system's random source failed.
    #[error("OS randomness unavailable: {0}")]
    Random(String),
}

/// A secret watermark key: 32 secret bytes plus a public one-byte key id.
///
/// `Debug` prints the key id and a short SHA-256 fingerprint, never the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct WatermarkKey {
    secret: [u8; 32],
    key_id: u8,
}

impl WatermarkKey {
    /// Length of [`WatermarkKey::to_bytes`]: key id followed by the 32 secret bytes.
    pub const BYTES: usize = 33;

    /// A fresh key from OS randomness.
    pub fn generate(key_id: u8) -> Result<Self, WatermarkError> {
        let mut secret = [0u8; 32];
        getrandom::getrandom(&mut secret).map_err(|e| WatermarkError::Random(e.to_string()))?;
        Ok(WatermarkKey { secret, key_id })
    }

    /// A key from known secret bytes (tests, key stores).
    pub fn from_secret(secret: [u8; 32], key_id: u8) -> Self {
        WatermarkKey { secret, key_id }
    }

    /// `[key_id, secret[0..32]]`.
    pub fn to_bytes(&self) -> [u8; Self::BYTES] {
        let mut out = [0u8; Self::BYTES];
        out[0] = self.key_id;
        out[1..].copy_from_slice(&self.secret);
        out
    }

    /// Inverse of [`WatermarkKey::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, WatermarkError> {
        if bytes.len() != Self::BYTES {
            return Err(WatermarkError::KeyLength {
                expected: Self::BYTES,
                got: bytes.len(),
            });
        }
        let mut secret = [0u8; 32];
        secret.copy_from_slice(&bytes[1..]);
        Ok(WatermarkKey {
            secret,
            key_id: bytes[0],
        })
    }

    /// The public key id carried in the payload.
    pub fn key_id(&self) -> u8 {
        self.key_id
    }

    /// A non-secret fingerprint: the first 8 bytes of SHA-256("fingerprint" ‖ secret), hex.
    pub fn fingerprint(&self) -> String {
        let h = self.derive(b"fingerprint");
        h[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// SHA-256(domain ‖ label ‖ secret): independent sub-keys for each use.
    pub(crate) fn derive(&self, label: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"hallmark-watermark/v1/");
        h.update(label);
        h.update(self.secret);
        h.finalize().into()
    }

    pub(crate) fn rng(&self, label: &[u8]) -> Xoshiro {
        Xoshiro::from_seed(self.derive(label))
    }
}

impl fmt::Debug for WatermarkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatermarkKey")
            .field("key_id", &self.key_id)
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

/// What the watermark carries: a 64-bit clip id and the id of the key that marked it.
///
/// The clip id's top bit is the seal's AI declaration ([`Payload::AI_BIT`]), so the mark
/// alone, with no manifest and no store, says whether the content was sealed as
/// AI-generated; the other 63 bits are random. The channel code is unchanged (64 + 8 bits
/// + CRC), so robustness is exactly that of the 64-bit id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Payload {
    pub clip_id: u64,
    pub key_id: u8,
}

impl Payload {
    /// The clip id bit that declares the content AI-generated.
    pub const AI_BIT: u64 = 1 << 63;

    /// A payload for a new seal: 63 random bits from the OS, and the AI declaration.
    pub fn fresh(key_id: u8, ai_generated: bool) -> Result<Payload, WatermarkError> {
        let mut bytes = [0u8; 8];
        getrandom::getrandom(&mut bytes).map_err(|e| WatermarkError::Random(e.to_string()))?;
        let random = u64::from_le_bytes(bytes) & !Self::AI_BIT;
        Ok(Payload {
            clip_id: if ai_generated {
                random | Self::AI_BIT
            } else {
                random
            },
            key_id,
        })
    }

    /// Whether the seal declared the content AI-generated (the clip id's top bit).
    pub fn ai_generated(&self) -> bool {
        self.clip_id & Self::AI_BIT != 0
    }

    /// The clip id as manifests' soft bindings and reports write it: 16 lowercase hex digits.
    pub fn clip_id_hex(&self) -> String {
        format!("{:016x}", self.clip_id)
    }
}

/// xoshiro256** seeded from a SHA-256 output: a keyed, deterministic stream.
pub(crate) struct Xoshiro {
    s: [u64; 4],
}

impl Xoshiro {
    pub(crate) fn from_seed(seed: [u8; 32]) -> Self {
        let mut s = [0u64; 4];
        for (i, w) in s.iter_mut().enumerate() {
            *w = u64::from_le_bytes(seed[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        }
        if s == [0; 4] {
            s[0] = 0x9e37_79b9_7f4a_7c15;
        }
        Xoshiro { s }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in `0..n` (n > 0), unbiased by rejection.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let v = self.next_u64();
            if v < zone {
                return v % n;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_round_trip_and_debug_hides_secret() {
        let k = WatermarkKey::generate(7).unwrap();
        let b = k.to_bytes();
        assert_eq!(WatermarkKey::from_bytes(&b).unwrap(), k);
        assert!(WatermarkKey::from_bytes(&b[..10]).is_err());
        let dbg = format!("{k:?}");
        assert!(dbg.contains("key_id: 7"));
        let secret_hex: String = b[1..].iter().map(|x| format!("{x:02x}")).collect();
        assert!(!dbg.contains(&secret_hex[..16]));
        assert!(!dbg.contains(&format!("{:?}", &b[1..5])));
        assert_ne!(WatermarkKey::generate(7).unwrap(), k);
    }

    #[test]
    fn a_fresh_payload_carries_its_ai_declaration_in_the_top_bit() {
        for ai in [true, false] {
            let ids: Vec<u64> = (0..64)
                .map(|_| {
                    let p = Payload::fresh(3, ai).unwrap();
                    assert_eq!(p.ai_generated(), ai);
                    assert_eq!(p.key_id, 3);
                    p.clip_id
                })
                .collect();
            // The other 63 bits are random: 64 draws are distinct and use low bits too.
            let distinct: std::collections::HashSet<_> = ids.iter().collect();
            assert_eq!(distinct.len(), ids.len());
            assert!(ids.iter().any(|id| id & 1 == 1) && ids.iter().any(|id| id & 1 == 0));
        }
        assert!(Payload {
            clip_id: u64::MAX,
            key_id: 0
        }
        .ai_generated());
        assert!(!Payload {
            clip_id: u64::MAX >> 1,
            key_id: 0
        }
        .ai_generated());
    }
}
