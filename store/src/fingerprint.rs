//! A perceptual fingerprint: coarse enough to survive what platforms do to a clip
//! (re-encoding, resizing, cropping, brightness and contrast, frame-rate changes, trimming),
//! fine enough to tell one clip from another. It is what ties a watermark's clip id to the
//! content it was sealed on, so that a mark copied onto other footage cannot pull in the
//! original's manifest.
//!
//! * Picture: four times a second, the frame's luma averaged over a 16×16 grid. Comparing,
//!   the centre (80 %) of each view is resampled to 8×8 and normalised to zero mean and unit
//!   variance (brightness and contrast cancel); views compare by correlation. The sealed
//!   clip is viewed through a few crop hypotheses (scale 1 to 0.8 of each side, centred and
//!   at the corners and edges), since an upload may be cropped.
//! * Sound: twenty times a second, the level in dB of the mono mix, lightly smoothed; clips
//!   compare by the correlation of its first differences (volume changes cancel).
//!
//! Comparison searches every time offset (an upload may be an excerpt) and averages over
//! the overlap.

use hallmark_media::{AudioChunk, PixelLayout, VideoFrame};

/// Picture samples per second.
pub const VIDEO_RATE: f64 = 4.0;
/// Sound envelope values per second.
pub const AUDIO_RATE: f64 = 20.0;
/// Side of the stored picture grid (over the whole frame).
const FULL: usize = 16;
const FULL_CELLS: usize = FULL * FULL;
/// Side of the grid compared (over the centre of a view).
const VIEW: usize = 8;
const VIEW_CELLS: usize = VIEW * VIEW;
/// Fraction of a view's width and height (centred) that is compared: borders are what
/// crops and letterboxing change first.
const CENTRE: f64 = 0.8;
/// Mean correlation at or above which the picture (sound) is the same content, and at or
/// below which it is different content; in between, the comparison is unsure. Measured
/// (store/README.md): the same clip after the watermark benchmark's attacks scores ≥ 0.88
/// (picture) and ≥ 0.8 (sound); other footage ≤ 0.36 and other sound ≤ 0.47.
pub const VIDEO_MATCH: f64 = 0.75;
pub const VIDEO_DIFFERENT: f64 = 0.45;
pub const AUDIO_MATCH: f64 = 0.7;
pub const AUDIO_DIFFERENT: f64 = 0.4;
/// Shortest overlap compared: two seconds of picture, three of sound.
const MIN_VIDEO_OVERLAP: usize = 8;
const MIN_AUDIO_OVERLAP: usize = 60;
/// Level given to digital silence, dB.
const SILENCE_DB: f32 = -90.0;
/// Longest clip fingerprinted (later content is ignored): bounds memory on odd timestamps.
const MAX_SECONDS: usize = 4 * 3600;

const MAGIC: &[u8; 6] = b"HMFP2\n";

/// The fingerprint of one clip.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fingerprint {
    /// One entry per picture sample: the mean luma of a 16×16 grid over the frame, or
    /// `None` where no frame was seen.
    pub video: Vec<Option<[u8; FULL_CELLS]>>,
    /// The sound's level, dB, at [`AUDIO_RATE`].
    pub audio: Vec<f32>,
}

/// How two fingerprints compare: per medium, the best mean correlation over time offsets
/// (and crops) (`None` where the medium is missing from either or too short to compare).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Similarity {
    pub video: Option<f64>,
    pub audio: Option<f64>,
}

/// What a [`Similarity`] says about the content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentMatch {
    /// Every medium both clips have matches (and at least one was compared).
    Same,
    /// Some medium is clearly different content.
    Different,
    /// Neither: nothing could be compared, or a score fell between the thresholds.
    Unsure,
}

impl Similarity {
    pub fn decision(&self) -> ContentMatch {
        let judge = |s: Option<f64>, same: f64, different: f64| match s {
            None => None,
            Some(s) if s >= same => Some(ContentMatch::Same),
            Some(s) if s <= different => Some(ContentMatch::Different),
            Some(_) => Some(ContentMatch::Unsure),
        };
        let video = judge(self.video, VIDEO_MATCH, VIDEO_DIFFERENT);
        let audio = judge(self.audio, AUDIO_MATCH, AUDIO_DIFFERENT);
        let all = [video, audio];
        if all.contains(&Some(ContentMatch::Different)) {
            ContentMatch::Different
        } else if all.contains(&Some(ContentMatch::Unsure)) || all == [None, None] {
            ContentMatch::Unsure
        } else {
            ContentMatch::Same
        }
    }
}

impl Fingerprint {
    /// Compares `self` (the sealed clip) with `upload` (maybe a cropped excerpt of it).
    pub fn compare(&self, upload: &Fingerprint) -> Similarity {
        self.compare_with_sound_scale(upload, None)
    }

    /// [`compare`](Self::compare) for an upload whose sound lasts `sound_time_scale` times
    /// the sealed sound's (a tempo or speed change, as the sound's watermark search measured
    /// it): the upload's envelope is first read back onto the sealed sound's time base. The
    /// scale comes from the keyed mark, so other content cannot choose it to match.
    pub fn compare_with_sound_scale(
        &self,
        upload: &Fingerprint,
        sound_time_scale: Option<f64>,
    ) -> Similarity {
        let audio = match sound_time_scale.filter(|a| a.is_finite() && (a - 1.0).abs() > 1e-3) {
            Some(a) => rescale_envelope(&upload.audio, a),
            None => upload.audio.clone(),
        };
        Similarity {
            video: video_similarity(&self.video, &upload.video),
            audio: envelope_similarity(&differences(&self.audio), &differences(&audio)),
        }
    }

    /// This print with its sound read back onto the time base of a sound that lasts
    /// `1 / sound_time_scale` of it (an upload whose sound's mark was found
    /// `sound_time_scale` times longer than sealed): what to look the sealed clip up with
    /// by content. The picture is kept as it is.
    pub fn with_sound_time_scale(&self, sound_time_scale: f64) -> Fingerprint {
        Fingerprint {
            video: self.video.clone(),
            audio: rescale_envelope(&self.audio, sound_time_scale),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend((self.video.len() as u32).to_le_bytes());
        for sample in &self.video {
            match sample {
                Some(cells) => {
                    out.push(1);
                    out.extend(cells);
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

    /// [`Fingerprint::to_bytes`] as lowercase hex digits: how a worker process hands a
    /// fingerprint to its parent (`hallmark fingerprint`).
    pub fn to_hex(&self) -> String {
        use std::fmt::Write;
        self.to_bytes().iter().fold(String::new(), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
    }

    /// The inverse of [`Fingerprint::to_hex`]; `None` for anything else.
    pub fn from_hex(text: &str) -> Option<Fingerprint> {
        let text = text.as_bytes();
        if !text.len().is_multiple_of(2) {
            return None;
        }
        let digit = |c: u8| (c as char).to_digit(16);
        let bytes = text
            .chunks_exact(2)
            .map(|p| Some((digit(p[0])? * 16 + digit(p[1])?) as u8))
            .collect::<Option<Vec<u8>>>()?;
        Fingerprint::from_bytes(&bytes)
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
                1 => Some(take(FULL_CELLS)?.try_into().ok()?),
                _ => return None,
            });
        }
        let n = count(take(4)?);
        let audio = take(n.checked_mul(4)?)?
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
            .collect();
        rest.is_empty().then_some(Fingerprint { video, audio })
    }
}

/// Picture samples of a stored clip that get content keys: every second one (2 a second),
/// for its first five minutes. An upload probes with every sample it has, so one of its
/// samples falls within an eighth of a second of a keyed one wherever it starts.
const KEYED_STRIDE: usize = 2;
const KEYED_SAMPLES: usize = 600;
/// Picture samples of an upload that probe the index (its first minute).
const PROBE_SAMPLES: usize = 240;

impl Fingerprint {
    /// The short perceptual hashes under which a stored clip is indexed, for finding it by
    /// its content without comparing an upload with every stored fingerprint: its
    /// [picture keys](Fingerprint::picture_keys) and [sound keys](Fingerprint::sound_keys).
    /// A clip that shares a key is only a candidate, which the full
    /// [`Fingerprint::compare`] then confirms or not.
    pub fn content_keys(&self) -> Vec<i64> {
        let mut keys = self.picture_keys();
        keys.extend(self.sound_keys());
        keys
    }

    /// The keys an upload looks for: every picture sample and every sound window of its
    /// first minute, each sound window also with its least sure bits flipped.
    pub fn probe_keys(&self) -> Vec<i64> {
        let mut keys = keys_of(self.video.iter().take(PROBE_SAMPLES));
        keys.extend(sound_keys_of(
            &self.audio,
            SOUND_PROBE_WINDOWS,
            1,
            SOUND_PROBE_FLIPS,
        ));
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// For each keyed picture sample, the signs of its whole-frame 8×8 view (brightness and
    /// contrast cancel), 64 bits cut into two 32-bit bands, each band a key (band number in
    /// the high bits). A re-encoded or resized copy keeps most signs, so some band of some
    /// sample survives whole.
    pub fn picture_keys(&self) -> Vec<i64> {
        keys_of(
            self.video
                .iter()
                .step_by(KEYED_STRIDE)
                .take(KEYED_SAMPLES / KEYED_STRIDE),
        )
    }

    /// Every fifth of a second of the sound's first two minutes: the signs of 24 changes of
    /// its level (each over 0.1 s, one every 0.1 s: 2.4 s of sound), tagged as sound in the
    /// high bits. Codecs keep most of these signs (measured on the shared music and voice,
    /// store/README.md), so an upload with no picture (a sound extracted, re-encoded, with
    /// speech mixed under it) still finds the clip it came from. Steady sound and silence
    /// (changes averaging under [`SOUND_KEY_MIN_CHANGE`] dB) have no keys.
    pub fn sound_keys(&self) -> Vec<i64> {
        sound_keys_of(&self.audio, SOUND_KEYED_WINDOWS, SOUND_KEYED_STRIDE, 0)
    }
}

/// Sound windows of a stored clip that get keys: one every fifth of a second (every
/// fourth envelope value) for its first two minutes. An upload probes with every window of
/// its first minute, so each keyed window lines up with one of them wherever it starts.
const SOUND_KEYED_STRIDE: usize = 4;
const SOUND_KEYED_WINDOWS: usize = 120 * AUDIO_RATE as usize;
const SOUND_PROBE_WINDOWS: usize = 60 * AUDIO_RATE as usize;
/// A sound key's bits: signs of level changes over `SOUND_KEY_STEP` envelope values, that
/// many apart.
const SOUND_KEY_BITS: usize = 24;
const SOUND_KEY_STEP: usize = 2;
/// The probe also looks each window up with every combination of its 3 least sure bits
/// (smallest changes) flipped: 8 keys a window. Measured (store/README.md): MP3 32 kbit/s
/// keeps 40 of 48 keyed windows of 12 s of music whole this way, other speech 3 dB under
/// a voice 11 of 45 (2 without the flips).
const SOUND_PROBE_FLIPS: usize = 3;
/// Windows whose level changes average under this (dB) are steady sound or silence, whose
/// signs are noise: not keyed.
const SOUND_KEY_MIN_CHANGE: f32 = 1.0;
/// Picture keys are bands 0 and 1 in bits 32 and up; sound keys are band 2.
const SOUND_KEY_BAND: i64 = 2 << 32;

/// The sound keys of `levels`' windows `0, stride, 2·stride, …` below `windows`, each with
/// its `flips` least sure bits flipped every way.
fn sound_keys_of(levels: &[f32], windows: usize, stride: usize, flips: usize) -> Vec<i64> {
    // The envelope as the comparison smooths it, averaged over pairs of values.
    let paired: Vec<f32> = smoothed(levels)
        .windows(2)
        .map(|w| (w[0] + w[1]) / 2.0)
        .collect();
    let changes: Vec<f32> = paired
        .iter()
        .zip(paired.iter().skip(SOUND_KEY_STEP))
        .map(|(a, b)| b - a)
        .collect();
    let span = SOUND_KEY_STEP * (SOUND_KEY_BITS - 1) + 1;
    let mut keys = Vec::new();
    for start in (0..changes.len().saturating_sub(span - 1))
        .take(windows)
        .step_by(stride)
    {
        let bits: Vec<f32> = changes[start..start + span]
            .iter()
            .step_by(SOUND_KEY_STEP)
            .copied()
            .collect();
        if bits.iter().map(|c| c.abs()).sum::<f32>() < SOUND_KEY_MIN_CHANGE * bits.len() as f32 {
            continue;
        }
        let key = bits
            .iter()
            .enumerate()
            .fold(0i64, |acc, (b, c)| acc | (i64::from(*c > 0.0) << b));
        let mut weakest: Vec<usize> = (0..SOUND_KEY_BITS).collect();
        weakest.sort_by(|&a, &b| bits[a].abs().total_cmp(&bits[b].abs()));
        for mask in 0..1u32 << flips {
            let flipped = weakest[..flips]
                .iter()
                .enumerate()
                .filter(|(i, _)| mask >> i & 1 == 1)
                .fold(key, |k, (_, &b)| k ^ (1 << b));
            keys.push(SOUND_KEY_BAND | flipped);
        }
    }
    keys.sort_unstable();
    keys.dedup();
    keys
}

fn keys_of<'a>(samples: impl Iterator<Item = &'a Option<[u8; FULL_CELLS]>>) -> Vec<i64> {
    let mut keys: Vec<i64> = samples
        .filter_map(|s| s.as_ref().and_then(|c| view(c, (0.0, 0.0, 1.0))))
        .flat_map(|v| {
            let bits = v
                .iter()
                .enumerate()
                .fold(0u64, |acc, (i, x)| acc | (u64::from(*x > 0.0) << i));
            [bits & 0xffff_ffff, (1 << 32) | (bits >> 32)].map(|k| k as i64)
        })
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Builds a [`Fingerprint`] from frames and sound as they stream past.
#[derive(Debug, Default)]
pub struct Fingerprinter {
    print: Fingerprint,
    /// Picture sample index to fill next.
    next_video: usize,
    /// Sound: sum of squares and count in the window being filled, and its index.
    audio_window: (f64, usize, usize),
    /// Picture samples between two frames stay empty instead of repeating the last frame.
    sparse: bool,
}

impl Fingerprinter {
    pub fn new() -> Fingerprinter {
        Fingerprinter::default()
    }

    /// A fingerprinter for a picture seen only at some frames (key frames only): the
    /// samples between two frames stay empty (`None`, not compared) instead of repeating
    /// the last frame, which would claim seconds of still picture the clip does not have.
    /// A comparison scores the picture only where eight seen samples line up with the
    /// other clip's (the same minimum overlap as for any print).
    pub fn sparse() -> Fingerprinter {
        Fingerprinter {
            sparse: true,
            ..Fingerprinter::default()
        }
    }

    /// Takes the first frame at or after each sampling instant; the rest cost nothing.
    pub fn add_frame(&mut self, frame: &VideoFrame) {
        let slot = (frame.pts_s.max(0.0) * VIDEO_RATE).floor() as usize;
        if slot < self.next_video || slot > MAX_SECONDS * VIDEO_RATE as usize {
            return;
        }
        let Some(cells) = grid(frame) else { return };
        // A gap in the frames (a variable frame rate) repeats the last sample, so that the
        // sample index keeps meaning time; a sparse print leaves it empty.
        let last = if self.sparse {
            None
        } else {
            self.print.video.last().copied().flatten()
        };
        self.print.video.resize(slot, last);
        self.print.video.push(Some(cells));
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

    /// Takes the picture samples of `later`, which saw the same clip's frames from some
    /// point after this one's last frame on (a second decoder analysing the clip's second
    /// half): as if its frames had come here, in order. Its sound is ignored.
    pub fn append_video(&mut self, later: Fingerprinter) {
        let from = self.next_video.max(self.print.video.len());
        let mut last = if self.sparse {
            None
        } else {
            self.print.video.last().copied().flatten()
        };
        for (slot, sample) in later.print.video.into_iter().enumerate().skip(from) {
            let sample = sample.or(if self.sparse { None } else { last });
            self.print.video.resize(slot, last);
            self.print.video.push(sample);
            last = sample;
        }
        self.next_video = self.next_video.max(later.next_video);
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

/// The size of a valid frame large enough for [`grid`]'s cells.
fn gridded_size(frame: &VideoFrame) -> Option<(usize, usize)> {
    let (w, h) = (frame.width as usize, frame.height as usize);
    (frame.validate().is_ok() && w >= FULL && h >= FULL).then_some((w, h))
}

/// Mean luma of each cell of a 16×16 grid over the whole frame.
fn grid(frame: &VideoFrame) -> Option<[u8; FULL_CELLS]> {
    let (w, h) = gridded_size(frame)?;
    // Every second row and column is plenty for these averages and halves the cost.
    let (sums, counts) = match frame.layout {
        PixelLayout::Yuv420p => {
            // Whole numbers: summed exactly in integers (as f64 sums of them are), each
            // sampled row cut into its cells' runs of pixels — the same sums, several
            // times faster than a division and a float addition per pixel.
            let mut sums = [0f64; FULL_CELLS];
            let mut counts = [0u32; FULL_CELLS];
            // Sampled columns x = 0, 2, 4, … fall in cell x·FULL/w: each cell's first.
            let first_x: Vec<usize> = (0..=FULL)
                .map(|gx| (gx * w).div_ceil(FULL).next_multiple_of(2).min(w))
                .collect();
            let mut row_sums = [0u64; FULL_CELLS];
            for y in (0..h).step_by(2) {
                let gy = y * FULL / h;
                let row = &frame.planes[0][y * w..][..w];
                for gx in 0..FULL {
                    let run = row[first_x[gx]..first_x[gx + 1]].iter().step_by(2);
                    counts[gy * FULL + gx] += run.len() as u32;
                    row_sums[gy * FULL + gx] += run.map(|&v| u64::from(v)).sum::<u64>();
                }
            }
            for (s, r) in sums.iter_mut().zip(row_sums) {
                *s = r as f64;
            }
            (sums, counts)
        }
        PixelLayout::Rgb24 => {
            let mut sums = [0f64; FULL_CELLS];
            let mut counts = [0u32; FULL_CELLS];
            for y in (0..h).step_by(2) {
                let gy = y * FULL / h;
                for x in (0..w).step_by(2) {
                    let gx = x * FULL / w;
                    let p = &frame.planes[0][(y * w + x) * 3..];
                    sums[gy * FULL + gx] +=
                        0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2]);
                    counts[gy * FULL + gx] += 1;
                }
            }
            (sums, counts)
        }
    };
    let mut cells = [0u8; FULL_CELLS];
    for ((c, s), n) in cells.iter_mut().zip(sums).zip(counts) {
        *c = (s / f64::from(n.max(1))).round().clamp(0.0, 255.0) as u8;
    }
    Some(cells)
}

/// A region of the frame, in fractions of its width and height: (x0, y0, side).
type Region = (f64, f64, f64);

/// Crop hypotheses: the whole frame, and squares of side 0.93, 0.866 (75 % of the area)
/// and 0.8 at the centre, corners and edge midpoints.
fn crop_hypotheses() -> Vec<Region> {
    let mut out = vec![(0.0, 0.0, 1.0)];
    for side in [0.93, 0.866, 0.8] {
        let slack = 1.0 - side;
        for y0 in [0.0, slack / 2.0, slack] {
            for x0 in [0.0, slack / 2.0, slack] {
                out.push((x0, y0, side));
            }
        }
    }
    out
}

/// The centre of `region` of a 16×16 grid, area-resampled to 8×8 and normalised to zero
/// mean and unit variance; `None` if it is flat (nothing to compare).
fn view(cells: &[u8; FULL_CELLS], (x0, y0, side): Region) -> Option<[f32; VIEW_CELLS]> {
    // Overlap weights of the view's cells with the grid's, along one axis.
    let weights = |origin: f64| -> Vec<[f64; FULL]> {
        (0..VIEW)
            .map(|i| {
                let margin = (1.0 - CENTRE) / 2.0;
                let a = (origin + side * (margin + CENTRE * i as f64 / VIEW as f64)) * FULL as f64;
                let b = (origin + side * (margin + CENTRE * (i + 1) as f64 / VIEW as f64))
                    * FULL as f64;
                let mut w = [0f64; FULL];
                for (k, wk) in w.iter_mut().enumerate() {
                    *wk = (b.min(k as f64 + 1.0) - a.max(k as f64)).max(0.0);
                }
                w
            })
            .collect()
    };
    let (wx, wy) = (weights(x0), weights(y0));
    let mut out = [0f32; VIEW_CELLS];
    for (i, wyi) in wy.iter().enumerate() {
        for (j, wxj) in wx.iter().enumerate() {
            let (mut sum, mut area) = (0f64, 0f64);
            for (gy, &a) in wyi.iter().enumerate().filter(|(_, a)| **a > 0.0) {
                for (gx, &b) in wxj.iter().enumerate().filter(|(_, b)| **b > 0.0) {
                    sum += a * b * f64::from(cells[gy * FULL + gx]);
                    area += a * b;
                }
            }
            out[i * VIEW + j] = (sum / area.max(1e-9)) as f32;
        }
    }
    let mean = out.iter().sum::<f32>() / VIEW_CELLS as f32;
    let sd = (out.iter().map(|c| (c - mean).powi(2)).sum::<f32>() / VIEW_CELLS as f32).sqrt();
    if sd < 1.5 {
        return None;
    }
    for c in &mut out {
        *c = (*c - mean) / sd;
    }
    Some(out)
}

/// Mean over aligned pairs of their correlation, if enough pairs could be scored.
fn aligned_score(
    sealed: &[Option<[f32; VIEW_CELLS]>],
    upload: &[Option<[f32; VIEW_CELLS]>],
    offset: isize,
    needed: usize,
) -> Option<f64> {
    let (mut sum, mut n) = (0f64, 0usize);
    for (j, u) in upload.iter().enumerate() {
        let i = j as isize + offset;
        if i < 0 || i as usize >= sealed.len() {
            continue;
        }
        if let (Some(a), Some(b)) = (&sealed[i as usize], u) {
            let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
            sum += f64::from(dot) / VIEW_CELLS as f64;
            n += 1;
        }
    }
    (n >= needed).then(|| sum / n as f64)
}

/// Best mean correlation over time offsets and crop hypotheses. The time offset is found
/// with the whole-frame view (a crop still moves with the clip); the crops are then tried
/// at the best few offsets only, which keeps long clips cheap and the search small.
fn video_similarity(
    sealed: &[Option<[u8; FULL_CELLS]>],
    upload: &[Option<[u8; FULL_CELLS]>],
) -> Option<f64> {
    let whole = (0.0, 0.0, 1.0);
    let views = |clip: &[Option<[u8; FULL_CELLS]>], region: Region| -> Vec<_> {
        clip.iter()
            .map(|c| c.as_ref().and_then(|c| view(c, region)))
            .collect()
    };
    let up = views(upload, whole);
    let whole_sealed = views(sealed, whole);
    let needed = MIN_VIDEO_OVERLAP
        .min(sealed.len().min(upload.len()) * 3 / 4)
        .max(2);
    let mut by_offset: Vec<(f64, isize)> = (-(upload.len() as isize) + 1..sealed.len() as isize)
        .filter_map(|o| aligned_score(&whole_sealed, &up, o, needed).map(|s| (s, o)))
        .collect();
    by_offset.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut best = by_offset.first()?.0;
    let offsets: Vec<isize> = by_offset.iter().take(3).map(|&(_, o)| o).collect();
    for region in crop_hypotheses().into_iter().skip(1) {
        let cropped = views(sealed, region);
        for &o in &offsets {
            for o in o - 1..=o + 1 {
                if let Some(s) = aligned_score(&cropped, &up, o, needed) {
                    best = best.max(s);
                }
            }
        }
    }
    Some(best)
}

/// Level differences of the lightly smoothed envelope (smoothing makes a shift of part of
/// a window, e.g. a codec's priming samples, matter little).
fn differences(levels: &[f32]) -> Vec<f32> {
    smoothed(levels).windows(2).map(|w| w[1] - w[0]).collect()
}

/// The envelope floored at −60 dB and smoothed (1-2-1): what the sound is compared and
/// keyed on.
fn smoothed(levels: &[f32]) -> Vec<f32> {
    let floor = |l: f32| l.max(-60.0);
    (0..levels.len())
        .map(|i| {
            let at = |k: usize| floor(levels[k.min(levels.len() - 1)]);
            (at(i.saturating_sub(1)) + 2.0 * at(i) + at(i + 1)) / 4.0
        })
        .collect()
}

/// An envelope `levels` of a sound that lasts `time_scale` times the original, read back at
/// the original's times (linear interpolation of the dB levels): value `j` is the level at
/// `j · time_scale` of `levels`. Scales outside 0.5–2 (none the mark's search reports) are
/// clamped.
fn rescale_envelope(levels: &[f32], time_scale: f64) -> Vec<f32> {
    let a = time_scale.clamp(0.5, 2.0);
    if levels.len() < 2 {
        return levels.to_vec();
    }
    let last = (levels.len() - 1) as f64;
    let n = (last / a).floor() as usize + 1;
    (0..n)
        .map(|j| {
            let x = (j as f64 * a).min(last);
            let i = x.floor() as usize;
            let f = (x - i as f64) as f32;
            let next = levels[(i + 1).min(levels.len() - 1)];
            levels[i] + f * (next - levels[i])
        })
        .collect()
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

    /// The picture sample as first written (a division and a float addition per pixel):
    /// [`grid`] must give exactly these cells.
    fn grid_reference(frame: &VideoFrame) -> Option<[u8; FULL_CELLS]> {
        let (w, h) = gridded_size(frame)?;
        let mut sums = [0f64; FULL_CELLS];
        let mut counts = [0u32; FULL_CELLS];
        // Every second row and column is plenty for these averages and halves the cost.
        for y in (0..h).step_by(2) {
            let gy = y * FULL / h;
            for x in (0..w).step_by(2) {
                let gx = x * FULL / w;
                let luma = match frame.layout {
                    PixelLayout::Yuv420p => f64::from(frame.planes[0][y * w + x]),
                    PixelLayout::Rgb24 => {
                        let p = &frame.planes[0][(y * w + x) * 3..];
                        0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2])
                    }
                };
                sums[gy * FULL + gx] += luma;
                counts[gy * FULL + gx] += 1;
            }
        }
        let mut cells = [0u8; FULL_CELLS];
        for ((c, s), n) in cells.iter_mut().zip(sums).zip(counts) {
            *c = (s / f64::from(n.max(1))).round().clamp(0.0, 255.0) as u8;
        }
        Some(cells)
    }

    #[test]
    fn picture_cells_match_the_pixel_by_pixel_reference() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for (w, h) in [
            (16, 16),
            (17, 19),
            (33, 16),
            (640, 272),
            (176, 144),
            (1281, 721),
        ] {
            for layout in [PixelLayout::Yuv420p, PixelLayout::Rgb24] {
                let mut f = VideoFrame::black(w, h, layout, 0.0);
                for plane in &mut f.planes {
                    plane.iter_mut().for_each(|v| *v = (next() >> 56) as u8);
                }
                assert_eq!(grid(&f), grid_reference(&f), "{w}x{h} {layout:?}");
            }
        }
    }

    fn frame(w: usize, h: usize, pts_s: f64, f: impl Fn(f64, f64) -> u8) -> VideoFrame {
        let mut frame = VideoFrame::black(w as u32, h as u32, PixelLayout::Yuv420p, pts_s);
        for y in 0..h {
            for x in 0..w {
                frame.planes[0][y * w + x] = f(x as f64 / w as f64, y as f64 / h as f64);
            }
        }
        frame
    }

    /// A smooth picture that moves with time `t` (coordinates in fractions of the frame).
    fn scene(t: f64, seed: f64) -> impl Fn(f64, f64) -> u8 {
        move |x, y| {
            let v = 128.0
                + 50.0 * ((x * 7.0 + t + seed).sin() * (y * 5.0 - t * 0.5 + seed * 2.0).cos())
                + 30.0 * ((x + y) * 11.0 + seed * 3.0).sin();
            v.clamp(0.0, 255.0) as u8
        }
    }

    fn print_of(frames: impl Iterator<Item = VideoFrame>) -> Fingerprint {
        let mut fp = Fingerprinter::new();
        for f in frames {
            fp.add_frame(&f);
        }
        fp.finish()
    }

    /// Two fingerprinters over the two halves of a clip (with a gap between their frames,
    /// as a reference-frame scan has) make the same print as one over all of it.
    #[test]
    fn a_second_half_appended_equals_one_pass() {
        let frames = |r: std::ops::Range<usize>| {
            r.filter(|i| i % 3 != 2 && *i != 49)
                .map(|i| frame(64, 48, i as f64 / 25.0, scene(i as f64 / 10.0, 1.0)))
        };
        let whole = print_of(frames(0..250));
        for split in [1, 48, 50, 130, 249] {
            let mut first = Fingerprinter::new();
            frames(0..split).for_each(|f| first.add_frame(&f));
            let mut second = Fingerprinter::new();
            frames(split..250).for_each(|f| second.add_frame(&f));
            first.append_video(second);
            assert_eq!(first.finish(), whole, "split at frame {split}");
        }
    }

    #[test]
    fn hex_round_trips_and_rejects_garbage() {
        let print = Fingerprint {
            video: vec![Some([7; FULL_CELLS]), None],
            audio: vec![-3.5],
        };
        assert_eq!(Fingerprint::from_hex(&print.to_hex()), Some(print.clone()));
        assert_eq!(Fingerprint::from_hex(&print.to_hex()[1..]), None);
        assert_eq!(Fingerprint::from_hex("zz"), None);
    }

    #[test]
    fn bytes_round_trip_and_reject_garbage() {
        let mut fp = Fingerprinter::new();
        for i in 0..10 {
            fp.add_frame(&frame(64, 48, i as f64 / 10.0, scene(i as f64, 0.0)));
        }
        fp.add_audio(&AudioChunk {
            sample_rate: 8000,
            channels: 1,
            samples: (0..16000).map(|i| (i as f32 * 0.01).sin() * 0.3).collect(),
            pts_s: 0.0,
        });
        let print = fp.finish();
        assert_eq!(print.video.len(), 4);
        assert_eq!(print.audio.len(), 40);
        let bytes = print.to_bytes();
        assert_eq!(Fingerprint::from_bytes(&bytes), Some(print));
        assert_eq!(Fingerprint::from_bytes(&bytes[..bytes.len() - 1]), None);
        assert_eq!(Fingerprint::from_bytes(b"HMFP2\n\xff\xff\xff\xff"), None);
    }

    #[test]
    fn brightness_contrast_crops_and_excerpts_match_other_pictures_do_not() {
        let times = |n: usize| (0..n).map(|i| i as f64 * 0.25);
        let sealed = print_of(times(24).map(|t| frame(160, 90, t, scene(t, 0.0))));
        // Darker, less contrast, a second trimmed from the start.
        let graded = print_of(times(20).map(|t| {
            let f = scene(t + 1.0, 0.0);
            frame(160, 90, t, move |x, y| (f(x, y) as f64 * 0.6 + 30.0) as u8)
        }));
        // 75 % of the area, anchored at the top left, and scaled back up.
        let cropped = print_of(times(24).map(|t| {
            let f = scene(t, 0.0);
            frame(160, 90, t, move |x, y| f(x * 0.866, y * 0.866))
        }));
        let other = print_of(times(24).map(|t| {
            frame(160, 90, t, move |x, y| {
                (128.0 + 60.0 * (x * 9.0 - y * 6.0 + t * 2.0).sin() * (y * 4.0).cos()) as u8
            })
        }));

        for (name, upload) in [("graded", &graded), ("cropped", &cropped)] {
            let s = sealed.compare(upload);
            assert!(s.video.unwrap() >= VIDEO_MATCH, "{name}: {s:?}");
            assert_eq!(s.decision(), ContentMatch::Same, "{name}");
        }
        let s = sealed.compare(&other);
        assert!(s.video.unwrap() <= VIDEO_DIFFERENT, "{s:?}");
        assert_eq!(s.decision(), ContentMatch::Different);
        assert_eq!(
            sealed.compare(&Fingerprint::default()).decision(),
            ContentMatch::Unsure
        );
    }

    #[test]
    fn a_sparse_print_compares_only_where_enough_frames_were_seen() {
        let times = |n: usize| (0..n).map(|i| i as f64 * 0.25);
        let sealed = print_of(times(40).map(|t| frame(160, 90, t, scene(t, 0.0))));
        let sparse_of = |every: usize, other: bool| {
            let mut fp = Fingerprinter::sparse();
            for t in times(40).step_by(every) {
                fp.add_frame(&if other {
                    frame(160, 90, t, move |x, y| {
                        (128.0 + 60.0 * (x * 9.0 - y * 6.0 + t * 2.0).sin() * (y * 4.0).cos()) as u8
                    })
                } else {
                    frame(160, 90, t, scene(t, 0.0))
                });
            }
            fp.finish()
        };
        // One frame every 5 s (long key-frame intervals): the gaps stay empty, not a still
        // picture, so there is too little to score the picture.
        let rare = sparse_of(20, false);
        assert_eq!(rare.video.iter().flatten().count(), 2);
        assert!(rare.video[1..20].iter().all(Option::is_none));
        assert_eq!(sealed.compare(&rare).video, None);
        // One frame a second: enough; the same content still matches, other content not.
        let same = sealed.compare(&sparse_of(4, false)).video.unwrap();
        assert!(same >= VIDEO_MATCH, "{same}");
        let other = sealed.compare(&sparse_of(4, true)).video.unwrap();
        assert!(other <= VIDEO_DIFFERENT, "{other}");
        // Filled in the usual way, the same two frames would pose as a still picture.
        let mut filled = Fingerprinter::new();
        for t in times(40).step_by(20) {
            filled.add_frame(&frame(160, 90, t, scene(t, 0.0)));
        }
        assert_eq!(filled.finish().video.iter().flatten().count(), 21);
    }

    /// `seconds` of a 440 Hz tone at 16 kHz whose amplitude follows `env(t)`, on every one of
    /// `channels` channels.
    fn enveloped_tone(channels: u16, seconds: f32, env: &dyn Fn(f32) -> f32) -> AudioChunk {
        AudioChunk {
            sample_rate: 16000,
            channels,
            samples: (0..(16000.0 * seconds) as usize)
                .flat_map(|i| {
                    let t = i as f32 / 16000.0;
                    let v = env(t) * (t * 440.0 * std::f32::consts::TAU).sin();
                    std::iter::repeat_n(v, usize::from(channels))
                })
                .collect(),
            pts_s: 0.0,
        }
    }

    #[test]
    fn volume_cancels_in_the_sound_envelope() {
        let chunk = |gain: f32| {
            enveloped_tone(2, 8.0, &|t| {
                gain * (((t * 1.3).sin() * (t * 0.7).cos()).abs() + 0.05)
            })
        };
        let of = |c: AudioChunk| {
            let mut fp = Fingerprinter::new();
            fp.add_audio(&c);
            fp.finish()
        };
        let loud = of(chunk(0.5));
        let quiet = of(chunk(0.25));
        let s = loud.compare(&quiet);
        assert!(s.audio.unwrap() > 0.95, "{s:?}");
        assert!(s.video.is_none());
        assert_eq!(s.decision(), ContentMatch::Same);
    }

    /// A sound played 15 % faster (its envelope squeezed in time, as `atempo=1.15` does)
    /// no longer matches its sealed envelope sample by sample; read back at the time scale the
    /// sound's mark was found at, it does, and other sound still does not.
    #[test]
    fn a_tempo_changed_sound_matches_at_its_time_scale() {
        // A syllable-like envelope: bursts of irregular length and loudness over 12 s.
        let env = |t: f32| {
            let a = ((t * 2.3).sin() * (t * 0.61).cos() + (t * 5.1).sin() * 0.5).abs();
            a * a + 0.02
        };
        let chunk = |speed: f32, seconds: f32, f: &dyn Fn(f32) -> f32| {
            enveloped_tone(1, seconds, &|t| f(t * speed))
        };
        let of = |c: AudioChunk| {
            let mut fp = Fingerprinter::new();
            fp.add_audio(&c);
            fp.finish()
        };
        let sealed = of(chunk(1.0, 12.0, &env));
        let faster = of(chunk(1.15, 12.0 / 1.15, &env));
        let other = of(chunk(1.15, 12.0 / 1.15, &|t| env(t * 1.7 + 3.0)));
        let time_scale = 1.0 / 1.15;
        let plain = sealed.compare(&faster);
        assert_ne!(plain.decision(), ContentMatch::Same, "{plain:?}");
        let scaled = sealed.compare_with_sound_scale(&faster, Some(time_scale));
        assert!(scaled.audio.unwrap() >= AUDIO_MATCH, "{scaled:?}");
        assert_eq!(scaled.decision(), ContentMatch::Same);
        let s = sealed.compare_with_sound_scale(&other, Some(time_scale));
        assert!(s.audio.unwrap() < AUDIO_MATCH, "{s:?}");
        // No scale, or 1, is the plain comparison.
        assert_eq!(sealed.compare_with_sound_scale(&faster, Some(1.0)), plain);
    }
}
