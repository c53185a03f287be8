//! Helpers shared by the detector's integration tests.

/// Deterministic pseudo-random luma with some structure (noise on a gradient with blocks).
pub fn random_luma(w: usize, h: usize, seed: u64) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..w * h)
        .map(|i| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let (x, y) = (i % w, i / w);
            let base = (x * 255 / w.max(1) + ((x / 16 + y / 16) % 2) * 40) as u64;
            ((base + (s >> 58)) % 256) as u8
        })
        .collect()
}
