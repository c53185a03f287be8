//! Feeding a decoded clip through the detection models. Picture: the decoder runs on the
//! calling thread, the model (and the watermark statistics) on a second one, joined by a
//! bounded channel, so decoding and detection overlap and memory stays bounded (a few
//! batches of luma planes). Sound: [`AudioScan`] batches analysis frames through the sound
//! model on the thread that hands it the chunks (the decoder's; it costs little there).

use std::collections::BTreeSet;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use candle_core::Device;
use hallmark_media::{
    AudioChunk, Decoder, FrameSelection, MediaFrame, MediaInfo, PictureTwin, PixelLayout,
    VideoFrame,
};
use hallmark_watermark::{
    fine_rows, frame_luma, AnalysisGrid, AudioDetection, AudioDetector, VideoDetection,
    VideoDetector, WatermarkKey,
};

use hallmark_store::Fingerprinter;

use crate::audio_model::{self, BandEnergyModel};
use crate::model::{self, Config, ResidualModel};
use crate::VideoScan;

// Declared here rather than in lib.rs: the scan is what feeds it.
#[path = "third_party.rs"]
pub mod third_party;

/// Where a verify's time goes: with `HALLMARK_SCAN_TIMES` set, each stage's end (seconds
/// since the first mark of the process, and the process's CPU seconds) and the time spent
/// on the work beside the decoders (wall, waiting for a core included) are printed on
/// stderr. For measuring the scan's cost against decoding alone (`scripts/bench`); silent
/// otherwise.
pub mod stage_times {
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    fn start() -> Instant {
        static START: OnceLock<Instant> = OnceLock::new();
        *START.get_or_init(Instant::now)
    }

    /// Whether `HALLMARK_SCAN_TIMES` is set (read once).
    pub fn enabled() -> bool {
        static ON: OnceLock<bool> = OnceLock::new();
        *ON.get_or_init(|| {
            let on = std::env::var_os("HALLMARK_SCAN_TIMES").is_some();
            if on {
                start();
            }
            on
        })
    }

    /// Prints that `what` ended now, with the process's CPU seconds so far.
    pub fn mark(what: &str) {
        if enabled() {
            eprintln!(
                "[scan-times] {:7.3} s  cpu {:6.2} s  {what}",
                start().elapsed().as_secs_f64(),
                cpu_s()
            );
        }
    }

    /// User + system CPU seconds of the process (Linux; 0 elsewhere).
    fn cpu_s() -> f64 {
        let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
            return 0.0;
        };
        // Fields 14 and 15 (utime, stime, in clock ticks of 1/100 s) after the name.
        let Some(rest) = stat.rsplit_once(") ").map(|(_, rest)| rest) else {
            return 0.0;
        };
        let ticks: f64 = rest
            .split(' ')
            .skip(11)
            .take(2)
            .filter_map(|t| t.parse::<f64>().ok())
            .sum();
        ticks / 100.0
    }

    /// Prints the time `what` took in all.
    pub fn busy(what: &str, took: Duration) {
        if enabled() {
            eprintln!("[scan-times]   busy {:7.3} s  {what}", took.as_secs_f64());
        }
    }
}

/// Times `f` into `total` when stage times are on.
fn timed<T>(total: &mut Duration, f: impl FnOnce() -> T) -> T {
    if !stage_times::enabled() {
        return f();
    }
    let t = Instant::now();
    let out = f();
    *total += t.elapsed();
    out
}

/// One decoded frame's luma plane.
struct Luma {
    w: usize,
    h: usize,
    pts_s: f64,
    y: Vec<u8>,
    /// The decoding part it came from (0, or 1 for a split scan's second): the camera's
    /// motion is followed frame to frame within a part.
    part: usize,
}

impl Luma {
    fn of(mut frame: VideoFrame, part: usize) -> Option<Luma> {
        let (w, h, pts_s) = (frame.width as usize, frame.height as usize, frame.pts_s);
        let y = if frame.layout == PixelLayout::Yuv420p && frame.validate().is_ok() {
            std::mem::take(&mut frame.planes[0])
        } else {
            frame_luma(&frame)?.into_owned()
        };
        (w > 0 && h > 0 && y.len() >= w * h).then_some(Luma {
            w,
            h,
            pts_s,
            y,
            part,
        })
    }
}

/// Clips with at least this much video are analysed from their reference frames only
/// (see [`scan`]); shorter ones from every frame.
pub const ALL_FRAMES_BELOW_S: f64 = 4.0;

impl VideoScan {
    /// What the full scan ([`scan`]) analyses of a clip: every frame of a clip shorter than
    /// [`ALL_FRAMES_BELOW_S`] (or of unknown length), else its reference frames.
    pub fn full(info: &MediaInfo) -> VideoScan {
        if info.duration_s.is_some_and(|d| d >= ALL_FRAMES_BELOW_S) {
            VideoScan::ReferenceFrames
        } else {
            VideoScan::AllFrames
        }
    }

    /// The decoder setting that yields these frames.
    pub fn selection(self) -> FrameSelection {
        match self {
            VideoScan::KeyFrames => FrameSelection::Key,
            VideoScan::ReferenceFrames => FrameSelection::Reference,
            VideoScan::AllFrames => FrameSelection::All,
        }
    }
}

/// How much of a clip's picture a scan got through: what [`scan`] and [`scan_frames`] return.
/// A packet the decoder cannot decode is counted and skipped (the scan goes on with the next
/// ones: a corrupt stretch in the middle leaves the rest analysed); only an error that ends
/// the decoding itself (the file unreadable from some point on) stops the scan early.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScanCoverage {
    /// Packets (picture and sound) the decoders rejected as corrupt and skipped, both
    /// parts of a split scan together.
    pub decode_errors: u64,
    /// Picture frames handed to the detector.
    pub frames_analysed: u64,
    /// Seconds of the picture with at least one analysed frame (second `k` is
    /// `[k, k+1)` of the frames' times): the whole clip's length, rounded up, when nothing
    /// was lost and every second has a frame the scan selects (a key-frame scan covers
    /// only the seconds its key frames fall in).
    pub seconds_analysed: f64,
    /// The file's length in seconds, when its container says (`MediaInfo::duration_s`).
    pub total_s: Option<f64>,
    /// The error that ended the decoding before the end of the file, if one did (what
    /// follows it was not analysed).
    pub stopped_by: Option<String>,
    /// Other generators' default watermarks, tested on a sample of the analysed frames
    /// ([`third_party`]): one entry per known generator, most significant first; empty
    /// when no picture frame was analysed.
    pub third_party: Vec<hallmark_watermark::ThirdPartyMark>,
}

/// Decodes `decoder`'s clip and feeds the video frames through the detection model (on
/// [`model::default_device`]) into `detector`, and into `pictures` (the picture half of a
/// fingerprint) when given; frames decoded on this thread — every sound chunk, and the
/// video frames of the first part (below) — are first shown to `inspect`.
///
/// A clip of [`ALL_FRAMES_BELOW_S`] or more is decoded without its non-reference frames
/// (typically the B-frames no other frame predicts from; nothing is skipped in streams
/// without them): they are the most compressed, so carry the least of the mark, and they
/// are a third to a half of the decoding work. The p-value stays what it says: it is
/// computed on the frames actually analysed (`frames_analysed`), and which frames those are
/// does not depend on the key.
pub fn scan(
    decoder: &mut Decoder,
    detector: &mut VideoDetector,
    pictures: Option<&mut Fingerprinter>,
    inspect: impl FnMut(&MediaFrame),
) -> ScanCoverage {
    let how = VideoScan::full(decoder.info());
    scan_frames(decoder, detector, how, pictures, inspect)
}

/// Neither part of a split clip is shorter than this (see [`scan_frames`]).
pub const MIN_SPLIT_PART_S: f64 = 1.0;

/// [`scan`] over the frames `how` selects (from the decoder's next packet on).
///
/// A reference-frame scan with two or more cores is split in two at the key frame nearest
/// the middle of the clip (when both parts are at least [`MIN_SPLIT_PART_S`]): a
/// second decoder, picture only, takes the clip from that key frame on, on its own thread,
/// while `decoder` stops its picture there and goes on with the sound. A chain of
/// reference frames is decoded nearly one frame at a time however many threads the decoder
/// has (each frame waits for the one it is predicted from), while two chains from two key
/// frames run side by side. Every analysed frame is still analysed exactly once: the first
/// part ends before the key frame's time, the second drops anything stamped before it.
pub fn scan_frames(
    decoder: &mut Decoder,
    detector: &mut VideoDetector,
    how: VideoScan,
    pictures: Option<&mut Fingerprinter>,
    inspect: impl FnMut(&MediaFrame),
) -> ScanCoverage {
    scan_frames_with_progress(decoder, detector, how, pictures, None, inspect)
}

/// Told how far a scan has come: the stretch of the clip's picture covered so far, in
/// seconds (both parts of a split scan together), as each frame reaches the model's thread.
pub type ProgressFn<'a> = &'a (dyn Fn(f64) + Sync);

/// [`scan_frames`], telling `progress` how far it has come.
pub fn scan_frames_with_progress(
    decoder: &mut Decoder,
    detector: &mut VideoDetector,
    how: VideoScan,
    pictures: Option<&mut Fingerprinter>,
    progress: Option<ProgressFn>,
    inspect: impl FnMut(&MediaFrame),
) -> ScanCoverage {
    scan_inner(
        decoder,
        Some(detector),
        false,
        how,
        pictures,
        progress,
        inspect,
        || {},
    )
    .0
}

/// [`scan_frames_with_progress`], then the picture's mark tested: `detector.result()`,
/// run on the model's thread as soon as its last frame is in, while this thread tests
/// the third-party marks — the two searches overlap instead of following each other.
///
/// `meanwhile` runs on this thread once `inspect` has seen its last frame (this decoder's
/// part decoded: a split scan's second part, picture only, may still be decoding), beside
/// the rest of the decoding and the picture's search: the sound's tests, for one.
pub fn scan_and_test(
    decoder: &mut Decoder,
    detector: &mut VideoDetector,
    how: VideoScan,
    pictures: Option<&mut Fingerprinter>,
    progress: Option<ProgressFn>,
    inspect: impl FnMut(&MediaFrame),
    meanwhile: impl FnOnce(),
) -> (ScanCoverage, VideoDetection) {
    let (coverage, found) = scan_inner(
        decoder,
        Some(detector),
        true,
        how,
        pictures,
        progress,
        inspect,
        meanwhile,
    );
    (
        coverage,
        found.expect("the worker tests the mark when asked"),
    )
}

/// The scan of a verifier that holds no watermark key: the same decoding, third-party
/// sampler and coverage as [`scan_frames_with_progress`], without hallmark's model — with
/// no key there is no mark to look for, so the frames are only counted.
pub fn scan_without_mark(
    decoder: &mut Decoder,
    how: VideoScan,
    progress: Option<ProgressFn>,
    inspect: impl FnMut(&MediaFrame),
) -> ScanCoverage {
    scan_inner(decoder, None, false, how, None, progress, inspect, || {}).0
}

/// The scan behind the public entry points: `detector` `None` counts the frames without
/// the model; `test` has the model's thread compute `detector.result()` at the end.
#[allow(clippy::too_many_arguments)]
fn scan_inner(
    decoder: &mut Decoder,
    detector: Option<&mut VideoDetector>,
    test: bool,
    how: VideoScan,
    mut pictures: Option<&mut Fingerprinter>,
    progress: Option<ProgressFn>,
    mut inspect: impl FnMut(&MediaFrame),
    meanwhile: impl FnOnce(),
) -> (ScanCoverage, Option<VideoDetection>) {
    stage_times::mark("scan starts");
    let errors_before = decoder.decode_errors();
    decoder.select_video_frames(how.selection());
    let duration = decoder.info().duration_s;
    let may_split = how == VideoScan::ReferenceFrames
        && cores() >= 2
        && decoder.info().video.is_some()
        && duration.is_some_and(|d| d >= 2.0 * MIN_SPLIT_PART_S);
    if may_split {
        // Two decoders would share the cores: half of them each (see `set_video_threads`),
        // set before the first packet, so before the second decoder has found its key
        // frame. Should none be found (one key frame in the clip) this decoder keeps half
        // the cores: a chain of reference frames keeps little more than one busy anyway.
        let _ = decoder.set_video_threads(threads_per_part());
    }
    let config = Config::default();
    // One channel per part, read in turn ([`InTurn`]): the detector then sees the frames in
    // the same order on every run, whichever decoder is ahead.
    let (tx, rx) = sync_channel::<Luma>(config.batch_size);
    let (later_tx, later_rx) = sync_channel::<Luma>(config.batch_size);
    let frames_in_turn = InTurn::new(vec![rx, later_rx]);
    let print_later = pictures.is_some();
    // Where the second part starts, once its decoder has found the key frame.
    let split_at = OnceLock::<f64>::new();
    let (split_tx, split_rx) = std::sync::mpsc::channel::<Option<f64>>();
    let mut coverage = ScanCoverage {
        total_s: duration,
        ..ScanCoverage::default()
    };
    let mut found = None;
    std::thread::scope(|s| {
        let split_at = &split_at;
        let worker = s.spawn(move || {
            let covered = progress.map(|report| Coverage::new(split_at, report));
            let mut detector = detector;
            let counted = run_model(
                frames_in_turn,
                detector.as_deref_mut(),
                config,
                model::default_device(),
                covered,
            );
            let found = detector.filter(|_| test).map(|d| d.result());
            stage_times::mark("picture's mark tested (model's thread)");
            (counted, found)
        });
        // The second part's decoder is opened and sought on its own thread while this one
        // starts decoding (opening takes as long as decoding the first few frames): this
        // decoder waits for the answer only at the earliest frame a split could begin.
        let split_tx = may_split.then_some(split_tx);
        let later_tx = may_split.then_some(later_tx);
        let twin = may_split.then(|| decoder.picture_twin()).flatten();
        let later = split_tx.zip(later_tx).map(|(split_tx, tx)| {
            s.spawn(move || {
                let part = twin.and_then(|twin| second_part(&twin, duration));
                stage_times::mark("second decoder opened");
                if let Some((_, from_s)) = &part {
                    let _ = split_at.set(*from_s);
                }
                let _ = split_tx.send(part.as_ref().map(|(_, from_s)| *from_s));
                let (mut later, from_s) = part?;
                let mut print = print_later.then(Fingerprinter::new);
                let mut sampled = third_party::Sampler::new();
                let mut busy = Busy::default();
                let stopped_by = loop {
                    let frame = match later.next_frame() {
                        Ok(Some(frame)) => frame,
                        Ok(None) => break None,
                        Err(e) => break Some(e.to_string()),
                    };
                    let MediaFrame::Video(frame) = frame else {
                        continue;
                    };
                    if frame.pts_s < from_s {
                        continue; // a leading picture of an open GOP: the first part's
                    }
                    if !analyse(frame, 1, print.as_mut(), &mut sampled, &tx, &mut busy) {
                        break None;
                    }
                };
                stage_times::mark("second part decoded");
                busy.report("second part");
                Some((print, later.decode_errors(), stopped_by, sampled))
            })
        });
        // Where this part ends: unknown (`None`) until the second decoder has answered.
        let mut split: Option<Option<f64>> = (!may_split).then_some(None);
        let mut sampled = third_party::Sampler::new();
        let mut busy = Busy::default();
        let stopped_by = loop {
            let frame = match decoder.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => break None,
                Err(e) => break Some(e.to_string()),
            };
            if let MediaFrame::Video(v) = &frame {
                // No split begins before MIN_SPLIT_PART_S: frames before it are this part's
                // whatever the answer; later ones wait for it.
                if split.is_none()
                    && v.pts_s.partial_cmp(&MIN_SPLIT_PART_S) != Some(std::cmp::Ordering::Less)
                {
                    let answer = timed(&mut busy.split, || split_rx.recv().ok().flatten());
                    if let Some(from_s) = answer {
                        decoder.end_video_at(from_s);
                    }
                    split = Some(answer);
                }
                if let Some(Some(from_s)) = split {
                    if v.pts_s >= from_s {
                        // The second part's, decoded before this part knew where it ends.
                        continue;
                    }
                }
            }
            inspect(&frame);
            if let MediaFrame::Video(frame) = frame {
                if !analyse(
                    frame,
                    0,
                    pictures.as_deref_mut(),
                    &mut sampled,
                    &tx,
                    &mut busy,
                ) {
                    break None;
                }
            }
        };
        stage_times::mark("first part decoded");
        busy.report("first part");
        drop(tx);
        coverage.decode_errors = decoder.decode_errors().saturating_sub(errors_before);
        coverage.stopped_by = stopped_by;
        // Every frame `inspect` will see has come (a second part's decoder reads no sound):
        // the sound is tested now, beside the second part's last frames when this part
        // ends first (it opened first, and it hears the sound), else beside the picture's
        // search.
        drop(inspect);
        meanwhile();
        stage_times::mark("meanwhile done");
        if let Some(later) = later {
            if let Some((print, errors, stopped_by, later_sampled)) =
                later.join().expect("second decoding thread panicked")
            {
                sampled.merge(later_sampled);
                if let (Some(p), Some(print)) = (pictures, print) {
                    p.append_video(print);
                }
                coverage.decode_errors += errors;
                coverage.stopped_by = coverage.stopped_by.take().or(stopped_by);
            }
        }
        stage_times::mark("both parts decoded");
        // Beside the model's last batches and, with `test`, its search.
        coverage.third_party = sampled.finish();
        stage_times::mark("third-party marks tested");
        let ((frames, seconds), tested) = worker.join().expect("detection thread panicked");
        stage_times::mark("model's thread done");
        coverage.frames_analysed = frames;
        coverage.seconds_analysed = seconds as f64;
        found = tested;
    });
    (coverage, found)
}

/// One decoded frame into the picture fingerprint (when kept), past the third-party
/// sampler and on to the model thread; false once that thread is gone.
fn analyse(
    frame: VideoFrame,
    part: usize,
    print: Option<&mut Fingerprinter>,
    sampled: &mut third_party::Sampler,
    tx: &SyncSender<Luma>,
    busy: &mut Busy,
) -> bool {
    if let Some(p) = print {
        timed(&mut busy.print, || p.add_frame(&frame));
    }
    timed(&mut busy.sample, || sampled.offer(&frame));
    timed(&mut busy.send, || {
        Luma::of(frame, part).is_none_or(|luma| tx.send(luma).is_ok())
    })
}

/// Time a decoding thread spent on other work than decoding ([`stage_times`]).
#[derive(Default)]
struct Busy {
    print: Duration,
    sample: Duration,
    /// Handing the luma to the model's thread, waiting when its channel is full.
    send: Duration,
    /// Waiting for the second decoder to say where the split is.
    split: Duration,
}

impl Busy {
    fn report(&self, part: &str) {
        stage_times::busy(&format!("{part}: fingerprint"), self.print);
        stage_times::busy(&format!("{part}: third-party sampler"), self.sample);
        stage_times::busy(&format!("{part}: to the model (waits)"), self.send);
        stage_times::busy(&format!("{part}: waiting for the split"), self.split);
    }
}

/// Decoding threads for each of the two parts of a split scan: half the cores (one each on
/// two cores, where FFmpeg's automatic frame threading would run four threads on two).
fn threads_per_part() -> usize {
    (cores() / 2).max(1)
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A second decoder of the first one's file (`twin`), picture only, started at the key
/// frame nearest the middle of the clip (the last one before it or the first one after
/// it), and that key frame's time; `None` where a split would not pay (a short clip, no
/// key frame in the right place, no seeking). One decoder, opened without the stream
/// analysis; the two key frames are found from packets, only the chosen one is decoded
/// (a decoder per candidate, each analysing the file, cost ≈ 5 % of a 1080p scan's CPU).
fn second_part(twin: &PictureTwin, duration: Option<f64>) -> Option<(Decoder, f64)> {
    let duration = duration?;
    let middle = duration / 2.0;
    let mut later = twin.open(threads_per_part()).ok()?;
    later.select_video_frames(FrameSelection::Reference);
    let usable =
        |from_s: &f64| *from_s >= MIN_SPLIT_PART_S && *from_s <= duration - MIN_SPLIT_PART_S;
    // The first of the nearest, as before.
    let after = [false, true]
        .into_iter()
        .filter_map(|after| {
            Some((
                after,
                later.video_key_frame_time(middle, after).filter(usable)?,
            ))
        })
        .min_by(|a, b| (a.1 - middle).abs().total_cmp(&(b.1 - middle).abs()))?
        .0;
    let from_s = later.start_video_at_key_frame(middle, after).ok()??;
    usable(&from_s).then_some((later, from_s))
}

/// How much of the clip's time the analysed frames cover: the first part from 0, a split
/// scan's second part from its key frame on (its frames come interleaved with the first's;
/// the key frame's time is known before the first of them is sent).
struct Coverage<'a> {
    split_at: &'a OnceLock<f64>,
    first: f64,
    second: f64,
    report: ProgressFn<'a>,
}

impl<'a> Coverage<'a> {
    fn new(split_at: &'a OnceLock<f64>, report: ProgressFn<'a>) -> Coverage<'a> {
        Coverage {
            split_at,
            first: 0.0,
            second: 0.0,
            report,
        }
    }

    fn frame_at(&mut self, pts_s: f64) {
        if !pts_s.is_finite() {
            return;
        }
        match self.split_at.get() {
            Some(&split) if pts_s >= split => self.second = self.second.max(pts_s - split),
            _ => self.first = self.first.max(pts_s),
        }
        (self.report)(self.first + self.second);
    }
}

/// The frames of a scan's decoding parts, one from each part in turn (a part whose
/// decoder has ended is passed over): an order that does not depend on which decoder runs
/// ahead. Taken as they came (one channel for both parts), the inset finder's searches,
/// made as the frames arrive, saw other frames from one run to the next: a zoomed copy's
/// picture was found inside a passing "inset" in 1 verify of 7 (p 8.3e-15 or 8.8e-15).
struct InTurn {
    parts: Vec<Receiver<Luma>>,
    /// Parts whose decoder has not ended.
    open: Vec<bool>,
    next: usize,
}

impl InTurn {
    fn new(parts: Vec<Receiver<Luma>>) -> Self {
        let open = vec![true; parts.len()];
        InTurn {
            parts,
            open,
            next: 0,
        }
    }
}

impl Iterator for InTurn {
    type Item = Luma;

    fn next(&mut self) -> Option<Luma> {
        while self.open.iter().any(|&o| o) {
            let part = self.next;
            self.next = (self.next + 1) % self.parts.len();
            if !self.open[part] {
                continue;
            }
            match self.parts[part].recv() {
                Ok(luma) => return Some(luma),
                Err(_) => self.open[part] = false,
            }
        }
        None
    }
}

/// Batches frames of one size and runs them through the model into `detector` (without
/// one, only counts them); returns how many frames it analysed and in how many distinct
/// seconds (see [`ScanCoverage::seconds_analysed`]).
fn run_model(
    in_turn: impl Iterator<Item = Luma>,
    mut detector: Option<&mut VideoDetector>,
    config: Config,
    device: &Device,
    mut covered: Option<Coverage>,
) -> (u64, usize) {
    let batch_size = config.batch_size;
    // The fine residual (`fine_rows`: 256 rows, 512 for portrait frames) for the detector's
    // fine stage, only where that stage may run (not the key-frame pass); its model is
    // made for the first frame's shape and remade should the rows change.
    let mut model = detector.as_deref().map(|d| Models {
        coarse: ResidualModel::new(config.clone(), device).ok(),
        fine: None,
        fine_failed: false,
        handed: 0,
        wants_fine: d.wants_fine_residual(),
        config,
        device: device.clone(),
    });
    let mut batch: Vec<Luma> = Vec::with_capacity(batch_size);
    let mut frames = 0u64;
    // One entry per second that had a frame: at most one per frame, a few kB per hour.
    let mut seconds = BTreeSet::new();
    let mut busy = Duration::ZERO;
    for luma in in_turn {
        if let Some(c) = covered.as_mut() {
            c.frame_at(luma.pts_s);
        }
        frames += 1;
        if luma.pts_s.is_finite() {
            seconds.insert(luma.pts_s.max(0.0).floor() as u64);
        }
        let Some(detector) = detector.as_deref_mut() else {
            continue;
        };
        if batch
            .first()
            .is_some_and(|f| (f.w, f.h) != (luma.w, luma.h))
        {
            timed(&mut busy, || flush(&mut model, &mut batch, detector));
        }
        batch.push(luma);
        if batch.len() == batch_size {
            timed(&mut busy, || flush(&mut model, &mut batch, detector));
        }
    }
    if let Some(detector) = detector {
        timed(&mut busy, || flush(&mut model, &mut batch, detector));
    }
    stage_times::busy("model thread", busy);
    (frames, seconds.len())
}

/// The scan computes the fine residual of every this-many-th frame (the fine stage tests
/// the whole clip's sum only). Every frame for now: with every third (model thread of a
/// 10 s 1080p scan 0.99 s → 0.34 s busy, under load) the picture-in-picture's region in
/// `verify-cli/tests/geometry.rs` came out as the whole frame (2 s clip, a third of its
/// frames in the fine sum).
const FINE_FRAME_STEP: u64 = 1;

/// The residual models of one scan: the 128-row one and, where the detector's fine stage
/// may run, the fine one ([`fine_rows`]). `None` for a model that failed (a GPU
/// error): its residuals then come from the plain-Rust path, which computes the same.
struct Models {
    coarse: Option<ResidualModel>,
    fine: Option<ResidualModel>,
    /// A fine model failed: the rest of the clip takes the plain path for it.
    fine_failed: bool,
    /// Frames handed to the models so far.
    handed: u64,
    wants_fine: bool,
    config: Config,
    device: Device,
}

/// Runs one batch through the models into the detector: every frame's 128-row residual
/// and, when wanted, its fine one. Should a model fail (a GPU error), this batch and the
/// rest of the clip take the plain-Rust path for that grid, which computes the same
/// residuals.
fn flush(models: &mut Option<Models>, batch: &mut Vec<Luma>, detector: &mut VideoDetector) {
    if batch.is_empty() {
        return;
    }
    let Some(m) = models.as_mut() else {
        batch.clear();
        return;
    };
    let (w, h) = (batch[0].w, batch[0].h);
    let rows = fine_rows(w, h);
    if m.wants_fine
        && !m.fine_failed
        && m.fine
            .as_ref()
            .is_none_or(|f| f.config().analysis_rows != rows)
    {
        let config = Config {
            analysis_rows: rows,
            ..m.config.clone()
        };
        m.fine = ResidualModel::new(config, &m.device).ok();
        m.fine_failed = m.fine.is_none();
    }
    let planes: Vec<&[u8]> = batch.iter().map(|f| &f.y[..w * h]).collect();
    // Every FINE_FRAME_STEP-th frame the model is handed (counted over the clip).
    let picked: Vec<bool> = (0..batch.len() as u64)
        .map(|i| m.wants_fine && (m.handed + i).is_multiple_of(FINE_FRAME_STEP))
        .collect();
    let any_fine = picked.contains(&true);
    // Both grids in one call (one pass over each frame where the grids nest); should that
    // fail (a GPU error), each model alone, and a model that fails alone is dropped.
    let together = match (m.coarse.as_mut(), m.fine.as_mut().filter(|_| any_fine)) {
        (Some(c), Some(f)) => c.forward_planes(&planes, w, h, Some((f, &picked))).ok(),
        _ => None,
    };
    let (coarse, fine) = match together {
        Some((c, f)) => (Some(c), Some(f)),
        None => {
            let c = m
                .coarse
                .as_mut()
                .and_then(|c| c.forward_planes(&planes, w, h, None).ok());
            if c.is_none() {
                m.coarse = None;
            }
            let chosen = model::picked_planes(&planes, &picked);
            let f = m
                .fine
                .as_mut()
                .filter(|_| any_fine)
                .and_then(|f| f.forward_planes(&chosen, w, h, None).ok());
            if f.is_none() && any_fine {
                m.fine = None;
                m.fine_failed = true;
            }
            (c.map(|c| c.0), f.map(|f| f.0))
        }
    };
    let coarse_size = m.coarse.as_mut().and_then(|c| c.grid_size(w, h).ok());
    match coarse.zip(coarse_size) {
        Some((r, (wa, ha))) => {
            for (f, r) in batch.iter().zip(r.chunks_exact(wa * ha)) {
                detector.add_residual_of_frame(r, (wa, ha), (w, h), f.pts_s);
                detector.add_riding(&f.y[..w * h], (w, h), f.pts_s, f.part, r);
            }
        }
        None => {
            let grid = AnalysisGrid::for_reading(w, h, hallmark_watermark::ANALYSIS_ROWS);
            let (wa, ha) = grid.grid_size();
            for f in batch.iter() {
                let r = grid.residual(&f.y[..w * h]);
                detector.add_residual_of_frame(&r, (wa, ha), (w, h), f.pts_s);
                detector.add_riding(&f.y[..w * h], (w, h), f.pts_s, f.part, &r);
            }
        }
    }
    // A picture inside bars (letterboxed, padded) is also tested on its own grid: its
    // residual from the plain path, and nothing at all for frames without bars.
    for f in batch.iter() {
        detector.add_content_box(&f.y[..w * h], (w, h), f.pts_s, f.part);
    }
    if any_fine {
        let fine_size = m.fine.as_mut().and_then(|f| f.grid_size(w, h).ok());
        match fine.zip(fine_size) {
            Some((r, (wa, ha))) => {
                // The model ran on the picked frames, in order.
                let frames = batch.iter().zip(&picked).filter(|p| *p.1);
                for ((f, _), r) in frames.zip(r.chunks_exact(wa * ha)) {
                    detector.add_fine_residual(r, wa, ha, f.pts_s);
                }
            }
            None => {
                let grid = AnalysisGrid::for_reading(w, h, rows);
                let (wa, ha) = grid.grid_size();
                for (f, _) in batch.iter().zip(&picked).filter(|p| *p.1) {
                    detector.add_fine_residual(&grid.residual(&f.y[..w * h]), wa, ha, f.pts_s);
                }
            }
        }
    }
    m.handed += batch.len() as u64;
    batch.clear();
}

/// The sound detector with its front end as the candle model: chunks are framed by the
/// watermark crate (`AudioDetector::push_chunk` / `take_frames`: downmix, resampling to
/// 16 kHz, 512-sample frames every 4 ms), measured [`audio_model::Config::batch_size`]
/// frames at a time by [`BandEnergyModel`] and handed back as band energies
/// (`add_band_energies`). Memory: one batch of frames plus the resampled chunk. On the
/// CPU by default ([`audio_model::Config::plain_cpu`]) the plain path measures them.
///
/// Should the model fail to build or to run a batch (a GPU error), that batch and the rest
/// of the sound take the plain-Rust path (`AudioDetector::add_frames` / `add_chunk`),
/// which computes the same energies with an FFT.
pub struct AudioScan {
    detector: AudioDetector,
    model: Option<BandEnergyModel>,
    batch_size: usize,
    /// Frames taken, not yet measured (fewer than `batch_size`).
    frames: Vec<f32>,
    /// The format (rate, channels) of the first well-formed chunk: later chunks must match.
    format: Option<(u32, u16)>,
    /// Seconds of sound in the chunks taken, and chunks refused.
    seconds_heard: f64,
    chunks_ignored: u64,
    /// No key to look for (a keyless verifier): the chunks are only counted.
    count_only: bool,
    /// The tests run early ([`AudioScan::test_now`]) on everything taken so far; cleared by
    /// any later chunk, so [`AudioScan::finish`] never returns a result that misses sound.
    tested: Option<AudioDetection>,
}

impl AudioScan {
    /// A sound scan for any of `keys`, its model on [`model::default_device`]. With no key
    /// there is no mark to look for: the chunks are only counted ([`AudioScan::seconds_heard`]).
    pub fn new(keys: &[WatermarkKey]) -> AudioScan {
        AudioScan::with_model(
            keys,
            audio_model::Config::default(),
            model::default_device(),
        )
    }

    /// A sound scan whose model has `config` and runs on `device`.
    pub fn with_model(
        keys: &[WatermarkKey],
        config: audio_model::Config,
        device: &Device,
    ) -> AudioScan {
        let batch_size = config.batch_size.max(1);
        let count_only = keys.is_empty();
        let plain = config.plain_cpu && device.is_cpu();
        AudioScan {
            detector: AudioDetector::new(keys),
            model: (!count_only && !plain)
                .then(|| BandEnergyModel::new(config, device).ok())
                .flatten(),
            batch_size,
            frames: Vec::new(),
            format: None,
            seconds_heard: 0.0,
            chunks_ignored: 0,
            count_only,
            tested: None,
        }
    }

    /// Seconds of sound handed to the detector so far: the chunks it took, by their sample
    /// count (a stretch the decoder skipped as corrupt is not in them).
    pub fn seconds_heard(&self) -> f64 {
        self.seconds_heard
    }

    /// Chunks refused so far: malformed, or of another format than the first chunk's.
    pub fn chunks_ignored(&self) -> u64 {
        self.chunks_ignored
    }

    /// Whether the detector takes `chunk` (the rule of `AudioDetector::push_chunk`), and
    /// counts it.
    fn take(&mut self, chunk: &AudioChunk) -> bool {
        let ch = usize::from(chunk.channels);
        let well_formed = ch > 0 && chunk.sample_rate > 0 && chunk.samples.len().is_multiple_of(ch);
        let format = (chunk.sample_rate, chunk.channels);
        if !well_formed || *self.format.get_or_insert(format) != format {
            self.chunks_ignored += 1;
            return false;
        }
        self.seconds_heard += (chunk.samples.len() / ch) as f64 / f64::from(chunk.sample_rate);
        true
    }

    /// Whether the candle model is (still) measuring the sound.
    pub fn uses_model(&self) -> bool {
        self.model.is_some()
    }

    /// Adds one chunk of decoded sound (any rate, any channel count; chunks whose format
    /// differs from the first chunk's are ignored, as `AudioDetector::add_chunk` does).
    pub fn add_chunk(&mut self, chunk: &AudioChunk) {
        self.tested = None;
        if !self.take(chunk) || self.count_only {
            return;
        }
        if self.model.is_none() {
            self.detector.add_chunk(chunk);
            return;
        }
        if !self.detector.push_chunk(chunk) {
            return;
        }
        let frame_len = hallmark_watermark::audio_framing().frame_len;
        loop {
            let room = self.batch_size - self.frames.len() / frame_len;
            if self.detector.take_frames(room, &mut self.frames) == 0 {
                break;
            }
            if self.frames.len() / frame_len == self.batch_size {
                self.flush();
            }
        }
    }

    /// Measures the frames held (a partial batch) and adds their energies.
    fn flush(&mut self) {
        if self.frames.is_empty() {
            return;
        }
        let energies = self.model.as_ref().map(|m| m.energies(&self.frames));
        // add_band_energies checks the length before it adds anything.
        let added =
            energies.is_some_and(|e| e.is_ok_and(|e| self.detector.add_band_energies(&e).is_ok()));
        if !added {
            self.model = None;
            self.detector
                .add_frames(&self.frames)
                .expect("take_frames hands out whole frames");
        }
        self.frames.clear();
    }

    /// Runs the detector's tests now on everything added so far (kept for [`finish`]
    /// unless more sound comes): the scan calls it on the decoding thread once the file is
    /// decoded, while the model's thread tests the picture, so that the two searches
    /// overlap instead of following each other.
    ///
    /// [`finish`]: AudioScan::finish
    pub fn test_now(&mut self) {
        self.flush();
        self.tested = Some(self.detector.result());
    }

    /// Measures what is held and runs the detector's tests on everything added (or returns
    /// those of [`AudioScan::test_now`] when nothing came after it).
    pub fn finish(self) -> AudioDetection {
        self.finish_keeping().0
    }

    /// [`AudioScan::finish`], and the detector with everything added: a clip id named for
    /// the sound's mark afterwards is searched for on it
    /// (`AudioDetector::result_naming`).
    pub fn finish_keeping(mut self) -> (AudioDetection, AudioDetector) {
        let found = match self.tested.take() {
            Some(tested) => tested,
            None => {
                self.flush();
                self.detector.result()
            }
        };
        (found, self.detector)
    }

    /// [`AudioScan::finish_keeping`] with the wider search left out where the plain one
    /// proves the mark without its payload (`AudioDetector::result_deferring_wide`; `true`:
    /// left out). Sound tested early already had it.
    pub fn finish_deferring_wide(mut self) -> (AudioDetection, AudioDetector, bool) {
        let (found, deferred) = match self.tested.take() {
            Some(tested) => (tested, false),
            None => {
                self.flush();
                self.detector.result_deferring_wide()
            }
        };
        (found, self.detector, deferred)
    }

    /// Measures what is held and hands over the detector with everything added: for checks
    /// at fixed registrations (`AudioDetector::score_at`), which `finish` does not report.
    pub fn into_detector(mut self) -> AudioDetector {
        self.flush();
        self.detector
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The model's thread takes the parts' frames in turn, whichever decoder is ahead: here
    /// the second part's every frame is waiting before the first part's first one comes.
    #[test]
    fn the_parts_frames_come_in_turn_whichever_decoder_is_ahead() {
        let luma = |part: usize, i: usize| Luma {
            w: 1,
            h: 1,
            pts_s: i as f64,
            y: vec![0],
            part,
        };
        let (first_tx, first_rx) = sync_channel(1);
        let (second_tx, second_rx) = sync_channel(8);
        for i in 0..5 {
            second_tx.send(luma(1, i)).unwrap();
        }
        drop(second_tx);
        let first = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            for i in 0..3 {
                first_tx.send(luma(0, i)).unwrap();
            }
        });
        let order: Vec<(usize, f64)> = InTurn::new(vec![first_rx, second_rx])
            .map(|l| (l.part, l.pts_s))
            .collect();
        first.join().unwrap();
        assert_eq!(
            order,
            [
                (0, 0.0),
                (1, 0.0),
                (0, 1.0),
                (1, 1.0),
                (0, 2.0),
                (1, 2.0),
                (1, 3.0),
                (1, 4.0)
            ]
        );
    }

    /// The sound tested early (beside the picture's search) is the sound tested at the end
    /// when nothing came after; sound that does come after is not left out.
    #[test]
    fn sound_tested_early_misses_nothing_heard_later() {
        let key = WatermarkKey::generate(1).unwrap();
        let noise = |from_s: f64| {
            let mut x = 0x9e37_79b9u32;
            AudioChunk {
                sample_rate: 16_000,
                channels: 1,
                samples: (0..16_000 * 3)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        (x as f32 / u32::MAX as f32 - 0.5) * 0.2
                    })
                    .collect(),
                pts_s: from_s,
            }
        };
        let mut early = AudioScan::new(std::slice::from_ref(&key));
        let mut whole = AudioScan::new(std::slice::from_ref(&key));
        early.add_chunk(&noise(0.0));
        whole.add_chunk(&noise(0.0));
        early.test_now();
        let first = early.tested.as_ref().unwrap().windows_analysed;
        early.add_chunk(&noise(3.0));
        whole.add_chunk(&noise(3.0));
        let (early, whole) = (early.finish(), whole.finish());
        assert!(
            early.windows_analysed > first,
            "{} vs {first}",
            early.windows_analysed
        );
        assert_eq!(early.windows_analysed, whole.windows_analysed);
        assert_eq!(early.score, whole.score);
    }

    fn shared(rel: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/media")
            .join(rel)
    }

    fn open(rel: &str) -> Decoder {
        hallmark_media::init();
        Decoder::open(&shared(rel), PixelLayout::Yuv420p).expect("a shared clip")
    }

    fn key() -> WatermarkKey {
        WatermarkKey::from_secret([7; 32], 1)
    }

    /// A verifier without a watermark key skips the model, nothing else: the same frames
    /// decoded and counted, the same seconds, the same third-party sample and marks, the
    /// same sound heard (counted, not analysed). bikes.mp4 is split between two decoders
    /// (its key frame at 5.48 s); bigbuckbunny.mp4 has sound.
    #[test]
    fn a_keyless_scan_covers_what_a_keyed_one_does() {
        for clip in ["video/bikes.mp4", "video/bigbuckbunny.mp4"] {
            let k = key();
            let mut keyed_sound = AudioScan::new(std::slice::from_ref(&k));
            let mut detector = VideoDetector::new(std::slice::from_ref(&k));
            let mut d = open(clip);
            let how = VideoScan::full(d.info());
            let (keyed, found) = scan_and_test(
                &mut d,
                &mut detector,
                how,
                None,
                None,
                |f| {
                    if let MediaFrame::Audio(c) = f {
                        keyed_sound.add_chunk(c);
                    }
                },
                || {},
            );
            let mut keyless_sound = AudioScan::new(&[]);
            assert!(!keyless_sound.uses_model());
            let mut d = open(clip);
            let keyless = scan_without_mark(&mut d, how, None, |f| {
                if let MediaFrame::Audio(c) = f {
                    keyless_sound.add_chunk(c);
                }
            });
            assert!(keyed.frames_analysed > 0, "{clip}");
            assert_eq!(keyless, keyed, "{clip}");
            assert_eq!(found.frames_analysed, keyed.frames_analysed, "{clip}");
            assert!(!found.detected, "{clip}");
            assert_eq!(
                keyless_sound.seconds_heard(),
                keyed_sound.seconds_heard(),
                "{clip}"
            );
            let heard = keyless_sound.finish();
            assert!(!heard.detected && heard.windows_analysed == 0, "{clip}");
        }
    }

    /// The mark tested on the model's thread sees every frame: the same result as testing
    /// after the scan returns (up to the order the two decoders' frames were summed in).
    #[test]
    fn testing_on_the_models_thread_tests_every_frame() {
        let k = key();
        let mut d = open("video/bikes.mp4");
        let mut after = VideoDetector::new(std::slice::from_ref(&k));
        let covered = scan(&mut d, &mut after, None, |_| {});
        let after = after.result();
        let mut d = open("video/bikes.mp4");
        let mut on_thread = VideoDetector::new(std::slice::from_ref(&k));
        let how = VideoScan::full(d.info());
        let (tested, found) = scan_and_test(&mut d, &mut on_thread, how, None, None, |_| {}, || {});
        assert_eq!(tested, covered);
        assert_eq!(found.frames_analysed, covered.frames_analysed);
        assert_eq!(found.frames_analysed, after.frames_analysed);
        assert_eq!(found.timeline.len(), after.timeline.len());
        assert!((found.score - after.score).abs() < 1e-6 * after.score.abs().max(1.0));
        assert_eq!(found.detected, after.detected);
    }
}
