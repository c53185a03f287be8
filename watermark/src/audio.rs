//! The audio watermark: dither-modulated quantisation of tile log-energy changes.
//!
//! The sound is cut into *tiles*: one frequency band (1/6 octave, 400 Hz – 7 kHz) × 64 ms.
//! Each *symbol* is one band over two consecutive tiles, and its value is the change of the
//! band's log energy, `p = (L[t] − L[t+1]) / √2` — blind to volume and to any fixed
//! equaliser, and carried by band energies, which perceptual codecs keep. The embedder
//! nudges the two energies so that `p` lands on a keyed lattice (step [`AUDIO_STEP`], keyed
//! dither, shifted by half a step for coded zeros): dither modulation, so the sound itself
//! does not interfere with the mark the way it does with additive spread spectrum; only what
//! an attack does to `p` does. The symbols form a pattern that repeats every
//! [`AUDIO_PERIOD_TILES`] tiles (4.1 s) and carries the same [`Payload`] as the picture, so
//! the sound alone identifies the clip.
//!
//! * Everything is defined at a fixed analysis rate ([`AUDIO_RATE`], mono), so the file's
//!   sample rate and channel count never matter: the embedder resamples each channel to
//!   16 kHz, multiplies the STFT bins of each band by a gain close to 1, turns the difference
//!   back into sound, resamples it to the file's rate and adds it to the untouched original.
//!   The gains are capped so that the mark's energy stays ≥ [`AUDIO_SNR_DB`] below the
//!   sound's, and silence stays silent.
//! * The detector downmixes and resamples to 16 kHz, measures the tiles on 16 time grids
//!   4 ms apart, turns every symbol into a unit phasor `e^{2πi·p/step}` (weighted down near
//!   silence), folds the phasors modulo the period and correlates them with the keyed dither
//!   of the *sync* symbols, for every offset. Under the null the dither is uniform and
//!   independent of the sound, so each term is a fixed phasor projected on a uniformly random
//!   direction, `E e^{sA cos U} = I₀(sA) ≤ e^{s²A²/4}`: sub-Gaussian whatever the sound is.
//!   The family-wise p-value multiplies that bound by the keys and offsets tried. The payload
//!   is decoded afterwards, at the best offset, and never decides presence.
//!
//! See README.md ("Audio") for the reasons and the measured numbers.

mod resample;
mod wide;

use std::borrow::Cow;
use std::f64::consts::{PI, SQRT_2};

use crate::code;
use crate::detect::{segment_windows, Proof, TimeBins, DETECT_P, INCONCLUSIVE_P};
use crate::fft::{Fft, C};
use crate::key::{Payload, WatermarkKey};
use hallmark_media::AudioChunk;
use resample::Resampler;

/// The analysis sample rate (mono). Embedding and detection happen here.
pub const AUDIO_RATE: u32 = 16_000;
/// STFT length at [`AUDIO_RATE`] (32 ms).
const FFT_LEN: usize = 512;
/// Hop of the embedder's STFT (sqrt-Hann, 50 % overlap: perfect reconstruction).
const HOP: usize = 256;
/// Hop of the tile-energy analysis: the time-offset search has this resolution (4 ms).
const DET_HOP: usize = 64;
/// One tile lasts this many samples at [`AUDIO_RATE`] (64 ms).
pub const AUDIO_TILE_SAMPLES: usize = 1024;
const EMB_FRAMES_PER_TILE: usize = AUDIO_TILE_SAMPLES / HOP;
const DET_FRAMES_PER_TILE: usize = AUDIO_TILE_SAMPLES / DET_HOP;
/// The pattern repeats every this many tiles (4.096 s).
pub const AUDIO_PERIOD_TILES: usize = 64;
/// A symbol spans this many consecutive tiles of one band.
const SYM_TILES: usize = 2;
const PERIOD_SYMBOLS: usize = AUDIO_PERIOD_TILES / SYM_TILES;
/// Time offsets tried within one symbol (4 ms apart). With the cyclic shifts over the
/// period, `SYMBOL_PHASES · PERIOD_SYMBOLS` = 1024 offsets per key.
const SYMBOL_PHASES: usize = SYM_TILES * DET_FRAMES_PER_TILE;
/// Lowest and highest frequency carrying the mark: survives 16 kHz resampling and the
/// band limits of low-bit-rate AAC, MP3 and Opus, and stays above most of the bass.
pub const AUDIO_BAND_LO_HZ: f64 = 400.0;
pub const AUDIO_BAND_HI_HZ: f64 = 7000.0;
/// Lattice step of a symbol (natural log of energy; tuned on real codecs, see README).
pub const AUDIO_STEP: f64 = 1.15;
/// Default strength: the fraction of the distance to its lattice point that a symbol is
/// moved (before the SNR cap).
pub const DEFAULT_AUDIO_STRENGTH: f32 = 1.0;
/// The mark's energy stays this many dB below the sound's: over the whole sound (the
/// embedder steers towards half a dB more), and at most `AUDIO_SNR_DB − LOCAL_SNR_MIN_DB`
/// dB louder in any one 128 ms column.
pub const AUDIO_SNR_DB: f64 = 31.0;
const LOCAL_SNR_MIN_DB: f64 = 25.0;
/// Largest change of one tile's log energy (±1.5 dB): a perceptual safety cap.
const MAX_TILE_CHANGE: f64 = 0.35;
/// Fraction of symbols in the sync (presence) pattern, as numerator / denominator.
const SYNC_NUM: usize = 1;
const SYNC_DEN: usize = 3;

/// z of a sync correlation `c` whose symbols hold energy `e`: `c / √(½ e)` (0 for silence).
fn sync_z(c: f64, e: f64) -> f64 {
    if e > 1e-12 {
        c / (0.5 * e).sqrt()
    } else {
        0.0
    }
}

/// Band edges in STFT bins: 1/6 octave wide but at least 4 bins (125 Hz).
fn band_edges() -> Vec<(usize, usize)> {
    let bin_hz = AUDIO_RATE as f64 / FFT_LEN as f64;
    let mut lo = (AUDIO_BAND_LO_HZ / bin_hz).ceil() as usize;
    let hi = (AUDIO_BAND_HI_HZ / bin_hz).floor() as usize;
    let mut v = Vec::new();
    while lo < hi {
        let w = ((lo as f64 * (2f64.powf(1.0 / 6.0) - 1.0)).round() as usize).max(4);
        let end = (lo + w).min(hi);
        if end - lo < 4 {
            break;
        }
        v.push((lo, end));
        lo = end;
    }
    v
}

fn hann_pow(p: f64) -> Vec<f32> {
    (0..FFT_LEN)
        .map(|i| {
            let h = 0.5 - 0.5 * (2.0 * PI * i as f64 / FFT_LEN as f64).cos();
            h.powf(p) as f32
        })
        .collect()
}

/// Energy floor of one band of one tile (≈ white noise at −70 dBFS): tiles near it cannot
/// hold a mark and get little weight.
fn floor_energy(bins: usize) -> f64 {
    2e-5 * (bins * DET_FRAMES_PER_TILE) as f64
}

/// A symbol's value `p` and weight (≈ 1 well above the floor, → 0 near it), from the band
/// energies of its two tiles.
fn symbol(e0: f64, e1: f64, floor: f64) -> (f64, f64) {
    let p = ((e0 + floor).ln() - (e1 + floor).ln()) / SQRT_2;
    let m = e0.min(e1) / floor;
    (p, m / (m + 10.0))
}

/// `e^{i·θ}` of each phase `θ`.
fn units(phases: &[f64]) -> Vec<C> {
    phases
        .iter()
        .map(|d| C {
            re: d.cos(),
            im: d.sin(),
        })
        .collect()
}

/// The keyed pattern of one key: a dither and a role per (column, band) symbol.
#[derive(Clone)]
pub(crate) struct AudioPattern {
    /// Dither as a phase in [0, 2π), index `col * bands + band`.
    dither: Vec<f64>,
    /// `e^{i·dither}`.
    unit: Vec<C>,
    /// `None` = sync symbol, `Some(k)` = carries coded bit k.
    role: Vec<Option<u16>>,
    /// The sync symbols as (column, band), in index order (the searches' inner loop).
    sync: Vec<(usize, usize)>,
}

impl AudioPattern {
    pub(crate) fn new(key: &WatermarkKey, bands: usize) -> Self {
        let n = bands * PERIOD_SYMBOLS;
        let mut rng = key.rng(b"audio-dither");
        let dither: Vec<f64> = (0..n)
            .map(|_| 2.0 * PI * (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
            .collect();
        let mut perm: Vec<usize> = (0..n).collect();
        let mut rng = key.rng(b"audio-roles");
        for i in (1..n).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            perm.swap(i, j);
        }
        let sync = n * SYNC_NUM / SYNC_DEN;
        let mut role = vec![None; n];
        for (rank, &t) in perm.iter().enumerate().skip(sync) {
            role[t] = Some(((rank - sync) % code::CODED_BITS) as u16);
        }
        let unit = units(&dither);
        let sync = (0..n)
            .filter(|&j| role[j].is_none())
            .map(|j| (j / bands, j % bands))
            .collect();
        AudioPattern {
            dither,
            unit,
            role,
            sync,
        }
    }

    /// The pattern that carries `coded` as one known pattern: every symbol's target phase
    /// as the embedder moves it, all of them read as sync (a clip id named for the mark
    /// elsewhere).
    fn carrying(&self, coded: &[u8]) -> AudioPattern {
        let dither = self.targets(coded);
        let unit = units(&dither);
        let bands = self.dither.len() / PERIOD_SYMBOLS;
        AudioPattern {
            unit,
            role: vec![None; dither.len()],
            sync: (0..dither.len()).map(|j| (j / bands, j % bands)).collect(),
            dither,
        }
    }

    /// The lattice phase each symbol is moved to: the dither, plus π for coded zeros.
    fn targets(&self, coded: &[u8]) -> Vec<f64> {
        self.dither
            .iter()
            .zip(&self.role)
            .map(|(&d, r)| match r {
                Some(k) if coded[*k as usize] == 0 => d + PI,
                _ => d,
            })
            .collect()
    }
}

/// Band energies (and the whole spectrum's energy, last) of Hann frames, two real frames
/// per complex FFT. Shared by the embedder and the detector so that both measure tiles
/// the same way.
struct TileMeter {
    bands: Vec<(usize, usize)>,
    window: Vec<f32>,
    fft: Fft,
    buf: Vec<C>,
    z: Vec<C>,
}

impl TileMeter {
    fn new(bands: Vec<(usize, usize)>) -> Self {
        TileMeter {
            bands,
            window: hann_pow(1.0),
            fft: Fft::new(FFT_LEN),
            buf: Vec::with_capacity(FFT_LEN),
            z: Vec::with_capacity(FFT_LEN),
        }
    }

    /// Energies of two frames of `FFT_LEN` samples each: bands, then the total; added to
    /// `out_a` and `out_b`.
    fn frames(
        &mut self,
        a: impl Iterator<Item = f32>,
        b: impl Iterator<Item = f32>,
        out_a: &mut [f64],
        out_b: &mut [f64],
    ) {
        self.z.clear();
        self.z
            .extend(a.zip(b).zip(&self.window).map(|((x, y), w)| C {
                re: (x * w) as f64,
                im: (y * w) as f64,
            }));
        self.fft.run1d(&mut self.z, false, &mut self.buf);
        // X_a[k] = (Z[k] + conj Z[−k]) / 2, X_b[k] = (Z[k] − conj Z[−k]) / 2i.
        let z = &self.z;
        let energy = |k: usize| -> (f64, f64) {
            let (p, q) = (z[k], z[FFT_LEN - k]);
            let (ar, ai) = (p.re + q.re, p.im - q.im);
            let (br, bi) = (p.im + q.im, q.re - p.re);
            ((ar * ar + ai * ai) / 4.0, (br * br + bi * bi) / 4.0)
        };
        let nb = self.bands.len();
        let (mut ta, mut tb) = (0.0, 0.0);
        let mut bi = 0;
        for k in 1..FFT_LEN / 2 {
            let (ea, eb) = energy(k);
            ta += ea;
            tb += eb;
            while bi < nb && k >= self.bands[bi].1 {
                bi += 1;
            }
            if bi < nb && k >= self.bands[bi].0 {
                out_a[bi] += ea;
                out_b[bi] += eb;
            }
        }
        out_a[nb] += ta;
        out_b[nb] += tb;
    }
}

// ---------------------------------------------------------------------------------------
// Embedding
// ---------------------------------------------------------------------------------------

/// Marks the sound of one clip with one key and payload, streaming.
///
/// Chunks go in through [`AudioEmbedder::process`] and come out marked, in order, delayed by
/// about a sixth of a second (a symbol must be measured before it is marked);
/// [`AudioEmbedder::finish`] returns the rest. Every input sample comes out exactly once,
/// with its timestamp; silence stays silent. Memory is bounded (a few symbols of samples).
pub struct AudioEmbedder {
    targets: Vec<f64>,
    bands: Vec<(usize, usize)>,
    floors: Vec<f64>,
    strength: f64,
    syn_window: Vec<f32>,
    fft: Fft,
    meter: TileMeter,
    state: Option<EmbedState>,
    mark_energy: f64,
    host_energy: f64,
}

struct ChannelPipe {
    down: Resampler,
    /// Samples at the analysis rate; `x16[0]` is absolute index `x16_base`.
    x16: Vec<f32>,
    x16_base: u64,
    /// Overlap-add of the mark at the analysis rate; `ola[0]` is absolute index `ola_base`.
    ola: Vec<f32>,
    ola_base: u64,
    up: Resampler,
    /// The mark at the file's rate, not yet added; `w[0]` is the next sample to emit.
    w: Vec<f32>,
}

impl ChannelPipe {
    /// Sample `t` (absolute, at the analysis rate); silence before the start.
    fn at(&self, t: i64) -> f32 {
        let i = t - self.x16_base as i64;
        if t < 0 || i < 0 {
            0.0
        } else {
            self.x16[i as usize]
        }
    }
}

struct EmbedState {
    rate: u32,
    channels: usize,
    pts0: f64,
    emitted: u64,
    fifo: Vec<f32>,
    pipes: Vec<ChannelPipe>,
    /// Next symbol column to mark (tiles 2j and 2j+1).
    column: u64,
    /// Samples at the analysis rate received so far (per channel).
    have16: u64,
}

impl AudioEmbedder {
    /// An embedder for `payload` under `key`. `strength` in (0, 1] is the fraction of the
    /// distance to the lattice that a symbol is moved; ≤ 0 or non-finite selects
    /// [`DEFAULT_AUDIO_STRENGTH`].
    pub fn new(key: &WatermarkKey, payload: Payload, strength: f32) -> Self {
        let bands = band_edges();
        let pattern = AudioPattern::new(key, bands.len());
        let coded = code::encode(&code::info_bits(&payload));
        let strength = if strength.is_finite() && strength > 0.0 {
            strength.min(1.0) as f64
        } else {
            DEFAULT_AUDIO_STRENGTH as f64
        };
        AudioEmbedder {
            targets: pattern.targets(&coded),
            floors: bands
                .iter()
                .map(|&(lo, hi)| floor_energy(hi - lo))
                .collect(),
            meter: TileMeter::new(bands.clone()),
            bands,
            strength,
            syn_window: hann_pow(0.5),
            fft: Fft::new(FFT_LEN),
            state: None,
            mark_energy: 0.0,
            host_energy: 0.0,
        }
    }

    /// Signal-to-watermark ratio (dB) of everything handed back so far, over all channels
    /// at the file's rate (∞ before any mark).
    pub fn snr_db(&self) -> f64 {
        if self.mark_energy <= 0.0 {
            f64::INFINITY
        } else {
            10.0 * (self.host_energy / self.mark_energy).log10()
        }
    }

    /// Takes one chunk; returns the marked chunks that are ready (possibly none). A chunk
    /// whose rate or channel count differs from the previous ones flushes the pipeline and
    /// starts a new one.
    pub fn process(&mut self, chunk: AudioChunk) -> Vec<AudioChunk> {
        let mut out = Vec::new();
        let ch = chunk.channels as usize;
        if ch == 0 || chunk.sample_rate == 0 || !chunk.samples.len().is_multiple_of(ch) {
            out.push(chunk);
            return out;
        }
        let compatible = self
            .state
            .as_ref()
            .is_none_or(|s| s.rate == chunk.sample_rate && s.channels == ch);
        if !compatible {
            out.extend(self.finish());
        }
        if self.state.is_none() {
            self.state = Some(EmbedState {
                rate: chunk.sample_rate,
                channels: ch,
                pts0: chunk.pts_s,
                emitted: 0,
                fifo: Vec::new(),
                pipes: (0..ch)
                    .map(|_| ChannelPipe {
                        down: Resampler::new(chunk.sample_rate, AUDIO_RATE),
                        x16: Vec::new(),
                        x16_base: 0,
                        ola: Vec::new(),
                        ola_base: 0,
                        up: Resampler::new(AUDIO_RATE, chunk.sample_rate),
                        w: Vec::new(),
                    })
                    .collect(),
                column: 0,
                have16: 0,
            });
        }
        self.feed(&chunk.samples, true);
        out.extend(self.emit(false));
        out
    }

    /// Flushes the pipeline: returns every sample still held, marked.
    pub fn finish(&mut self) -> Vec<AudioChunk> {
        let Some(st) = self.state.as_ref() else {
            return Vec::new();
        };
        // Enough silence to push every real sample through both resamplers and a column.
        let (rate, ch) = (st.rate as u64, st.channels);
        let down = st.pipes[0].down.lookahead() as u64;
        let up = st.pipes[0].up.lookahead() as u64;
        let need16 = (2 * SYM_TILES * AUDIO_TILE_SAMPLES + FFT_LEN) as u64 + up + 2;
        let pad = down + need16 * rate / AUDIO_RATE as u64 + 2;
        self.feed(&vec![0.0; pad as usize * ch], false);
        let out = self.emit(true);
        self.state = None;
        out.into_iter().collect()
    }

    fn feed(&mut self, samples: &[f32], keep: bool) {
        let st = self.state.as_mut().expect("state");
        let ch = st.channels;
        if keep {
            st.fifo.extend_from_slice(samples);
        }
        let mut tmp = Vec::with_capacity(samples.len() / ch);
        let mut got = 0;
        for (c, pipe) in st.pipes.iter_mut().enumerate() {
            tmp.clear();
            tmp.extend(samples.iter().skip(c).step_by(ch));
            let before = pipe.x16.len();
            pipe.down.push(&tmp, &mut pipe.x16);
            got = pipe.x16.len() - before;
        }
        st.have16 += got as u64;
        while self.mark_column() {}
    }

    /// Marks the next symbol column (two tiles) if all the samples it needs are here.
    fn mark_column(&mut self) -> bool {
        let st = self.state.as_mut().expect("state");
        let nb = self.bands.len();
        let half = (FFT_LEN / 2) as i64;
        let t0 = (st.column * (SYM_TILES * AUDIO_TILE_SAMPLES) as u64) as i64;
        // The last analysis frame of the column is centred at t0 + 2·TILE − DET_HOP/2.
        let need = t0 + (SYM_TILES * AUDIO_TILE_SAMPLES - DET_HOP / 2) as i64 + half;
        if need > st.have16 as i64 {
            return false;
        }
        let ch = st.channels;
        // 1. The host's tile energies (mono), exactly as the detector measures them: the
        //    analysis frames of the column start at t0 + DET_HOP/2 − FFT_LEN/2.
        let first = t0 + (DET_HOP / 2) as i64 - half;
        let span = SYM_TILES * AUDIO_TILE_SAMPLES - DET_HOP + FFT_LEN;
        let mono: Vec<f32> = (0..span as i64)
            .map(|i| st.pipes.iter().map(|p| p.at(first + i)).sum::<f32>() / ch as f32)
            .collect();
        let mut e = vec![vec![0f64; nb + 1]; SYM_TILES];
        let mut scratch = vec![0f64; nb + 1];
        for (tile, et) in e.iter_mut().enumerate() {
            for m in (0..DET_FRAMES_PER_TILE).step_by(2) {
                let a = (tile * DET_FRAMES_PER_TILE + m) * DET_HOP;
                let b = a + DET_HOP;
                scratch.iter_mut().for_each(|v| *v = 0.0);
                self.meter.frames(
                    mono[a..a + FFT_LEN].iter().copied(),
                    mono[b..b + FFT_LEN].iter().copied(),
                    et,
                    &mut scratch,
                );
                for (x, y) in et.iter_mut().zip(&scratch) {
                    *x += y;
                }
            }
        }
        // 2. Per band: the change that brings the symbol to its lattice point (split as ±
        //    over the two tiles), what it costs in mark energy and what it gains in cos.
        let col = (st.column % PERIOD_SYMBOLS as u64) as usize;
        let targets = &self.targets[col * nb..(col + 1) * nb];
        let plans: Vec<(f64, f64, f64)> = (0..nb)
            .map(|b| {
                let fl = self.floors[b];
                let (p, _) = symbol(e[0][b], e[1][b], fl);
                let phase = 2.0 * PI * p / AUDIO_STEP - targets[b];
                let err = phase - 2.0 * PI * (phase / (2.0 * PI)).round();
                let delta = -self.strength * err * AUDIO_STEP / (2.0 * PI);
                let c = (delta / SQRT_2).clamp(-MAX_TILE_CHANGE, MAX_TILE_CHANGE);
                let cost = ((c / 2.0).exp() - 1.0).powi(2) * (e[0][b] + fl)
                    + ((-c / 2.0).exp() - 1.0).powi(2) * (e[1][b] + fl);
                let moved = 2.0 * PI * c * SQRT_2 / AUDIO_STEP;
                (c, cost, (err + moved).cos() - err.cos())
            })
            .collect();
        // 3. The SNR budget of this column: the local cap follows the SNR of everything
        //    handed back so far (loud columns may spend what quiet ones left), and is spent
        //    on the symbols with the best gain per unit of mark energy first.
        let so_far = if self.host_energy > 0.0 && st.emitted > st.rate as u64 / 2 {
            10.0 * (self.host_energy / self.mark_energy.max(1e-30)).log10()
        } else {
            AUDIO_SNR_DB + 0.5
        };
        let local_db = (AUDIO_SNR_DB - 2.0 * (so_far - AUDIO_SNR_DB - 0.5))
            .clamp(LOCAL_SNR_MIN_DB, AUDIO_SNR_DB);
        let mut budget = 10f64.powf(-local_db / 10.0) * e.iter().map(|t| t[nb]).sum::<f64>();
        let mut order: Vec<usize> = (0..nb).collect();
        let value = |b: usize| plans[b].2 / plans[b].1.max(1e-30);
        order.sort_by(|&a, &b| value(b).total_cmp(&value(a)));
        let mut gains = vec![vec![0f64; nb]; SYM_TILES];
        for &b in &order {
            let (c, cost, _) = plans[b];
            let s = if cost <= budget {
                1.0
            } else if budget > 0.0 {
                (budget / cost).sqrt()
            } else {
                0.0
            };
            budget -= cost * s * s;
            gains[0][b] = (c * s / 2.0).exp() - 1.0;
            gains[1][b] = (-c * s / 2.0).exp() - 1.0;
        }
        // 4. Apply the gains in the embedder's STFT frames of both tiles (centred at
        //    t0 + HOP/2 + i·HOP), two channels per complex FFT; overlap-add the difference.
        let mut buf = Vec::with_capacity(FFT_LEN);
        let mut z = Vec::with_capacity(FFT_LEN);
        let mut y = vec![C::default(); FFT_LEN];
        for i in 0..SYM_TILES * EMB_FRAMES_PER_TILE {
            let g = &gains[i / EMB_FRAMES_PER_TILE];
            let start = t0 + (HOP / 2 + i * HOP) as i64 - half;
            for pair in 0..ch.div_ceil(2) {
                let (c0, c1) = (2 * pair, 2 * pair + 1);
                z.clear();
                for j in 0..FFT_LEN {
                    let t = start + j as i64;
                    let w = self.syn_window[j] as f64;
                    let a = st.pipes[c0].at(t) as f64;
                    let b = if c1 < ch {
                        st.pipes[c1].at(t) as f64
                    } else {
                        0.0
                    };
                    z.push(C {
                        re: a * w,
                        im: b * w,
                    });
                }
                self.fft.run1d(&mut z, false, &mut buf);
                y.iter_mut().for_each(|v| *v = C::default());
                // A real gain on bins k and N−k scales both channels packed in z alike.
                for (&(lo, hi), &gb) in self.bands.iter().zip(g) {
                    for k in lo..hi {
                        for kk in [k, FFT_LEN - k] {
                            y[kk] = C {
                                re: z[kk].re * gb,
                                im: z[kk].im * gb,
                            };
                        }
                    }
                }
                self.fft.run1d(&mut y, true, &mut buf);
                for c in [c0, c1] {
                    if c >= ch {
                        continue;
                    }
                    let p = &mut st.pipes[c];
                    for (j, v) in y.iter().enumerate() {
                        let t = start + j as i64;
                        if t < p.ola_base as i64 {
                            continue;
                        }
                        let idx = (t - p.ola_base as i64) as usize;
                        if idx >= p.ola.len() {
                            p.ola.resize(idx + 1, 0.0);
                        }
                        let s = if c == c0 { v.re } else { v.im };
                        p.ola[idx] += (s / FFT_LEN as f64) as f32 * self.syn_window[j];
                    }
                }
            }
        }
        st.column += 1;
        // Mark samples before the next column's first frame are final; analysis samples
        // before the next column's first analysis frame are no longer needed.
        let next0 = (st.column * (SYM_TILES * AUDIO_TILE_SAMPLES) as u64) as i64;
        let final_to = next0 + (HOP / 2) as i64 - half;
        let keep_from = next0 + (DET_HOP / 2) as i64 - half;
        for p in st.pipes.iter_mut() {
            if final_to > p.ola_base as i64 {
                let n = ((final_to - p.ola_base as i64) as usize).min(p.ola.len());
                let done: Vec<f32> = p.ola.drain(..n).collect();
                p.ola_base += n as u64;
                p.up.push(&done, &mut p.w);
            }
            if keep_from > p.x16_base as i64 {
                let n = ((keep_from - p.x16_base as i64) as usize).min(p.x16.len());
                p.x16.drain(..n);
                p.x16_base += n as u64;
            }
        }
        true
    }

    /// Hands back the originals whose mark is known (all of them if `all`), marked.
    fn emit(&mut self, all: bool) -> Option<AudioChunk> {
        let st = self.state.as_mut()?;
        let ch = st.channels;
        let queued = st.fifo.len() / ch;
        let ready = st.pipes.iter().map(|p| p.w.len()).min().unwrap_or(0);
        let n = if all { queued } else { queued.min(ready) };
        if n == 0 {
            return None;
        }
        let mut samples: Vec<f32> = st.fifo.drain(..n * ch).collect();
        for (c, p) in st.pipes.iter_mut().enumerate() {
            let take = n.min(p.w.len());
            for (i, w) in p.w.drain(..take).enumerate() {
                let x = &mut samples[i * ch + c];
                self.host_energy += (*x as f64) * (*x as f64);
                self.mark_energy += (w as f64) * (w as f64);
                *x += w;
            }
            // Samples past the mark (only at the very end) count as unmarked.
            for i in take..n {
                let x = samples[i * ch + c] as f64;
                self.host_energy += x * x;
            }
        }
        let chunk = AudioChunk {
            sample_rate: st.rate,
            channels: ch as u16,
            samples,
            pts_s: st.pts0 + st.emitted as f64 / st.rate as f64,
        };
        st.emitted += n as u64;
        Some(chunk)
    }
}

// ---------------------------------------------------------------------------------------
// Detection
// ---------------------------------------------------------------------------------------

/// The outcome of [`AudioDetector::result`] (shaped like [`crate::VideoDetection`]).
#[derive(Debug, Clone, PartialEq)]
pub struct AudioDetection {
    /// `p_value <= DETECT_P`.
    pub detected: bool,
    /// `DETECT_P < p_value < INCONCLUSIVE_P`.
    pub inconclusive: bool,
    /// Family-wise p-value of the mark, corrected for every key and time offset tried: the
    /// presence test (sync symbols), with the payload's check bits where it decoded there
    /// (as the picture's, `VideoDetection::p_value`). An upper bound under the null, for
    /// any sound.
    pub p_value: f64,
    /// The p-value the presence test alone gives (sync symbols, family-wise).
    pub presence_p: f64,
    /// Normalised correlation (z-score) of the best registration.
    pub score: f64,
    /// Decoded payload, if the presence test reached `INCONCLUSIVE_P` and the CRC checks.
    pub payload: Option<Payload>,
    /// Fraction of coded payload bits whose hard decision disagrees with the decoded
    /// codeword; `None` if no decoding was attempted.
    pub bit_error_estimate: Option<f64>,
    /// 64 ms analysis windows (tiles in time) analysed.
    pub windows_analysed: u64,
    /// Per bin of [`AudioDetection::timeline_bin_s`] seconds (bin `i` is `[i·w, (i+1)·w)`
    /// of the sound's time), up to the bin of the last analysed symbol: single-test p-value
    /// of the sync correlation at the registration; `None` where nothing was analysed.
    pub timeline: Vec<Option<f64>>,
    /// Width of the timeline's bins in seconds: 1 for sound up to
    /// [`AUDIO_MAX_TIMELINE_BINS`] s, else the power of two that keeps them within it.
    pub timeline_bin_s: f64,
    /// The tests `p_value` is corrected for on top of the offset search: the whole sound
    /// plus every segment that may be searched ([`crate::segment_windows`]).
    pub family_size: usize,
    /// Key id of the best-matching key (set when `p_value < INCONCLUSIVE_P`).
    pub key_id: Option<u8>,
    /// Which of the keys the detector was given matched best (set with `key_id`): keys that
    /// share a one-byte id are told apart by it, each having been tried.
    pub key_index: Option<usize>,
    /// Registration: where the pattern's period starts, seconds from the start of the
    /// analysed sound, modulo the period (set when `p_value < INCONCLUSIVE_P`).
    pub offset_s: Option<f64>,
    /// Set when the wider search found the mark (the plain one did not): the sound's
    /// duration over the sealed sound's (a tempo or speed change: 1.15 = 15 % slower).
    pub time_scale: Option<f64>,
    /// Set with `time_scale`: the sound's frequencies over the sealed sound's (a pitch or
    /// speed change: 0.96 = 4 % lower).
    pub frequency_scale: Option<f64>,
    /// Where the wider search ran (the plain one did not prove the mark with its payload):
    /// the time scale of its best registration, proven or not. Not evidence: a hint where
    /// to look for the sound's content at another tempo (the manifest store's lookup). Its
    /// best registration lands on a tempo change even where the mark is far from proven
    /// (voice at `atempo=1.15`, four keys, p 0.74–1: 0.869–0.871, the truth 0.8696).
    pub likeliest_time_scale: Option<f64>,
    /// The payload's coded bits as read at the registration where it did not decode, for
    /// a clip id named elsewhere (the picture's mark, the manifest store) to be tested
    /// against ([`code::PayloadReading::p_values`]), as [`crate::VideoDetection`]'s.
    pub payload_reading: Option<code::PayloadReading>,
}

struct DetFront {
    rate: u32,
    channels: usize,
    down: Resampler,
    /// Mono at the analysis rate; `x16[0]` is absolute index `base`.
    x16: Vec<f32>,
    base: u64,
    have: u64,
    /// Analysis frames handed out so far (frame m is centred at `m · DET_HOP + DET_HOP/2`).
    framed: u64,
}

/// Most timeline bins an [`AudioDetector`] keeps (memory: the 32 folds of one bin, ≈ 180 kB,
/// so ≤ 23 MB). Bins are one second wide until the sound reaches past the last of them;
/// then neighbouring bins are merged in pairs (2 s, 4 s, …), so they always cover all of it.
pub const AUDIO_MAX_TIMELINE_BINS: usize = 128;

/// One timeline bin of the sound: per symbol phase the fold of the symbols in it (phasors
/// as f32 pairs, `col * bands + band`; empty until a symbol of that phase comes), and how
/// many symbol columns it holds.
#[derive(Default)]
struct AudioBin {
    folds: Vec<Vec<[f32; 2]>>,
    columns: u64,
}

impl AudioBin {
    fn add_column(&mut self, sphase: usize, col: usize, phasors: &[C]) {
        let nb = phasors.len();
        if self.folds.is_empty() {
            self.folds = vec![Vec::new(); SYMBOL_PHASES];
        }
        let fold = &mut self.folds[sphase];
        if fold.is_empty() {
            *fold = vec![[0.0; 2]; nb * PERIOD_SYMBOLS];
        }
        for (b, p) in phasors.iter().enumerate() {
            let v = &mut fold[col * nb + b];
            v[0] += p.re as f32;
            v[1] += p.im as f32;
        }
        self.columns += 1;
    }

    fn merge(&mut self, other: AudioBin) {
        if self.folds.is_empty() {
            *self = other;
            return;
        }
        for (a, b) in self.folds.iter_mut().zip(other.folds) {
            if a.is_empty() {
                *a = b;
            } else {
                for (x, y) in a.iter_mut().zip(&b) {
                    x[0] += y[0];
                    x[1] += y[1];
                }
            }
        }
        self.columns += other.columns;
    }

    /// Adds this bin's fold of symbol phase `sphase` to `into`; whether it held any.
    fn add_fold_to(&self, sphase: usize, into: &mut [C]) -> bool {
        match self.folds.get(sphase) {
            Some(f) if !f.is_empty() => {
                for (c, v) in into.iter_mut().zip(f) {
                    c.re += v[0] as f64;
                    c.im += v[1] as f64;
                }
                true
            }
            _ => false,
        }
    }
}

/// How [`AudioDetector`] measures sound, so that its band-energy front end can run
/// elsewhere (`hallmark-detector` runs it as a candle model): analysis frame `m` holds the
/// 16 kHz mono samples `m · hop + hop/2 − frame_len/2 ..` (silence before the start) from
/// [`AudioDetector::push_chunk`] / [`AudioDetector::take_frames`]; its energies are
/// `E_b = Σ_{k ∈ bands[b]} |X_k|²` for each band, then `Σ_{k ∈ total_bins} |X_k|²`, where
/// `X = DFT(x · window)` (the product taken in f32, `X_k = Σ_j x_j w_j e^{−2πijk/frame_len}`),
/// and they go to [`AudioDetector::add_band_energies`] in frame order.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioFraming {
    /// Samples per analysis frame at [`AUDIO_RATE`] (512, 32 ms).
    pub frame_len: usize,
    /// Samples between consecutive frames (64, 4 ms).
    pub hop: usize,
    /// The analysis window (Hann), `frame_len` values.
    pub window: Vec<f32>,
    /// The bands as half-open DFT bin ranges `[lo, hi)`, low to high.
    pub bands: Vec<(usize, usize)>,
    /// The bins of the total energy, half-open: every bin but DC and Nyquist.
    pub total_bins: (usize, usize),
}

impl AudioFraming {
    /// Energies per frame: the bands, then the total.
    pub fn energies_per_frame(&self) -> usize {
        self.bands.len() + 1
    }
}

/// The detector's analysis framing ([`AudioFraming`]).
pub fn audio_framing() -> AudioFraming {
    AudioFraming {
        frame_len: FFT_LEN,
        hop: DET_HOP,
        window: hann_pow(1.0),
        bands: band_edges(),
        total_bins: (1, FFT_LEN / 2),
    }
}

/// The plain-Rust band-energy front end of [`AudioDetector::add_chunk`]: the energies of
/// analysis frames ([`AudioFraming`]) with an f64 FFT, two real frames per complex FFT.
pub struct AudioBandMeter {
    meter: TileMeter,
}

impl Default for AudioBandMeter {
    fn default() -> Self {
        AudioBandMeter::new()
    }
}

impl AudioBandMeter {
    pub fn new() -> Self {
        AudioBandMeter {
            meter: TileMeter::new(band_edges()),
        }
    }

    /// Replaces `energies` with those of `frames` (whole frames of [`AudioFraming`]'s
    /// `frame_len`, one after the other): bands, then the total, frame after frame. An odd
    /// last frame shares its FFT with silence.
    pub fn measure(
        &mut self,
        frames: &[f32],
        energies: &mut Vec<f64>,
    ) -> Result<(), NotWholeFrames> {
        if !frames.len().is_multiple_of(FFT_LEN) {
            return Err(NotWholeFrames {
                len: frames.len(),
                per_frame: FFT_LEN,
            });
        }
        let per_frame = self.meter.bands.len() + 1;
        let n = frames.len() / FFT_LEN;
        energies.clear();
        energies.resize((n + n % 2) * per_frame, 0.0);
        for (f, e) in frames
            .chunks(2 * FFT_LEN)
            .zip(energies.chunks_exact_mut(2 * per_frame))
        {
            let (ea, eb) = e.split_at_mut(per_frame);
            let (fa, fb) = f.split_at(FFT_LEN);
            let fb = fb.iter().copied().chain(std::iter::repeat(0.0));
            self.meter.frames(fa.iter().copied(), fb, ea, eb);
        }
        energies.truncate(n * per_frame);
        Ok(())
    }
}

/// [`AudioDetector::add_frames`] or [`AudioDetector::add_band_energies`] was handed a slice
/// that is not whole frames.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{len} values are not whole frames of {per_frame}")]
pub struct NotWholeFrames {
    pub len: usize,
    pub per_frame: usize,
}

/// Accumulates the sound of one clip and tests it against a set of keys. Memory is
/// bounded: one fold per time phase, plus the folds of at most
/// [`AUDIO_MAX_TIMELINE_BINS`] timeline bins, which cover the whole sound.
///
/// [`AudioDetector::add_chunk`] does everything. Its front end can also be run elsewhere:
/// [`AudioDetector::push_chunk`] + [`AudioDetector::take_frames`] give the analysis frames,
/// [`AudioDetector::add_band_energies`] takes their energies ([`AudioFraming`]); `add_chunk`
/// is exactly that with the plain-Rust FFT ([`AudioDetector::add_frames`]) in between.
pub struct AudioDetector {
    keys: Vec<(u8, AudioPattern)>,
    nb: usize,
    floors: Vec<f64>,
    meter: AudioBandMeter,
    front: Option<DetFront>,
    /// Analysis frames whose energies have been added (frame m is centred at
    /// `m · DET_HOP + DET_HOP/2`).
    next: u64,
    /// Band energies of the last `DET_FRAMES_PER_TILE` frames (ring; total last).
    ring: Vec<Vec<f64>>,
    /// Per tile phase: band energies of the previous tile.
    prev: Vec<Option<Vec<f64>>>,
    /// Per symbol phase: the folded phasors (`col * bands + band`).
    folds: Vec<Vec<C>>,
    /// Per timeline bin: the folds of the symbols analysed in it.
    bins: TimeBins<AudioBin>,
    windows: u64,
    pts0: Option<f64>,
    /// Scratch of the plain front end: frames and their energies.
    frame_buf: Vec<f32>,
    energy_buf: Vec<f64>,
    /// The first [`wide::WIDE_MAX_SAMPLES`] of the sound at 16 kHz mono, for the wider
    /// search (tempo, speed, pitch), which runs only when the plain one does not detect.
    wide: Vec<f32>,
    /// The scales the wider search's coarse stage picked for the keys' own patterns on
    /// `wide` as it is (cleared when sound is added): a clip id's whole pattern searched for
    /// afterwards refines the same candidates (≈ half the wider search's cost, paid again
    /// for every naming).
    wide_picks: std::sync::OnceLock<Vec<(f64, f64)>>,
    /// While [`AudioDetector::result_naming`] searches: the payload each key's pattern
    /// carries (the keys are then those patterns, every symbol sync).
    known: Option<KnownAudio>,
}

/// The payloads [`AudioDetector::result_naming`] searches for, one per pattern, with the
/// pattern of the key that would carry each (its coded symbols read where one is found).
struct KnownAudio {
    payloads: Vec<Payload>,
    patterns: Vec<AudioPattern>,
}

/// Shares of the false-positive budget (a weighted Bonferroni bound, p = min(p_sealed / ws,
/// p_plain / wp, p_wide / ww)): the as-sealed registration (symbol phase 0, shift 0: the
/// sound as the seal wrote it, untrimmed — re-encoded, filtered, mixed with other sound;
/// one hypothesis per key, z ≥ 5.64 alone), the plain search (z ≥ 6.51, 6.49 with its former
/// three quarters) and the wider search (tempo, speed, pitch: z ≥ 7.67 / 7.85 / 7.91 for 3
/// / 12 / ≥ 20 s of sound, its family growing with the length it keeps).
const SEALED_WEIGHT: f64 = 0.125;
const PLAIN_WEIGHT: f64 = 0.625;
const WIDE_WEIGHT: f64 = 0.25;

/// Analysis frames the plain front end measures at a time (bounds its scratch memory).
const PLAIN_FRAMES_PER_PASS: usize = 256;

impl AudioDetector {
    /// A detector for any of `keys`.
    pub fn new(keys: &[WatermarkKey]) -> Self {
        let bands = band_edges();
        let nb = bands.len();
        AudioDetector {
            keys: keys
                .iter()
                .map(|k| (k.key_id(), AudioPattern::new(k, nb)))
                .collect(),
            nb,
            floors: bands
                .iter()
                .map(|&(lo, hi)| floor_energy(hi - lo))
                .collect(),
            meter: AudioBandMeter::new(),
            front: None,
            next: 0,
            ring: vec![vec![0.0; nb + 1]; DET_FRAMES_PER_TILE],
            prev: vec![None; DET_FRAMES_PER_TILE],
            folds: vec![vec![C::default(); nb * PERIOD_SYMBOLS]; SYMBOL_PHASES],
            bins: TimeBins::new(AUDIO_MAX_TIMELINE_BINS),
            windows: 0,
            pts0: None,
            frame_buf: Vec::new(),
            energy_buf: Vec::new(),
            wide: Vec::new(),
            wide_picks: std::sync::OnceLock::new(),
            known: None,
        }
    }

    /// The mark searched for as the whole pattern of each of `payloads` — clip ids named
    /// for it elsewhere (the picture's mark, the store) — on everything heard so far, by
    /// every stage of [`AudioDetector::result`]: every symbol, sync and coded, is then
    /// known (three times the sync symbols: about √3 times their z where the mark is).
    /// As the picture's ([`crate::VideoDetector::result_naming`]): each pattern counted as
    /// a key, the p-value on its own share of the error budget, and the named clip id the
    /// answer's payload only where the coded symbols read at its registration single it
    /// out (the returned p-value, × the patterns searched, ≤ [`crate::NAMED_MATCH_P`]).
    /// `None` when no payload is of one of this detector's keys.
    pub fn result_naming(&mut self, payloads: &[Payload]) -> Option<(AudioDetection, Option<f64>)> {
        let mut patterns = Vec::new();
        let mut own = Vec::new();
        let mut named = Vec::new();
        for payload in payloads {
            let coded = code::encode(&code::info_bits(payload));
            for (ki, (key_id, pattern)) in self.keys.iter().enumerate() {
                if *key_id == payload.key_id {
                    patterns.push((*key_id, pattern.carrying(&coded)));
                    own.push(pattern.clone());
                    named.push((ki, *payload));
                }
            }
        }
        if patterns.is_empty() {
            return None;
        }
        let keys = std::mem::replace(&mut self.keys, patterns);
        self.known = Some(KnownAudio {
            payloads: named.iter().map(|n| n.1).collect(),
            patterns: own,
        });
        let mut found = self.result();
        self.keys = keys;
        self.known = None;
        found.key_index = found.key_index.map(|i| named[i].0);
        let match_p;
        (found.payload, match_p) =
            crate::detect::named_match(found.payload, found.payload_reading.take(), named.len());
        Some((found, match_p))
    }

    /// Adds one chunk of decoded sound (any rate, any channel count). Chunks whose format
    /// differs from the first chunk's are ignored.
    pub fn add_chunk(&mut self, chunk: &AudioChunk) {
        if !self.push_chunk(chunk) {
            return;
        }
        let mut frames = std::mem::take(&mut self.frame_buf);
        loop {
            // Every complete frame, now: an odd one shares its FFT with silence rather than
            // wait for a partner that may never come. (Until 2026-12-05 it waited, and the
            // sound's last frame was left out when the count was odd: one tile fewer at one
            // time phase than the model path, which measures every frame; z at that phase
            // moved by up to 0.4.)
            let n = self.frames_ready().min(PLAIN_FRAMES_PER_PASS);
            if n == 0 {
                break;
            }
            frames.clear();
            self.take_frames(n, &mut frames);
            self.add_frames(&frames)
                .expect("take_frames hands out whole frames");
        }
        self.frame_buf = frames;
    }

    /// Measures analysis frames from [`AudioDetector::take_frames`] with the plain-Rust FFT
    /// ([`AudioBandMeter`]) and adds their energies ([`AudioDetector::add_band_energies`]).
    pub fn add_frames(&mut self, frames: &[f32]) -> Result<(), NotWholeFrames> {
        let mut energies = std::mem::take(&mut self.energy_buf);
        let added = self
            .meter
            .measure(frames, &mut energies)
            .and_then(|()| self.add_band_energies(&energies));
        self.energy_buf = energies;
        added
    }

    /// The framing half of [`AudioDetector::add_chunk`]: downmixes the chunk and resamples
    /// it to [`AUDIO_RATE`]; the analysis frames it completes then come out of
    /// [`AudioDetector::take_frames`]. Returns false (and ignores the chunk) if its format
    /// is malformed or differs from the first chunk's.
    pub fn push_chunk(&mut self, chunk: &AudioChunk) -> bool {
        let ch = chunk.channels as usize;
        if ch == 0 || chunk.sample_rate == 0 || !chunk.samples.len().is_multiple_of(ch) {
            return false;
        }
        let front = self.front.get_or_insert_with(|| DetFront {
            rate: chunk.sample_rate,
            channels: ch,
            down: Resampler::new(chunk.sample_rate, AUDIO_RATE),
            x16: Vec::new(),
            base: 0,
            have: 0,
            framed: 0,
        });
        if front.rate != chunk.sample_rate || front.channels != ch {
            return false;
        }
        self.pts0.get_or_insert(chunk.pts_s);
        let mono: Vec<f32> = chunk
            .samples
            .chunks_exact(ch)
            .map(|f| f.iter().sum::<f32>() / ch as f32)
            .collect();
        let before = front.x16.len();
        front.down.push(&mono, &mut front.x16);
        front.have += (front.x16.len() - before) as u64;
        let room = wide::WIDE_MAX_SAMPLES - self.wide.len();
        let new = &front.x16[before..];
        if room > 0 && !new.is_empty() {
            self.wide.extend_from_slice(&new[..new.len().min(room)]);
            self.wide_picks = std::sync::OnceLock::new();
        }
        true
    }

    /// Analysis frames complete and not yet taken.
    pub fn frames_ready(&self) -> usize {
        let Some(front) = self.front.as_ref() else {
            return 0;
        };
        // Frame m is complete once `m · DET_HOP + DET_HOP/2 + FFT_LEN/2 ≤ have`.
        let end0 = (DET_HOP / 2 + FFT_LEN / 2) as u64;
        let complete = match front.have.checked_sub(end0) {
            Some(past) => past / DET_HOP as u64 + 1,
            None => 0,
        };
        (complete - front.framed.min(complete)) as usize
    }

    /// Appends up to `max` complete analysis frames ([`AudioFraming`]: `frame_len` samples
    /// each, not windowed) to `out`, in order; returns how many. Their energies must go to
    /// [`AudioDetector::add_band_energies`] in the same order. The samples a frame no longer
    /// needs are dropped, so memory stays bounded by what `push_chunk` was handed.
    pub fn take_frames(&mut self, max: usize, out: &mut Vec<f32>) -> usize {
        let half = (FFT_LEN / 2) as i64;
        let Some(front) = self.front.as_mut() else {
            return 0;
        };
        let mut n = 0;
        while n < max {
            let centre = (front.framed * DET_HOP as u64 + DET_HOP as u64 / 2) as i64;
            if centre + half > front.have as i64 {
                break;
            }
            let start = centre - half - front.base as i64;
            let x = &front.x16;
            out.extend((start..start + FFT_LEN as i64).map(|t| {
                if t < 0 {
                    0.0
                } else {
                    x[t as usize]
                }
            }));
            front.framed += 1;
            n += 1;
        }
        let keep_from =
            (front.framed * DET_HOP as u64 + DET_HOP as u64 / 2) as i64 - half - front.base as i64;
        if keep_from > 0 {
            let k = (keep_from as usize).min(front.x16.len());
            front.x16.drain(..k);
            front.base += k as u64;
        }
        n
    }

    /// The analysis half of [`AudioDetector::add_chunk`]: the energies of consecutive
    /// analysis frames ([`AudioFraming`]: bands, then the total, frame after frame), in the
    /// order [`AudioDetector::take_frames`] handed the frames out; any number of frames per
    /// call.
    pub fn add_band_energies(&mut self, energies: &[f64]) -> Result<(), NotWholeFrames> {
        let per_frame = self.nb + 1;
        if !energies.len().is_multiple_of(per_frame) {
            return Err(NotWholeFrames {
                len: energies.len(),
                per_frame,
            });
        }
        let nb = self.nb;
        for e in energies.chunks_exact(per_frame) {
            let slot = (self.next % DET_FRAMES_PER_TILE as u64) as usize;
            self.ring[slot].copy_from_slice(e);
            self.next += 1;
            // Every frame closes a tile: frames next−16 ..= next−1 form tile k of tile
            // phase (next−16) mod 16, so the 16 time grids 4 ms apart are all distinct.
            // (Until 2026-12-02 frames were turned into tiles in pairs, after both were in
            // the ring, and each odd phase repeated the next even one: 8 distinct grids,
            // 8 ms apart, while the p-value counted 16.)
            if self.next >= DET_FRAMES_PER_TILE as u64 {
                let first = self.next - DET_FRAMES_PER_TILE as u64;
                let phase = (first % DET_FRAMES_PER_TILE as u64) as usize;
                let k = first / DET_FRAMES_PER_TILE as u64;
                let e: Vec<f64> = (0..nb)
                    .map(|b| self.ring.iter().map(|r| r[b]).sum())
                    .collect();
                self.push_tile(phase, k, e);
            }
        }
        Ok(())
    }

    /// A new tile `k` of tile phase `phase`: with tile k−1 it forms a symbol column of the
    /// grid whose symbols start at even or odd tiles; its phasors go into that grid's fold.
    fn push_tile(&mut self, phase: usize, k: u64, e: Vec<f64>) {
        let nb = self.nb;
        let Some(prev) = self.prev[phase].replace(e) else {
            return;
        };
        let e = self.prev[phase].as_ref().expect("just set");
        let first = k - 1;
        let parity = (first % SYM_TILES as u64) as usize;
        let sphase = phase + DET_FRAMES_PER_TILE * parity;
        let col = ((first / SYM_TILES as u64) % PERIOD_SYMBOLS as u64) as usize;
        let v: Vec<C> = (0..nb)
            .map(|b| {
                let (p, w) = symbol(prev[b], e[b], self.floors[b]);
                let a = 2.0 * PI * p / AUDIO_STEP;
                C {
                    re: w * a.cos(),
                    im: w * a.sin(),
                }
            })
            .collect();
        let fold = &mut self.folds[sphase];
        for (b, p) in v.iter().enumerate() {
            fold[col * nb + b].re += p.re;
            fold[col * nb + b].im += p.im;
        }
        if sphase == 0 {
            self.windows += SYM_TILES as u64;
        }
        let t = (first as f64 * AUDIO_TILE_SAMPLES as f64 + (phase * DET_HOP) as f64)
            / AUDIO_RATE as f64
            + self.pts0.unwrap_or(0.0).max(0.0);
        self.bins
            .bin_of(t, AudioBin::merge)
            .add_column(sphase, col, &v);
    }

    /// z of the sync correlation, `Σ Re(Φ·e^{−iθ}) / √(½ Σ|Φ|²)` over the sync symbols,
    /// with the fold shifted by `d` columns. `P(z ≥ t) ≤ exp(−t²/2)` under the null.
    fn z_at(&self, fold: &[C], key: &AudioPattern, d: usize) -> f64 {
        let nb = self.nb;
        let (mut c, mut e) = (0.0, 0.0);
        for &(col, b) in &key.sync {
            let src = (col + d) % PERIOD_SYMBOLS;
            let v = fold[src * nb + b];
            let u = key.unit[col * nb + b];
            c += v.re * u.re + v.im * u.im;
            e += v.re * v.re + v.im * v.im;
        }
        sync_z(c, e)
    }

    /// [`AudioDetector::z_at`] at every shift `d` of one fold, the same sums in the same
    /// order: the shifts are the inner loop over a band-major copy of the fold with its
    /// columns twice, so that each sync symbol adds to 32 independent sums on vectors (one
    /// shift at a time, each sum waited for the one before it: a third of the search).
    fn z_every_shift(
        &self,
        fold: &[C],
        key: &AudioPattern,
        scratch: &mut Vec<f64>,
    ) -> [f64; PERIOD_SYMBOLS] {
        const P: usize = PERIOD_SYMBOLS;
        let nb = self.nb;
        scratch.clear();
        scratch.resize(4 * P * nb, 0.0);
        let (re, im) = scratch.split_at_mut(2 * P * nb);
        for (col, row) in fold.chunks_exact(nb).enumerate() {
            for (b, v) in row.iter().enumerate() {
                re[b * 2 * P + col] = v.re;
                re[b * 2 * P + col + P] = v.re;
                im[b * 2 * P + col] = v.im;
                im[b * 2 * P + col + P] = v.im;
            }
        }
        let (mut c, mut e) = ([0f64; P], [0f64; P]);
        for &(col, b) in &key.sync {
            let u = key.unit[col * nb + b];
            let from = b * 2 * P + col;
            let (vr, vi) = (&re[from..from + P], &im[from..from + P]);
            for d in 0..P {
                c[d] += vr[d] * u.re + vi[d] * u.im;
                e[d] += vr[d] * vr[d] + vi[d] * vi[d];
            }
        }
        std::array::from_fn(|d| sync_z(c[d], e[d]))
    }

    /// Where in the sealed clip's own time this copy's time 0 may lie, by the registration
    /// of `found` (this detector's answer): the pattern's period starts at the sealed
    /// clip's start, so the copy's start lies a whole number of periods after the
    /// registration's phase — each such time up to `within_s`. Empty where `found` is not
    /// registered at the sealed tempo (no mark, or one found stretched by the wider
    /// search). For the picture's test of a trimmed excerpt (which reading of a turning
    /// mark to search: `VideoDetector::hint_sealed_starts`).
    pub fn sealed_starts(&self, found: &AudioDetection, within_s: f64) -> Vec<f64> {
        let Some(offset_s) = found.offset_s.filter(|_| found.time_scale.is_none()) else {
            return Vec::new();
        };
        let period_s = (AUDIO_PERIOD_TILES * AUDIO_TILE_SAMPLES) as f64 / AUDIO_RATE as f64;
        // The copy's time at which a period starts, as the bins place the sound.
        let start = self.pts0.unwrap_or(0.0).max(0.0) + offset_s;
        let first = (-start).rem_euclid(period_s);
        (0..)
            .map(|n| first + n as f64 * period_s)
            .take_while(|&t| t <= within_s)
            .collect()
    }

    /// Runs the offset search and the tests on everything added so far.
    pub fn result(&self) -> AudioDetection {
        self.result_within(false).0
    }

    /// [`AudioDetector::result`] without the wider search (tempo and pitch) where the plain
    /// search proves the mark but not its payload, and whether it was left out (`true`):
    /// for a caller that has a clip id to search for first ([`AudioDetector::result_naming`],
    /// whose own search goes as wide), and runs [`AudioDetector::result`] only if that
    /// fails. It costs ≈ 0.2 s on 10 s of sound, as much as the rest of a quick scan. The
    /// weights are fixed in advance, so the bound holds whichever searches ran.
    pub fn result_deferring_wide(&self) -> (AudioDetection, bool) {
        self.result_within(true)
    }

    fn result_within(&self, defer_wide: bool) -> (AudioDetection, bool) {
        let mut out = AudioDetection {
            detected: false,
            inconclusive: false,
            p_value: 1.0,
            presence_p: 1.0,
            score: 0.0,
            payload: None,
            bit_error_estimate: None,
            windows_analysed: self.windows,
            timeline: Vec::new(),
            timeline_bin_s: self.bins.width_s(),
            family_size: 1,
            key_id: None,
            key_index: None,
            offset_s: None,
            time_scale: None,
            frequency_scale: None,
            likeliest_time_scale: None,
            payload_reading: None,
        };
        if self.keys.is_empty() || self.windows == 0 {
            return (out, false);
        }
        // The whole sound first; then, for 4 s or more, segments of it (halves, quarters, …
        // and the windows between them: `crate::segment_windows`, as for the picture), so
        // that foreign sound spliced around a marked stretch cannot drown the mark. The
        // segments depend only on the sound's length, never on the key; p is the Bonferroni
        // bound over every segment that may be searched, and once the whole sound proves the
        // mark within that family, payload decoded, the segments are not searched.
        let segments = self.segments();
        let family = (1 + segments.len()) as f64;
        out.family_size = 1 + segments.len();
        let hypotheses = (self.keys.len() * SYMBOL_PHASES * PERIOD_SYMBOLS) as f64;
        let p_of = |z: f64| family / PLAIN_WEIGHT * crate::detect::search_p(hypotheses, z);
        let p_sealed =
            |z: f64| family / SEALED_WEIGHT * crate::detect::search_p(self.keys.len() as f64, z);
        let mut best = (self.search(&self.folds), Cow::Borrowed(&self.folds));
        let mut sealed = (self.as_sealed(&self.folds), Cow::Borrowed(&self.folds));
        // Segments are also searched when the whole proves the mark but its payload does not
        // decode (foreign sound dilutes the payload's chips too). Reporting family × p of
        // whatever was searched stays a valid bound whatever decided the search.
        // An answer's bound with the payload's evidence where it decodes there (as the
        // picture's: `crate::detect::Proof`); final when it proves the mark and its payload
        // reads at it.
        let proven = |(found, folds): &Answer<'_>, p: f64| {
            let (_, ki, sphase, d) = *found;
            Proof::answer(p, self.known.is_some(), || {
                self.decode(&folds[sphase], &self.keys[ki].1, self.keys[ki].0, d)
                    .0
                    .is_some()
            })
        };
        // Each answer's bound and whether it is final, measured once per answer.
        let judge = |sealed: &Answer<'_>, best: &Answer<'_>| {
            (
                proven(sealed, p_sealed(sealed.0 .0)),
                proven(best, p_of(best.0 .0)),
            )
        };
        let mut judged = judge(&sealed, &best);
        if !judged.0.is_final() && !judged.1.is_final() {
            for &(from, to) in &segments {
                let folds = self.segment_folds(from, to);
                let found = self.search(&folds);
                let at_seal = self.as_sealed(&folds);
                if at_seal.0 > sealed.0 .0 {
                    sealed = (at_seal, Cow::Owned(folds.clone()));
                }
                if found.0 > best.0 .0 {
                    best = (found, Cow::Owned(folds));
                }
            }
            judged = judge(&sealed, &best);
        }
        // The final answer, else the smaller bound (ties: the search, whose z is the
        // larger).
        let (ps, pb) = judged;
        let (proof, ((z, ki, sphase, d), folds)) = if ps.rank() > pb.rank() {
            (ps, sealed)
        } else {
            (pb, best)
        };
        let nb = self.nb;
        let p_of_bin = |z: f64| if z <= 0.0 { 1.0 } else { (-z * z / 2.0).exp() };
        // The timeline: per bin, the single-test p at the registration.
        out.timeline = (0..self.bins.len())
            .map(|i| {
                let mut fold = vec![C::default(); nb * PERIOD_SYMBOLS];
                self.bins
                    .get(i)
                    .is_some_and(|bin| bin.add_fold_to(sphase, &mut fold))
                    .then(|| p_of_bin(self.z_at(&fold, &self.keys[ki].1, d)))
            })
            .collect();
        // Weighted Bonferroni over the three stages (SEALED_WEIGHT, PLAIN_WEIGHT,
        // WIDE_WEIGHT). The wider search runs unless the first two prove the mark with its
        // payload: a pitch shift can leave the plain framing just under DETECT_P with no
        // payload (no scale either), where the wider search reads both. Reporting the first
        // two's bound when they are kept is the larger bound, still a bound.
        let p_plain = proof.p.min(1.0);
        let mut presence_p = proof.alone;
        let mut chosen = (
            p_plain,
            z,
            ki,
            sphase,
            d,
            Cow::Borrowed(&folds[sphase]),
            1.0,
            1.0,
        );
        let deferred = defer_wide && !proof.is_final() && p_plain <= DETECT_P;
        if !proof.is_final() && !deferred {
            if let Some((w, wide_folds, wide_bins)) = self.wide_search() {
                out.likeliest_time_scale = Some(w.time_scale);
                let wide_hypotheses = hypotheses * wide::hypotheses(self.wide.len()) as f64;
                let p = crate::detect::search_p(wide_hypotheses, w.z) / WIDE_WEIGHT;
                let wide = Proof::answer(p, self.known.is_some(), || {
                    let (key_id, key) = &self.keys[w.key];
                    self.decode(&wide_folds[w.sphase], key, *key_id, w.shift)
                        .0
                        .is_some()
                });
                let p_wide = wide.p;
                if wide.rank() > proof.rank() {
                    presence_p = wide.alone;
                    // The timeline at the wider search's registration: the kept sound's
                    // bins only (what lies past it was not measured at that scale).
                    let key = &self.keys[w.key].1;
                    out.timeline = wide_bins
                        .iter()
                        .map(|fold| {
                            (!fold.is_empty()).then(|| p_of_bin(self.z_at(fold, key, w.shift)))
                        })
                        .collect();
                    let fold = wide_folds[w.sphase].clone();
                    chosen = (
                        p_wide,
                        w.z,
                        w.key,
                        w.sphase,
                        w.shift,
                        Cow::Owned(fold),
                        w.time_scale,
                        w.freq_scale,
                    );
                }
            }
        }
        let (p_value, z, ki, sphase, d, fold, time_scale, freq_scale) = chosen;
        out.p_value = p_value;
        out.presence_p = presence_p.min(1.0);
        out.score = z;
        out.detected = p_value <= DETECT_P;
        out.inconclusive = p_value > DETECT_P && p_value < INCONCLUSIVE_P;
        let (key_id, key) = (&self.keys[ki].0, &self.keys[ki].1);
        if p_value < INCONCLUSIVE_P {
            out.key_id = Some(*key_id);
            out.key_index = Some(ki);
            // The fold's column `d` is the pattern's first (`reading`: column `c + d` is
            // read as the pattern's `c`), `sphase` hops into the analysed sound.
            out.offset_s = Some(
                (d * SYM_TILES * AUDIO_TILE_SAMPLES + sphase * DET_HOP) as f64 * time_scale
                    / AUDIO_RATE as f64,
            );
            match &self.known {
                // The pattern searched for is the payload's whole pattern; its coded
                // symbols read with the key's own pattern, for the payload's test.
                Some(known) => {
                    out.payload_reading = Some(self.reading(&fold, &known.patterns[ki], d));
                    out.payload = Some(known.payloads[ki]);
                }
                None => {
                    let reading = self.reading(&fold, key, d);
                    let (payload, ber) = reading.decode(*key_id);
                    out.payload = payload;
                    out.payload_reading = payload.is_none().then_some(reading);
                    out.bit_error_estimate = Some(ber);
                }
            }
            if time_scale != 1.0 || freq_scale != 1.0 {
                out.time_scale = Some(time_scale);
                out.frequency_scale = Some(freq_scale);
            }
        }
        (out, deferred)
    }

    /// The as-sealed registration of `folds`: symbol phase 0 and shift 0 (the pattern's
    /// first column at the sound's first sample, as the embedder wrote it; reported as
    /// `offset_s` 0), for the key that correlates best there.
    fn as_sealed(&self, folds: &[Vec<C>]) -> (f64, usize, usize, usize) {
        let mut best = (f64::NEG_INFINITY, 0, 0, 0);
        for (ki, (_, key)) in self.keys.iter().enumerate() {
            let z = self.z_at(&folds[0], key, 0);
            if z > best.0 {
                best = (z, ki, 0, 0);
            }
        }
        best
    }

    /// The best (z, key index, symbol phase, shift) over every key, symbol phase and shift
    /// of `folds` (one fold per symbol phase).
    fn search(&self, folds: &[Vec<C>]) -> (f64, usize, usize, usize) {
        let all: Vec<usize> = (0..folds.len()).collect();
        self.search_phases(folds, &all)
    }

    /// [`AudioDetector::search`] over the symbol phases `phases` only.
    fn search_phases(&self, folds: &[Vec<C>], phases: &[usize]) -> (f64, usize, usize, usize) {
        let mut best = (f64::NEG_INFINITY, 0, 0, 0);
        let mut scratch = Vec::new();
        for (ki, (_, key)) in self.keys.iter().enumerate() {
            for &sphase in phases {
                let zs = self.z_every_shift(&folds[sphase], key, &mut scratch);
                for (d, z) in zs.into_iter().enumerate() {
                    if z > best.0 {
                        best = (z, ki, sphase, d);
                    }
                }
            }
        }
        best
    }

    /// The segments searched when the whole sound does not prove the mark
    /// ([`crate::segment_windows`] over the timeline's bins), as ranges of bins; segments
    /// without symbols, or with every symbol, are left out.
    fn segments(&self) -> Vec<(usize, usize)> {
        let all: u64 = self.bins.range(0, usize::MAX).map(|b| b.columns).sum();
        segment_windows(self.bins.len(), self.bins.width_s())
            .into_iter()
            .filter(|&(from, to)| {
                let columns: u64 = self.bins.range(from, to).map(|b| b.columns).sum();
                columns > 0 && columns < all
            })
            .collect()
    }

    /// The folds (one per symbol phase) of the timeline bins `[from, to)`.
    fn segment_folds(&self, from: usize, to: usize) -> Vec<Vec<C>> {
        let mut folds = vec![vec![C::default(); self.nb * PERIOD_SYMBOLS]; SYMBOL_PHASES];
        for bin in self.bins.range(from, to) {
            for (sphase, fold) in folds.iter_mut().enumerate() {
                bin.add_fold_to(sphase, fold);
            }
        }
        folds
    }

    /// Soft payload decoding at a registration (Viterbi + CRC) and the raw coded-bit error
    /// estimate.
    fn decode(
        &self,
        fold: &[C],
        key: &AudioPattern,
        key_id: u8,
        d: usize,
    ) -> (Option<Payload>, f64) {
        self.reading(fold, key, d).decode(key_id)
    }

    /// The payload's coded bits as read at a registration (soft values).
    fn reading(&self, fold: &[C], key: &AudioPattern, d: usize) -> code::PayloadReading {
        let nb = self.nb;
        let mut num = vec![0f64; code::CODED_BITS];
        let mut den = vec![0f64; code::CODED_BITS];
        for col in 0..PERIOD_SYMBOLS {
            let src = (col + d) % PERIOD_SYMBOLS;
            for b in 0..nb {
                let j = col * nb + b;
                if let Some(k) = key.role[j] {
                    let v = fold[src * nb + b];
                    let u = key.unit[j];
                    num[k as usize] += v.re * u.re + v.im * u.im;
                    den[k as usize] += v.re * v.re + v.im * v.im;
                }
            }
        }
        let soft: Vec<f64> = num
            .iter()
            .zip(&den)
            .map(|(n, d)| if *d > 0.0 { n / (0.5 * d).sqrt() } else { 0.0 })
            .collect();
        code::PayloadReading::new(soft)
    }

    /// The sync z of key `key_index` at one fixed registration (no search): on unmarked
    /// sound `P(z ≥ t) ≤ exp(−t²/2)` whatever the sound is. The calibration check.
    /// `phase` < 32 (4 ms steps within a symbol), `shift` < 32 (symbol columns).
    pub fn score_at(&self, key_index: usize, phase: usize, shift: usize) -> Option<f64> {
        let (_, key) = self.keys.get(key_index)?;
        let fold = self.folds.get(phase % SYMBOL_PHASES)?;
        Some(self.z_at(fold, key, shift % PERIOD_SYMBOLS))
    }
}

/// A registration of the sound's search — (z, key index, symbol phase, shift) — and the
/// folds it was found on.
type Answer<'a> = ((f64, usize, usize, usize), Cow<'a, Vec<Vec<C>>>);

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> WatermarkKey {
        WatermarkKey::from_secret([seed; 32], seed)
    }

    #[test]
    fn every_shift_at_once_is_each_shift_alone() {
        let d = AudioDetector::new(&[key(4), key(5)]);
        let n = d.nb * PERIOD_SYMBOLS;
        let (re, im) = (noise(n, 1, 3.0), noise(n, 2, 0.5));
        let fold: Vec<C> = re
            .iter()
            .zip(&im)
            .map(|(&re, &im)| C {
                re: re as f64,
                im: im as f64,
            })
            .collect();
        let mut scratch = Vec::new();
        for (_, k) in &d.keys {
            for folded in [fold.clone(), vec![C::default(); n]] {
                let every = d.z_every_shift(&folded, k, &mut scratch);
                for (shift, z) in every.into_iter().enumerate() {
                    // Bit for bit: the search picks the same registration as before.
                    assert_eq!(z.to_bits(), d.z_at(&folded, k, shift).to_bits(), "{shift}");
                }
            }
        }
    }

    fn noise(n: usize, seed: u64, amp: f32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                amp * ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0)
            })
            .collect()
    }

    fn chunk(rate: u32, channels: u16, samples: Vec<f32>) -> AudioChunk {
        AudioChunk {
            sample_rate: rate,
            channels,
            samples,
            pts_s: 0.0,
        }
    }

    #[test]
    fn bands_cover_the_range() {
        let b = band_edges();
        assert!(b.len() >= 16, "{b:?}");
        for w in b.windows(2) {
            assert_eq!(w[0].1, w[1].0);
        }
    }

    #[test]
    fn packed_meter_matches_single_frames() {
        let bands = band_edges();
        let nb = bands.len();
        let mut m = TileMeter::new(bands);
        let a = noise(FFT_LEN, 1, 0.3);
        let b = noise(FFT_LEN, 2, 0.1);
        let (mut ea, mut eb) = (vec![0.0; nb + 1], vec![0.0; nb + 1]);
        m.frames(a.iter().copied(), b.iter().copied(), &mut ea, &mut eb);
        let (mut fa, mut zero) = (vec![0.0; nb + 1], vec![0.0; nb + 1]);
        m.frames(
            a.iter().copied(),
            std::iter::repeat_n(0.0, FFT_LEN),
            &mut fa,
            &mut zero,
        );
        for (x, y) in ea.iter().zip(&fa) {
            assert!((x - y).abs() <= 1e-9 * y.abs().max(1.0), "{x} vs {y}");
        }
        assert!(zero.iter().all(|v| v.abs() < 1e-9));
        assert!(eb[nb] > 0.0 && eb[nb] < ea[nb]);
    }

    #[test]
    fn split_front_end_equals_add_chunk() {
        let k = key(7);
        let x = noise(2 * (44_100 * 6 + 177), 11, 0.2);
        let chunks: Vec<AudioChunk> = x
            .chunks(2 * 1000)
            .map(|c| chunk(44_100, 2, c.to_vec()))
            .collect();
        let mut plain = AudioDetector::new(std::slice::from_ref(&k));
        for c in &chunks {
            plain.add_chunk(c);
        }
        // The same frames measured elsewhere (here: the plain meter, in pairs) and handed
        // over in slices of 1, 2, 3, … frames, whatever the pairing.
        let framing = audio_framing();
        let per_frame = framing.energies_per_frame();
        let mut split = AudioDetector::new(&[k]);
        let (mut frames, mut energies) = (Vec::new(), Vec::new());
        for c in &chunks {
            assert!(split.push_chunk(c));
            let n = split.frames_ready();
            assert_eq!(split.take_frames(n, &mut frames), n);
        }
        assert_eq!(frames.len() % framing.frame_len, 0);
        // An odd count: the last frame has no partner, and must be measured all the same.
        assert_eq!(frames.len() / framing.frame_len % 2, 1);
        AudioBandMeter::new()
            .measure(&frames, &mut energies)
            .unwrap();
        let mut rest = &energies[..];
        let mut size = 1;
        while !rest.is_empty() {
            let (now, later) = rest.split_at((size * per_frame).min(rest.len()));
            split.add_band_energies(now).unwrap();
            rest = later;
            size += 1;
        }
        assert_eq!(split.result(), plain.result());
        // Every registration, not only the best: a frame left out moves the z of one time
        // phase only.
        for phase in 0..SYMBOL_PHASES {
            for shift in 0..PERIOD_SYMBOLS {
                let (a, b) = (
                    split.score_at(0, phase, shift),
                    plain.score_at(0, phase, shift),
                );
                assert!(
                    (a.unwrap() - b.unwrap()).abs() < 1e-9,
                    "{phase} {shift}: {a:?} {b:?}"
                );
            }
        }
        assert!(split.add_band_energies(&[0.0; 3]).is_err());
        assert!(split.add_frames(&[0.0; 100]).is_err());
    }

    #[test]
    fn every_sample_comes_back_once_in_order_whatever_the_chunking() {
        let k = key(3);
        let payload = Payload {
            clip_id: 42,
            key_id: 3,
        };
        let x = noise(44_100 * 2 * 3, 7, 0.2);
        let run = |size: usize| {
            let mut e = AudioEmbedder::new(&k, payload, 0.0);
            let mut out = Vec::new();
            let mut pts = Vec::new();
            for c in x.chunks(size * 2) {
                for o in e.process(chunk(44_100, 2, c.to_vec())) {
                    pts.push((o.pts_s, out.len() / 2));
                    out.extend(o.samples);
                }
            }
            for o in e.finish() {
                pts.push((o.pts_s, out.len() / 2));
                out.extend(o.samples);
            }
            for (p, n) in pts {
                assert!((p - n as f64 / 44_100.0).abs() < 1e-9);
            }
            (out, e.snr_db())
        };
        let (a, snr) = run(1024);
        let (b, _) = run(4410);
        assert_eq!(a.len(), x.len());
        assert_eq!(a, b, "chunking changed the output");
        assert!(a != x, "nothing was marked");
        assert!(snr >= 30.0, "SNR {snr}");
    }

    #[test]
    fn silence_stays_silent_and_is_not_detected() {
        let k = key(4);
        let mut e = AudioEmbedder::new(
            &k,
            Payload {
                clip_id: 1,
                key_id: 4,
            },
            0.0,
        );
        let mut out = Vec::new();
        for o in e.process(chunk(48_000, 1, vec![0.0; 48_000 * 4])) {
            out.extend(o.samples);
        }
        for o in e.finish() {
            out.extend(o.samples);
        }
        assert_eq!(out.len(), 48_000 * 4);
        assert!(out.iter().all(|v| *v == 0.0));
        let mut d = AudioDetector::new(&[k]);
        d.add_chunk(&chunk(48_000, 1, out));
        let r = d.result();
        assert!(!r.detected && !r.inconclusive, "{r:?}");
    }

    /// Noise tilted towards the bass, like most music (white noise, with all its energy in
    /// the marked bands, is the hardest case for the SNR budget), 16 kHz mono.
    fn music_like(n: usize, seed: u64) -> Vec<f32> {
        let mut lp = 0.0;
        noise(n, seed, 0.3)
            .into_iter()
            .map(|v| {
                lp = 0.97 * lp + 0.03 * v;
                4.0 * lp + 0.1 * v
            })
            .collect()
    }

    /// `x` (16 kHz mono) marked with `payload` under `k`, every sample back.
    fn sealed_16k(k: &WatermarkKey, payload: Payload, x: Vec<f32>) -> Vec<f32> {
        let mut e = AudioEmbedder::new(k, payload, 0.0);
        let mut y = Vec::new();
        for o in e.process(chunk(16_000, 1, x)) {
            y.extend(o.samples);
        }
        for o in e.finish() {
            y.extend(o.samples);
        }
        y
    }

    #[test]
    fn marked_noise_is_detected_with_its_payload_and_unmarked_is_not() {
        let k = key(5);
        let payload = Payload {
            clip_id: 0xfeed_beef_0000_0001,
            key_id: 5,
        };
        let x = music_like(16_000 * 10, 9);
        let y = sealed_16k(&k, payload, x.clone());
        let mut d = AudioDetector::new(&[key(6), k.clone()]);
        d.add_chunk(&chunk(16_000, 1, y));
        let r = d.result();
        assert!(r.detected, "{r:?}");
        assert_eq!(r.payload, Some(payload));
        assert_eq!(r.key_id, Some(5));
        assert_eq!(r.offset_s, Some(0.0));
        let mut d = AudioDetector::new(&[k]);
        d.add_chunk(&chunk(16_000, 1, x));
        let r = d.result();
        assert!(!r.detected, "{r:?}");
    }

    /// A sound trimmed `x` seconds in: the pattern's period starts `P − x` into it (mod
    /// the period `P`), within a hop, and the sealed clip's time at its start is `x` (each
    /// period later too). Before, `offset_s` was `x` itself, scaled (1.572 s for 1.5).
    #[test]
    fn a_trimmed_sound_is_registered_where_its_period_starts() {
        let k = key(5);
        let payload = Payload {
            clip_id: 0xfeed_beef_0000_0002,
            key_id: 5,
        };
        let y = sealed_16k(&k, payload, music_like(16_000 * 14, 3));
        let period = (AUDIO_PERIOD_TILES * AUDIO_TILE_SAMPLES) as f64 / 16_000.0;
        let hop = DET_HOP as f64 / 16_000.0;
        for x in [1.5, 3.0, 5.25] {
            let from = (x * 16_000.0) as usize;
            let mut d = AudioDetector::new(std::slice::from_ref(&k));
            d.add_chunk(&chunk(16_000, 1, y[from..from + 16_000 * 8].to_vec()));
            let r = d.result();
            assert_eq!(r.payload, Some(payload), "{x}: {r:?}");
            let offset = r.offset_s.unwrap();
            let want = (period - x).rem_euclid(period);
            assert!(
                (offset - want).abs() <= 1.5 * hop,
                "{x}: {offset} against {want}"
            );
            let starts = d.sealed_starts(&r, 20.0);
            assert!(
                (starts[0] - x.rem_euclid(period)).abs() <= 1.5 * hop,
                "{x}: {starts:?}"
            );
            assert!(starts
                .windows(2)
                .all(|w| (w[1] - w[0] - period).abs() < 1e-9));
            assert!(
                *starts.last().unwrap() <= 20.0 && starts.len() >= 4,
                "{starts:?}"
            );
        }
    }

    /// The as-sealed registration is where the search finds an untrimmed sound's mark, and
    /// not where a trimmed one's is.
    #[test]
    fn the_as_sealed_registration_is_the_untrimmed_sounds() {
        let k = key(7);
        let payload = Payload {
            clip_id: 0x0bad_cafe_0000_0002,
            key_id: 7,
        };
        let y = sealed_16k(&k, payload, music_like(16_000 * 8, 3));
        // 1000 samples (62.5 ms, not a whole 4 ms step) trimmed off the start.
        for (trim, as_sealed) in [(0, true), (1000, false)] {
            let mut d = AudioDetector::new(std::slice::from_ref(&k));
            d.add_chunk(&chunk(16_000, 1, y[trim..].to_vec()));
            let searched = d.search(&d.folds);
            let sealed = d.as_sealed(&d.folds);
            assert!(searched.0 > 8.0, "trim {trim}: {searched:?}");
            if as_sealed {
                assert_eq!((sealed.2, sealed.3), (searched.2, searched.3));
                assert!((sealed.0 - searched.0).abs() < 1e-9);
            } else {
                assert!(sealed.0 < 4.0, "trim {trim}: as sealed {sealed:?}");
            }
            let r = d.result();
            assert!(
                r.detected && r.payload == Some(payload),
                "trim {trim}: {r:?}"
            );
        }
    }
}
