//! A perceptual fingerprint: coarse enough to survive what platforms do to a clip
//! (re-encoding, resizing, cropping a little, brightness and contrast, frame-rate changes,
//! trimming), fine enough to tell one clip from another. It is what ties a watermark's clip
//! id to the content it was sealed on, so that a mark copied onto other footage cannot pull
//! in the original's manifest.
//!
//! * Picture: four times a second, the luma of the central 80 % of the frame is averaged
//!   over an 8×8 grid and normalised to zero mean and unit variance (so brightness and
//!   contrast changes cancel). Two samples compare by correlation.
//! * Sound: twenty times a second, the level in dB of the mono mix; clips compare by the
//!   correlation of its first differences (so volume changes cancel).
//!
//! Comparison searches every time offset (an upload may be an excerpt) and averages over
//! the overlap.

use hallmark_media::{AudioChunk, PixelLayout, VideoFrame};

/// Picture samples per second.
pub const VIDEO_RATE: f64 = 4.0;
/// Sound envelope values per second.
pub const AUDIO_RATE: f64 = 20.0;
const GRID: usize = 8;
const CELLS: usize = GRID * GRID;
/// Fraction of width and height (centred) that the picture grid covers: borders are what
/// crops and letterboxing change first.
const CENTRE: f64 = 0.8;
/// Mean correlation at or above which the picture (sound) of two clips is the same content.
/// Measured (store/README.md): the same clip after the benchmark's attacks scores ≥ 0.9,
/// different footage ≤ 0.5.
pub const VIDEO_MATCH: f64 = 0.75;
pub const AUDIO_MATCH: f64 = 0.6;
/// Shortest overlap compared: two seconds of picture, three of sound.
const MIN_VIDEO_OVERLAP: usize = 8;
const MIN_AUDIO_OVERLAP: usize = 60;
/// Level given to digital silence, dB.
const SILENCE_DB: f32 = -90.0;

/// Longest clip fingerprinted (later content is ignored): bounds memory on odd timestamps.
const MAX_SECONDS: usize = 4 * 3600;

const MAGIC: &[u8; 6] = b"HMFP1\n";

/// The fingerprint of one clip.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fingerprint {
    /// One entry per picture sample: the normalised 8×8 grid, or `None` for a flat frame
    /// (nothing to compare).
    pub video: Vec<Option<[i8; CELLS]>>,
    /// The sound's level, dB, at [`AUDIO_RATE`].
    pub audio: Vec<f32>,
}

/// How two fingerprints compare: per medium, the best mean correlation over time offsets
/// (`None` where the medium is missing from either or too short to compare).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Similarity {
    pub video: Option<f64>,
    pub audio: Option<f64>,
}

impl Similarity {
    /// The same content: every medium both clips have matches, and at least one was compared.
    pub fn matches(&self) -> bool {
        let video = self.video.map(|s| s >= VIDEO_MATCH);
        let audio = self.audio.map(|s| s >= AUDIO_MATCH);
        match (video, audio) {
            (None, None) => false,
            (v, a) => v.unwrap_or(true) && a.unwrap_or(true),
        }
    }
}

impl Fingerprint {
    /// Compares `self` (the sealed clip) with `upload` (maybe an excerpt of it).
    pub fn compare(&self, upload: &Fingerprint) -> Similarity {
        Similarity {
            video: best_alignment(
                &self.video,
                &upload.video,
                MIN_VIDEO_OVERLAP,
                |a, b| match (a, b) {
                    (Some(a), Some(b)) => Some(correlation_i8(a, b)),
                    _ => None,
                },
            ),
            audio: {
                let (a, b) = (differences(&self.audio), differences(&upload.audio));
                envelope_similarity(&a, &b)
            },
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend((self.video.len() as u32).to_le_bytes());
        for sample in &self.video {
            match sample {
                Some(cells) => {
                    out.push(1);
                    out.extend(cells.iter().map(|&c| c as u8));
                }
                None => out.push(0),
            }
        }
        out.extend((self.audio.len() as u32).to_le_bytes());
        for level in &self.audio {
            out.extend(level.to_le_bytes());
        }
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Fingerprint> {
        let mut rest = bytes.strip_prefix(MAGIC.as_slice())?;
        let mut take = |n: usize| -> Option<&[u8]> {
            let (head, tail) = rest.split_at_checked(n)?;
            rest = tail;
            Some(head)
        };
        let count = |b: &[u8]| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize;
        let n = count(take(4)?);
        let mut video = Vec::with_capacity(n.min(1 << 16));
        for _ in 0..n {
            video.push(match take(1)?[0] {
                0 => None,
                1 => Some(
                    take(CELLS)?
                        .iter()
                        .map(|&b| b as i8)
                        .collect::<Vec<_>>()
                        .try_into()
                        .ok()?,
                ),
                _ => return None,
            });
        }
        let n = count(take(4)?);
        let audio = take(n.checked_mul(4)?)?
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
            .collect();
        Some(Fingerprint { video, audio })
    }
}

/// Builds a [`Fingerprint`] from frames and sound as they stream past.
#[derive(Debug, Default)]
pub struct Fingerprinter {
    print: Fingerprint,
    /// Picture sample index to fill next.
    next_video: usize,
    /// Sound: sum of squares and count in the window being filled, and its index.
    audio_window: (f64, usize, usize),
}

impl Fingerprinter {
    pub fn new() -> Fingerprinter {
        Fingerprinter::default()
    }

    /// Takes the first frame at or after each sampling instant; the rest cost nothing.
    pub fn add_frame(&mut self, frame: &VideoFrame) {
        let slot = (frame.pts_s.max(0.0) * VIDEO_RATE).floor() as usize;
        if slot < self.next_video || slot > MAX_SECONDS * VIDEO_RATE as usize {
            return;
        }
        let Some(cells) = grid(frame) else { return };
        // A gap in the frames (a variable frame rate, or a clip starting late) repeats the
        // last sample so that sample index keeps meaning time.
        let last = self.print.video.last().copied().flatten();
        while self.print.video.len() < slot {
            self.print.video.push(last);
        }
        self.print.video.push(normalise(&cells));
        self.next_video = slot + 1;
    }

    pub fn add_audio(&mut self, chunk: &AudioChunk) {
        let channels = usize::from(chunk.channels);
        if channels == 0 || chunk.sample_rate == 0 {
            return;
        }
        let per_window = ((f64::from(chunk.sample_rate) / AUDIO_RATE).round() as usize).max(1);
        let start = (chunk.pts_s.max(0.0) * f64::from(chunk.sample_rate)).round() as usize;
        for (i, frame) in chunk.samples.chunks_exact(channels).enumerate() {
            let window = (start + i) / per_window;
            if window < self.audio_window.2 {
                continue; // overlapping timestamps: that time is already covered
            }
            if window > self.audio_window.2 {
                self.close_audio_window();
                self.audio_window.2 = window;
            }
            let mono = frame.iter().sum::<f32>() / channels as f32;
            self.audio_window.0 += f64::from(mono) * f64::from(mono);
            self.audio_window.1 += 1;
        }
    }

    fn close_audio_window(&mut self) {
        let (sum, n, index) = self.audio_window;
        self.audio_window = (0.0, 0, index);
        if n == 0 || index < self.print.audio.len() || index > MAX_SECONDS * AUDIO_RATE as usize {
            return;
        }
        let last = self.print.audio.last().copied().unwrap_or(SILENCE_DB);
        self.print.audio.resize(index, last);
        self.print.audio.push(level_db(sum / n as f64));
    }

    pub fn finish(mut self) -> Fingerprint {
        self.close_audio_window();
        self.print
    }
}

fn level_db(mean_square: f64) -> f32 {
    if mean_square <= 1e-9 {
        SILENCE_DB
    } else {
        (10.0 * mean_square.log10()).max(f64::from(SILENCE_DB)) as f32
    }
}

/// Mean luma of each cell of the grid over the frame's centre.
fn grid(frame: &VideoFrame) -> Option<[f32; CELLS]> {
    if frame.validate().is_err() {
        return None;
    }
    let (w, h) = (frame.width as usize, frame.height as usize);
    let (x0, y0) = (
        (w as f64 * (1.0 - CENTRE) / 2.0) as usize,
        (h as f64 * (1.0 - CENTRE) / 2.0) as usize,
    );
    let (cw, ch) = (w - 2 * x0, h - 2 * y0);
    if cw < GRID || ch < GRID {
        return None;
    }
    let mut sums = [0f64; CELLS];
    let mut counts = [0u32; CELLS];
    // Every second row and column is plenty for an 8×8 average and halves the cost.
    for y in (y0..y0 + ch).step_by(2) {
        let gy = (y - y0) * GRID / ch;
        for x in (x0..x0 + cw).step_by(2) {
            let gx = (x - x0) * GRID / cw;
            let luma = match frame.layout {
                PixelLayout::Yuv420p => f64::from(frame.planes[0][y * w + x]),
                PixelLayout::Rgb24 => {
                    let p = &frame.planes[0][(y * w + x) * 3..];
                    0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2])
                }
            };
            sums[gy * GRID + gx] += luma;
            counts[gy * GRID + gx] += 1;
        }
    }
    let mut cells = [0f32; CELLS];
    for ((c, s), n) in cells.iter_mut().zip(sums).zip(counts) {
        *c = (s / f64::from(n.max(1))) as f32;
    }
    Some(cells)
}

/// Zero mean, unit variance, quantised to i8 (×32); `None` if the frame is flat.
fn normalise(cells: &[f32; CELLS]) -> Option<[i8; CELLS]> {
    let mean = cells.iter().sum::<f32>() / CELLS as f32;
    let var = cells.iter().map(|c| (c - mean).powi(2)).sum::<f32>() / CELLS as f32;
    if var.sqrt() < 1.5 {
        return None;
    }
    let sd = var.sqrt();
    let mut out = [0i8; CELLS];
    for (o, c) in out.iter_mut().zip(cells) {
        *o = ((c - mean) / sd * 32.0).round().clamp(-127.0, 127.0) as i8;
    }
    Some(out)
}

fn correlation_i8(a: &[i8; CELLS], b: &[i8; CELLS]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x), f64::from(y));
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0.0 || bb == 0.0 {
        0.0
    } else {
        ab / (aa * bb).sqrt()
    }
}

fn differences(levels: &[f32]) -> Vec<f32> {
    levels.windows(2).map(|w| w[1] - w[0]).collect()
}

/// The best, over offsets, of the mean of `score` over aligned pairs (pairs it cannot
/// score are skipped); offsets with fewer than `min_overlap` scored pairs (or, for a short
/// clip, fewer than all but a quarter of it) are not considered.
fn best_alignment<T>(
    sealed: &[T],
    upload: &[T],
    min_overlap: usize,
    score: impl Fn(&T, &T) -> Option<f64>,
) -> Option<f64> {
    let needed = min_overlap
        .min(sealed.len().min(upload.len()) * 3 / 4)
        .max(2);
    let mut best: Option<f64> = None;
    // upload[j] is sealed[j + offset].
    for offset in -(upload.len() as isize) + 1..sealed.len() as isize {
        let (mut sum, mut n) = (0.0, 0usize);
        for (j, u) in upload.iter().enumerate() {
            let i = j as isize + offset;
            if i < 0 || i as usize >= sealed.len() {
                continue;
            }
            if let Some(s) = score(&sealed[i as usize], u) {
                sum += s;
                n += 1;
            }
        }
        if n >= needed {
            let mean = sum / n as f64;
            best = Some(best.map_or(mean, |b: f64| b.max(mean)));
        }
    }
    best
}

/// Correlation of two envelope-difference sequences at the best offset (both must move:
/// constant sound has nothing to compare).
fn envelope_similarity(sealed: &[f32], upload: &[f32]) -> Option<f64> {
    let needed = MIN_AUDIO_OVERLAP.min(sealed.len().min(upload.len()) * 3 / 4);
    if needed < 10 {
        return None;
    }
    let mut best: Option<f64> = None;
    for offset in -(upload.len() as isize) + 1..sealed.len() as isize {
        let lo = (-offset).max(0) as usize;
        let hi = upload.len().min((sealed.len() as isize - offset) as usize);
        if hi <= lo || hi - lo < needed {
            continue;
        }
        let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
        for j in lo..hi {
            let (x, y) = (
                f64::from(sealed[(j as isize + offset) as usize]),
                f64::from(upload[j]),
            );
            ab += x * y;
            aa += x * x;
            bb += y * y;
        }
        if aa < 1e-6 || bb < 1e-6 {
            continue;
        }
        let c = ab / (aa * bb).sqrt();
        best = Some(best.map_or(c, |b: f64| b.max(c)));
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(pts_s: f64, f: impl Fn(usize, usize) -> u8) -> VideoFrame {
        let mut frame = VideoFrame::black(64, 48, PixelLayout::Yuv420p, pts_s);
        for y in 0..48 {
            for x in 0..64 {
                frame.planes[0][y * 64 + x] = f(x, y);
            }
        }
        frame
    }

    #[test]
    fn bytes_round_trip_and_reject_garbage() {
        let mut fp = Fingerprinter::new();
        for i in 0..10 {
            fp.add_frame(&frame(i as f64 / 10.0, |x, y| {
                ((x * 3 + y * i) % 256) as u8
            }));
        }
        fp.add_frame(&frame(1.2, |_, _| 80)); // flat
        fp.add_audio(&AudioChunk {
            sample_rate: 8000,
            channels: 1,
            samples: (0..16000).map(|i| (i as f32 * 0.01).sin() * 0.3).collect(),
            pts_s: 0.0,
        });
        let print = fp.finish();
        assert_eq!(print.video.len(), 5);
        assert!(print.video[4].is_none());
        assert_eq!(print.audio.len(), 40);
        let bytes = print.to_bytes();
        assert_eq!(Fingerprint::from_bytes(&bytes), Some(print));
        assert_eq!(Fingerprint::from_bytes(&bytes[..bytes.len() - 1]), None);
        assert_eq!(Fingerprint::from_bytes(b"HMFP1\n\xff\xff\xff\xff"), None);
    }

    #[test]
    fn brightness_and_contrast_cancel_but_other_pictures_do_not_match() {
        let pattern = |x: usize, y: usize| (40 + (x * 2 + y * 3) % 120) as u8;
        let other = |x: usize, y: usize| (40 + (x * x + 7 * y) % 150) as u8;
        let mut a = Fingerprinter::new();
        let mut b = Fingerprinter::new();
        let mut c = Fingerprinter::new();
        for i in 0..12 {
            let t = i as f64 * 0.25;
            a.add_frame(&frame(t, pattern));
            b.add_frame(&frame(t, |x, y| (pattern(x, y) as f32 * 0.7 + 20.0) as u8));
            c.add_frame(&frame(t, other));
        }
        let (a, b, c) = (a.finish(), b.finish(), c.finish());
        let same = a.compare(&b);
        assert!(same.video.unwrap() > 0.95, "{same:?}");
        assert!(same.matches());
        let different = a.compare(&c);
        assert!(different.video.unwrap() < 0.5, "{different:?}");
        assert!(!different.matches());
    }
}
