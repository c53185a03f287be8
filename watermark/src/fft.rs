//! A small radix-2 complex FFT, enough for square power-of-two tiles.

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct C {
    pub re: f64,
    pub im: f64,
}

impl C {
    fn mul(self, o: C) -> C {
        C {
            re: self.re * o.re - self.im * o.im,
            im: self.re * o.im + self.im * o.re,
        }
    }
    pub(crate) fn conj_mul(self, o: C) -> C {
        // conj(self) * o
        C {
            re: self.re * o.re + self.im * o.im,
            im: self.re * o.im - self.im * o.re,
        }
    }
}

/// Precomputed plan for `n`-point transforms (n a power of two).
pub(crate) struct Fft {
    n: usize,
    tw: Vec<C>,
    rev: Vec<usize>,
}

impl Fft {
    pub(crate) fn new(n: usize) -> Self {
        assert!(n.is_power_of_two());
        let bits = n.trailing_zeros();
        let rev = (0..n)
            .map(|i| {
                if bits == 0 {
                    0
                } else {
                    i.reverse_bits() >> (usize::BITS - bits)
                }
            })
            .collect();
        let tw = (0..n / 2)
            .map(|k| {
                let a = -2.0 * std::f64::consts::PI * k as f64 / n as f64;
                C {
                    re: a.cos(),
                    im: a.sin(),
                }
            })
            .collect();
        Fft { n, tw, rev }
    }

    /// In-place transform of `x` (length n, strided by `stride`). `inverse` conjugates the
    /// twiddles; no 1/n scaling.
    fn run(&self, x: &mut [C], offset: usize, stride: usize, inverse: bool, buf: &mut Vec<C>) {
        let n = self.n;
        buf.clear();
        buf.extend((0..n).map(|i| x[offset + self.rev[i] * stride]));
        let mut len = 2;
        while len <= n {
            let step = n / len;
            for start in (0..n).step_by(len) {
                for k in 0..len / 2 {
                    let mut w = self.tw[k * step];
                    if inverse {
                        w.im = -w.im;
                    }
                    let a = buf[start + k];
                    let b = buf[start + k + len / 2].mul(w);
                    buf[start + k] = C {
                        re: a.re + b.re,
                        im: a.im + b.im,
                    };
                    buf[start + k + len / 2] = C {
                        re: a.re - b.re,
                        im: a.im - b.im,
                    };
                }
            }
            len *= 2;
        }
        for (i, v) in buf.iter().enumerate() {
            x[offset + i * stride] = *v;
        }
    }

    /// 1-D transform of `x` (length n), in place.
    pub(crate) fn run1d(&self, x: &mut [C], inverse: bool, buf: &mut Vec<C>) {
        self.run(x, 0, 1, inverse, buf);
    }

    /// 2-D transform of an n×n row-major array.
    pub(crate) fn run2d(&self, x: &mut [C], inverse: bool) {
        let n = self.n;
        let mut buf = Vec::with_capacity(n);
        for r in 0..n {
            self.run(x, r * n, 1, inverse, &mut buf);
        }
        for c in 0..n {
            self.run(x, c, n, inverse, &mut buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn circular_correlation_matches_direct() {
        let n = 8;
        let f = Fft::new(n);
        let a: Vec<f64> = (0..n * n).map(|i| ((i * 37 % 11) as f64) - 5.0).collect();
        let b: Vec<f64> = (0..n * n).map(|i| ((i * 13 % 7) as f64) - 3.0).collect();
        let mut fa: Vec<C> = a.iter().map(|&v| C { re: v, im: 0.0 }).collect();
        let mut fb: Vec<C> = b.iter().map(|&v| C { re: v, im: 0.0 }).collect();
        f.run2d(&mut fa, false);
        f.run2d(&mut fb, false);
        let mut prod: Vec<C> = fa.iter().zip(&fb).map(|(p, q)| p.conj_mul(*q)).collect();
        f.run2d(&mut prod, true);
        for dy in 0..n {
            for dx in 0..n {
                let mut direct = 0.0;
                for y in 0..n {
                    for x in 0..n {
                        direct += a[y * n + x] * b[((y + dy) % n) * n + (x + dx) % n];
                    }
                }
                let got = prod[dy * n + dx].re / (n * n) as f64;
                assert!((got - direct).abs() < 1e-6, "{got} vs {direct}");
            }
        }
    }
}
