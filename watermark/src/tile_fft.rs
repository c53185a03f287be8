//! The registration search's square 2-D transforms (the 64×64 tile's), on `rustfft`'s planned,
//! SIMD transforms: the search runs thousands of them per clip, and they were most of its
//! time with the crate's plain radix-2 [`Fft`](crate::fft::Fft).

use std::sync::Arc;

use rustfft::num_complex::Complex64;
use rustfft::FftPlanner;

use crate::fft::C;

/// Forward and inverse `n`-point plans for `n×n` row-major arrays.
pub(crate) struct TileFft {
    n: usize,
    forward: Arc<dyn rustfft::Fft<f64>>,
    inverse: Arc<dyn rustfft::Fft<f64>>,
}

impl TileFft {
    pub(crate) fn new(n: usize) -> Self {
        let mut planner = FftPlanner::new();
        TileFft {
            n,
            forward: planner.plan_fft_forward(n),
            inverse: planner.plan_fft_inverse(n),
        }
    }

    /// 2-D transform of the `n×n` row-major `x` in place; `inverse` without the 1/n²
    /// scaling (as [`Fft::run2d`](crate::fft::Fft)).
    pub(crate) fn run2d(&self, x: &mut [C], inverse: bool) {
        let n = self.n;
        debug_assert_eq!(x.len(), n * n);
        let plan = if inverse {
            &self.inverse
        } else {
            &self.forward
        };
        let mut scratch = vec![Complex64::default(); plan.get_inplace_scratch_len()];
        // Rows (all at once: rustfft transforms consecutive chunks), then the columns as
        // the rows of the transpose.
        let mut a: Vec<Complex64> = x.iter().map(|c| Complex64::new(c.re, c.im)).collect();
        plan.process_with_scratch(&mut a, &mut scratch);
        let mut t = vec![Complex64::default(); n * n];
        transpose::transpose(&a, &mut t, n, n);
        plan.process_with_scratch(&mut t, &mut scratch);
        transpose::transpose(&t, &mut a, n, n);
        for (c, v) in x.iter_mut().zip(&a) {
            c.re = v.re;
            c.im = v.im;
        }
    }

    /// The forward transforms of one or two real `n×n` arrays from one complex transform:
    /// `Z = FFT(a + i·b)`, then `Â[k] = (Z[k] + conj Z[−k]) / 2` and
    /// `B̂[k] = (Z[k] − conj Z[−k]) / 2i` (the transform of a real array is conjugate
    /// symmetric). Returns `[Â]` or `[Â, B̂]`.
    pub(crate) fn run2d_real_pair(&self, a: &[f64], b: Option<&[f64]>) -> Vec<Vec<C>> {
        let n = self.n;
        let mut z: Vec<C> = match b {
            Some(b) => a.iter().zip(b).map(|(&re, &im)| C { re, im }).collect(),
            None => a.iter().map(|&re| C { re, im: 0.0 }).collect(),
        };
        self.run2d(&mut z, false);
        let Some(_) = b else {
            return vec![z];
        };
        let (ha, hb): (Vec<C>, Vec<C>) = (0..n * n).map(|k| split_pair(&z, n, k)).unzip();
        vec![ha, hb]
    }
}

/// At frequency `k` of `z = FFT(a + i·b)` (`n×n`, `a` and `b` real): `(Â[k], B̂[k])`, with
/// `Â[k] = (Z[k] + conj Z[−k]) / 2` and `B̂[k] = (Z[k] − conj Z[−k]) / 2i` (the transform
/// of a real array is conjugate symmetric).
#[inline]
pub(crate) fn split_pair(z: &[C], n: usize, k: usize) -> (C, C) {
    let (ky, kx) = (k / n, k % n);
    let (p, q) = (z[k], z[((n - ky) % n) * n + (n - kx) % n]);
    (
        C {
            re: (p.re + q.re) / 2.0,
            im: (p.im - q.im) / 2.0,
        },
        C {
            re: (p.im + q.im) / 2.0,
            im: (q.re - p.re) / 2.0,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fft::Fft;

    #[test]
    fn matches_the_plain_transform_both_ways() {
        let n = 64;
        let x: Vec<C> = (0..n * n)
            .map(|i| C {
                re: ((i * 37 % 101) as f64) - 50.0,
                im: ((i * 13 % 7) as f64) - 3.0,
            })
            .collect();
        let (plain, fast) = (Fft::new(n), TileFft::new(n));
        for inverse in [false, true] {
            let (mut a, mut b) = (x.clone(), x.clone());
            plain.run2d(&mut a, inverse);
            fast.run2d(&mut b, inverse);
            for (p, q) in a.iter().zip(&b) {
                assert!((p.re - q.re).abs() < 1e-6 && (p.im - q.im).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn two_real_arrays_share_one_transform() {
        let n = 64;
        let real = |seed: usize| -> Vec<f64> {
            (0..n * n)
                .map(|i| ((i * seed % 97) as f64) - 48.0 + (i % 5) as f64 * 0.25)
                .collect()
        };
        let (a, b) = (real(31), real(17));
        let fft = TileFft::new(n);
        let alone = |x: &[f64]| {
            let mut z: Vec<C> = x.iter().map(|&re| C { re, im: 0.0 }).collect();
            fft.run2d(&mut z, false);
            z
        };
        let pair = fft.run2d_real_pair(&a, Some(&b));
        let single = fft.run2d_real_pair(&a, None);
        assert_eq!((pair.len(), single.len()), (2, 1));
        for (got, want) in [
            (&pair[0], alone(&a)),
            (&pair[1], alone(&b)),
            (&single[0], alone(&a)),
        ] {
            for (p, q) in got.iter().zip(&want) {
                assert!((p.re - q.re).abs() < 1e-7 && (p.im - q.im).abs() < 1e-7);
            }
        }
    }
}
