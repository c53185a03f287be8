//! Third-party marks: the default invisible watermarks of open image and video generators.
//!
//! Stable Diffusion 1.x and 2.x (`scripts/txt2img.py`), SDXL and Stable Video Diffusion
//! (`sgm/inference/helpers.py`), diffusers' SDXL pipelines and FLUX.1 (`flux/util.py`) all
//! mark their output with the `invisible-watermark` package's `dwtDct` method and a fixed,
//! public message, without a key. That method (package `imwatermark/maxDct.py`, 0.2.0):
//!
//! * converts the array it is given with OpenCV's `COLOR_BGR2YUV` and marks only channel 1
//!   (U: `scales=[0,36,36]`, but its loop is `range(2)`, so V is never touched);
//! * takes a one-level Haar DWT of U (cropped to multiples of 4) and keeps the LL band: one
//!   coefficient per 2×2 pixel cell, `(a+b+c+d)/2`;
//! * cuts LL into 4×4 blocks (8×8 pixels), row-major; block `num` carries message bit
//!   `num % len`;
//! * in each block, takes the coefficient of largest magnitude except the first
//!   (`argmax(|block[1:]|)`, first one on ties) and sets its magnitude modulo 36 to 9
//!   (bit 0) or 27 (bit 1). The package's decoder reads `(|v| mod 36) > 18` per block and
//!   averages each bit's blocks.
//!
//! Two details of the generators decide where the mark lives: the array type and the channel
//! order. SD 1.x/2.x hand a `uint8` BGR array (OpenCV adds 128 to U); SDXL/SVD and FLUX hand
//! a `float32` BGR array in 0..255, for which OpenCV adds 0.5, not 128, so the magnitudes
//! are taken around a neutral chroma of 0 (a uint8 decode of those files, as the package
//! does it, misreads every block whose chroma is below neutral); diffusers' SDXL watermarker
//! hands its float array in RGB order, so the "U" it marks is `0.492·(R − Y'')` with
//! `Y'' = 0.299·B + 0.587·G + 0.114·R`. Each known message is tested in its own generator's
//! convention only.
//!
//! **Scores.** Each block gets soft votes, each summed per message bit over all the
//! blocks of all the frames given (repeated frames only scale the sums) and tested on its
//! own: the phase of its largest LL magnitude, `−sin(2π·r/36)` (+1 at the residue 27 of a
//! 1, −1 at 9: exact on lossless copies), and that coefficient's height above the mean of
//! its 5×5 neighbourhood (what survives JPEG, which blurs the lone peak and keeps a fifth of
//! it: a 1 stands 18 higher than a 0 before, ≈ 4 after), and the two added in units of
//! their spread over the frame. **Test.** Without the mark, the
//! message's bit positions are interchangeable (each one's blocks are spread evenly over
//! the whole picture), so every assignment of the sums' ranks to the message's `k` ones is
//! equally likely; the p-value is the exact share of the `C(n, k)` assignments whose rank
//! sum (Mann–Whitney) is at least the observed one, ties counted against the mark. Unlike a
//! binomial count of bits read at a fixed threshold, it cannot be fooled by a picture whose
//! flat chroma reads every block the same way. The family-wise p multiplies by every test
//! tried: [`THIRD_PARTY_TESTS`] (5 generator conventions × 2 YUV matrices, BT.601 and BT.709,
//! for a frame whose chroma came from a video's YCbCr × 3 votes: phase, height, and the two
//! added).

use std::sync::OnceLock;

use hallmark_media::{PixelLayout, VideoFrame};

use crate::detect::DETECT_P;

/// p-value at or below which a third-party mark is reported as present (the same threshold
/// as hallmark's own mark).
pub const THIRD_PARTY_DETECT_P: f64 = DETECT_P;

/// LL cells per block side (`block=4` in the package).
const BLOCK: usize = 4;
/// The package's quantisation step on LL magnitudes (`scales[1]`).
const STEP: f32 = 36.0;

/// The array the generator gave OpenCV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Convention {
    /// `uint8`, BGR: U = 0.492·(B − Y) + 128, rounded.
    Uint8Bgr,
    /// `float32` in 0..255, BGR: U = 0.492·(B − Y) + 0.5.
    FloatBgr,
    /// `float32` in 0..255, RGB handed over as if BGR: U = 0.492·(R − Y'') + 0.5.
    FloatRgb,
}

const CONVENTIONS: [Convention; 3] = [
    Convention::Uint8Bgr,
    Convention::FloatBgr,
    Convention::FloatRgb,
];

impl Convention {
    fn index(self) -> usize {
        match self {
            Convention::Uint8Bgr => 0,
            Convention::FloatBgr => 1,
            Convention::FloatRgb => 2,
        }
    }

    /// U's neutral value in this convention (OpenCV's `delta`).
    fn neutral(self) -> f32 {
        match self {
            Convention::Uint8Bgr => 128.0,
            Convention::FloatBgr | Convention::FloatRgb => 0.5,
        }
    }
}

/// How a message is written down in the generator's code.
enum Message {
    /// `set_watermark('bytes', text)`: the bytes' bits, most significant first.
    Bytes(&'static str),
    /// `set_watermark('bits', [int(b) for b in bin(x)[2:]])`: leading zeros dropped.
    Bits(&'static str),
}

/// One generator's mark, as its reference code embeds it.
struct Known {
    generator: &'static str,
    source: &'static str,
    message: Message,
    /// The message as reported.
    shown: &'static str,
    convention: Convention,
}

const KNOWN: [Known; 5] = [
    Known {
        generator: "Stable Diffusion 1.x",
        source: "CompVis/stable-diffusion scripts/txt2img.py",
        message: Message::Bytes("StableDiffusionV1"),
        shown: "StableDiffusionV1",
        convention: Convention::Uint8Bgr,
    },
    Known {
        generator: "Stable Diffusion 2.x",
        source: "Stability-AI/stablediffusion scripts/txt2img.py",
        message: Message::Bytes("SDV2"),
        shown: "SDV2",
        convention: Convention::Uint8Bgr,
    },
    Known {
        generator: "SDXL / Stable Video Diffusion",
        source: "Stability-AI/generative-models sgm/inference/helpers.py",
        message: Message::Bits("101100111110110010010000011110111011000110011110"),
        shown: "0xB3EC907BB19E",
        convention: Convention::FloatBgr,
    },
    Known {
        generator: "SDXL / Stable Video Diffusion",
        source: "huggingface/diffusers StableDiffusionXLWatermarker",
        message: Message::Bits("101100111110110010010000011110111011000110011110"),
        shown: "0xB3EC907BB19E",
        convention: Convention::FloatRgb,
    },
    Known {
        generator: "FLUX.1",
        source: "black-forest-labs/flux src/flux/util.py",
        message: Message::Bits("1010101111111010000111100111001111010100101110"),
        shown: "0b1010101111111010000111100111001111010100101110",
        convention: Convention::FloatBgr,
    },
];

/// YCbCr matrices a decoded video frame's chroma may have been made with.
const MATRICES: usize = 2;

/// Tests behind every p-value: each known convention under each YCbCr matrix, with each of
/// the [`VOTES`] block scores.
pub const THIRD_PARTY_TESTS: usize = KNOWN.len() * MATRICES * VOTES;

impl Message {
    fn bits(&self) -> Vec<bool> {
        match self {
            Message::Bytes(s) => s
                .bytes()
                .flat_map(|b| (0..8).rev().map(move |i| b >> i & 1 == 1))
                .collect(),
            Message::Bits(s) => s.bytes().map(|c| c == b'1').collect(),
        }
    }
}

/// One known generator's default mark, scored on the frames a [`ThirdPartyDetector`] was
/// given.
#[derive(Debug, Clone, PartialEq)]
pub struct ThirdPartyMark {
    /// The generator family, e.g. `"Stable Diffusion 1.x"`, `"FLUX.1"`.
    pub generator: &'static str,
    /// The reference code whose convention matched best, e.g.
    /// `"CompVis/stable-diffusion scripts/txt2img.py"`.
    pub source: &'static str,
    /// The embedded message, as the generator's code writes it.
    pub message: &'static str,
    /// The message's length in bits.
    pub bits: usize,
    /// Bits read as the message has them, reading the message's count of ones from the
    /// highest-scoring bit positions.
    pub matching_bits: usize,
    /// Frames that went into the score.
    pub frames: usize,
    /// Family-wise p-value: the exact rank test's, times [`THIRD_PARTY_TESTS`], at most 1.
    pub p_value: f64,
    /// `p_value <= THIRD_PARTY_DETECT_P`.
    pub detected: bool,
}

/// Per-generator linear map from a video frame's chroma `(Cb − 128, Cr − 128)` (limited
/// range) to the package's `U − neutral`, for each matrix.
struct ChromaMap {
    /// `[convention][matrix] -> (a, b)`.
    coef: [[(f32, f32); MATRICES]; 3],
}

impl ChromaMap {
    fn new() -> ChromaMap {
        // (Kr, Kb) of BT.601 and BT.709.
        let matrices = [(0.299f64, 0.114f64), (0.2126, 0.0722)];
        let mut coef = [[(0f32, 0f32); MATRICES]; 3];
        for (m, &(kr, kb)) in matrices.iter().enumerate() {
            let kg = 1.0 - kr - kb;
            // Limited-range chroma to colour differences in 0..255 RGB units.
            let db_per_cb = 255.0 / 224.0 * 2.0 * (1.0 - kb);
            let dr_per_cr = 255.0 / 224.0 * 2.0 * (1.0 - kr);
            // (dr, dg, db) for unit Cb and for unit Cr.
            let unit = |dr: f64, db: f64| (dr, -(kr * dr + kb * db) / kg, db);
            let per_cb = unit(0.0, db_per_cb);
            let per_cr = unit(dr_per_cr, 0.0);
            for c in CONVENTIONS {
                let u = |(dr, dg, db): (f64, f64, f64)| -> f32 {
                    (match c {
                        // 0.492·(B − Y'), Y' = 0.299 R + 0.587 G + 0.114 B.
                        Convention::Uint8Bgr | Convention::FloatBgr => {
                            0.492 * (db - (0.299 * dr + 0.587 * dg + 0.114 * db))
                        }
                        // R and B swapped: 0.492·(R − Y''), Y'' = 0.299 B + 0.587 G + 0.114 R.
                        Convention::FloatRgb => {
                            0.492 * (dr - (0.299 * db + 0.587 * dg + 0.114 * dr))
                        }
                    }) as f32
                };
                coef[c.index()][m] = (u(per_cb), u(per_cr));
            }
        }
        ChromaMap { coef }
    }
}

/// The phase vote of one block: `−sin(2π·r/36)` of the residue `r` of its largest LL
/// magnitude `best` (the package's own reading, made soft).
///
/// Below one step (only in the float conventions, whose neutral chroma is 0) the
/// magnitude itself is the mark: 9 or 27 from nearly nothing. Compression pulls such a
/// lone peak back towards its flat surroundings, to 27·α and 9·α with α well below 1
/// (≈ 0.3 at JPEG quality 90), where the periodic vote would read both as 0; there the vote
/// is linear in the magnitude, `|v|/18 − 1`, which keeps a 1 above a 0 whatever α.
fn phase_vote(best: f32) -> f32 {
    if best < STEP {
        return best / (STEP / 2.0) - 1.0;
    }
    // best ≥ 0: truncation is floor, and needs no libm call (nor does the table below).
    let phase = best / STEP;
    let phase = phase - phase as u32 as f32;
    vote_table()[((phase * VOTE_STEPS as f32) as usize).min(VOTE_STEPS - 1)]
}

/// Resolution of the vote's sine table (1/1024 of a step: the vote is off by < 0.7 %).
const VOTE_STEPS: usize = 1024;

/// `−sin(2π·(i + ½)/VOTE_STEPS)`: the periodic vote by residue.
fn vote_table() -> &'static [f32; VOTE_STEPS] {
    static TABLE: OnceLock<[f32; VOTE_STEPS]> = OnceLock::new();
    TABLE.get_or_init(|| {
        std::array::from_fn(|i| {
            -(std::f64::consts::TAU * (i as f64 + 0.5) / VOTE_STEPS as f64).sin() as f32
        })
    })
}

/// Half-width of the window whose mean predicts a marked cell's unmarked value.
const RESIDUAL_RADIUS: usize = 2;

/// Scores per block: the phase of the largest LL magnitude ([`phase_vote`]), its residual
/// ([`plane_votes`]), and the two added, each in units of its spread over the frame's
/// blocks (neither alone wins everywhere: on flat sky the phase keeps what the residual
/// loses). Each is its own test ([`THIRD_PARTY_TESTS`]).
const VOTES: usize = 3;

/// The phase and residual votes of every block of one LL plane (`lw × lh` cells).
///
/// The block's cell of largest magnitude (positions 1..16, first on ties, as numpy's
/// `argmax`) is the one the package set to 9 or 27 modulo 36; a 1 puts it 18 above a 0.
/// Lossless, the phase says which. JPEG's chroma quantiser keeps only ≈ 0.2–0.3 of such a
/// lone peak and blurs it into its neighbours, so the phase then mostly says what the
/// picture had there; but the peak still stands out of its surroundings by more for a 1
/// than for a 0. The residual vote is that height: the cell's magnitude less the mean of
/// the other cells of its 5×5 window, in the direction of the cell's sign (the package
/// marks magnitudes). It needs no lattice, so a grey picture, whose unmarked residue sits
/// at one place of the lattice (turning the phase vote upside down), is read by it too.
fn plane_votes(
    lw: usize,
    lh: usize,
    mut make_row: impl FnMut(usize, &mut [f32]),
    ring: &mut Vec<f32>,
    phase: &mut [f32],
    residual: &mut [f32],
) {
    // The plane is made a row at a time into a ring of the rows one block row's windows
    // reach (`y % RING`): a 1080p plane is 2 MB, more than a core's L2, and was written
    // whole and then read back twice.
    const RING: usize = BLOCK + 2 * RESIDUAL_RADIUS;
    ring.resize(RING * lw, 0.0);
    let bw = lw / BLOCK;
    let r = RESIDUAL_RADIUS;
    let mut made = 0;
    for by in 0..lh / BLOCK {
        let y0 = by * BLOCK;
        // Rows y0 − r ..= y0 + BLOCK − 1 + r are then in the ring.
        while made < (y0 + BLOCK + r).min(lh) {
            make_row(made, &mut ring[made % RING * lw..][..lw]);
            made += 1;
        }
        // The rows y0 − r .. y0 + BLOCK + r of the plane (those that exist), by y − (y0 − r).
        let band: [&[f32]; RING] = std::array::from_fn(|k| {
            let y = (y0 + k).wrapping_sub(r);
            if y < lh {
                &ring[y % RING * lw..][..lw]
            } else {
                &[]
            }
        });
        for bx in 0..bw {
            let x0 = bx * BLOCK;
            let (mut best, mut at) = (-1f32, (0, 0));
            for i in 0..BLOCK {
                let row: &[f32; BLOCK] = band[i + r][x0..][..BLOCK].try_into().unwrap();
                for (j, v) in row.iter().enumerate() {
                    if v.abs() > best && (i, j) != (0, 0) {
                        best = v.abs();
                        at = (i, x0 + j);
                    }
                }
            }
            let b = by * bw + bx;
            phase[b] = phase_vote(best);
            let (i, cx) = at;
            let cy = y0 + i;
            let centre = band[i + r][cx];
            let height = if cy >= r && cx >= r && cy + r < lh && cx + r < lw {
                // Inside the plane: a fixed 5×5 window (band rows i ..= i + 2r), its first
                // four columns summed lane by lane (any order agrees to float rounding).
                let (mut lanes, mut last) = ([0f32; 4], 0f32);
                for row in &band[i..=i + 2 * r] {
                    let row: &[f32; 2 * RESIDUAL_RADIUS + 1] =
                        row[cx - r..][..2 * r + 1].try_into().unwrap();
                    for (l, v) in lanes.iter_mut().zip(row) {
                        *l += v;
                    }
                    last += row[4];
                }
                let sum = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]) + last;
                const OTHERS: f32 =
                    ((2 * RESIDUAL_RADIUS + 1) * (2 * RESIDUAL_RADIUS + 1) - 1) as f32;
                centre - (sum - centre) * (1.0 / OTHERS)
            } else {
                let (ya, yb) = (cy.saturating_sub(r), (cy + r + 1).min(lh));
                let (xa, xb) = (cx.saturating_sub(r), (cx + r + 1).min(lw));
                let mut sum = 0f32;
                for y in ya..yb {
                    sum += band[y + r - y0][xa..xb].iter().sum::<f32>();
                }
                let cells = (yb - ya) * (xb - xa);
                centre - (sum - centre) / (cells - 1) as f32
            };
            residual[b] = if centre < 0.0 { -height } else { height };
        }
    }
}

/// `1 / standard deviation` of `votes`, 0 when they are all equal (they then carry nothing).
fn inverse_spread(votes: &[f32]) -> f32 {
    let n = votes.len() as f64;
    let mean = sum_in_lanes(votes, f64::from) / n;
    let var = sum_in_lanes(votes, |v| (f64::from(v) - mean).powi(2)) / n;
    if var > 0.0 {
        (1.0 / var.sqrt()) as f32
    } else {
        0.0
    }
}

/// Accumulates the package's block votes, per message bit, over frames, for every known
/// generator, and tests each message ([`ThirdPartyDetector::result`]).
#[derive(Debug, Clone)]
pub struct ThirdPartyDetector {
    /// `sums[known][vote][matrix]`.
    sums: Vec<[[BitSums; MATRICES]; VOTES]>,
    frames: usize,
}

impl Default for ThirdPartyDetector {
    fn default() -> Self {
        ThirdPartyDetector::new()
    }
}

fn chroma_map() -> &'static ChromaMap {
    static MAP: OnceLock<ChromaMap> = OnceLock::new();
    MAP.get_or_init(ChromaMap::new)
}

impl ThirdPartyDetector {
    pub fn new() -> ThirdPartyDetector {
        ThirdPartyDetector {
            sums: KNOWN
                .iter()
                .map(|k| {
                    let n = k.message.bits().len();
                    std::array::from_fn(|_| std::array::from_fn(|_| BitSums::new(n)))
                })
                .collect(),
            frames: 0,
        }
    }

    /// Frames added so far (frames too small for one block, or malformed, are not counted).
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// Adds one frame: `Yuv420p` (chroma read as made with BT.601 and, separately,
    /// BT.709) or `Rgb24` (the package's own arithmetic, exactly). Frames smaller than one
    /// 8×8 block, or whose planes do not match their size, are ignored; the timestamp is
    /// not looked at.
    pub fn add_frame(&mut self, frame: &VideoFrame) {
        let sizes: Vec<usize> = frame.planes.iter().map(Vec::len).collect();
        if sizes != VideoFrame::plane_sizes(frame.width, frame.height, frame.layout) {
            return;
        }
        let (w, h) = (frame.width as usize, frame.height as usize);
        // The package crops to multiples of 4 pixels; LL has half that, in 4×4 blocks.
        let (bw, bh) = ((w / 4 * 2) / BLOCK, (h / 4 * 2) / BLOCK);
        if bw == 0 || bh == 0 {
            return;
        }
        let (lw, lh) = (bw * BLOCK, bh * BLOCK);
        let blocks = bw * bh;
        let mut ring = Vec::new();
        let (mut phase, mut residual) = (vec![0f32; blocks], vec![0f32; blocks]);
        let mut both = vec![0f32; blocks];
        let mut local = Vec::new();
        // An RGB frame's chroma has no matrix: one plane serves both entries.
        let matrices = match frame.layout {
            PixelLayout::Yuv420p => MATRICES,
            PixelLayout::Rgb24 => 1,
        };
        for c in CONVENTIONS {
            for m in 0..matrices {
                match frame.layout {
                    PixelLayout::Yuv420p => plane_votes(
                        lw,
                        lh,
                        |y, out| ll_row_yuv(frame, w, c, m, y, out),
                        &mut ring,
                        &mut phase,
                        &mut residual,
                    ),
                    PixelLayout::Rgb24 => plane_votes(
                        lw,
                        lh,
                        |y, out| ll_row_rgb(&frame.planes[0], w, c, y, out),
                        &mut ring,
                        &mut phase,
                        &mut residual,
                    ),
                }
                // Spreads over all blocks: symmetric in the bit positions, so the sum keeps
                // them interchangeable.
                let (sp, sr) = (inverse_spread(&phase), inverse_spread(&residual));
                for votes in [&mut phase, &mut residual] {
                    subtract_local_mean(votes, bw, bh, &mut local);
                }
                // Taking off the local mean is linear: the sum of the centred votes is the
                // centred sum.
                for ((b, p), r) in both.iter_mut().zip(&phase).zip(&residual) {
                    *b = p * sp + r * sr;
                }
                // Each vote array's energy once (it does not depend on the message).
                let energies = [&phase, &residual, &both].map(|v| vote_energy(v));
                for (known, sums) in KNOWN.iter().zip(self.sums.iter_mut()) {
                    if known.convention != c {
                        continue;
                    }
                    for ((sums, votes), &energy) in sums
                        .iter_mut()
                        .zip([&phase, &residual, &both])
                        .zip(&energies)
                    {
                        let targets = if matrices == 1 { 0..MATRICES } else { m..m + 1 };
                        for sums in &mut sums[targets] {
                            sums.add_frame(votes, energy);
                        }
                    }
                }
            }
        }
        self.frames += 1;
    }

    /// Adds what `other` accumulated (e.g. the other half of a split scan).
    pub fn merge(&mut self, other: ThirdPartyDetector) {
        for (mine, theirs) in self.sums.iter_mut().zip(other.sums) {
            for (mine, theirs) in mine.iter_mut().zip(theirs) {
                for (a, b) in mine.iter_mut().zip(theirs) {
                    a.merge(b);
                }
            }
        }
        self.frames += other.frames;
    }

    /// Each known generator's mark tested on everything added: one entry per generator
    /// family (its best-matching convention, matrix and vote), most significant first;
    /// empty before any frame.
    pub fn result(&self) -> Vec<ThirdPartyMark> {
        if self.frames == 0 {
            return Vec::new();
        }
        let mut best: Vec<ThirdPartyMark> = Vec::new();
        for (i, known) in KNOWN.iter().enumerate() {
            let message = known.message.bits();
            let null = rank_sum_tail(i);
            for sums in self.sums[i].iter().flatten() {
                let (w, matching) = rank_sum(sums.combined(), &message);
                let p_raw = null.get(w).copied().unwrap_or(0.0);
                let p_value = (p_raw * THIRD_PARTY_TESTS as f64).min(1.0);
                let mark = ThirdPartyMark {
                    generator: known.generator,
                    source: known.source,
                    message: known.shown,
                    bits: message.len(),
                    matching_bits: matching,
                    frames: self.frames,
                    p_value,
                    detected: p_value <= THIRD_PARTY_DETECT_P,
                };
                match best.iter_mut().find(|b| b.generator == known.generator) {
                    Some(b) if b.p_value <= mark.p_value => {}
                    Some(b) => *b = mark,
                    None => best.push(mark),
                }
            }
        }
        best.sort_by(|a, b| a.p_value.total_cmp(&b.p_value));
        best
    }
}
/// One message's votes per bit, over frames.
///
/// Frames are not equally informative: an H.264 B-frame keeps almost nothing of the mark,
/// its I- and P-frames most of it. Each frame's bit sums are therefore divided by their
/// noise level `σ` (what independent votes would give: `sqrt(Σ vote² / len)`) and weighted
/// by its estimated signal-to-noise ratio, `sqrt(max(0, var(sums)/σ² − 1))`: the spread of
/// its bit sums beyond what noise explains. Both depend on the frame's sums only through
/// symmetric functions (not on which bit is which), so bit positions interchangeable in
/// every frame stay interchangeable in the weighted total, and the rank test stays exact;
/// identical frames get identical weights, so repeating a frame changes no rank. When no
/// frame shows any excess spread, the plain sums are used.
#[derive(Debug, Clone)]
struct BitSums {
    weighted: Vec<f64>,
    plain: Vec<f64>,
    weight: f64,
    frame: Vec<f64>,
}

impl BitSums {
    fn new(n: usize) -> BitSums {
        BitSums {
            weighted: vec![0.0; n],
            plain: vec![0.0; n],
            weight: 0.0,
            frame: vec![0.0; n],
        }
    }

    /// Adds one frame's votes, block `num` to bit `num % len`; `energy` is
    /// [`vote_energy`]`(votes)`.
    fn add_frame(&mut self, votes: &[f32], energy: f64) {
        let n = self.plain.len();
        self.frame.iter_mut().for_each(|x| *x = 0.0);
        // Block `num` to bit `num % n`, without a division per block.
        for chunk in votes.chunks(n) {
            for (bit, &v) in self.frame.iter_mut().zip(chunk) {
                *bit += f64::from(v);
            }
        }
        let noise = energy / n as f64;
        let mean = self.frame.iter().sum::<f64>() / n as f64;
        let spread = self.frame.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        let w = if noise > 0.0 {
            (spread / noise - 1.0).max(0.0).sqrt() / noise.sqrt()
        } else {
            0.0
        };
        for ((acc, plain), &x) in self
            .weighted
            .iter_mut()
            .zip(&mut self.plain)
            .zip(&self.frame)
        {
            *acc += w * x;
            *plain += x;
        }
        self.weight += w;
    }

    fn merge(&mut self, other: BitSums) {
        for (a, b) in self.weighted.iter_mut().zip(other.weighted) {
            *a += b;
        }
        for (a, b) in self.plain.iter_mut().zip(other.plain) {
            *a += b;
        }
        self.weight += other.weight;
    }

    fn combined(&self) -> &[f64] {
        if self.weight > 0.0 {
            &self.weighted
        } else {
            &self.plain
        }
    }
}

/// `Σ vote²` (taken once per vote array; it was once per message).
fn vote_energy(votes: &[f32]) -> f64 {
    sum_in_lanes(votes, |v| f64::from(v) * f64::from(v))
}

/// `Σ f(vote)` in four running sums: one sum is a chain of dependent additions, one per
/// block, and these run on every pass of every sampled frame.
fn sum_in_lanes(votes: &[f32], f: impl Fn(f32) -> f64) -> f64 {
    let mut lanes = [0f64; 4];
    let mut chunks = votes.chunks_exact(4);
    for c in &mut chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l += f(v);
        }
    }
    lanes.iter().sum::<f64>() + chunks.remainder().iter().map(|&v| f(v)).sum::<f64>()
}

/// Half-width of the neighbourhood whose mean vote is taken off each block's vote.
const LOCAL_RADIUS: usize = 2;

/// Takes off each block's vote the mean vote of the other blocks within
/// [`LOCAL_RADIUS`] of it (fewer at the edges). Flat or smoothly shaded chroma gives every
/// block of a region the same residue, hence the same vote whatever the mark; where a bit's
/// blocks line up with such regions (a frame `k·len` blocks wide gives each bit whole
/// columns), the raw sums would follow the picture, not the mark. The mark itself changes
/// from block to block with the bit, so it stays.
fn subtract_local_mean(votes: &mut [f32], bw: usize, bh: usize, scratch: &mut Vec<f32>) {
    let r = LOCAL_RADIUS;
    // Box sums, separably: along rows into `across`, then down columns into `boxed`.
    scratch.clear();
    scratch.resize(2 * bw * bh, 0.0);
    let (across, boxed) = scratch.split_at_mut(bw * bh);
    for (row, out) in votes.chunks_exact(bw).zip(across.chunks_exact_mut(bw)) {
        for (x, o) in out.iter_mut().enumerate() {
            let span = &row[x.saturating_sub(r)..(x + r + 1).min(bw)];
            // Inside the row a fixed 5 (the same additions in the same order as the sum).
            *o = match span {
                [a, b, c, d, e] => a + b + c + d + e,
                _ => span.iter().sum(),
            };
        }
    }
    for y in 0..bh {
        let out = &mut boxed[y * bw..][..bw];
        for yy in y.saturating_sub(r)..(y + r + 1).min(bh) {
            for (o, &a) in out.iter_mut().zip(&across[yy * bw..][..bw]) {
                *o += a;
            }
        }
    }
    let span = |i: usize, n: usize| ((i + r + 1).min(n) - i.saturating_sub(r)) as f32;
    for y in 0..bh {
        let rows = span(y, bh);
        let row = &mut votes[y * bw..][..bw];
        for (x, (v, &total)) in row.iter_mut().zip(&boxed[y * bw..][..bw]).enumerate() {
            let count = rows * span(x, bw);
            if count > 1.0 {
                *v -= (total - *v) / (count - 1.0);
            }
        }
    }
}

/// Row `y` of the LL plane (`out.len()` cells) of a `Yuv420p` frame `w` pixels wide in
/// convention `c`, chroma read with matrix `m`: a chroma sample is its 2×2 cell's mean
/// (what 4:2:0 keeps of U, and exactly the cells of the package's Haar transform), so
/// LL = 2·U, mapped linearly from Cb and Cr.
fn ll_row_yuv(frame: &VideoFrame, w: usize, c: Convention, m: usize, y: usize, out: &mut [f32]) {
    let cw = w.div_ceil(2);
    let (a, b) = chroma_map().coef[c.index()][m];
    let (a2, b2) = (2.0 * a, 2.0 * b);
    let offset = 2.0 * (c.neutral() - 128.0 * (a + b));
    let lw = out.len();
    let (cb, cr) = (
        &frame.planes[1][y * cw..][..lw],
        &frame.planes[2][y * cw..][..lw],
    );
    for ((out, &u), &v) in out.iter_mut().zip(cb).zip(cr) {
        *out = offset + a2 * f32::from(u) + b2 * f32::from(v);
    }
}

/// Row `y` of the LL plane (`out.len()` cells) of an `Rgb24` frame `w` pixels wide in
/// convention `c`, with OpenCV's arithmetic: the integer `COLOR_BGR2YUV` of `uint8` input,
/// the float one otherwise.
fn ll_row_rgb(rgb: &[u8], w: usize, c: Convention, y: usize, out: &mut [f32]) {
    let u_of = |p: usize| -> f32 {
        let (r, g, b) = (
            i32::from(rgb[p]),
            i32::from(rgb[p + 1]),
            i32::from(rgb[p + 2]),
        );
        match c {
            Convention::Uint8Bgr => {
                // OpenCV's fixed point (14 bits) for uint8 BGR→YUV.
                let y8 = (r * 4899 + g * 9617 + b * 1868 + (1 << 13)) >> 14;
                let u8_ = ((b - y8) * 8061 + (128 << 14) + (1 << 13)) >> 14;
                u8_.clamp(0, 255) as f32
            }
            Convention::FloatBgr => {
                let (rf, gf, bf) = (r as f32, g as f32, b as f32);
                0.492 * (bf - (0.299 * rf + 0.587 * gf + 0.114 * bf)) + 0.5
            }
            Convention::FloatRgb => {
                let (rf, gf, bf) = (r as f32, g as f32, b as f32);
                0.492 * (rf - (0.299 * bf + 0.587 * gf + 0.114 * rf)) + 0.5
            }
        }
    };
    for (x, out) in out.iter_mut().enumerate() {
        let mut sum = 0f32;
        for dy in 0..2 {
            for dx in 0..2 {
                sum += u_of(((2 * y + dy) * w + 2 * x + dx) * 3);
            }
        }
        // Haar LL: (a + b + c + d) / 2.
        *out = sum / 2.0;
    }
}
fn rank_sum(sums: &[f64], message: &[bool]) -> (usize, usize) {
    let n = message.len();
    let k = message.iter().filter(|&&b| b).count();
    let mut order: Vec<usize> = (0..n).collect();
    // Stable: among equal sums, by position (neutral, for the bits read).
    order.sort_by(|&a, &b| sums[a].total_cmp(&sums[b]));
    let ones_on_top = order[n - k..].iter().filter(|&&i| message[i]).count();
    // Among equal sums, ones first: the lower ranks (for the test).
    order.sort_by(|&a, &b| {
        sums[a]
            .total_cmp(&sums[b])
            .then_with(|| message[b].cmp(&message[a]))
    });
    let w = order
        .iter()
        .enumerate()
        .filter(|(_, &i)| message[i])
        .map(|(rank, _)| rank)
        .sum();
    // Top k read as ones: each one missing there is a one read as 0 and a 0 read as one.
    (w, n - 2 * (k - ones_on_top))
}

/// `tail[w]`: the probability that `k` of the ranks `0..n` drawn at random sum to `w` or
/// more, for known message `i` (`n` its length, `k` its ones). Exact, by counting subsets
/// (f64 holds C(136, 68) ≈ 4e39); computed once per message.
fn rank_sum_tail(i: usize) -> &'static [f64] {
    static TAILS: OnceLock<Vec<Vec<f64>>> = OnceLock::new();
    &TAILS.get_or_init(|| {
        KNOWN
            .iter()
            .map(|known| {
                let bits = known.message.bits();
                let n = bits.len();
                let k = bits.iter().filter(|&&b| b).count();
                subset_sum_tail(n, k)
            })
            .collect()
    })[i]
}

fn subset_sum_tail(n: usize, k: usize) -> Vec<f64> {
    let max_sum: usize = (n - k..n).sum();
    // count[j][s]: subsets of j of the ranks seen so far summing to s. Only the cells that
    // can be non-zero and can still reach k are updated (a subset of j of the ranks
    // 0..=rank sums to between j(j−1)/2 and j·rank − j(j−1)/2, and needs k − j of the
    // ranks still to come): the same sums as the full table, a fifth of the additions
    // (it was ≈ 60 ms of every verify's tail).
    let tri = |j: usize| j * j.saturating_sub(1) / 2;
    let mut count = vec![vec![0f64; max_sum + 1]; k + 1];
    count[0][0] = 1.0;
    for rank in 0..n {
        let needed = k.saturating_sub(n - 1 - rank).max(1);
        for j in (needed..=k.min(rank + 1)).rev() {
            let (lower, upper) = count.split_at_mut(j);
            let (from, to) = (&lower[j - 1], &mut upper[0]);
            // `from`: subsets of j − 1 of the ranks 0..rank.
            let lo = rank + tri(j - 1);
            let hi = (rank + (j - 1) * rank.saturating_sub(1) - tri(j - 1)).min(max_sum);
            for s in (lo..=hi).rev() {
                to[s] += from[s - rank];
            }
        }
    }
    tail_of_counts(&count[k])
}

/// `tail[w]` = the share of the counts at `w` or above.
fn tail_of_counts(counts: &[f64]) -> Vec<f64> {
    let total: f64 = counts.iter().sum();
    let mut tail = vec![0f64; counts.len() + 1];
    for s in (0..counts.len()).rev() {
        tail[s] = tail[s + 1] + counts[s] / total;
    }
    tail.truncate(counts.len());
    tail
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The block votes as first written (the whole plane, the window summed cell by
    /// cell): [`plane_votes`] must agree, to float rounding.
    fn plane_votes_reference(
        ll: &[f32],
        lw: usize,
        lh: usize,
        phase: &mut [f32],
        residual: &mut [f32],
    ) {
        let bw = lw / BLOCK;
        let r = RESIDUAL_RADIUS;
        let ll = |y: usize| &ll[y * lw..][..lw];
        for by in 0..lh / BLOCK {
            for bx in 0..bw {
                let (y0, x0) = (by * BLOCK, bx * BLOCK);
                let (mut best, mut at) = (-1f32, (0, 0));
                for i in 0..BLOCK {
                    let row: &[f32; BLOCK] = ll(y0 + i)[x0..][..BLOCK].try_into().unwrap();
                    for (j, v) in row.iter().enumerate() {
                        if v.abs() > best && (i, j) != (0, 0) {
                            best = v.abs();
                            at = (y0 + i, x0 + j);
                        }
                    }
                }
                let b = by * bw + bx;
                phase[b] = phase_vote(best);
                let (cy, cx) = at;
                let centre = ll(cy)[cx];
                let (sum, cells) = if cy >= r && cx >= r && cy + r < lh && cx + r < lw {
                    // Inside the plane: a fixed 5×5 window.
                    let mut sum = 0f32;
                    for y in cy - r..=cy + r {
                        let row: &[f32; 2 * RESIDUAL_RADIUS + 1] =
                            ll(y)[cx - r..][..2 * r + 1].try_into().unwrap();
                        sum += row.iter().sum::<f32>();
                    }
                    (sum, (2 * r + 1) * (2 * r + 1))
                } else {
                    let (ya, yb) = (cy.saturating_sub(r), (cy + r + 1).min(lh));
                    let (xa, xb) = (cx.saturating_sub(r), (cx + r + 1).min(lw));
                    let mut sum = 0f32;
                    for y in ya..yb {
                        sum += ll(y)[xa..xb].iter().sum::<f32>();
                    }
                    (sum, (yb - ya) * (xb - xa))
                };
                let height = centre - (sum - centre) / (cells - 1) as f32;
                residual[b] = if centre < 0.0 { -height } else { height };
            }
        }
    }

    #[test]
    fn block_votes_made_row_by_row_match_the_whole_plane_reference() {
        // Integer-valued planes from a small range: ties for the largest magnitude in most
        // blocks (the first in row order must win), zeros, both signs; sizes down to one
        // block, so that every window is cut by an edge somewhere.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut ring = Vec::new();
        for (lw, lh, range) in [(4, 4, 5), (8, 4, 3), (4, 12, 7), (40, 28, 9), (96, 64, 200)] {
            for _ in 0..20 {
                let ll: Vec<f32> = (0..lw * lh)
                    .map(|_| (next() % (2 * range + 1)) as f32 - range as f32)
                    .collect();
                let blocks = (lw / BLOCK) * (lh / BLOCK);
                let (mut p0, mut r0) = (vec![0f32; blocks], vec![0f32; blocks]);
                let (mut p1, mut r1) = (vec![0f32; blocks], vec![0f32; blocks]);
                plane_votes_reference(&ll, lw, lh, &mut p0, &mut r0);
                let mut rows_made = Vec::new();
                let make_row = |y: usize, out: &mut [f32]| {
                    rows_made.push(y);
                    out.copy_from_slice(&ll[y * lw..][..lw]);
                };
                plane_votes(lw, lh, make_row, &mut ring, &mut p1, &mut r1);
                assert_eq!(rows_made, (0..lh).collect::<Vec<_>>(), "each row made once");
                assert_eq!(p0, p1, "{lw}x{lh}: the same cells chosen");
                for (a, b) in r0.iter().zip(&r1) {
                    assert!(
                        (a - b).abs() <= 1e-5 * a.abs().max(1.0),
                        "{lw}x{lh}: {a} vs {b}"
                    );
                }
            }
        }
    }

    #[test]
    fn messages_have_the_reference_lengths() {
        let lens: Vec<usize> = KNOWN.iter().map(|k| k.message.bits().len()).collect();
        assert_eq!(lens, [136, 32, 48, 48, 46]);
        // 0xB3EC907BB19E, as sgm's helpers.py comments it.
        let sgm = KNOWN[2].message.bits();
        let value = sgm.iter().fold(0u64, |v, &b| v << 1 | u64::from(b));
        assert_eq!(value, 0xB3EC907BB19E);
        // "S" = 0x53 first.
        assert_eq!(
            &KNOWN[0].message.bits()[..8],
            &[false, true, false, true, false, false, true, true]
        );
    }

    #[test]
    fn rank_sum_tail_is_exact_on_a_small_case() {
        // Subsets of 2 of {0,1,2,3}: sums 1,2,3,3,4,5.
        let t = subset_sum_tail(4, 2);
        assert_eq!(t.len(), 6);
        assert!((t[0] - 1.0).abs() < 1e-12);
        assert!((t[3] - 4.0 / 6.0).abs() < 1e-12);
        assert!((t[5] - 1.0 / 6.0).abs() < 1e-12);
    }

    /// The full table, every cell updated (the tail's definition, for the test below).
    fn subset_sum_tail_reference(n: usize, k: usize) -> Vec<f64> {
        let max_sum: usize = (n - k..n).sum();
        let mut count = vec![vec![0f64; max_sum + 1]; k + 1];
        count[0][0] = 1.0;
        for rank in 0..n {
            for j in (1..=k.min(rank + 1)).rev() {
                let (lower, upper) = count.split_at_mut(j);
                for s in (rank..=max_sum).rev() {
                    upper[0][s] += lower[j - 1][s - rank];
                }
            }
        }
        tail_of_counts(&count[k])
    }

    #[test]
    fn the_pruned_table_gives_the_full_tables_tails() {
        // Every known message's (n, k), and the edges (k = 1, k = n, k = n − 1).
        let mut cases: Vec<(usize, usize)> = KNOWN
            .iter()
            .map(|known| {
                let bits = known.message.bits();
                (bits.len(), bits.iter().filter(|&&b| b).count())
            })
            .collect();
        cases.extend([(1, 1), (5, 1), (5, 5), (7, 6), (9, 4), (40, 13)]);
        for (n, k) in cases {
            assert_eq!(
                subset_sum_tail(n, k),
                subset_sum_tail_reference(n, k),
                "n {n}, k {k}"
            );
        }
    }

    #[test]
    fn ties_count_against_the_mark() {
        let message = [true, false, true, false];
        // All equal: the ones take the lowest ranks.
        let (w, matching) = rank_sum(&[0.0; 4], &message);
        assert_eq!(w, 1);
        assert_eq!(matching, 2);
        let (w, matching) = rank_sum(&[1.0, -1.0, 2.0, 0.0], &message);
        assert_eq!(w, 5);
        assert_eq!(matching, 4);
    }
}
