//! Streaming band-limited resampling by any rational ratio (Kaiser-windowed sinc, one
//! precomputed polyphase filter per output phase). Used to bring sound to the analysis rate
//! and to bring the watermark signal back to the file's rate.

/// Zero crossings of the sinc on each side of the kernel, at the lower of the two rates.
const ZEROS: f64 = 20.0;
/// Kaiser window shape (≈ 80 dB stop band).
const BETA: f64 = 8.0;
/// Largest number of polyphase filters kept; stranger ratios are approximated (the output
/// position is rounded to 1/MAX_PHASES of an input sample).
const MAX_PHASES: u64 = 4096;

fn bessel_i0(x: f64) -> f64 {
    let (mut sum, mut term, mut k) = (1.0, 1.0, 1.0);
    while term > 1e-12 * sum {
        term *= (x / (2.0 * k)) * (x / (2.0 * k));
        sum += term;
        k += 1.0;
    }
    sum
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// One channel. Output sample `m` is the band-limited input at input position
/// `m · rate_in / rate_out` (input before the first sample counts as silence), so the
/// output is time-aligned with the input, with no delay.
pub(crate) struct Resampler {
    num: u64,
    den: u64,
    /// Phases used for the filters (`den`, or fewer for strange ratios).
    phases: u64,
    half: usize,
    /// `2·half` taps per phase.
    filters: Vec<f32>,
    buf: Vec<f32>,
    /// Absolute input index of `buf[0]`.
    base: u64,
    received: u64,
    next: u64,
    passthrough: bool,
}

impl Resampler {
    pub(crate) fn new(rate_in: u32, rate_out: u32) -> Self {
        let g = gcd(rate_in as u64, rate_out as u64).max(1);
        let (num, den) = (rate_in as u64 / g, rate_out as u64 / g);
        let fc = (rate_out as f64 / rate_in as f64).min(1.0);
        let half = (ZEROS / fc).ceil() as usize;
        let phases = den.min(MAX_PHASES);
        let norm = bessel_i0(BETA);
        let kernel = |u: f64| -> f32 {
            let r = u.abs() / half as f64;
            if r >= 1.0 {
                return 0.0;
            }
            let x = std::f64::consts::PI * fc * u;
            let sinc = if x.abs() < 1e-12 { 1.0 } else { x.sin() / x };
            (fc * sinc * bessel_i0(BETA * (1.0 - r * r).sqrt()) / norm) as f32
        };
        let mut filters = Vec::with_capacity(phases as usize * 2 * half);
        for ph in 0..phases {
            let frac = ph as f64 / phases as f64;
            // Tap j multiplies input i + 1 − half + j; its distance is (half − 1 − j) + frac.
            for j in 0..2 * half {
                filters.push(kernel((half as f64 - 1.0 - j as f64) + frac));
            }
        }
        Resampler {
            num,
            den,
            phases,
            half,
            filters,
            buf: Vec::new(),
            base: 0,
            received: 0,
            next: 0,
            passthrough: num == den,
        }
    }

    /// Appends `input` and writes every output sample that can now be computed to `out`.
    pub(crate) fn push(&mut self, input: &[f32], out: &mut Vec<f32>) {
        if self.passthrough {
            out.extend_from_slice(input);
            return;
        }
        self.buf.extend_from_slice(input);
        self.received += input.len() as u64;
        let half = self.half as i64;
        let taps = 2 * self.half;
        loop {
            let p = self.next * self.num;
            let i = (p / self.den) as i64;
            if i + half >= self.received as i64 {
                break;
            }
            let ph = ((p % self.den) * self.phases / self.den) as usize;
            let filter = &self.filters[ph * taps..(ph + 1) * taps];
            let first = i + 1 - half;
            let acc = if first >= self.base as i64 {
                let s = (first - self.base as i64) as usize;
                dot(&self.buf[s..s + taps], filter)
            } else {
                // Before the first input sample: silence.
                let skip = (self.base as i64 - first) as usize;
                dot(&self.buf[..taps - skip], &filter[skip..])
            };
            out.push(acc);
            self.next += 1;
        }
        // Keep what the next output still needs.
        let p = self.next * self.num;
        let keep_from = ((p / self.den) as i64 + 1 - half).max(0) as u64;
        if keep_from > self.base {
            let drop = ((keep_from - self.base) as usize).min(self.buf.len());
            self.buf.drain(..drop);
            self.base += drop as u64;
        }
    }

    /// Samples of input (at the input rate) that the output lags behind: feeding this many
    /// zeros after the end makes every output sample of real input available.
    pub(crate) fn lookahead(&self) -> usize {
        if self.passthrough {
            0
        } else {
            self.half + 1
        }
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Four accumulators: lets the compiler vectorise.
    let mut acc = [0f32; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..4 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut s = acc[0] + acc[1] + acc[2] + acc[3];
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: u32, f: f64, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (2.0 * std::f64::consts::PI * f * i as f64 / rate as f64).sin() as f32)
            .collect()
    }

    #[test]
    fn aligned_and_band_limited() {
        for (a, b) in [
            (48_000, 16_000),
            (44_100, 16_000),
            (16_000, 44_100),
            (16_000, 48_000),
            (22_050, 16_000),
            (47_999, 16_000),
        ] {
            let n = a as usize / 2;
            let x = sine(a, 1000.0, n);
            let mut r = Resampler::new(a, b);
            let mut out = Vec::new();
            // Uneven chunks.
            for c in x.chunks(777) {
                r.push(c, &mut out);
            }
            r.push(&vec![0.0; r.lookahead()], &mut out);
            let want = sine(b, 1000.0, out.len());
            // Away from the edges the output is the same sine at the new rate, in phase.
            let m = out.len();
            let err: f32 = (m / 4..3 * m / 4)
                .map(|i| (out[i] - want[i]).abs())
                .fold(0.0, f32::max);
            assert!(err < 2e-3, "{a}->{b}: max error {err}");
            // A tone above the output's Nyquist is removed.
            if b < a {
                let x = sine(a, b as f64 * 0.6, n);
                let mut r = Resampler::new(a, b);
                let mut out = Vec::new();
                r.push(&x, &mut out);
                let m = out.len();
                let peak = out[m / 4..3 * m / 4]
                    .iter()
                    .fold(0f32, |p, v| p.max(v.abs()));
                assert!(peak < 1e-3, "{a}->{b}: alias {peak}");
            }
        }
    }
}
