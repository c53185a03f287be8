//! The verification report: one per file, serialised as `hallmark verify --json` prints it.

use serde::Serialize;

use crate::verdict::{AiClaim, Conflict, CredentialProblem, Stream};

/// Version of the JSON schema. Bump on any incompatible change. 2: the `credential-problem`
/// and `contradicted` verdicts, the mark consulted beside every manifest, `ai_generated`
/// `false` only from a trusted signer, per-stream proof, coverage and audit fields. Added
/// since, compatibly (new fields only): `signals`, `keyframes` (when asked for), the AI
/// sources `third-party-mark` and `metadata` with `found_in`.
pub const SCHEMA: &str = "hallmark.verify/2";

/// What can be proven about a file's origin. Ordered from best to worst news.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Valid manifest, signer on the trust list, content hash matches.
    Verified,
    /// Valid manifest and content hash matches, but the signer is not trusted.
    ValidUntrusted,
    /// The content and the manifest are unchanged since signing, but the signer's
    /// credential has a problem (expired without a trusted time-stamp, revoked, unfit for
    /// C2PA, unsupported algorithm): who signed it is not proven. `credential_problem` says
    /// which.
    CredentialProblem,
    /// The manifest is intact, but the file carries a hallmark mark it does not account
    /// for, or it denies the AI that the mark or the store declares: the manifest hides an
    /// earlier seal (`conflicts` says how).
    Contradicted,
    /// A manifest is present but the content or the manifest changed after signing (hash,
    /// signature or claim integrity), or the watermark names a sealed clip whose
    /// fingerprint this content does not match.
    Tampered,
    /// No valid manifest, but hallmark's watermark is present (watermark issue).
    Watermarked,
    /// Readable media with no C2PA manifest.
    NoProvenance,
    /// The file could not be read.
    Error,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Verified => "verified",
            Verdict::ValidUntrusted => "valid-untrusted",
            Verdict::CredentialProblem => "credential-problem",
            Verdict::Contradicted => "contradicted",
            Verdict::Tampered => "tampered",
            Verdict::Watermarked => "watermarked",
            Verdict::NoProvenance => "no-provenance",
            Verdict::Error => "error",
        }
    }

    pub const ALL: [Verdict; 8] = [
        Verdict::Verified,
        Verdict::ValidUntrusted,
        Verdict::CredentialProblem,
        Verdict::Contradicted,
        Verdict::Tampered,
        Verdict::Watermarked,
        Verdict::NoProvenance,
        Verdict::Error,
    ];
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub file: String,
    pub verdict: Verdict,
    /// What is wrong with the signer's credential, when the manifest has such a failure
    /// (`untrusted` for `valid-untrusted`; the family for `credential-problem`; also set
    /// beside `tampered` when both are wrong).
    pub credential_problem: Option<CredentialProblem>,
    /// `true` when any intact manifest admits it, or the mark or the store declares it;
    /// `false` only when a trusted signer says so and nothing says otherwise; null when
    /// unknown. `ai_evidence` lists every statement and which counted.
    pub ai_generated: Option<bool>,
    pub ai_evidence: Vec<AiClaim>,
    /// Streams whose origin is proven: all of them for a manifest that binds the file, the
    /// streams holding a detected mark otherwise.
    pub proven_streams: Vec<Stream>,
    /// One stream carries a clip's mark and the other clearly does not (or another
    /// clip's): picture and sound come from different sources.
    pub different_sources: bool,
    /// Why the verdict is `contradicted`.
    pub conflicts: Vec<Conflict>,
    /// Every provenance signal found — the manifest, hallmark's marks, other generators'
    /// marks, the metadata — strongest first, each with what it says, how strong it is and
    /// where it was found. Empty: no signal at all (which is no evidence the content is real).
    pub signals: Vec<crate::signals::Signal>,
    /// The verdict in plain words.
    pub summary: String,
    pub c2pa: C2paReport,
    /// hallmark's watermark, looked for in every readable picture and sound whatever the
    /// manifest says; null when it could not be (no watermark key, or unreadable media).
    pub watermark: Option<WatermarkReport>,
    /// What the manifest store said about the watermark's clip id (null when no clip id
    /// was decoded or no store was given).
    pub recovered_manifest: Option<crate::RecoveredManifest>,
    pub media: Option<MediaSummary>,
    /// How much of the file was analysed.
    pub coverage: Option<Coverage>,
    /// What the report was made with, for whoever has to check it later.
    pub audit: Option<Audit>,
    pub error: Option<String>,
    /// The key frames written for reverse image search (`verify --keyframes DIR`); absent
    /// when not asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keyframes: Option<Vec<crate::keyframes::KeyFrameImage>>,
}

/// How much of the file the watermark search saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Coverage {
    /// Packets that failed to decode (skipped; the search went on).
    pub decode_errors: u64,
    /// Seconds of the picture analysed (with at least one analysed frame).
    pub picture_seconds_analysed: Option<f64>,
    /// Seconds of the sound analysed.
    pub sound_seconds_analysed: Option<f64>,
    /// The file's length, as its container says.
    pub duration_s: Option<f64>,
    /// The error that ended decoding before the end of the file, if one did: what follows
    /// it was not analysed.
    pub decoding_stopped: Option<String>,
}

/// The inputs of a report, so that it can be audited.
#[derive(Debug, Clone, Serialize)]
pub struct Audit {
    /// SHA-256 of the file's bytes (hex).
    pub file_sha256: Option<String>,
    pub hallmark_version: &'static str,
    /// When the verification ran (RFC 3339, UTC).
    pub verified_at: String,
    /// SHA-256 of each trust anchor's DER certificate (hex).
    pub trust_anchors_sha256: Vec<String>,
    /// The watermark keys consulted (their public fingerprints).
    pub watermark_keys: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WatermarkReport {
    pub video: Option<MarkResult>,
    /// The sound-track mark (null when the file has no sound).
    pub audio: Option<MarkResult>,
    /// The clip id the marks carry (16 hex digits), from whichever decoded (a detected mark
    /// first).
    pub clip_id: Option<String>,
}

/// Where a mark's payload was named when it did not decode on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PayloadSource {
    /// The sound's mark carries it (for the picture's mark).
    Sound,
    /// The picture's mark carries it (for the sound's mark).
    Picture,
    /// The manifest store: it holds this content as that clip, or (for a mark proven on its
    /// own, when no such clip agrees) that clip is among its newest, every one of which was
    /// tried (`payload_match_p` counts them).
    Store,
}

/// One medium's watermark evidence.
#[derive(Debug, Clone, Serialize)]
pub struct MarkResult {
    /// p ≤ 1e-6 for the whole file.
    pub detected: bool,
    /// 1e-6 < p < 0.01: neither present nor absent.
    pub inconclusive: bool,
    /// Probability that unmarked content scores this high, counting every key, frame, scale
    /// and shift tried, and both passes of a quick scan (an upper bound).
    pub p_value: f64,
    /// Where the payload proved more than the sync pattern: the p-value of the mark's
    /// presence alone. `p_value` counts the payload decoding there (which a copy without the
    /// mark does with probability ≈ 7.7e-5), or a clip id named for it (`payload_named_by`)
    /// agreeing with its coded bits at `payload_match_p` (the two p-values' product, corrected
    /// as such).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence_p_value: Option<f64>,
    pub payload: Option<String>,
    /// Set when `payload` did not decode from the mark alone but was named elsewhere — by
    /// the other stream's mark (the sound's for the picture, the picture's for the sound),
    /// or by the manifest store (a clip it holds this content as) — and then proven by the
    /// mark's coded bits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_named_by: Option<PayloadSource>,
    /// With `payload_named_by`: the probability that a clip id the mark does not carry
    /// agrees with its coded bits as well, times the candidates tried.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_match_p: Option<f64>,
    /// True where the mark was found by searching for the whole tile of the clip id
    /// `payload_named_by` names (every chip known, not only the sync pattern's: about
    /// twice its z); `payload_match_p` is then the coded bits' agreement where it was
    /// found, and `presence_p_value` the sync pattern's search. Without `payload`: the
    /// whole tile of a clip id named for the mark proved it where its sync pattern had
    /// not, but its coded bits did not single that clip id out (presence only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub named_search: Option<bool>,
    /// The coded bits as read where the payload did not decode (not in the JSON).
    #[serde(skip)]
    pub payload_reading: Option<hallmark_watermark::PayloadReading>,
    /// A mark too weak to be inconclusive, read at its best registration (not in the JSON):
    /// a clip id named elsewhere may still prove it.
    #[serde(skip)]
    pub weak_reading: Option<hallmark_watermark::WeakReading>,
    /// The payload's AI declaration (the clip id's top bit), when it decoded.
    pub ai_generated: Option<bool>,
    /// The payload's one-byte key id: it only narrows down which key marked the content.
    pub key_id: Option<u8>,
    /// The key that marked it — every key the verifier holds was tried, so keys sharing the
    /// short id are told apart: its 64-bit id (the key's public fingerprint) and the
    /// organisation holding it.
    pub key: Option<KeyIdentity>,
    /// Which of the verifier's keys matched (not in the JSON: `key` names it).
    #[serde(skip)]
    pub key_index: Option<usize>,
    pub bit_error_estimate: Option<f64>,
    /// Video frames, or 64 ms windows of sound, analysed.
    pub frames_analysed: u64,
    /// Per second: a single-test p-value of the mark in that second at the whole
    /// stream's registration (null: nothing analysed). The registration is chosen on the
    /// same data, so on unmarked content these are biased low: they locate a proven mark
    /// and mean nothing when it is not detected — read `marked` instead.
    pub timeline: Vec<Option<f64>>,
    /// Per timeline second: `true` where the whole-stream test proved the mark and that
    /// second agrees with it (its own p ≤ 1e-3), `false` where it was analysed, null where
    /// nothing was. Never `true` on a stream whose mark is not detected.
    pub marked: Vec<Option<bool>>,
    /// Width in seconds of each `timeline` / `marked` cell: 1, or a power of two for long
    /// files (the cells always cover the whole stream in bounded memory).
    pub timeline_bin_s: f64,
    /// Picture only: which frames the numbers above come from (`key-frames`: the timeline
    /// has values only for seconds holding a key frame).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scan: Option<VideoScan>,
    /// Picture only: 1, or 2 when a quick scan's key frames did not prove the mark and the
    /// full scan followed. A quick scan's p-value is doubled either way (two possible tests).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scan_passes: Option<u8>,
    /// Picture only, when the mark is readable: where it was found, as fractions of the frame
    /// (the whole frame unless the rest of it shows no mark: picture-in-picture, a split
    /// screen, a caption bar).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<MarkRegion>,
    /// Picture only, when the mark is readable: how the picture was mirrored or turned
    /// against the sealed one (`upright`, `mirrored-horizontally`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orientation: Option<&'static str>,
    /// Picture only, when the mark is readable and the lattice stage registered it: the
    /// rotation and the stretch of the picture against the sealed one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warp: Option<MarkWarp>,
    /// Picture only: the answer came from the wider geometry search (flips and quarter turns
    /// at any scale, scales 0.4–2.5, rotations, stretches), which runs when the plain one
    /// does not prove the mark (a copy flipped and nothing else is proven before it, as
    /// sealed and mirrored).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wide_search: Option<bool>,
    /// Picture only, when the mark is readable: it was read from the frames warped back
    /// along the camera's motion (a mark that rides the camera, sealed since 2026-12-05).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub riding: Option<bool>,
    /// Sound only: the sound was found changed in speed or pitch (the sound's wider search).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sound_scale: Option<SoundScale>,
}

/// How the sound was found changed against the sealed one: `time` is its duration over the
/// sealed sound's (0.87: played 15 % faster), `frequency` its pitch over the sealed one's
/// (0.96: 4 % lower).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SoundScale {
    pub time: f64,
    pub frequency: f64,
}

/// How the picture was turned or stretched against the sealed one, as the lattice stage
/// registered it: degrees (positive clockwise on screen) and the tile's two period lengths
/// relative to the sealed picture's (1.25, 1: stretched 25 % horizontally), and the shear:
/// how far the angle between them is from a right angle, degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MarkWarp {
    pub rotation_deg: f64,
    pub scale_x: f64,
    pub scale_y: f64,
    pub shear_deg: f64,
}

/// Where in the frame a mark was found, as fractions of its width and height.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MarkRegion {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

/// A watermark key, named.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyIdentity {
    /// The key's public fingerprint: 16 hex digits (64 bits) of SHA-256 of the secret.
    pub id: String,
    /// Who holds it, as the verifier's config says.
    pub organisation: Option<String>,
}

/// Which decoded frames of the picture the watermark statistics (p-value, payload,
/// timeline) come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VideoScan {
    /// Key frames only (`verify --quick` when they sufficed): typically one frame every 1
    /// to 10 s, so the timeline has values only for the seconds holding a key frame.
    KeyFrames,
    /// The frames other frames are predicted from (clips of 4 s or more): every second has
    /// some, the non-reference B-frames are skipped.
    ReferenceFrames,
    /// Every frame (clips under 4 s, or of unknown length).
    AllFrames,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct C2paReport {
    pub present: bool,
    /// "Invalid", "Valid" or "Trusted", as the C2PA SDK reports it.
    pub validation_state: Option<String>,
    /// Failure codes of the active manifest (e.g. `assertion.bmffHash.mismatch`).
    pub failures: Vec<String>,
    pub failure_details: Vec<StatusDetail>,
    /// Failure codes reported for ingredients (their own past validation).
    pub ingredient_failures: Vec<String>,
    pub signature_alg: Option<String>,
    pub issuer: Option<String>,
    pub common_name: Option<String>,
    /// RFC 3339 time from a trusted timestamp, when the manifest has one.
    pub signing_time: Option<String>,
    pub claim_generator: Option<String>,
    pub title: Option<String>,
    pub active_manifest: Option<String>,
    pub manifest_count: usize,
    pub actions: Vec<ActionSummary>,
    pub digital_source_type: Option<String>,
    pub ingredients: Vec<IngredientNode>,
    pub soft_bindings: Vec<SoftBinding>,
    /// The manifest lives at this URL; hallmark never fetches it.
    pub remote_manifest_url: Option<String>,
    /// hallmark's own assertion (`org.hallmark.seal`), when present.
    pub hallmark: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusDetail {
    pub code: String,
    pub explanation: Option<String>,
    pub url: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ActionSummary {
    pub action: String,
    pub digital_source_type: Option<String>,
    pub software_agent: Option<String>,
    pub when: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct IngredientNode {
    pub title: Option<String>,
    pub format: Option<String>,
    pub relationship: String,
    /// Label of the ingredient's own manifest, if it had one.
    pub manifest: Option<String>,
    pub issuer: Option<String>,
    pub claim_generator: Option<String>,
    /// The soft bindings the ingredient's manifest declares.
    pub soft_bindings: Vec<SoftBinding>,
    pub ingredients: Vec<IngredientNode>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SoftBinding {
    pub alg: String,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MediaSummary {
    pub kind: String,
    pub container: String,
    pub duration_s: Option<f64>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub sample_rate: Option<u32>,
    pub channels: Option<u16>,
}

impl Report {
    /// A report for a file that could not be read at all.
    pub fn error(file: String, message: String) -> Report {
        let mut report = Report::new(file);
        report.summary = format!("Error: {message}");
        report.error = Some(message);
        report
    }

    pub(crate) fn new(file: String) -> Report {
        Report {
            schema: SCHEMA,
            file,
            verdict: Verdict::Error,
            credential_problem: None,
            ai_generated: None,
            ai_evidence: Vec::new(),
            proven_streams: Vec::new(),
            different_sources: false,
            conflicts: Vec::new(),
            signals: Vec::new(),
            summary: String::new(),
            c2pa: C2paReport::default(),
            watermark: None,
            recovered_manifest: None,
            media: None,
            coverage: None,
            audit: None,
            error: None,
            keyframes: None,
        }
    }
}
