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
}
