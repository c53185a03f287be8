//! The only way a generated clip leaves hallmark: rendered straight into the signer, which
//! watermarks, encodes and signs it before anything appears at the output path.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use hallmark_media::{MediaFrame, MediaInfo, MediaKind};
use hallmark_signer::{
    FrameSource, Origin, Seal, SealOptions, SealProgress, SignerError, SigningIdentity,
};
use serde_json::json;

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
    Seal(#[from] SignerError),
}

struct Source {
    generator: Generator,
    info: MediaInfo,
}

impl FrameSource for Source {
    fn info(&self) -> &MediaInfo {
        &self.info
    }

    fn next_frame(&mut self) -> Result<Option<MediaFrame>, SignerError> {
        Ok(self.generator.next_frame())
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
    let scene = Scene::from_prompt(prompt, options.seed);
    let used_terms = scene.used_terms();
    let unused_terms = scene.unused_terms();
    let generator = Generator::new(scene, options.clone())?;
    let parameters = json!({
        "prompt": prompt,
        "seed": options.seed,
        "backend": "procedural",
        "model": PROCEDURAL_MODEL,
        "duration_s": options.duration_s,
        "width": options.width,
        "height": options.height,
        "fps": options.fps,
        "used_terms": used_terms,
        "unused_terms": unused_terms,
        "scene": generator.describe(),
    });
    let info = MediaInfo {
        kind: MediaKind::Video,
        container: "generated".into(),
        duration_s: Some(options.duration_s),
        video: Some(generator.video_info()),
        audio: Some(generator.audio_info()),
    };
    let seal_options = SealOptions {
        ai_generated: true,
        title: Some(title_of(prompt)),
        generation: Some(parameters.clone()),
        ..Default::default()
    };
    let mut source = Source { generator, info };
    let seal = hallmark_signer::seal(
        &mut source,
        Origin::Generated,
        output,
        identity,
        &seal_options,
        cancel,
        progress,
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
