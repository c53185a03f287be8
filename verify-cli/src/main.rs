//! `hallmark`: a thin command line over the hallmark crates.

mod report;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context as _, Result};
use clap::{Args, Parser, Subcommand};
use hallmark_detector::{ScanMode, SearchProgress, Target, Verdict, Verifier, VideoScan};
use hallmark_signer::{Home, SealOptions, SealProgress};

/// Exit codes of `hallmark verify` (and of errors in every command).
mod exit {
    pub const VERIFIED: u8 = 0;
    pub const TAMPERED: u8 = 1;
    pub const ERROR: u8 = 2;
    pub const OTHER: u8 = 3;
}

#[derive(Parser)]
#[command(name = "hallmark", version, about = "Seal media with an invisible watermark and a signed C2PA manifest; verify what can be proven about a file's origin.", long_about = None)]
struct Cli {
    /// Directory holding keys, config and the manifest store (default: the user's data dir, e.g. ~/.local/share/hallmark)
    #[arg(long, global = true, env = "HALLMARK_HOME", value_name = "DIR")]
    home: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create an Ed25519 root CA and C2PA signing certificate in the home dir.
    ///
    /// The root is self-signed: nobody else trusts it until you give them
    /// keys/root-ca.pem (verifiers pass it with --trust-anchors).
    Keygen {
        /// Organisation name written into both certificates.
        #[arg(long, default_value = "hallmark user")]
        org: String,
        /// Replace existing keys.
        #[arg(long)]
        force: bool,
    },
    /// Generate a short film with sound from a text prompt (English or French), always sealed.
    ///
    /// The procedural backend (the default) composes the scene from the prompt (setting,
    /// time of day, weather, things and events, camera, mood) and designs its sound track;
    /// it says which prompt words it used and which it could not depict.
    ///
    /// The diffusion backend (--backend diffusion --weights DIR) paints a few keyframes
    /// with a local Stable Diffusion checkpoint (SD-Turbo or SDXL-Turbo in diffusers
    /// layout, safetensors; nothing is downloaded), animates them with a slow camera move
    /// and cross-fades, and lays the procedural sound bed of the prompt's scene under them.
    /// The manifest records the weights' sha256. On the CPU this takes minutes: keyframes
    /// are few and small (2 or 3, about 384x384, 1 step); a build with the `cuda` feature
    /// uses the GPU.
    ///
    /// Same prompt, seed and options → the same picture and sound.
    Generate(GenerateArgs),
    /// Seal a media file: re-encode it and sign a C2PA manifest into the output.
    ///
    /// The output format follows OUT's extension: .mp4 (H.264 + AAC), .m4a, .wav, .mp3,
    /// .png, .jpg. Nothing is written at OUT unless sealing completes.
    Seal(SealArgs),
    /// Verify files or directories (recursively) and say what can be proven about their origin.
    ///
    /// Every file's picture and sound are searched for hallmark's watermark (with every
    /// watermark key of the home), whatever its manifest says; then one verdict:
    ///   verified            valid manifest, signer trusted, content unchanged since signing
    ///   valid-untrusted     valid manifest, content unchanged, but the signer is not on
    ///                       your trust list: who signed it is not proven
    ///   credential-problem  content and manifest unchanged, but the signer's certificate
    ///                       expired (no trusted time-stamp), was revoked, is unfit for
    ///                       C2PA or uses an unsupported algorithm: not tampering
    ///   contradicted        an intact manifest, but the file carries a hallmark mark the
    ///                       manifest does not account for, or it denies the AI the mark
    ///                       declares: it hides an earlier seal
    ///   tampered            the content or the manifest changed after signing
    ///   watermarked         no valid manifest, hallmark's watermark found
    ///   no-provenance       readable media without a C2PA manifest or mark
    ///   error               the file could not be read
    ///
    /// AI-generated: yes when any intact manifest, the mark or the store declares it; no
    /// only when a trusted signer says so; otherwise unknown. Strings from files are
    /// printed with control characters escaped (--json keeps them exact).
    ///
    /// A picture's watermark search that takes over a second shows its progress on stderr
    /// (terminals only; never mixed into --json output).
    ///
    /// Exit code: 0 every file verified; 1 any tampered or contradicted; 2 usage or read
    /// error; 3 otherwise.
    #[command(verbatim_doc_comment)]
    Verify(VerifyArgs),
    /// Serve the drag-and-drop verification page and its JSON API.
    ///
    /// GET / (the page), POST /api/verify (multipart field "file" → the JSON of `verify
    /// --json`, with `--quick` unless --full-scan; for the public reduced to the verdict and
    /// each p-value's order of magnitude unless --full-evidence or a bearer token), GET
    /// /healthz, the C2PA soft-binding lookups. Each upload is analysed in a separate worker
    /// process with a time and memory limit, then deleted.
    ///
    /// Ctrl-C or SIGTERM stops it: no new connections, answers in progress finish (at most
    /// the analysis timeout and 5 s), and its upload directory is removed.
    Serve(ServeArgs),
    /// Make a verifier home in OUT_DIR from this (signing) home: what `verify` and `serve`
    /// need, and no private signing key.
    ///
    /// Copies the trust anchors (PEM) and the watermark keys `verify` looks for (this home's
    /// own and the config's, with their organisations), and writes a config.toml naming them
    /// and the manifest store (this home's, or --store PATH). `serve` refuses a home holding
    /// keys/signer.key or keys/root-ca.key: run it with `--home OUT_DIR`.
    ///
    /// The watermark keys are secret too: whoever holds one can forge that mark (not a
    /// signed manifest). A verifier that need not find hallmark's own marks can go without
    /// (--no-watermark-keys). OUT_DIR must not exist or be empty; nothing is overwritten.
    VerifierHome(VerifierHomeArgs),
    /// Internal: `serve`'s worker for POST /matches/byContent. Prints FILE's perceptual
    /// fingerprint as one JSON line: {"fingerprint": HEX} or {"error": MESSAGE}.
    #[command(hide = true)]
    Fingerprint {
        file: PathBuf,
        /// Seconds of FILE fingerprinted.
        #[arg(long, default_value_t = 120.0)]
        seconds: f64,
    },
}

#[derive(Args)]
struct VerifierHomeArgs {
    /// The directory to make (must not exist, or be empty).
    out_dir: PathBuf,
    /// The manifest store the verifier home names [default: the signing home's].
    #[arg(long, value_name = "PATH")]
    store: Option<PathBuf>,
    /// Copy no watermark key: the verifier cannot find hallmark's marks, and cannot forge one.
    #[arg(long)]
    no_watermark_keys: bool,
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// Largest accepted upload, e.g. 500M, 2G, 800000.
    #[arg(long, default_value = "500M", value_parser = parse_size)]
    max_upload: u64,
    /// Analyses running at once [default: number of CPU cores].
    #[arg(long)]
    workers: Option<usize>,
    /// Complete uploads that may wait for a worker before the server answers 503 (an upload
    /// in progress holds no place).
    #[arg(long, default_value_t = 16)]
    queue: usize,
    /// Time limit of one analysis, in seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// Memory (address space) limit of one analysis worker, e.g. 4G.
    #[arg(long, default_value = "4G", value_parser = parse_size)]
    worker_memory: u64,
    /// Search uploads for the watermark in every second of the picture (`verify`'s default
    /// scan). Without it the page answers as `verify --quick` does: key frames first, the
    /// full scan only when they do not prove the mark — several times faster for a marked
    /// upload, with the picture's timeline sampled at the key frames (the sound's is always
    /// complete).
    #[arg(long)]
    full_scan: bool,
    /// Seconds a client has to send a request's head (a kept-alive connection is closed
    /// after as long idle).
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    header_timeout: u64,
    /// Seconds an upload may send nothing (at its start or between two chunks); after them
    /// it must have kept up --min-upload-rate on average, or it is cut off (408).
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    upload_grace: u64,
    /// Slowest accepted upload, bytes per second (e.g. 16K).
    #[arg(long, default_value = "16K", value_parser = parse_size, value_name = "SIZE")]
    min_upload_rate: u64,
    /// Seconds within which an upload must be complete.
    #[arg(long, default_value_t = 600, value_name = "SECS")]
    upload_deadline: u64,
    /// Uploads one client (IPv4 address, IPv6 /64) may have in progress at once; 0: any.
    #[arg(long, default_value_t = 4, value_name = "N")]
    per_client_uploads: usize,
    /// Uploads one client may start per minute; 0: any.
    #[arg(long, default_value_t = 30, value_name = "N")]
    per_client_rate: u32,
    /// Temporary disk all uploads in progress may hold together (503 beyond), e.g. 2G; at
    /// least --max-upload.
    #[arg(long, default_value = "2G", value_parser = parse_size, value_name = "SIZE")]
    max_temp_disk: u64,
    /// Answer everyone with the full evidence: exact p-values, per-second timelines, bit
    /// error estimates, the watermark keys' fingerprints. By default the public gets the
    /// verdict and the p-value rounded up to its power of ten (the fine read-outs would let
    /// anyone tune an edit that removes or forges the mark).
    #[arg(long)]
    full_evidence: bool,
    /// A file holding an API token (one line, at least 16 characters): callers sending
    /// `Authorization: Bearer TOKEN` get the full evidence.
    #[arg(long, value_name = "PATH")]
    api_token_file: Option<PathBuf>,
    /// Run the analysis workers without their bubblewrap sandbox (only the process limits).
    /// UNSAFE on the open internet: a worker exploited by an upload could read everything the
    /// server's user can (the verifier home's watermark keys included) and use the network.
    #[arg(long)]
    no_sandbox: bool,
    #[command(flatten)]
    store: StoreArgs,
}

/// Where sealed clips are recorded and stripped manifests recovered from.
#[derive(Args, Clone)]
struct StoreArgs {
    /// Manifest store (SQLite): sealing records each clip's manifest and fingerprint there;
    /// verify recovers a stripped manifest from it by the watermark's clip id
    /// [default: manifests.sqlite in the home dir].
    #[arg(long, value_name = "PATH", global = false)]
    store: Option<PathBuf>,
    /// Do not use a manifest store.
    #[arg(long, conflicts_with = "store")]
    no_store: bool,
}

impl StoreArgs {
    fn path(&self, home: &Home) -> Option<PathBuf> {
        if self.no_store {
            None
        } else {
            Some(self.store.clone().unwrap_or_else(|| home.store_path()))
        }
    }
}

/// x264's presets, fastest first: checked when the arguments are parsed rather than when the
/// encoder opens.
const X264_PRESETS: [&str; 10] = [
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
];

#[derive(Args)]
struct GenerateArgs {
    /// What the clip shows, e.g. "me on the beach at sunset with a glass of sparkling wine,
    /// while fireworks split the sky".
    prompt: String,
    /// Output MP4 (H.264 + AAC).
    #[arg(short, long, default_value = "clip.mp4", value_name = "OUT")]
    output: PathBuf,
    /// Length in seconds (0.5 to 60).
    #[arg(long, default_value_t = 8.0)]
    duration: f64,
    /// Frame size WIDTHxHEIGHT (even numbers).
    #[arg(long, default_value = "1280x720", value_parser = parse_frame_size)]
    size: (u32, u32),
    /// Frames per second.
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Varies everything random; the same seed gives the same clip (0 to 2^63 − 1).
    #[arg(long, default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(..=hallmark_generator::MAX_SEED))]
    seed: u64,
    /// x264 preset (ultrafast … veryslow). veryfast keeps a 720p clip's generation within
    /// real time on two cores (medium needs ~2.5× the CPU).
    #[arg(long, default_value = "veryfast", value_parser = X264_PRESETS)]
    preset: String,
    /// x264 constant rate factor for video (lower is better quality). 16: finer than a
    /// platform's encode, so the watermark survives the clip's own encode, and within real
    /// time at the default preset (seal's default is 18).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u8).range(0..=51))]
    crf: u8,
    #[command(flatten)]
    store: StoreArgs,
    /// What paints the frames: procedural (composed from the prompt's words) or
    /// diffusion (a local Stable Diffusion checkpoint, see --weights).
    #[arg(long, value_enum, default_value_t = BackendArg::Procedural)]
    backend: BackendArg,
    /// Diffusion checkpoint directory in diffusers layout: model_index.json,
    /// tokenizer/ (tokenizer.json, or vocab.json + merges.txt), text_encoder/, unet/ and
    /// vae/ (config.json + *.safetensors), e.g. a local copy of stabilityai/sd-turbo.
    /// SDXL checkpoints (SDXL-Turbo) also need tokenizer_2/ and text_encoder_2/; their
    /// added size/pooled-text conditioning is folded into the UNet's time-embedding bias.
    /// Required with --backend diffusion.
    #[arg(long, value_name = "DIR")]
    weights: Option<PathBuf>,
    /// Diffusion: keyframes to paint [default: 2 up to 4 s, 3 beyond].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=16))]
    keyframes: Option<u32>,
    /// Diffusion: keyframe size WIDTHxHEIGHT, multiples of 64 for SD-Turbo [default:
    /// about 384x384 pixels on the CPU, 512x512 on a GPU, in the clip's aspect ratio].
    #[arg(long, value_name = "WxH", value_parser = parse_frame_size)]
    keyframe_size: Option<(u32, u32)>,
    /// Diffusion: sampling steps per keyframe (turbo models: 1 to 4).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=50))]
    steps: u32,
    /// Ask this RFC 3161 time-stamp authority for a trusted signing time (e.g.
    /// http://timestamp.digicert.com): the seal then stays valid after the signing
    /// certificate expires. Overrides `tsa_url` in the home's config.toml. If the authority
    /// cannot be reached, nothing is written.
    #[arg(long, value_name = "URL")]
    tsa: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BackendArg {
    Procedural,
    Diffusion,
}

#[derive(Args)]
struct SealArgs {
    /// Input media (video, audio or still image; anything FFmpeg reads).
    input: PathBuf,
    /// Output file; its extension picks the format.
    #[arg(short, long, value_name = "OUT")]
    output: PathBuf,
    /// Declare the content AI-generated (the default).
    #[arg(long, conflicts_with = "not_ai")]
    ai: bool,
    /// Declare the content not AI-generated.
    #[arg(long)]
    not_ai: bool,
    /// Title recorded in the manifest [default: the output file name].
    #[arg(long, value_name = "T")]
    title: Option<String>,
    /// x264 constant rate factor for video (lower is better quality; 0: lossless). 18:
    /// ordinary delivery quality. The mark alone stays within PSNR 42 dB / SSIM 0.99 of the
    /// input (sealed losslessly); what it costs in file size at the same CRF:
    /// scripts/bench-invisibility.
    #[arg(long, default_value_t = hallmark_media::EncodeSettings::DEFAULT_CRF,
          value_parser = clap::value_parser!(u8).range(0..=51))]
    crf: u8,
    /// x264 preset (ultrafast … veryslow).
    #[arg(long, default_value = "medium", value_parser = X264_PRESETS)]
    preset: String,
    #[command(flatten)]
    store: StoreArgs,
    /// Ask this RFC 3161 time-stamp authority for a trusted signing time (e.g.
    /// http://timestamp.digicert.com): the seal then stays valid after the signing
    /// certificate expires. Overrides `tsa_url` in the home's config.toml. If the authority
    /// cannot be reached, nothing is written.
    #[arg(long, value_name = "URL")]
    tsa: Option<String>,
}

#[derive(Args)]
struct VerifyArgs {
    /// Files or directories to verify.
    #[arg(required = true, value_name = "FILE|DIR")]
    paths: Vec<PathBuf>,
    /// One JSON object per file (schema hallmark.verify/2), then a summary line when several.
    #[arg(long)]
    json: bool,
    /// Extra trusted root certificates (PEM). Repeatable. The home dir's config adds its own.
    #[arg(long = "trust-anchors", value_name = "PEM")]
    trust_anchors: Vec<PathBuf>,
    /// Sidecar manifest store (.c2pa) for the single FILE given.
    #[arg(long, value_name = "C2PA")]
    sidecar: Option<PathBuf>,
    /// Fragment of a fragmented MP4 whose init segment is the single FILE given. Repeatable.
    #[arg(long, value_name = "M4S")]
    fragment: Vec<PathBuf>,
    /// Never colour the report.
    #[arg(long)]
    no_color: bool,
    /// Faster watermark search: decode only the picture's key frames (typically one every
    /// 1 to 10 s), and the full scan only when they do not prove the mark (a file whose
    /// trusted hallmark manifest names its clip always gets this scan). Trades the
    /// per-second timeline: the picture's has values only for the seconds holding a key frame (the rest null, "not analysed"); the p-value is
    /// doubled for the second test it may make. The sound is analysed in full.
    #[arg(long)]
    quick: bool,
    /// Write each video's key frames that start a scene as JPEG into DIR (created if
    /// needed), for reverse image search, named `<file>-t<hh>h<mm>m<ss.mmm>s.jpg` by their
    /// time, and list them in the report (`keyframes` in the JSON).
    #[arg(long, value_name = "DIR")]
    keyframes: Option<PathBuf>,
    /// Time budget of one file, in seconds (0: none). A batch (several files, or a directory)
    /// is verified in a worker process: a file over its budget is stopped and reported as an
    /// error, the worker is replaced and the batch goes on. A single FILE is verified in a
    /// forked copy of this process under the same budgets. [default: 300]
    #[arg(long, value_name = "SECS")]
    file_timeout: Option<u64>,
    /// Memory (address space) budget of the process verifying a file, e.g. 4G (0: none); see
    /// --file-timeout. [default: 4G]
    #[arg(long, value_name = "SIZE", value_parser = parse_size_or_zero)]
    file_memory: Option<u64>,
    /// Verify in this process, without a worker or a fork: no per-file budgets (a file that
    /// hangs or crashes stops the batch). For files you trust.
    #[arg(long, conflicts_with_all = ["file_timeout", "file_memory"])]
    in_process: bool,
    /// Internal: this process is the worker of another `hallmark verify`, verifying the files
    /// named on its stdin (json, human or human-color: see `verify_as_worker`).
    #[arg(long, hide = true, value_name = "MODE")]
    worker: Option<WorkerMode>,
    /// Internal, for tests of the worker budgets: KIND=NAME makes the worker for the file
    /// named NAME panic, hang or exhaust its memory (KIND: panic, hang, memory). Honoured by
    /// worker processes and a single file's forked child only.
    #[arg(long, hide = true, value_name = "KIND=NAME")]
    fault_injection: Vec<String>,
    #[command(flatten)]
    store: StoreArgs,
}

/// What a worker prints per file besides its JSON line ([`VerifyArgs::worker`]).
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum WorkerMode {
    Json,
    Human,
    HumanColor,
}

/// Default per-file budgets of a batch ([`VerifyArgs::file_timeout`], `file_memory`).
const DEFAULT_FILE_TIMEOUT_S: u64 = 300;
const DEFAULT_FILE_MEMORY: u64 = 4 << 30;

fn main() -> ExitCode {
    // A worker of `verify` or `serve` starts under its address-space budget.
    if under_a_memory_budget() {
        panic_without_allocating();
    }
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve(_)) {
        keep_freed_frames();
    }
    let result = match cli.command {
        Command::Keygen { org, force } => home(&cli.home).and_then(|h| keygen(&h, &org, force)),
        Command::Generate(args) => home(&cli.home).and_then(|h| generate(&h, args)),
        Command::Seal(args) => home(&cli.home).and_then(|h| seal(&h, args)),
        Command::Verify(args) => home(&cli.home).and_then(|h| verify(&h, args)),
        Command::Serve(args) => home(&cli.home).and_then(|h| serve(&h, args)),
        Command::VerifierHome(args) => home(&cli.home).and_then(|h| verifier_home(&h, args)),
        Command::Fingerprint { file, seconds } => {
            let line = match hallmark_store::fingerprint_file(&file, seconds) {
                Ok(print) => serde_json::json!({"fingerprint": print.to_hex()}),
                Err(e) => serde_json::json!({"error": e}),
            };
            println!("{line}");
            Ok(exit::VERIFIED)
        }
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("hallmark: error: {e:#}");
            ExitCode::from(exit::ERROR)
        }
    }
}

fn home(explicit: &Option<PathBuf>) -> Result<Home> {
    Ok(Home::resolve(explicit.clone())?)
}

fn keygen(home: &Home, org: &str, force: bool) -> Result<u8> {
    let files = hallmark_signer::keygen(home, org, force)?;
    eprintln!("Created an Ed25519 signing identity for \"{org}\":");
    eprintln!("  root CA certificate  {}", files.root_cert.display());
    eprintln!("  signing certificate  {}", files.signer_cert.display());
    eprintln!(
        "  private keys         {} and {} (mode 0600)",
        files.root_key.display(),
        files.signer_key.display()
    );
    eprintln!(
        "The root is self-signed: it is trusted here, and by nobody else until you share {}.",
        files.root_cert.display()
    );
    Ok(exit::VERIFIED)
}

fn parse_frame_size(text: &str) -> std::result::Result<(u32, u32), String> {
    let (w, h) = text
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("not a size: {text:?} (try 1280x720)"))?;
    match (w.trim().parse(), h.trim().parse()) {
        (Ok(w), Ok(h)) => Ok((w, h)),
        _ => Err(format!("not a size: {text:?} (try 1280x720)")),
    }
}

/// The signing identity, made on first use with a plain word about what that means.
fn identity(home: &Home) -> Result<hallmark_signer::SigningIdentity> {
    let identity = hallmark_signer::ensure_identity(home)?;
    if let Some(files) = &identity.created {
        eprintln!(
            "hallmark: created signing keys in {} (self-signed: trusted by nobody else until you share {})",
            home.keys_dir().display(),
            files.root_cert.display()
        );
    }
    Ok(identity.signing)
}

/// Progress of a sealing run on a terminal; hidden when stderr is not one.
fn seal_progress(bar: &indicatif::ProgressBar) -> impl FnMut(SealProgress) + '_ {
    move |p: SealProgress| match p {
        SealProgress::Encoding { done, total } => {
            if let Some(total) = total {
                bar.set_length(total.max(done));
            }
            bar.set_position(done);
        }
        SealProgress::Signing => bar.set_message("signing"),
    }
}

fn generate(home: &Home, args: GenerateArgs) -> Result<u8> {
    if !args
        .output
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("mp4"))
    {
        bail!(
            "{}: generated clips are MP4 files; name the output *.mp4",
            args.output.display()
        );
    }
    let backend = match (args.backend, &args.weights) {
        (BackendArg::Procedural, None) => {
            if args.keyframes.is_some() || args.keyframe_size.is_some() || args.steps != 1 {
                bail!("--keyframes, --keyframe-size and --steps apply to --backend diffusion only");
            }
            hallmark_generator::Backend::Procedural
        }
        (BackendArg::Procedural, Some(_)) => {
            bail!("--weights applies to --backend diffusion only (add --backend diffusion)")
        }
        (BackendArg::Diffusion, None) => bail!(
            "--backend diffusion needs --weights DIR: a local Stable Diffusion checkpoint in diffusers layout (e.g. SD-Turbo); nothing is downloaded"
        ),
        (BackendArg::Diffusion, Some(dir)) => {
            if !dir.is_dir() {
                bail!(
                    "--weights {}: no such directory (expected a diffusers-layout checkpoint such as SD-Turbo: model_index.json, tokenizer/, text_encoder/, unet/, vae/)",
                    dir.display()
                );
            }
            hallmark_generator::Backend::Diffusion(hallmark_generator::DiffusionOptions {
                keyframes: args.keyframes.map(|n| n as usize),
                keyframe_size: args.keyframe_size.map(|(w, h)| (w as usize, h as usize)),
                steps: args.steps as usize,
                ..hallmark_generator::DiffusionOptions::new(dir)
            })
        }
    };
    let identity = identity(home)?
        .with_store(args.store.path(home))
        .with_tsa(tsa_url(home, args.tsa)?)?;
    let options = hallmark_generator::GenerateOptions {
        width: args.size.0,
        height: args.size.1,
        fps: args.fps,
        duration_s: args.duration,
        seed: args.seed,
        encode: hallmark_media::EncodeSettings {
            crf: args.crf,
            preset: args.preset,
            ..Default::default()
        },
        ..Default::default()
    };
    let cancel = interrupt_flag()?;
    let bar = progress_bar("rendering");
    let mut on_progress = generate_progress(&bar);
    let result = hallmark_generator::generate_sealed_with(
        &backend,
        &args.prompt,
        options,
        &args.output,
        &identity,
        &cancel,
        &mut on_progress,
    );
    bar.finish_and_clear();
    let clip = result.with_context(|| format!("generating {}", args.output.display()))?;
    let terms = if clip.used_terms.is_empty() {
        "(nothing; a default scene)".into()
    } else {
        clip.used_terms.join(", ")
    };
    if let hallmark_generator::Backend::Diffusion(_) = backend {
        let p = &clip.parameters;
        eprintln!(
            "Painted {} keyframes ({}x{}, {} step(s), on the {}) with {}",
            p["diffusion"]["keyframes"],
            p["diffusion"]["keyframe_size"][0],
            p["diffusion"]["keyframe_size"][1],
            p["diffusion"]["steps"],
            p["diffusion"]["device"].as_str().unwrap_or("?"),
            p["model"].as_str().unwrap_or("?"),
        );
        eprintln!("Sound bed from the prompt: {terms}");
    } else {
        eprintln!("Used from the prompt: {terms}");
        if !clip.unused_terms.is_empty() {
            eprintln!("Could not depict:     {}", clip.unused_terms.join(", "));
        }
    }
    let t = clip.seal.timings;
    let frames = clip.seal.video_frames as f64;
    let fps = |s: f64| if s > 0.0 { frames / s } else { f64::INFINITY };
    eprintln!(
        "Generated and sealed {} ({} frames, {:.1} s; render {:.0} frames/s, watermark {:.0} frames/s, encode {:.0} frames/s; sign {:.2} s)",
        clip.seal.output.display(),
        clip.seal.video_frames,
        clip.seal.audio_seconds,
        fps(t.source_s),
        fps(t.watermark_s),
        fps(t.encode_s),
        t.sign_s
    );
    Ok(exit::VERIFIED)
}

/// Progress of `generate` on a terminal: loading the model, keyframes, then frames.
fn generate_progress(
    bar: &indicatif::ProgressBar,
) -> impl FnMut(hallmark_generator::GenerateProgress) + '_ {
    use hallmark_generator::GenerateProgress as P;
    let mut seal = seal_progress(bar);
    let mut stage = 0u8;
    move |p: P| match p {
        P::LoadingModel => {
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                    .expect("valid template"),
            );
            bar.set_message("loading and hashing the weights");
            bar.enable_steady_tick(std::time::Duration::from_millis(200));
        }
        P::Keyframes { done, total } => {
            if stage != 1 {
                stage = 1;
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{spinner} {msg:9} [{bar:30}] {pos}/{len} keyframes ({elapsed}, eta {eta})",
                    )
                    .expect("valid template")
                    .progress_chars("=> "),
                );
                bar.set_message("painting");
                bar.reset();
            }
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        }
        P::Seal(s) => {
            if stage == 1 {
                stage = 2;
                bar.disable_steady_tick();
                bar.set_style(frames_style());
                bar.set_message("rendering");
                bar.reset();
            }
            seal(s)
        }
    }
}

/// The time-stamp authority to ask: `--tsa`, else the home config's `tsa_url`.
fn tsa_url(home: &Home, flag: Option<String>) -> Result<Option<String>> {
    Ok(match flag {
        Some(url) => Some(url),
        None => home.config()?.tsa_url,
    })
}

fn seal(home: &Home, args: SealArgs) -> Result<u8> {
    let mut identity = identity(home)?
        .with_store(args.store.path(home))
        .with_tsa(tsa_url(home, args.tsa)?)?;
    if args.not_ai {
        // Refused if the input carries a mark declaring AI, by any key this home knows.
        identity = identity.with_known_marks(home.watermark_keys()?);
    }
    let options = SealOptions {
        ai_generated: !args.not_ai,
        title: args.title,
        generation: None,
        encode: hallmark_media::EncodeSettings {
            crf: args.crf,
            preset: args.preset,
            ..Default::default()
        },
    };
    let cancel = interrupt_flag()?;
    let bar = progress_bar("encoding");
    let mut on_progress = seal_progress(&bar);
    let result = hallmark_signer::seal_file(
        &args.input,
        &args.output,
        &identity,
        &options,
        &cancel,
        &mut on_progress,
    );
    bar.finish_and_clear();
    let seal = result.with_context(|| format!("sealing {}", args.input.display()))?;
    let t = seal.timings;
    eprintln!(
        "Sealed {} → {} ({}, manifest {} bytes, {}; decode {:.1} s, watermark {:.1} s, encode {:.1} s, sign {:.1} s)",
        args.input.display(),
        seal.output.display(),
        seal.format.extension(),
        seal.manifest_bytes,
        if options.ai_generated {
            "declared AI-generated"
        } else {
            "declared not AI-generated"
        },
        t.source_s,
        t.watermark_s,
        t.encode_s,
        t.sign_s,
    );
    if let Some(url) = identity.tsa_url() {
        eprintln!("Time-stamped by {url}");
    }
    Ok(exit::VERIFIED)
}

/// Ctrl-C asks the running job to stop; it then removes its temporary files and exits.
fn interrupt_flag() -> Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    let handler_flag = flag.clone();
    ctrlc::set_handler(move || handler_flag.store(true, Ordering::Relaxed))
        .context("installing the Ctrl-C handler")?;
    Ok(flag)
}

fn progress_bar(stage: &'static str) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(frames_style());
    bar.set_message(stage);
    bar
}

fn frames_style() -> indicatif::ProgressStyle {
    indicatif::ProgressStyle::with_template(
        "{spinner} {msg:9} [{bar:30}] {pos}/{len} frames ({per_sec}, eta {eta})",
    )
    .expect("valid template")
    .progress_chars("=> ")
}

fn verify(home: &Home, args: VerifyArgs) -> Result<u8> {
    let mut anchors = home.trust_anchor_pems()?;
    for path in &args.trust_anchors {
        let pem = std::fs::read_to_string(path)
            .with_context(|| format!("reading trust anchors {}", path.display()))?;
        if !pem.contains("-----BEGIN CERTIFICATE-----") {
            bail!("{}: no PEM certificate in this file", path.display());
        }
        anchors.push(pem);
    }
    if (args.sidecar.is_some() || !args.fragment.is_empty())
        && (args.paths.len() != 1 || args.paths[0].is_dir())
    {
        bail!("--sidecar and --fragment apply to exactly one FILE");
    }
    if let Some(dir) = &args.keyframes {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the key frames' directory {}", dir.display()))?;
    }
    let verifier = Verifier::new(&anchors)?
        .with_named_watermark_keys(home.named_watermark_keys()?)
        .with_store(args.store.path(home))
        .with_keyframes_dir(args.keyframes.clone())
        .with_scan_mode(if args.quick {
            ScanMode::Quick
        } else {
            ScanMode::Full
        });
    let targets = collect_targets(&args)?;
    let color = !args.no_color
        && !args.json
        && std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none();
    if let Some(mode) = args.worker {
        return verify_as_worker(&verifier, &args, mode);
    }
    // A batch: its files in a worker process under the file budgets. A single file: in a
    // forked copy of this process under the same budgets (a fork costs about a millisecond;
    // a worker's start-up would cost a single quick verify a third of its time).
    let isolate = !args.in_process && targets.len() > 1;
    let workers = isolate
        .then(|| Workers::new(home, &args, color))
        .transpose()?;
    let fork_one = !args.in_process && targets.len() == 1;

    let mut counts = [0usize; Verdict::ALL.len()];
    for target in &targets {
        let (verdict, text) = match (target, &workers) {
            (Ok(target), Some(workers)) => workers.verify(&verifier, target, args.json)?,
            (Ok(target), None) if fork_one => match verify_forked(&verifier, target, &args, color)?
            {
                Some(answer) => answer,
                None => verify_here(&verifier, target, &args, color)?,
            },
            (Ok(target), None) => verify_here(&verifier, target, &args, color)?,
            (Err((path, message)), _) => render(
                &hallmark_detector::Report::error(path.display().to_string(), message.clone()),
                args.json,
                color,
            )?,
        };
        counts[Verdict::ALL.iter().position(|v| *v == verdict).unwrap_or(0)] += 1;
        if args.json {
            println!("{text}");
        } else {
            print!("{text}");
            if targets.len() > 1 {
                println!();
            }
        }
    }
    if targets.len() > 1 {
        report::summary(&counts, targets.len(), args.json);
    }
    Ok(exit_code(&counts))
}

/// One file verified in this process, with its progress bar.
fn verify_here(
    verifier: &Verifier,
    target: &Target,
    args: &VerifyArgs,
    color: bool,
) -> Result<(Verdict, String)> {
    render(&verify_with_bar(verifier, target), args.json, color)
}

/// One file's report, its search's progress drawn on stderr ([`SearchBar`]).
fn verify_with_bar(verifier: &Verifier, target: &Target) -> hallmark_detector::Report {
    let bar = SearchBar::new(&target.path);
    let report = verifier.verify_with_progress(target, &|p| bar.report(p));
    bar.finish();
    report
}

/// One file verified in a forked child of this process under the file budgets
/// (`--file-timeout`, `--file-memory`): a hang, a memory blow-up or a crash is that file's
/// `error`, not the end of `hallmark verify`. The child inherits the verifier already set up
/// and draws its own progress bar; it sends back the verdict and the rendered report through
/// a pipe. `None` when this process is not single-threaded (a fork would then be unsafe):
/// the caller verifies in-process.
fn verify_forked(
    verifier: &Verifier,
    target: &Target,
    args: &VerifyArgs,
    color: bool,
) -> Result<Option<(Verdict, String)>> {
    use std::io::{Read as _, Write as _};
    let threads = std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0);
    if threads != 1 {
        return Ok(None);
    }
    let timeout = args.file_timeout.unwrap_or(DEFAULT_FILE_TIMEOUT_S);
    let memory = args.file_memory.unwrap_or(DEFAULT_FILE_MEMORY);
    let failed = |message: String| {
        render(&verifier.error_report(target, message), args.json, color).map(Some)
    };
    let (mut reader, mut writer) = std::io::pipe().context("a pipe to the analysis")?;
    // SAFETY: this process has a single thread (checked above), so the child may run any
    // code; it leaves with `_exit`, never returning into the caller's frames.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return failed(format!(
            "the analysis could not start: {}",
            std::io::Error::last_os_error()
        ));
    }
    if pid == 0 {
        drop(reader);
        panic_without_allocating();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if memory > 0 {
                limit_address_space(memory)?;
            }
            let name = target
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            for fault in &args.fault_injection {
                if let Some((kind, file)) = fault.split_once('=') {
                    if file == name {
                        inject_fault(kind);
                    }
                }
            }
            let mut report = verify_with_bar(verifier, target);
            // FFmpeg and the C2PA SDK report a refused allocation as an ordinary error.
            if let Some(e) = report
                .error
                .clone()
                .filter(|e| memory > 0 && out_of_memory(e))
            {
                report = verifier.error_report(
                    target,
                    format!(
                        "analysis stopped: over its memory budget of {} MB (--file-memory): {e}",
                        memory >> 20
                    ),
                );
            }
            let (verdict, text) =
                render(&report, args.json, color).map_err(std::io::Error::other)?;
            writer.write_all(format!("{}\n{text}", verdict.as_str()).as_bytes())?;
            writer.flush()
        }));
        // A panic because a thread or an allocation was refused under the budget (the scan
        // starts decoder and search threads: their stacks count against the address space)
        // is the budget's doing, not a crash.
        let exhausted = match &outcome {
            Err(payload) => {
                memory > 0 && panic_text(payload.as_ref()).is_some_and(refused_under_budget)
            }
            Ok(_) => false,
        };
        // SAFETY: ends the child without running the parent's destructors or atexit hooks.
        unsafe {
            libc::_exit(match outcome {
                Ok(Ok(())) => 0,
                _ if exhausted => EXIT_OUT_OF_MEMORY,
                _ => 101,
            })
        }
    }
    drop(writer);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut answer = String::new();
        let _ = reader.read_to_string(&mut answer);
        let _ = tx.send(answer);
    });
    let answer = match timeout {
        0 => rx.recv().ok(),
        secs => match rx.recv_timeout(std::time::Duration::from_secs(secs)) {
            Ok(answer) => Some(answer),
            Err(_) => {
                // SAFETY: `pid` is our own child, not yet reaped.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                None
            }
        },
    };
    let mut status = 0;
    // SAFETY: reaps our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    let Some(answer) = answer else {
        return failed(format!(
            "analysis stopped: over its time budget of {timeout} s (--file-timeout)"
        ));
    };
    if let Some((verdict, text)) = answer.split_once('\n') {
        if let Some(verdict) = Verdict::ALL.iter().find(|v| v.as_str() == verdict) {
            return Ok(Some((*verdict, text.to_owned())));
        }
    }
    // No report: killed by a signal (an allocation over the budget aborts), a thread or an
    // allocation refused under the budget, or a crash.
    let refused = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == EXIT_OUT_OF_MEMORY;
    if memory > 0
        && (refused || libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGABRT)
    {
        return failed(format!(
            "analysis stopped: over its memory budget of {} MB (--file-memory), or aborted",
            memory >> 20
        ));
    }
    let how = if libc::WIFSIGNALED(status) {
        format!("signal {}", libc::WTERMSIG(status))
    } else {
        format!("exit code {}", libc::WEXITSTATUS(status))
    };
    failed(format!(
        "the analysis crashed ({how}); the file may be malformed"
    ))
}

/// Decoded frames (3 MB at 1080p) are allocated and freed hundreds of times a second. By
/// default glibc hands blocks that large back to the kernel — unmapped, or trimmed off the
/// heap's top — and the next frame faults its pages in again, zero-filled: 5–9 % of an
/// unmarked scan's CPU went to page faults. Blocks under 32 MB (a 4K frame is 12 MB) now come
/// from the heap and stay there for the next frame; the heap's top is returned past 256 MB.
/// Not for `serve`, a long-lived process that decodes nothing itself (its workers do).
fn keep_freed_frames() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}

/// Whether this process runs with a limit on its address space (`setrlimit(RLIMIT_AS)`).
fn under_a_memory_budget() -> bool {
    address_space_limit().is_ok_and(|limit| limit.rlim_cur != libc::RLIM_INFINITY)
}

/// Panics report their message alone, written without allocating. Under a memory budget
/// std's own hook, asked for a backtrace (RUST_BACKTRACE), failed to allocate it while
/// holding its backtrace lock and hung on that lock: the file waited out its time budget
/// (300 s) instead of being reported over its memory budget at once.
fn panic_without_allocating() {
    std::panic::set_hook(Box::new(|info| {
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "hallmark panicked: {info}");
    }));
}

/// The forked analysis's exit code when it panicked because memory or a thread was refused
/// under its budget.
const EXIT_OUT_OF_MEMORY: i32 = 102;

/// A panic's message, when it is text.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
}

/// Whether a panic or error text says the address-space budget refused something: memory
/// ([`out_of_memory`]) or a thread's stack.
fn refused_under_budget(text: &str) -> bool {
    out_of_memory(text) || text.contains("failed to spawn thread")
}

/// Whether an error text says memory ran out: Rust's allocation failure, the C library's,
/// the dynamic loader's.
fn out_of_memory(text: &str) -> bool {
    [
        "memory allocation of",
        "Cannot allocate memory",
        "out of memory",
        "failed to map segment",
    ]
    .iter()
    .any(|m| text.contains(m))
}

/// A report's verdict and its text: the JSON line (without its newline), or the human report.
fn render(
    report: &hallmark_detector::Report,
    json: bool,
    color: bool,
) -> Result<(Verdict, String)> {
    let text = if json {
        serde_json::to_string(report)?
    } else {
        report::human(report, color)
    };
    Ok((report.verdict, text))
}

/// Lines a worker writes on stderr to move its parent's progress bar:
/// `PROGRESS_LINE <scan> <done_s> <total_s>` (scan: key-frames or full; total: `-` unknown).
const PROGRESS_LINE: &str = "hallmark-worker-progress";

/// `verify --worker MODE -`: verifies the files whose paths come on stdin (one a line, the
/// path's bytes in hex), one after the other, in this process; per file its JSON line and,
/// in the human modes, a second line: the human report as a JSON string. The search's
/// progress goes to stderr as [`PROGRESS_LINE`]s.
fn verify_as_worker(verifier: &Verifier, args: &VerifyArgs, mode: WorkerMode) -> Result<u8> {
    use std::io::{BufRead as _, Write as _};
    for line in std::io::stdin().lock().lines() {
        let bytes = unhex(line?.trim()).context("a worker reads one hex path a line")?;
        let path =
            PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(bytes));
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for fault in &args.fault_injection {
            match fault.split_once('=') {
                Some((kind, file)) if file == name => inject_fault(kind),
                Some(_) => {}
                None => bail!("--fault-injection takes KIND=NAME"),
            }
        }
        let target = Target {
            path,
            sidecar: args.sidecar.clone(),
            fragments: args.fragment.clone(),
        };
        let report = verifier.verify_with_progress(&target, &|p: SearchProgress| {
            let scan = if p.scan == VideoScan::KeyFrames {
                "key-frames"
            } else {
                "full"
            };
            let total = p.total_s.map_or("-".to_string(), |t| t.to_string());
            eprintln!("{PROGRESS_LINE} {scan} {} {total}", p.done_s);
        });
        let mut out = serde_json::to_string(&report)?;
        out.push('\n');
        if mode != WorkerMode::Json {
            let human = report::human(&report, mode == WorkerMode::HumanColor);
            out.push_str(&serde_json::to_string(&human)?);
            out.push('\n');
        }
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(out.as_bytes())?;
        stdout.flush()?;
    }
    Ok(exit::VERIFIED)
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    text.len().is_multiple_of(2).then_some(())?;
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The test-only faults of `--fault-injection` (worker processes only): what a hostile file
/// could make the analysis do, on demand.
fn inject_fault(kind: &str) {
    match kind {
        "panic" => panic!("fault injection: panic"),
        "hang" => loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        },
        "memory" => {
            // Touched 64 MB blocks until the address-space budget stops the process.
            let mut held: Vec<Vec<u8>> = Vec::new();
            loop {
                held.push(vec![1u8; 64 << 20]);
                std::hint::black_box(&held);
            }
        }
        _ => {}
    }
}

/// Verifies files one by one in a worker process (this binary, `verify --worker`), under a
/// wall-clock budget per file and an address-space budget: a file that hangs, exhausts the
/// memory or crashes the analysis is reported as an `error`, its worker is ended, and the
/// batch goes on with a fresh one. One worker serves file after file while all goes well,
/// so a batch pays one process start (≈ 0.1 s), not one per file.
struct Workers {
    exe: PathBuf,
    /// The worker's arguments.
    args: Vec<std::ffi::OsString>,
    timeout: Option<std::time::Duration>,
    memory: Option<u64>,
    /// Lines per file: the JSON report, and the human report in the human modes.
    lines: usize,
    running: std::cell::RefCell<Option<Worker>>,
}

/// A running worker: its stdin, its stdout's lines (`None`: closed) and its stderr's state.
struct Worker {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    lines: std::sync::mpsc::Receiver<Option<String>>,
    stderr: Arc<std::sync::Mutex<WorkerStderr>>,
    stderr_done: std::thread::JoinHandle<()>,
}

/// What a worker's stderr says about the file in hand: progress for its bar, and the rest.
#[derive(Default)]
struct WorkerStderr {
    bar: Option<Arc<SearchBar>>,
    kept: String,
}

impl Workers {
    fn new(home: &Home, args: &VerifyArgs, color: bool) -> Result<Workers> {
        let exe = std::env::current_exe().context("locating the hallmark binary for workers")?;
        let home_dir = std::path::absolute(home.dir())
            .with_context(|| format!("locating {}", home.dir().display()))?;
        let mode = match (args.json, color) {
            (true, _) => "json",
            (false, true) => "human-color",
            (false, false) => "human",
        };
        let mut w: Vec<std::ffi::OsString> = vec![
            "--home".into(),
            home_dir.into(),
            "verify".into(),
            "--worker".into(),
            mode.into(),
        ];
        if args.quick {
            w.push("--quick".into());
        }
        if let Some(dir) = &args.keyframes {
            w.extend(["--keyframes".into(), dir.into()]);
        }
        if args.store.no_store {
            w.push("--no-store".into());
        } else if let Some(store) = &args.store.store {
            w.extend(["--store".into(), store.into()]);
        }
        for pem in &args.trust_anchors {
            w.extend(["--trust-anchors".into(), pem.into()]);
        }
        if let Some(sidecar) = &args.sidecar {
            w.extend(["--sidecar".into(), sidecar.into()]);
        }
        for fragment in &args.fragment {
            w.extend(["--fragment".into(), fragment.into()]);
        }
        for fault in &args.fault_injection {
            w.extend(["--fault-injection".into(), fault.into()]);
        }
        w.push("-".into());
        let timeout = args.file_timeout.unwrap_or(DEFAULT_FILE_TIMEOUT_S);
        let memory = args.file_memory.unwrap_or(DEFAULT_FILE_MEMORY);
        Ok(Workers {
            exe,
            args: w,
            timeout: (timeout > 0).then(|| std::time::Duration::from_secs(timeout)),
            memory: (memory > 0).then_some(memory),
            lines: if args.json { 1 } else { 2 },
            running: std::cell::RefCell::new(None),
        })
    }

    fn start(&self) -> std::io::Result<Worker> {
        let mut command = std::process::Command::new(&self.exe);
        command
            .args(&self.args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        if let Some(bytes) = self.memory {
            use std::os::unix::process::CommandExt as _;
            // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
            unsafe {
                command.pre_exec(move || limit_address_space(bytes));
            }
        }
        let mut child = command.spawn()?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::other("no pipes to the worker"));
        };
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(Some(line)).is_err() {
                    return;
                }
            }
            let _ = tx.send(None);
        });
        let state = Arc::new(std::sync::Mutex::new(WorkerStderr::default()));
        let shared = Arc::clone(&state);
        let stderr_done = std::thread::spawn(move || relay_stderr(stderr, &shared));
        Ok(Worker {
            child,
            stdin,
            lines,
            stderr: state,
            stderr_done,
        })
    }

    /// One file's verdict and text (as [`render`]), from the worker — or an `error` report
    /// saying why the worker gave none.
    fn verify(
        &self,
        verifier: &Verifier,
        target: &Target,
        json: bool,
    ) -> Result<(Verdict, String)> {
        use std::io::Write as _;
        let failed = |message: String| render(&verifier.error_report(target, message), json, false);
        let mut running = self.running.borrow_mut();
        if running.is_none() {
            match self.start() {
                Ok(w) => *running = Some(w),
                Err(e) => return failed(format!("the analysis worker could not start: {e}")),
            }
        }
        let worker = running.as_mut().expect("just started");
        let bar = Arc::new(SearchBar::new(&target.path));
        {
            let mut state = worker.stderr.lock().unwrap_or_else(|e| e.into_inner());
            state.bar = Some(Arc::clone(&bar));
            state.kept.clear();
        }
        let request = format!(
            "{}\n",
            hex_of(std::os::unix::ffi::OsStrExt::as_bytes(
                target.path.as_os_str()
            ))
        );
        let sent = worker
            .stdin
            .write_all(request.as_bytes())
            .and_then(|()| worker.stdin.flush());
        let deadline = self.timeout.map(|t| std::time::Instant::now() + t);
        let mut lines = Vec::new();
        let mut outcome = sent.map_err(|_| Stop::Exited);
        while outcome.is_ok() && lines.len() < self.lines {
            let next = match deadline {
                Some(d) => worker
                    .lines
                    .recv_timeout(d.saturating_duration_since(std::time::Instant::now()))
                    .map_err(|e| match e {
                        std::sync::mpsc::RecvTimeoutError::Timeout => Stop::TimedOut,
                        std::sync::mpsc::RecvTimeoutError::Disconnected => Stop::Exited,
                    }),
                None => worker.lines.recv().map_err(|_| Stop::Exited),
            };
            match next {
                Ok(Some(line)) => lines.push(line),
                Ok(None) => outcome = Err(Stop::Exited),
                Err(stop) => outcome = Err(stop),
            }
        }
        bar.finish();
        let verdict = lines
            .first()
            .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .and_then(|v| v.get("verdict").cloned())
            .and_then(|v| {
                Verdict::ALL
                    .iter()
                    .copied()
                    .find(|x| serde_json::to_value(x).ok().as_ref() == Some(&v))
            });
        if let (Ok(()), Some(verdict)) = (&outcome, verdict) {
            let text = if json {
                lines.swap_remove(0)
            } else {
                serde_json::from_str::<String>(&lines[1]).unwrap_or_default()
            };
            return Ok((verdict, text));
        }
        // The worker is done for: ended (over its time budget) or ended by itself.
        let Some(mut worker) = running.take() else {
            return failed("the analysis worker stopped".into());
        };
        let timed_out = matches!(outcome, Err(Stop::TimedOut));
        if timed_out {
            let _ = worker.child.kill();
        }
        drop(worker.stdin);
        let status = worker.child.wait();
        let _ = worker.stderr_done.join();
        if timed_out {
            let secs = self.timeout.map_or(0, |t| t.as_secs());
            return failed(format!(
                "analysis stopped: over its time budget of {secs} s (--file-timeout)"
            ));
        }
        let errors =
            std::mem::take(&mut worker.stderr.lock().unwrap_or_else(|e| e.into_inner()).kept);
        // A thread refused under the address-space budget panics the worker (its stack
        // could not be mapped): the budget's doing too.
        if out_of_memory(&errors) || (self.memory.is_some() && refused_under_budget(&errors)) {
            let budget = self
                .memory
                .map_or(String::new(), |m| format!(" of {} MB", m >> 20));
            return failed(format!(
                "analysis stopped: over its memory budget{budget} (--file-memory)"
            ));
        }
        let how = match status {
            Ok(status) => match (
                status.code(),
                std::os::unix::process::ExitStatusExt::signal(&status),
            ) {
                (Some(code), _) => format!("exit code {code}"),
                (None, Some(signal)) => format!("signal {signal}"),
                _ => "no report".into(),
            },
            Err(e) => e.to_string(),
        };
        failed(format!(
            "the analysis crashed ({how}); the file may be malformed"
        ))
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        if let Some(worker) = self.running.get_mut().take() {
            drop(worker.stdin); // end of input: the worker exits
            let mut child = worker.child;
            let _ = child.wait();
        }
    }
}

/// Why a worker gave no report.
enum Stop {
    TimedOut,
    Exited,
}

/// Reads a worker's stderr to its end: progress lines move the bar of the file in hand; the
/// rest (a panic's or an allocation failure's message) is kept for it, the last 64 KB.
fn relay_stderr(stderr: std::process::ChildStderr, state: &std::sync::Mutex<WorkerStderr>) {
    use std::io::BufRead as _;
    for line in std::io::BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(rest) = line.strip_prefix(PROGRESS_LINE) {
            let f: Vec<&str> = rest.split_whitespace().collect();
            if let (Some(bar), [scan, done, total]) = (state.bar.as_ref(), &f[..]) {
                bar.report(SearchProgress {
                    scan: if *scan == "key-frames" {
                        VideoScan::KeyFrames
                    } else {
                        VideoScan::ReferenceFrames
                    },
                    done_s: done.parse().unwrap_or(0.0),
                    total_s: total.parse().ok(),
                });
            }
            continue;
        }
        state.kept.push_str(&line);
        state.kept.push('\n');
        if state.kept.len() > 64 << 10 {
            let cut = state.kept.len() - (32 << 10);
            let cut = (cut..state.kept.len())
                .find(|&i| state.kept.is_char_boundary(i))
                .unwrap_or(0);
            state.kept.drain(..cut);
        }
    }
}

/// This process's address-space limit (`getrlimit(RLIMIT_AS)`). Async-signal-safe: fit for
/// a child between fork and exec.
fn address_space_limit() -> std::io::Result<libc::rlimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a plain system call on a struct of the kernel's layout.
    if unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(limit)
}

/// Caps this process's address space at `bytes` (`setrlimit(RLIMIT_AS)`), never above a
/// limit it already runs under (`serve`'s workers have one): lowers, never raises. Also in
/// a worker between fork and exec (async-signal-safe).
fn limit_address_space(bytes: u64) -> std::io::Result<()> {
    let mut limit = address_space_limit()?;
    let bytes = bytes.min(limit.rlim_cur).min(limit.rlim_max);
    limit.rlim_cur = bytes;
    limit.rlim_max = bytes;
    // SAFETY: a plain system call on a struct of the kernel's layout.
    if unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// [`parse_size`], or 0 (no budget).
fn parse_size_or_zero(text: &str) -> std::result::Result<u64, String> {
    if text.trim() == "0" {
        Ok(0)
    } else {
        parse_size(text)
    }
}

/// One file's watermark search on stderr: drawn on a terminal only, and only once the
/// search has taken a second (most files are answered before that).
struct SearchBar {
    name: String,
    started: std::time::Instant,
    visible: bool,
    /// The pass shown and its bar (a quick scan's full pass gets a bar of its own).
    bar: std::sync::Mutex<Option<(VideoScan, indicatif::ProgressBar)>>,
}

impl SearchBar {
    fn new(path: &Path) -> SearchBar {
        SearchBar {
            name: path.file_name().map_or_else(
                || path.display().to_string(),
                |n| n.to_string_lossy().into(),
            ),
            started: std::time::Instant::now(),
            visible: std::io::stderr().is_terminal(),
            bar: std::sync::Mutex::new(None),
        }
    }

    fn report(&self, p: SearchProgress) {
        let Some(total_s) = p.total_s.filter(|t| *t > 0.0) else {
            return;
        };
        if !self.visible || self.started.elapsed() < std::time::Duration::from_secs(1) {
            return;
        }
        let mut shown = self.bar.lock().unwrap_or_else(|e| e.into_inner());
        if shown.as_ref().is_none_or(|(scan, _)| *scan != p.scan) {
            if let Some((_, old)) = shown.take() {
                old.finish_and_clear();
            }
            let bar = indicatif::ProgressBar::new((total_s * 10.0).round() as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} {wide_msg} [{bar:24}] {percent:>3}% {elapsed}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            let pass = match p.scan {
                VideoScan::KeyFrames => "key frames",
                _ => "full scan",
            };
            bar.set_message(format!("{}: watermark, {pass}", self.name));
            *shown = Some((p.scan, bar));
        }
        if let Some((_, bar)) = shown.as_ref() {
            bar.set_position((p.done_s * 10.0).round() as u64);
        }
    }

    fn finish(&self) {
        let shown = self.bar.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((_, bar)) = shown {
            bar.finish_and_clear();
        }
    }
}

fn parse_size(text: &str) -> std::result::Result<u64, String> {
    let text = text.trim();
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("not a size: {text:?} (try 500M or 2G)"))?;
    let factor: u64 = match unit.to_ascii_uppercase().trim_end_matches(['B', 'I']) {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return Err(format!("unknown size unit in {text:?} (use K, M or G)")),
    };
    n.checked_mul(factor)
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("size out of range: {text:?}"))
}

fn verifier_home(home: &Home, args: VerifierHomeArgs) -> Result<u8> {
    let report = home
        .make_verifier_home(&args.out_dir, args.store, !args.no_watermark_keys)
        .with_context(|| format!("making the verifier home {}", args.out_dir.display()))?;
    eprintln!(
        "hallmark: verifier home {} (no private signing key):",
        args.out_dir.display()
    );
    for (from, to) in &report.trust_anchors {
        eprintln!("  trust anchor  {} <- {}", to.display(), from.display());
    }
    if report.trust_anchors.is_empty() {
        eprintln!("  no trust anchor (the signing home lists none)");
    }
    for (from, to, organisation) in &report.watermark_keys {
        eprintln!(
            "  watermark key {} <- {} ({}; SECRET: it can forge this mark)",
            to.display(),
            from.display(),
            organisation.as_deref().unwrap_or("no organisation named")
        );
    }
    if report.watermark_keys.is_empty() {
        eprintln!("  no watermark key: hallmark's marks will not be found");
    }
    if let Some(store) = &report.store {
        eprintln!("  manifest store {}", store.display());
    }
    eprintln!("  config {}", report.config.display());
    Ok(exit::VERIFIED)
}

fn serve(home: &Home, args: ServeArgs) -> Result<u8> {
    // Workers are this same binary, verifying one file each with this home's trust anchors.
    let exe = std::env::current_exe().context("locating the hallmark binary for workers")?;
    // An upload that exploits a decoder runs code in a worker: the worker's home must not
    // hold what forges a manifest.
    let signing_keys = home.private_signing_keys();
    if !signing_keys.is_empty() {
        let names: Vec<String> = signing_keys
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        bail!(
            "refusing to serve from {}: it holds private signing keys ({}), which the analysis \
             workers could read (one exploited upload would forge \"verified\" manifests). \
             Make a verifier home (trust anchors, watermark keys, the store; no signing key) \
             and serve from it:\n  hallmark --home {} verifier-home DIR\n  hallmark --home DIR serve",
            home.dir().display(),
            names.join(", "),
            home.dir().display()
        );
    }
    home.trust_anchor_pems()?; // fail now, not on the first upload, if the config is broken

    // Workers run in the upload directory: every path they are given must be absolute.
    let absolute = |path: &std::path::Path| {
        std::path::absolute(path).with_context(|| format!("locating {}", path.display()))
    };
    let store = args
        .store
        .path(home)
        .map(|p| {
            if hallmark_store::is_url(&p) {
                Ok(p)
            } else {
                absolute(&p)
            }
        })
        .transpose()?;
    if let Some(path) = &store {
        // Fail now if it is not a store; a missing one is fine (nothing sealed yet).
        hallmark_store::ManifestStore::open_existing(path)?;
    }
    let api_token = match &args.api_token_file {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the API token from {}", path.display()))?;
            let token = text.trim().to_string();
            if token.len() < 16 || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
                bail!(
                    "the API token in {} must be one line of at least 16 characters without spaces",
                    path.display()
                );
            }
            Some(token)
        }
    };
    let home_dir = absolute(home.dir())?;
    let sandbox = if args.no_sandbox {
        eprintln!("hallmark: warning: --no-sandbox: the analysis workers are not sandboxed");
        None
    } else {
        // The worker reads its binary, the verifier home, and what the config names outside it.
        let config = home.config()?;
        let mut read_only = vec![exe.clone(), home_dir.clone()];
        let named = config
            .trust_anchors
            .iter()
            .map(PathBuf::as_path)
            .chain(config.watermark_keys.iter().map(|k| k.path()));
        for path in named {
            let path = absolute(&home_dir.join(path))?;
            if !path.starts_with(&home_dir) && !read_only.contains(&path) {
                read_only.push(path);
            }
        }
        // A PostgreSQL store is reached through its unix socket, bound in (the worker still
        // has no network); a file store is bound itself.
        let file_store = store.clone().filter(|p| !hallmark_store::is_url(p));
        if let Some(url) = store.as_ref().filter(|p| hallmark_store::is_url(p)) {
            let sockets = hallmark_store::socket_paths(url);
            if sockets.is_empty() {
                bail!(
                    "the sandboxed workers have no network: name the PostgreSQL store by \
                     its unix socket (e.g. postgresql://user@%2Frun%2Fpostgresql/db), or \
                     pass --no-sandbox (unsafe on the open internet)"
                );
            }
            read_only.extend(sockets);
        }
        Some(
            hallmark_web::Sandbox::detect(read_only, file_store)
                .map_err(|e| anyhow::anyhow!("cannot start the analysis workers' sandbox: {e}"))?,
        )
    };
    let config = hallmark_web::ServeConfig {
        listen: args.listen,
        max_upload: args.max_upload,
        workers: args.workers.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        }),
        queue: args.queue,
        analysis_timeout: std::time::Duration::from_secs(args.timeout.max(1)),
        worker_memory: args.worker_memory,
        header_timeout: std::time::Duration::from_secs(args.header_timeout.max(1)),
        upload_grace: std::time::Duration::from_secs(args.upload_grace.max(1)),
        min_upload_rate: args.min_upload_rate,
        upload_deadline: std::time::Duration::from_secs(args.upload_deadline.max(1)),
        per_client_uploads: args.per_client_uploads,
        per_client_rate: args.per_client_rate,
        max_temp_disk: args.max_temp_disk,
        temp_dir: None,
        max_connections: 512,
        full_evidence: args.full_evidence,
        api_token,
        worker: {
            let mut worker: Vec<std::ffi::OsString> = vec![
                exe.into(),
                "--home".into(),
                home_dir.into(),
                "verify".into(),
                "--json".into(),
            ];
            if !args.full_scan {
                worker.push("--quick".into());
            }
            // Sandboxed, the worker sees the store where the sandbox shows it.
            let inside = sandbox
                .as_ref()
                .and_then(hallmark_web::Sandbox::store_inside);
            match inside.as_ref().or(store.as_ref()) {
                Some(path) => worker.extend(["--store".into(), path.into()]),
                None => worker.push("--no-store".into()),
            }
            worker
        },
        sandbox,
        store,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the server runtime")?;
    runtime.block_on(hallmark_web::serve(config, |addr| {
        eprintln!("hallmark: serving on http://{addr}/")
    }))?;
    Ok(exit::VERIFIED)
}

fn exit_code(counts: &[usize]) -> u8 {
    let count = |v: Verdict| counts[Verdict::ALL.iter().position(|x| *x == v).unwrap_or(0)];
    let total: usize = counts.iter().sum();
    if count(Verdict::Tampered) > 0 || count(Verdict::Contradicted) > 0 {
        exit::TAMPERED
    } else if count(Verdict::Error) > 0 {
        exit::ERROR
    } else if total > 0 && count(Verdict::Verified) == total {
        exit::VERIFIED
    } else {
        exit::OTHER
    }
}

/// A target, or a path that could not even be listed.
type Listed = std::result::Result<Target, (PathBuf, String)>;

fn collect_targets(args: &VerifyArgs) -> Result<Vec<Listed>> {
    let mut targets = Vec::new();
    for path in &args.paths {
        if path.is_dir() {
            walk(path, &mut targets);
        } else {
            // A missing or unreadable file still gets a report (verdict error), not an abort.
            targets.push(Ok(Target {
                path: path.clone(),
                sidecar: args.sidecar.clone(),
                fragments: args.fragment.clone(),
            }));
        }
    }
    Ok(targets)
}

/// Every regular file below `dir`, sorted, skipping sidecar manifests (read with their asset).
fn walk(dir: &Path, out: &mut Vec<Listed>) {
    let mut entries: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(e) => {
            out.push(Err((
                dir.to_path_buf(),
                format!("cannot list directory: {e}"),
            )));
            return;
        }
    };
    entries.sort();
    for path in entries {
        let is_link = path
            .symlink_metadata()
            .map(|m| m.file_type().is_symlink())
            .unwrap_or(false);
        if path.is_dir() && !is_link {
            walk(&path, out);
        } else if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("c2pa"))
        {
            continue;
        } else if !path.is_dir() {
            out.push(Ok(Target::file(path)));
        }
    }
}
