//! The only way a generated clip leaves hallmark: rendered straight into the signer, which
//! watermarks, encodes and signs it before anything appears at the output path, whichever
//! backend painted it.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use hallmark_media::{MediaFrame, MediaInfo, MediaKind};
use hallmark_signer::{
    FrameSource, Origin, Seal, SealOptions, SealProgress, SignerError, SigningIdentity,
};
use serde_json::json;

use crate::diffusion::{self, Animation, DiffusionError, DiffusionOptions, Preparing};
use crate::{GenerateError, GenerateOptions, Generator, Scene};

/// Identity of the procedural backend, recorded as the model in the manifest.
pub const PROCEDURAL_MODEL: &str = concat!("hallmark-procedural/", env!("CARGO_PKG_VERSION"));

/// A sealed, generated clip.
#[derive(Debug)]
pub struct GeneratedClip {
    pub seal: Seal,
    /// Prompt words the scene depicts, with what they became ("plage (beach)").
    pub used_terms: Vec<String>,
    /// Content words it could not depict.
    pub unused_terms: Vec<String>,
    /// Everything recorded in the manifest's generation parameters.
    pub parameters: serde_json::Value,
}

#[derive(Debug, thiserror::Error)]
pub enum GenerateSealError {
    #[error(transparent)]
    Options(#[from] GenerateError),
    #[error(transparent)]
    Diffusion(DiffusionError),
    #[error(transparent)]
    Seal(#[from] SignerError),
}

impl From<DiffusionError> for GenerateSealError {
    fn from(e: DiffusionError) -> Self {
        match e {
            // One message for Ctrl-C, wherever it lands.
            DiffusionError::Interrupted => GenerateSealError::Seal(SignerError::Interrupted),
            e => GenerateSealError::Diffusion(e),
        }
    }
}

/// Which generator paints the frames.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Backend {
    /// The scene composed and rendered from the prompt's words.
    #[default]
    Procedural,
    /// Keyframes from a local Stable Diffusion checkpoint, animated.
    Diffusion(DiffusionOptions),
}

impl Backend {
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Procedural => "procedural",
            Backend::Diffusion(_) => "diffusion",
        }
    }
}

/// Progress of [`generate_sealed_with`].
#[derive(Debug, Clone, Copy)]
pub enum GenerateProgress {
    /// Diffusion: checking, loading and hashing the weights.
    LoadingModel,
    /// Diffusion: `done` of `total` keyframes painted.
    Keyframes { done: usize, total: usize },
    /// Rendering, watermarking, encoding, signing.
    Seal(SealProgress),
}

/// What the signer pulls frames from (one per run: the size difference does not matter).
#[allow(clippy::large_enum_variant)]
enum Frames {
    Procedural(Generator),
    Diffusion(Animation),
}

struct Source {
    frames: Frames,
    info: MediaInfo,
}

impl FrameSource for Source {
    fn info(&self) -> &MediaInfo {
        &self.info
    }

    fn next_frame(&mut self) -> Result<Option<MediaFrame>, SignerError> {
        Ok(match &mut self.frames {
            Frames::Procedural(g) => g.next_frame(),
            Frames::Diffusion(a) => a.next_frame(),
        })
    }
}

/// Renders `prompt` and seals it into `output` (an `.mp4`). The manifest says `c2pa.created`,
/// trainedAlgorithmicMedia, and records prompt, seed, backend, model, duration and size.
pub fn generate_sealed(
    prompt: &str,
    options: GenerateOptions,
    output: &Path,
    identity: &SigningIdentity,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(SealProgress),
) -> Result<GeneratedClip, GenerateSealError> {
    generate_sealed_with(
        &Backend::Procedural,
        prompt,
        options,
        output,
        identity,
        cancel,
        &mut |p| {
            if let GenerateProgress::Seal(p) = p {
                progress(p)
            }
        },
    )
}

/// [`generate_sealed`] with a choice of backend. With [`Backend::Diffusion`] the model is
/// loaded and the keyframes painted first (nothing is written meanwhile); then, as for the
/// procedural backend, every frame goes straight into the signer.
pub fn generate_sealed_with(
    backend: &Backend,
    prompt: &str,
    options: GenerateOptions,
    output: &Path,
    identity: &SigningIdentity,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(GenerateProgress),
) -> Result<GeneratedClip, GenerateSealError> {
    let scene = Scene::from_prompt(prompt, options.seed);
    let used_terms = scene.used_terms();
    let unused_terms = scene.unused_terms();
    let mut parameters = json!({
        "prompt": prompt,
        "seed": options.seed,
        "backend": backend.name(),
        "duration_s": options.duration_s,
        "width": options.width,
        "height": options.height,
        "fps": options.fps,
    });
    let (frames, video, audio) = match backend {
        Backend::Procedural => {
            let generator = Generator::new(scene, options.clone())?;
            parameters["model"] = json!(PROCEDURAL_MODEL);
            parameters["used_terms"] = json!(used_terms);
            parameters["unused_terms"] = json!(unused_terms);
            parameters["scene"] = generator.describe();
            let (v, a) = (generator.video_info(), generator.audio_info());
            (Frames::Procedural(generator), v, a)
        }
        Backend::Diffusion(d) => {
            let total_frames = crate::validate(&options)?;
            let (anim, described) =
                diffusion::prepare(prompt, scene, &options, d, total_frames, cancel, &mut |p| {
                    progress(match p {
                        Preparing::Loading => GenerateProgress::LoadingModel,
                        Preparing::Keyframes { done, total } => {
                            GenerateProgress::Keyframes { done, total }
                        }
                    })
                })?;
            parameters["model"] = described["model"].clone();
            parameters["model_sha256"] = described["model_sha256"].clone();
            parameters["diffusion"] = described;
            // The whole prompt conditions the pictures; the scene's words shape the sound.
            parameters["sound_terms"] = json!(used_terms);
            parameters["sound"] = anim.describe_sound();
            let (v, a) = (anim.video_info(), anim.audio_info());
            (Frames::Diffusion(anim), v, a)
        }
    };
    let info = MediaInfo {
        kind: MediaKind::Video,
        container: "generated".into(),
        duration_s: Some(options.duration_s),
        video: Some(video),
        audio: Some(audio),
    };
    let seal_options = SealOptions {
        ai_generated: true,
        title: Some(title_of(prompt)),
        generation: Some(parameters.clone()),
        encode: options.encode.clone(),
    };
    let mut source = Source { frames, info };
    let seal = hallmark_signer::seal(
        &mut source,
        Origin::Generated,
        output,
        identity,
        &seal_options,
        cancel,
        &mut |p| progress(GenerateProgress::Seal(p)),
    )?;
    Ok(GeneratedClip {
        seal,
        used_terms,
        unused_terms,
        parameters,
    })
}

/// The prompt, shortened to a title.
fn title_of(prompt: &str) -> String {
    let prompt = prompt.trim();
    match prompt.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &prompt[..i]),
        None => prompt.to_string(),
    }
}
