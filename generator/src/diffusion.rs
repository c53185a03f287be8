//! The diffusion backend: a local Stable Diffusion checkpoint (SD-Turbo, SDXL-Turbo and
//! their kin, diffusers layout, safetensors) paints a few keyframes from the prompt with
//! candle-transformers' UNet and VAE; a slow camera move and cross-fades animate them into
//! the clip, and the procedural sound bed of the prompt's scene is the sound track.
//!
//! Nothing is downloaded. [`DiffusionModel::load`] checks the directory before any heavy
//! work: every file it needs, every config, every safetensors header; then the weights are
//! loaded (a tensor of the wrong shape fails here, named, with both shapes) and hashed
//! (sha256, streamed), and the digest is the model's identity in the manifest.
//!
//! The CLIP text encoder is a small port of candle-transformers' `stable_diffusion::clip`
//! (same weight names, same arithmetic) because that module's config cannot be built with
//! other dimensions than the published models': here every size comes from
//! `text_encoder/config.json`, so tiny test checkpoints exercise the very same code. The
//! UNet and VAE are candle-transformers' own, configured from `unet/config.json` and
//! `vae/config.json`. Sampling is Euler ancestral (k-diffusion), the scheduler candle uses
//! for the turbo models, with its noise drawn from the seed rather than from candle's
//! unseedable CPU generator, so the same seed gives the same keyframes.
//!
//! SDXL (`addition_embed_type: "text_time"`): the UNet cross-attends to both text
//! encoders' penultimate hidden states side by side, and adds to its time embedding
//! `add_embedding(concat(pooled, time_proj(time_ids)))`, the second encoder's pooled,
//! projected output with the original size, crop corner and target size. candle's UNet has
//! no input for that term, but uses the time embedding only through the output of
//! `time_embedding.linear_2`; for one prompt and one keyframe size the term is a constant
//! vector, so it is added to that layer's bias ([`AddedConditioning::folded_bias`]) and
//! candle's UNet is built over the weights with that bias swapped in: SDXL's UNet exactly,
//! up to float rounding. Batches of one prompt, no classifier-free guidance (turbo models
//! run without it).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use candle_transformers::models::stable_diffusion::{embeddings, unet_2d, vae};
use hallmark_media::{AudioInfo, MediaFrame, VideoInfo};
use rayon::prelude::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::rng::{mix, Rng};
use crate::scene::{CameraMove, Element, Scene};
use crate::{audio, render, GenerateOptions};

/// Files of a diffusers-layout checkpoint, relative to the weights directory.
pub mod layout {
    pub const MODEL_INDEX: &str = "model_index.json";
    /// Preferred tokenizer file; `tokenizer.json` at the top also works, and so do the
    /// `vocab.json` + `merges.txt` of a diffusers snapshot.
    pub const TOKENIZER_JSON: &str = "tokenizer/tokenizer.json";
    pub const TOKENIZER_JSON_TOP: &str = "tokenizer.json";
    pub const TOKENIZER_VOCAB: &str = "tokenizer/vocab.json";
    pub const TOKENIZER_MERGES: &str = "tokenizer/merges.txt";
    pub const TOKENIZER_CONFIG: &str = "tokenizer/tokenizer_config.json";
    pub const TEXT_ENCODER_CONFIG: &str = "text_encoder/config.json";
    pub const TEXT_ENCODER: &str = "text_encoder/model.safetensors";
    pub const TEXT_ENCODER_FP16: &str = "text_encoder/model.fp16.safetensors";
    pub const UNET_CONFIG: &str = "unet/config.json";
    pub const UNET: &str = "unet/diffusion_pytorch_model.safetensors";
    pub const UNET_FP16: &str = "unet/diffusion_pytorch_model.fp16.safetensors";
    pub const VAE_CONFIG: &str = "vae/config.json";
    pub const VAE: &str = "vae/diffusion_pytorch_model.safetensors";
    pub const VAE_FP16: &str = "vae/diffusion_pytorch_model.fp16.safetensors";
    pub const SCHEDULER_CONFIG: &str = "scheduler/scheduler_config.json";
    /// SDXL only: the second tokenizer (`tokenizer.json`, or `vocab.json` + `merges.txt`,
    /// and `tokenizer_config.json` for its pad token) and text encoder
    /// (`CLIPTextModelWithProjection`).
    pub const TOKENIZER_2: &str = "tokenizer_2";
    pub const TEXT_ENCODER_2_CONFIG: &str = "text_encoder_2/config.json";
    pub const TEXT_ENCODER_2: &str = "text_encoder_2/model.safetensors";
    pub const TEXT_ENCODER_2_FP16: &str = "text_encoder_2/model.fp16.safetensors";
}

/// What can go wrong with a weights directory or while sampling.
#[derive(Debug, thiserror::Error)]
pub enum DiffusionError {
    #[error("weights directory {} not found; --weights expects a local Stable Diffusion checkpoint in diffusers layout (e.g. SD-Turbo: model_index.json, tokenizer/, text_encoder/, unet/, vae/); nothing is downloaded", .0.display())]
    MissingDir(PathBuf),
    #[error("{} is missing; expected {what}", path.display())]
    MissingFile { path: PathBuf, what: String },
    #[error("{}: {message}", path.display())]
    BadFile { path: PathBuf, message: String },
    #[error("{}: tensor {tensor} has shape {found:?}, expected {expected:?}", path.display())]
    WrongShape {
        path: PathBuf,
        tensor: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("{}: tensor {tensor} is missing", path.display())]
    MissingTensor { path: PathBuf, tensor: String },
    #[error("{0}")]
    Unsupported(String),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{context}: {source}")]
    Candle {
        context: String,
        source: candle_core::Error,
    },
    #[error("interrupted")]
    Interrupted,
}

type Result<T> = std::result::Result<T, DiffusionError>;

fn candle_err(context: impl Into<String>) -> impl FnOnce(candle_core::Error) -> DiffusionError {
    let context = context.into();
    move |source| DiffusionError::Candle { context, source }
}

/// A loading error from candle, turned into one that names the file and the tensor.
fn load_err(path: &Path) -> impl FnOnce(candle_core::Error) -> DiffusionError + '_ {
    move |e| {
        let mut inner = &e;
        while let candle_core::Error::WithBacktrace { inner: i, .. }
        | candle_core::Error::Context { inner: i, .. }
        | candle_core::Error::WithPath { inner: i, .. } = inner
        {
            inner = i;
        }
        match inner {
            candle_core::Error::UnexpectedShape { msg, expected, got } => {
                DiffusionError::WrongShape {
                    path: path.to_path_buf(),
                    tensor: msg.trim_start_matches("shape mismatch for ").to_string(),
                    expected: expected.dims().to_vec(),
                    found: got.dims().to_vec(),
                }
            }
            candle_core::Error::CannotFindTensor { path: tensor } => {
                DiffusionError::MissingTensor {
                    path: path.to_path_buf(),
                    tensor: tensor.clone(),
                }
            }
            _ => DiffusionError::Candle {
                context: format!("loading {}", path.display()),
                source: e,
            },
        }
    }
}

// ---------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------

/// CLIP text encoder activation (`hidden_act`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClipActivation {
    QuickGelu,
    Gelu,
}

/// CLIP text encoder dimensions, as in `text_encoder/config.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub max_position_embeddings: usize,
    pub activation: ClipActivation,
    pub layer_norm_eps: f64,
}

/// How the model was trained to predict (`prediction_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prediction {
    Epsilon,
    VPrediction,
}

/// Where the inference timesteps fall (`timestep_spacing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spacing {
    Leading,
    Trailing,
    Linspace,
}

/// The noise schedule (`scheduler/scheduler_config.json`); defaults are SD-Turbo's.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplerConfig {
    pub beta_start: f64,
    pub beta_end: f64,
    /// `scaled_linear` (true) or `linear` (false).
    pub scaled_linear: bool,
    pub train_timesteps: usize,
    pub prediction: Prediction,
    pub spacing: Spacing,
    pub steps_offset: usize,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig {
            beta_start: 0.00085,
            beta_end: 0.012,
            scaled_linear: true,
            train_timesteps: 1000,
            prediction: Prediction::Epsilon,
            spacing: Spacing::Trailing,
            steps_offset: 1,
        }
    }
}

impl SamplerConfig {
    /// Timesteps (descending) and their sigmas, with a final 0: the Euler ancestral
    /// discretisation of candle-transformers' `EulerAncestralDiscreteScheduler`.
    pub fn schedule(&self, steps: usize) -> (Vec<usize>, Vec<f64>) {
        let n = self.train_timesteps;
        let steps = steps.clamp(1, n);
        let ratio = n / steps;
        let timesteps: Vec<usize> = match self.spacing {
            Spacing::Leading => (0..steps)
                .map(|s| (s * ratio + self.steps_offset).min(n - 1))
                .rev()
                .collect(),
            Spacing::Trailing => {
                std::iter::successors(Some(n), |&t| (t > ratio).then(|| t - ratio))
                    .map(|t| t - 1)
                    .collect()
            }
            Spacing::Linspace => (0..steps)
                .map(|i| {
                    if steps == 1 {
                        0
                    } else {
                        ((n - 1) as f64 * i as f64 / (steps - 1) as f64) as usize
                    }
                })
                .rev()
                .collect(),
        };
        let mut acp = 1.0f64;
        let sigmas_all: Vec<f64> = (0..n)
            .map(|i| {
                let f = if n > 1 {
                    i as f64 / (n - 1) as f64
                } else {
                    0.0
                };
                let beta = if self.scaled_linear {
                    let (a, b) = (self.beta_start.sqrt(), self.beta_end.sqrt());
                    (a + (b - a) * f).powi(2)
                } else {
                    self.beta_start + (self.beta_end - self.beta_start) * f
                };
                acp *= 1.0 - beta;
                ((1.0 - acp) / acp).sqrt()
            })
            .collect();
        let mut sigmas: Vec<f64> = timesteps.iter().map(|&t| sigmas_all[t]).collect();
        sigmas.push(0.0);
        (timesteps, sigmas)
    }

    /// The scale of the starting noise.
    pub fn init_noise_sigma(&self, sigmas: &[f64]) -> f64 {
        let max = sigmas.iter().cloned().fold(0.0, f64::max);
        match self.spacing {
            Spacing::Trailing | Spacing::Linspace => max,
            Spacing::Leading => (max * max + 1.0).sqrt(),
        }
    }
}

/// Everything needed to build and run the model, read from the weights directory.
#[derive(Debug, Clone)]
pub struct DiffusionConfig {
    pub clip: ClipConfig,
    pub unet: unet_2d::UNet2DConditionModelConfig,
    pub unet_in_channels: usize,
    pub unet_out_channels: usize,
    /// Latent size the UNet was trained at (`sample_size`, 64 for SD-Turbo: 512 px).
    pub sample_size: usize,
    pub vae: vae::AutoEncoderKLConfig,
    /// Latents are divided by this before decoding (`scaling_factor`).
    pub vae_scale: f64,
    pub sampler: SamplerConfig,
    /// The token prompts are padded with (`pad_token`, `<|endoftext|>` when unset).
    pub pad_token: String,
    /// `_class_name` of model_index.json, when there is one.
    pub pipeline: Option<String>,
    /// SDXL's second text encoder and added conditioning; `None` for SD 1.x/2.x.
    pub sdxl: Option<SdxlConfig>,
}

/// What SDXL adds (`addition_embed_type: "text_time"` in `unet/config.json`): a second
/// text encoder whose pooled, projected output joins six size numbers (the `time_ids`) in
/// an embedding added to the UNet's time embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct SdxlConfig {
    /// `text_encoder_2/config.json`.
    pub clip2: ClipConfig,
    /// Width of `text_projection`, the pooled embedding (`projection_dim`).
    pub projection_dim: usize,
    /// `eos_token_id` of `text_encoder_2/config.json`, which picks the pooled token the way
    /// transformers does (2, the legacy value SDXL ships: the largest id).
    pub eos_token_id: Option<u32>,
    /// Width of each time id's sinusoidal projection (`addition_time_embed_dim`).
    pub addition_time_embed_dim: usize,
    /// Input width of `add_embedding` (`projection_class_embeddings_input_dim`): the
    /// pooled width plus six projected time ids.
    pub add_embedding_input_dim: usize,
    /// The second tokenizer's pad token (`!` in SDXL, where the first pads with
    /// `<|endoftext|>`).
    pub pad_token_2: String,
}

/// SDXL's `time_ids` per keyframe: original size, crop top-left corner, target size.
pub const SDXL_TIME_IDS: usize = 6;

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|source| DiffusionError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| DiffusionError::BadFile {
        path: path.to_path_buf(),
        message: format!("not valid JSON: {e}"),
    })
}

/// Typed access to a config file's fields, with errors naming file and field.
struct Json<'a> {
    path: &'a Path,
    v: &'a Value,
}

impl Json<'_> {
    fn bad(&self, key: &str, want: &str) -> DiffusionError {
        DiffusionError::BadFile {
            path: self.path.to_path_buf(),
            message: format!("\"{key}\" should be {want}"),
        }
    }
    fn get(&self, key: &str) -> Option<&Value> {
        self.v.get(key).filter(|v| !v.is_null())
    }
    fn usize_or(&self, key: &str, default: Option<usize>) -> Result<usize> {
        match self.get(key) {
            Some(v) => v
                .as_u64()
                .map(|n| n as usize)
                .ok_or_else(|| self.bad(key, "a whole number")),
            None => default.ok_or_else(|| self.bad(key, "present (a whole number)")),
        }
    }
    fn usize(&self, key: &str) -> Result<usize> {
        self.usize_or(key, None)
    }
    fn f64_or(&self, key: &str, default: f64) -> Result<f64> {
        match self.get(key) {
            Some(v) => v.as_f64().ok_or_else(|| self.bad(key, "a number")),
            None => Ok(default),
        }
    }
    fn bool_or(&self, key: &str, default: bool) -> Result<bool> {
        match self.get(key) {
            Some(v) => v.as_bool().ok_or_else(|| self.bad(key, "true or false")),
            None => Ok(default),
        }
    }
    fn str_or<'s>(&'s self, key: &str, default: &'s str) -> Result<&'s str> {
        match self.get(key) {
            Some(v) => v.as_str().ok_or_else(|| self.bad(key, "a string")),
            None => Ok(default),
        }
    }
    /// A list of whole numbers, or one number repeated `n` times.
    fn usizes(&self, key: &str, n: usize, default: Option<usize>) -> Result<Vec<usize>> {
        match self.get(key) {
            Some(Value::Array(a)) => {
                let v: Option<Vec<usize>> =
                    a.iter().map(|x| x.as_u64().map(|x| x as usize)).collect();
                let v = v.ok_or_else(|| self.bad(key, "a list of whole numbers"))?;
                if v.len() != n {
                    return Err(self.bad(key, &format!("a list of {n} numbers")));
                }
                Ok(v)
            }
            Some(v) => {
                let x = v
                    .as_u64()
                    .ok_or_else(|| self.bad(key, "a whole number or a list"))?;
                Ok(vec![x as usize; n])
            }
            None => default
                .map(|d| vec![d; n])
                .ok_or_else(|| self.bad(key, "present")),
        }
    }
}

impl ClipConfig {
    /// From a transformers `CLIPTextConfig` JSON.
    pub fn from_json(path: &Path, v: &Value) -> Result<ClipConfig> {
        let j = Json { path, v };
        let activation = match j.str_or("hidden_act", "quick_gelu")? {
            "quick_gelu" => ClipActivation::QuickGelu,
            "gelu" => ClipActivation::Gelu,
            other => {
                return Err(DiffusionError::BadFile {
                    path: path.to_path_buf(),
                    message: format!("hidden_act {other:?} is not supported (quick_gelu or gelu)"),
                })
            }
        };
        let c = ClipConfig {
            vocab_size: j.usize("vocab_size")?,
            hidden_size: j.usize("hidden_size")?,
            intermediate_size: j.usize("intermediate_size")?,
            num_hidden_layers: j.usize("num_hidden_layers")?,
            num_attention_heads: j.usize("num_attention_heads")?,
            max_position_embeddings: j.usize_or("max_position_embeddings", Some(77))?,
            activation,
            layer_norm_eps: j.f64_or("layer_norm_eps", 1e-5)?,
        };
        if c.num_attention_heads == 0 || !c.hidden_size.is_multiple_of(c.num_attention_heads) {
            return Err(j.bad("num_attention_heads", "a divisor of hidden_size"));
        }
        Ok(c)
    }
}

/// The pad token of the tokenizer in `dir/sub` (`pad_token` of its
/// `tokenizer_config.json` or `special_tokens_map.json`), `<|endoftext|>` when unset.
fn pad_token(dir: &Path, sub: &str) -> Result<String> {
    for name in ["tokenizer_config.json", "special_tokens_map.json"] {
        let p = dir.join(sub).join(name);
        if p.is_file() {
            let v = read_json(&p)?;
            let pad = match v.get("pad_token") {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Object(o)) => {
                    o.get("content").and_then(Value::as_str).map(str::to_string)
                }
                _ => None,
            };
            if let Some(pad) = pad {
                return Ok(pad);
            }
        }
    }
    Ok("<|endoftext|>".to_string())
}

impl SdxlConfig {
    /// The second encoder's config and the added-conditioning sizes of `unet` (the parsed
    /// `unet/config.json`, which has `addition_embed_type: "text_time"`).
    fn from_dir(dir: &Path, unet: &Json) -> Result<SdxlConfig> {
        let p = dir.join(layout::TEXT_ENCODER_2_CONFIG);
        if !p.is_file() {
            return Err(DiffusionError::MissingFile {
                path: p,
                what: "SDXL's second text encoder config (transformers CLIPTextConfig JSON of a CLIPTextModelWithProjection): unet/config.json has addition_embed_type \"text_time\", which needs its pooled output".into(),
            });
        }
        let v = read_json(&p)?;
        let clip2 = ClipConfig::from_json(&p, &v)?;
        let j = Json { path: &p, v: &v };
        let projection_dim = j.usize_or("projection_dim", Some(clip2.hidden_size))?;
        let eos_token_id = match j.get("eos_token_id") {
            Some(_) => Some(j.usize("eos_token_id")? as u32),
            None => None,
        };
        let addition_time_embed_dim = unet.usize("addition_time_embed_dim")?;
        let add_embedding_input_dim = unet.usize("projection_class_embeddings_input_dim")?;
        let want = projection_dim + SDXL_TIME_IDS * addition_time_embed_dim;
        if add_embedding_input_dim != want {
            return Err(DiffusionError::Unsupported(format!(
                "{}: projection_class_embeddings_input_dim {add_embedding_input_dim} is not the pooled width {projection_dim} ({}) + {SDXL_TIME_IDS} time ids x addition_time_embed_dim {addition_time_embed_dim} = {want} (an SDXL refiner, with its aesthetic score, is not supported)",
                unet.path.display(),
                layout::TEXT_ENCODER_2_CONFIG
            )));
        }
        // candle's `Timesteps` pads an odd width on the wrong axis for a batch of ids;
        // published SDXL checkpoints use 256.
        if addition_time_embed_dim == 0 || !addition_time_embed_dim.is_multiple_of(2) {
            return Err(unet.bad("addition_time_embed_dim", "an even number"));
        }
        Ok(SdxlConfig {
            clip2,
            projection_dim,
            eos_token_id,
            addition_time_embed_dim,
            add_embedding_input_dim,
            pad_token_2: pad_token(dir, layout::TOKENIZER_2)?,
        })
    }
}

impl DiffusionConfig {
    /// Reads the JSON configs of a diffusers-layout directory (not the weights).
    pub fn from_dir(dir: &Path) -> Result<DiffusionConfig> {
        if !dir.is_dir() {
            return Err(DiffusionError::MissingDir(dir.to_path_buf()));
        }
        let need = |rel: &str, what: &str| -> Result<PathBuf> {
            let p = dir.join(rel);
            if p.is_file() {
                Ok(p)
            } else {
                Err(DiffusionError::MissingFile {
                    path: p,
                    what: what.to_string(),
                })
            }
        };
        let pipeline = match dir.join(layout::MODEL_INDEX) {
            p if p.is_file() => read_json(&p)?
                .get("_class_name")
                .and_then(Value::as_str)
                .map(str::to_string),
            _ => None,
        };

        let p = need(
            layout::TEXT_ENCODER_CONFIG,
            "the CLIP text encoder's config (transformers CLIPTextConfig JSON)",
        )?;
        let clip = ClipConfig::from_json(&p, &read_json(&p)?)?;

        let p = need(
            layout::UNET_CONFIG,
            "the UNet's config (diffusers UNet2DConditionModel JSON)",
        )?;
        let v = read_json(&p)?;
        let j = Json { path: &p, v: &v };
        let channels = j.usizes(
            "block_out_channels",
            j.get("block_out_channels")
                .and_then(Value::as_array)
                .map_or(0, Vec::len),
            None,
        )?;
        let n = channels.len();
        if n == 0 {
            return Err(j.bad("block_out_channels", "a non-empty list"));
        }
        let down: Vec<String> = match j.get("down_block_types").and_then(Value::as_array) {
            Some(a) if a.len() == n => a
                .iter()
                .map(|t| t.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or_else(|| j.bad("down_block_types", "a list of block names"))?,
            _ => return Err(j.bad("down_block_types", &format!("a list of {n} block names"))),
        };
        let heads = match j.get("num_attention_heads") {
            Some(_) => j.usizes("num_attention_heads", n, None)?,
            None => j.usizes("attention_head_dim", n, Some(8))?,
        };
        let transformer_layers = j.usizes("transformer_layers_per_block", n, Some(1))?;
        let blocks = (0..n)
            .map(|i| unet_2d::BlockConfig {
                out_channels: channels[i],
                use_cross_attn: down[i]
                    .starts_with("CrossAttn")
                    .then_some(transformer_layers[i]),
                attention_head_dim: heads[i],
            })
            .collect();
        let unet = unet_2d::UNet2DConditionModelConfig {
            center_input_sample: j.bool_or("center_input_sample", false)?,
            flip_sin_to_cos: j.bool_or("flip_sin_to_cos", true)?,
            freq_shift: j.f64_or("freq_shift", 0.0)?,
            blocks,
            layers_per_block: j.usize_or("layers_per_block", Some(2))?,
            downsample_padding: j.usize_or("downsample_padding", Some(1))?,
            mid_block_scale_factor: j.f64_or("mid_block_scale_factor", 1.0)?,
            norm_num_groups: j.usize_or("norm_num_groups", Some(32))?,
            norm_eps: j.f64_or("norm_eps", 1e-5)?,
            cross_attention_dim: j.usize("cross_attention_dim")?,
            sliced_attention_size: None,
            use_linear_projection: j.bool_or("use_linear_projection", false)?,
        };
        if unet.norm_num_groups != 32 {
            // candle-transformers' down and up blocks normalise their resnets in 32 groups
            // whatever the config says; every published SD checkpoint uses 32.
            return Err(j.bad("norm_num_groups", "32 (what candle's UNet blocks use)"));
        }
        let unet_in_channels = j.usize_or("in_channels", Some(4))?;
        let unet_out_channels = j.usize_or("out_channels", Some(4))?;
        let sample_size = j.usize_or("sample_size", Some(64))?;
        let sdxl = match j.get("addition_embed_type") {
            None => None,
            Some(Value::String(kind)) if kind == "text_time" => {
                Some(SdxlConfig::from_dir(dir, &j)?)
            }
            Some(other) => {
                return Err(DiffusionError::Unsupported(format!(
                    "{}: addition_embed_type {other} is not supported (only SDXL's \"text_time\", or none for SD 1.x/2.x)",
                    p.display()
                )))
            }
        };
        let text_width = clip.hidden_size + sdxl.as_ref().map_or(0, |x| x.clip2.hidden_size);
        if unet.cross_attention_dim != text_width {
            return Err(DiffusionError::Unsupported(format!(
                "{}: cross_attention_dim {} does not match the text encoders' hidden_size {text_width} ({}{})",
                p.display(),
                unet.cross_attention_dim,
                layout::TEXT_ENCODER_CONFIG,
                if sdxl.is_some() {
                    format!(" + {}", layout::TEXT_ENCODER_2_CONFIG)
                } else {
                    String::new()
                }
            )));
        }
        if let Some(x) = &sdxl {
            if x.clip2.max_position_embeddings != clip.max_position_embeddings {
                return Err(DiffusionError::Unsupported(format!(
                    "{}: max_position_embeddings {} differs from {}'s {}; SDXL's two encoders read prompts of one length",
                    layout::TEXT_ENCODER_2_CONFIG,
                    x.clip2.max_position_embeddings,
                    layout::TEXT_ENCODER_CONFIG,
                    clip.max_position_embeddings
                )));
            }
        }

        let p = need(
            layout::VAE_CONFIG,
            "the VAE's config (diffusers AutoencoderKL JSON)",
        )?;
        let v = read_json(&p)?;
        let j = Json { path: &p, v: &v };
        let n = j
            .get("block_out_channels")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        if n == 0 {
            return Err(j.bad("block_out_channels", "a non-empty list"));
        }
        let vae = vae::AutoEncoderKLConfig {
            block_out_channels: j.usizes("block_out_channels", n, None)?,
            layers_per_block: j.usize_or("layers_per_block", Some(2))?,
            latent_channels: j.usize_or("latent_channels", Some(4))?,
            norm_num_groups: j.usize_or("norm_num_groups", Some(32))?,
            use_quant_conv: j.bool_or("use_quant_conv", true)?,
            use_post_quant_conv: j.bool_or("use_post_quant_conv", true)?,
        };
        let vae_scale = j.f64_or("scaling_factor", 0.18215)?;
        if j.usize_or("in_channels", Some(3))? != 3 || j.usize_or("out_channels", Some(3))? != 3 {
            return Err(j.bad("in_channels/out_channels", "3 (RGB)"));
        }
        if unet_in_channels != vae.latent_channels || unet_out_channels != vae.latent_channels {
            return Err(DiffusionError::Unsupported(format!(
                "{}: a UNet with {unet_in_channels} input / {unet_out_channels} output channels does not fit a VAE with {} latent channels (inpainting or other special checkpoints are not supported)",
                dir.join(layout::UNET_CONFIG).display(),
                vae.latent_channels
            )));
        }

        let sampler = match dir.join(layout::SCHEDULER_CONFIG) {
            p if p.is_file() => {
                let v = read_json(&p)?;
                let j = Json { path: &p, v: &v };
                let d = SamplerConfig::default();
                SamplerConfig {
                    beta_start: j.f64_or("beta_start", d.beta_start)?,
                    beta_end: j.f64_or("beta_end", d.beta_end)?,
                    scaled_linear: match j.str_or("beta_schedule", "scaled_linear")? {
                        "scaled_linear" => true,
                        "linear" => false,
                        _ => return Err(j.bad("beta_schedule", "scaled_linear or linear")),
                    },
                    train_timesteps: j.usize_or("num_train_timesteps", Some(1000))?.max(1),
                    prediction: match j.str_or("prediction_type", "epsilon")? {
                        "epsilon" => Prediction::Epsilon,
                        "v_prediction" => Prediction::VPrediction,
                        _ => return Err(j.bad("prediction_type", "epsilon or v_prediction")),
                    },
                    spacing: match j.str_or("timestep_spacing", "trailing")? {
                        "trailing" => Spacing::Trailing,
                        "leading" => Spacing::Leading,
                        "linspace" => Spacing::Linspace,
                        _ => return Err(j.bad("timestep_spacing", "trailing, leading or linspace")),
                    },
                    steps_offset: j.usize_or("steps_offset", Some(1))?,
                }
            }
            _ => SamplerConfig::default(),
        };

        let pad_token = pad_token(dir, "tokenizer")?;

        Ok(DiffusionConfig {
            clip,
            unet,
            unet_in_channels,
            unet_out_channels,
            sample_size,
            vae,
            vae_scale,
            sampler,
            pad_token,
            pipeline,
            sdxl,
        })
    }

    /// Width of the UNet's time embedding: four times its first block's channels, as
    /// candle and diffusers build it.
    pub fn time_embed_dim(&self) -> usize {
        self.unet.blocks[0].out_channels * 4
    }

    /// Pixels per latent cell: 8 for Stable Diffusion's VAE.
    pub fn vae_factor(&self) -> usize {
        1 << (self.vae.block_out_channels.len() - 1)
    }

    /// Keyframe sides are multiples of this, so that every UNet level divides evenly.
    pub fn size_multiple(&self) -> usize {
        self.vae_factor() << (self.unet.blocks.len() - 1)
    }

    /// A keyframe size with the clip's aspect ratio and the area of a `side`² square (at
    /// most the training area, `sample_size` latents squared), sides rounded to
    /// [`DiffusionConfig::size_multiple`]: with SD-Turbo and `side` 512, 704x384 for a 16:9
    /// clip, 512x512 for a square one.
    pub fn keyframe_size(&self, aspect: f64, side: usize) -> (usize, usize) {
        let m = self.size_multiple() as f64;
        let side = (self.sample_size * self.vae_factor()).min(side);
        let area = (side as f64).powi(2);
        let w = (area * aspect).sqrt();
        let h = w / aspect;
        let round = |x: f64| ((x / m).round().max(1.0) * m) as usize;
        (round(w), round(h))
    }
}

// ---------------------------------------------------------------------------------------
// CLIP text encoder (a port of candle-transformers' stable_diffusion::clip)
// ---------------------------------------------------------------------------------------

#[derive(Debug)]
struct ClipAttention {
    q_proj: candle_nn::Linear,
    k_proj: candle_nn::Linear,
    v_proj: candle_nn::Linear,
    out_proj: candle_nn::Linear,
    heads: usize,
    head_dim: usize,
}

impl ClipAttention {
    fn new(vb: VarBuilder, c: &ClipConfig) -> candle_core::Result<Self> {
        let d = c.hidden_size;
        Ok(ClipAttention {
            q_proj: candle_nn::linear(d, d, vb.pp("q_proj"))?,
            k_proj: candle_nn::linear(d, d, vb.pp("k_proj"))?,
            v_proj: candle_nn::linear(d, d, vb.pp("v_proj"))?,
            out_proj: candle_nn::linear(d, d, vb.pp("out_proj"))?,
            heads: c.num_attention_heads,
            head_dim: d / c.num_attention_heads,
        })
    }

    fn forward(&self, xs: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let (b, s, d) = xs.dims3()?;
        let split = |t: Tensor| -> candle_core::Result<Tensor> {
            t.reshape((b, s, self.heads, self.head_dim))?
                .transpose(1, 2)?
                .contiguous()?
                .to_dtype(DType::F32)
        };
        let scale = (self.head_dim as f64).powf(-0.5);
        let q = split((self.q_proj.forward(xs)? * scale)?)?;
        let k = split(self.k_proj.forward(xs)?)?;
        let v = split(self.v_proj.forward(xs)?)?;
        let w = q.matmul(&k.t()?)?.broadcast_add(mask)?;
        let w = candle_nn::ops::softmax_last_dim(&w)?;
        let out = w
            .matmul(&v)?
            .to_dtype(xs.dtype())?
            .transpose(1, 2)?
            .reshape((b, s, d))?;
        self.out_proj.forward(&out)
    }
}

#[derive(Debug)]
struct ClipLayer {
    ln1: candle_nn::LayerNorm,
    attn: ClipAttention,
    ln2: candle_nn::LayerNorm,
    fc1: candle_nn::Linear,
    fc2: candle_nn::Linear,
    act: ClipActivation,
}

impl ClipLayer {
    fn new(vb: VarBuilder, c: &ClipConfig) -> candle_core::Result<Self> {
        let d = c.hidden_size;
        Ok(ClipLayer {
            ln1: candle_nn::layer_norm(d, c.layer_norm_eps, vb.pp("layer_norm1"))?,
            attn: ClipAttention::new(vb.pp("self_attn"), c)?,
            ln2: candle_nn::layer_norm(d, c.layer_norm_eps, vb.pp("layer_norm2"))?,
            fc1: candle_nn::linear(d, c.intermediate_size, vb.pp("mlp").pp("fc1"))?,
            fc2: candle_nn::linear(c.intermediate_size, d, vb.pp("mlp").pp("fc2"))?,
            act: c.activation,
        })
    }

    fn forward(&self, xs: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let xs = (xs + self.attn.forward(&self.ln1.forward(xs)?, mask)?)?;
        let h = self.fc1.forward(&self.ln2.forward(&xs)?)?;
        let h = match self.act {
            ClipActivation::QuickGelu => (&h * candle_nn::ops::sigmoid(&(&h * 1.702)?)?)?,
            ClipActivation::Gelu => h.gelu_erf()?,
        };
        xs + self.fc2.forward(&h)?
    }
}

/// The CLIP text transformer of a Stable Diffusion checkpoint (`text_model.*` weights).
#[derive(Debug)]
pub struct ClipTextModel {
    token_embedding: candle_nn::Embedding,
    position_embedding: candle_nn::Embedding,
    layers: Vec<ClipLayer>,
    final_layer_norm: candle_nn::LayerNorm,
}

impl ClipTextModel {
    pub fn new(vb: VarBuilder, c: &ClipConfig) -> candle_core::Result<Self> {
        let vb = vb.pp("text_model");
        let emb = vb.pp("embeddings");
        Ok(ClipTextModel {
            token_embedding: candle_nn::embedding(
                c.vocab_size,
                c.hidden_size,
                emb.pp("token_embedding"),
            )?,
            position_embedding: candle_nn::embedding(
                c.max_position_embeddings,
                c.hidden_size,
                emb.pp("position_embedding"),
            )?,
            layers: (0..c.num_hidden_layers)
                .map(|i| ClipLayer::new(vb.pp("encoder").pp("layers").pp(i), c))
                .collect::<candle_core::Result<_>>()?,
            final_layer_norm: candle_nn::layer_norm(
                c.hidden_size,
                c.layer_norm_eps,
                vb.pp("final_layer_norm"),
            )?,
        })
    }

    /// Token ids `(batch, seq)` → last hidden state `(batch, seq, hidden)`, causal mask.
    pub fn forward(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        Ok(self.forward_hidden(ids)?.1)
    }

    /// Token ids → the penultimate layer's output (transformers' `hidden_states[-2]`,
    /// before the final layer norm: what SDXL conditions on) and the last hidden state.
    pub fn forward_hidden(&self, ids: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let (_, s) = ids.dims2()?;
        let dev = ids.device();
        let pos = Tensor::arange(0u32, s as u32, dev)?.unsqueeze(0)?;
        let mut xs = self
            .token_embedding
            .forward(ids)?
            .broadcast_add(&self.position_embedding.forward(&pos)?)?;
        let mask: Vec<f32> = (0..s)
            .flat_map(|i| (0..s).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
            .collect();
        let mask = Tensor::from_vec(mask, (s, s), dev)?;
        let mut penultimate = xs.clone();
        for layer in &self.layers {
            penultimate = xs;
            xs = layer.forward(&penultimate, &mask)?;
        }
        Ok((penultimate, self.final_layer_norm.forward(&xs)?))
    }
}

// ---------------------------------------------------------------------------------------
// Tokenizer
// ---------------------------------------------------------------------------------------

/// The tokenizer: `tokenizer/tokenizer.json` or `tokenizer.json`, else the CLIP BPE
/// tokenizer rebuilt from `tokenizer/vocab.json` + `tokenizer/merges.txt` (what diffusers
/// snapshots ship), the way transformers converts it.
pub fn load_tokenizer(dir: &Path) -> Result<tokenizers::Tokenizer> {
    tokenizer_in(dir, "tokenizer", Some(layout::TOKENIZER_JSON_TOP))
}

/// SDXL's second tokenizer, from `tokenizer_2/` (same files as `tokenizer/`).
pub fn load_tokenizer_2(dir: &Path) -> Result<tokenizers::Tokenizer> {
    tokenizer_in(dir, layout::TOKENIZER_2, None)
}

fn tokenizer_in(dir: &Path, sub: &str, top: Option<&str>) -> Result<tokenizers::Tokenizer> {
    let json = format!("{sub}/tokenizer.json");
    let (vocab_rel, merges_rel) = (format!("{sub}/vocab.json"), format!("{sub}/merges.txt"));
    for rel in std::iter::once(json.as_str()).chain(top) {
        let p = dir.join(rel);
        if p.is_file() {
            return tokenizers::Tokenizer::from_file(&p).map_err(|e| DiffusionError::BadFile {
                path: p.clone(),
                message: format!("not a tokenizers JSON file: {e}"),
            });
        }
    }
    let (vocab, merges) = (dir.join(&vocab_rel), dir.join(&merges_rel));
    if vocab.is_file() && merges.is_file() {
        return clip_bpe_tokenizer(&vocab, &merges);
    }
    let top = top.map(|t| format!("{t}, ")).unwrap_or_default();
    Err(DiffusionError::MissingFile {
        path: dir.join(&json),
        what: format!("the CLIP tokenizer: {json}, {top}or {vocab_rel} + {merges_rel}"),
    })
}

fn clip_bpe_tokenizer(vocab: &Path, merges: &Path) -> Result<tokenizers::Tokenizer> {
    use tokenizers::normalizers::{Lowercase, Replace, Sequence as NSeq, NFC};
    use tokenizers::pre_tokenizers::{
        byte_level::ByteLevel, sequence::Sequence as PSeq, split::Split,
    };
    use tokenizers::processors::roberta::RobertaProcessing;
    let bad = |e: tokenizers::Error| DiffusionError::BadFile {
        path: vocab.to_path_buf(),
        message: format!("cannot build the CLIP tokenizer from it and merges.txt: {e}"),
    };
    let bpe = tokenizers::models::bpe::BPE::from_file(
        &vocab.to_string_lossy(),
        &merges.to_string_lossy(),
    )
    .unk_token("<|endoftext|>".into())
    .continuing_subword_prefix(String::new())
    .end_of_word_suffix("</w>".into())
    .build()
    .map_err(bad)?;
    let id = |t: &str| -> Result<u32> {
        bpe_token_id(&bpe, t).ok_or_else(|| DiffusionError::BadFile {
            path: vocab.to_path_buf(),
            message: format!("no {t} token"),
        })
    };
    let (bos, eos) = (id("<|startoftext|>")?, id("<|endoftext|>")?);
    let mut tok = tokenizers::Tokenizer::new(bpe);
    tok.with_normalizer(Some(NSeq::new(vec![
        NFC.into(),
        Replace::new(
            tokenizers::normalizers::replace::ReplacePattern::Regex(r"\s+".into()),
            " ",
        )
        .map_err(bad)?
        .into(),
        Lowercase.into(),
    ])))
    .map_err(bad)?;
    tok.with_pre_tokenizer(Some(PSeq::new(vec![
        Split::new(
            tokenizers::pre_tokenizers::split::SplitPattern::Regex(
                r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"
                    .into(),
            ),
            tokenizers::SplitDelimiterBehavior::Removed,
            true,
        )
        .map_err(bad)?
        .into(),
        ByteLevel::new(false, true, true).into(),
    ])));
    tok.with_post_processor(Some(
        RobertaProcessing::new(
            ("<|endoftext|>".into(), eos),
            ("<|startoftext|>".into(), bos),
        )
        .trim_offsets(false)
        .add_prefix_space(false),
    ));
    Ok(tok)
}

fn bpe_token_id(bpe: &tokenizers::models::bpe::BPE, token: &str) -> Option<u32> {
    use tokenizers::Model;
    bpe.token_to_id(token)
}

// ---------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------

/// One safetensors file and its digest.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightsFile {
    /// Relative to the weights directory, `/`-separated.
    pub path: String,
    pub sha256: String,
}

/// Who made the pictures: recorded in the manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelIdentity {
    /// e.g. `stabilityai/sd-turbo` (from a hub cache path) or the directory's name.
    pub name: String,
    /// sha256 over the lines `"<file sha256>  <relative path>\n"` of the weights files in
    /// path order (a `sha256sum` listing), so one digest names the whole checkpoint.
    pub sha256: String,
    pub files: Vec<WeightsFile>,
}

impl ModelIdentity {
    /// `name (sha256:…)`, the manifest's `model`.
    pub fn label(&self) -> String {
        format!("{} (sha256:{})", self.name, self.sha256)
    }
}

/// A painted keyframe: RGB, interleaved, values in `[0, 1]` (gamma-encoded, as SD draws).
#[derive(Debug, Clone, PartialEq)]
pub struct Keyframe {
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<f32>,
    pub seed: u64,
}

/// A loaded checkpoint, ready to paint keyframes.
pub struct DiffusionModel {
    pub config: DiffusionConfig,
    pub identity: ModelIdentity,
    tokenizer: tokenizers::Tokenizer,
    pad_id: u32,
    clip: ClipTextModel,
    /// SDXL's second encoder; `None` for SD 1.x/2.x.
    text2: Option<SecondTextEncoder>,
    unet: Unet,
    vae: vae::AutoEncoderKL,
    device: Device,
    dtype: DType,
}

/// SDXL's `text_encoder_2` (`CLIPTextModelWithProjection`) with its tokenizer.
struct SecondTextEncoder {
    tokenizer: tokenizers::Tokenizer,
    pad_id: u32,
    /// The id whose first position is pooled; `None`: the largest id (transformers'
    /// legacy `eos_token_id == 2` rule, which SDXL's config has).
    pool_id: Option<u32>,
    clip: ClipTextModel,
    /// `text_projection` (no bias): pooled hidden state → pooled embedding.
    projection: candle_nn::Linear,
}

/// A prompt's conditioning: the text hidden states the UNet cross-attends to and, for
/// SDXL, the second encoder's pooled, projected embedding.
#[derive(Debug, Clone)]
pub struct PromptEmbedding {
    /// `(1, seq, cross_attention_dim)`: SD's last hidden state, or SDXL's two encoders'
    /// penultimate hidden states side by side.
    pub hidden: Tensor,
    /// SDXL: `(1, projection_dim)`, f32.
    pub pooled: Option<Tensor>,
}

/// The weight `time_embedding.linear_2.bias` in a diffusers UNet: candle's UNet uses the
/// time embedding only through this layer's output, so SDXL's added embedding is folded in
/// here.
pub const TIME_EMBEDDING_BIAS: &str = "time_embedding.linear_2.bias";

/// SDXL's added `text_time` conditioning, as diffusers computes it:
/// `add_embedding(concat(pooled, add_time_proj(time_ids)))`, with `add_time_proj` the
/// UNet's sinusoidal projection (its `flip_sin_to_cos` and `freq_shift`) at
/// `addition_time_embed_dim`, and `add_embedding` linear → SiLU → linear.
pub struct AddedConditioning {
    time_proj: embeddings::Timesteps,
    embedding: embeddings::TimestepEmbedding,
    /// [`TIME_EMBEDDING_BIAS`] as stored, f32 on the CPU.
    bias: Tensor,
}

impl AddedConditioning {
    /// Reads `add_embedding.*` and the time embedding's bias from the UNet's weights
    /// (`vb`, f32 on the CPU); wrong or missing tensors fail named.
    pub fn new(
        vb: VarBuilder,
        unet: &DiffusionConfig,
        sdxl: &SdxlConfig,
    ) -> candle_core::Result<Self> {
        let time_embed_dim = unet.time_embed_dim();
        Ok(AddedConditioning {
            time_proj: embeddings::Timesteps::new(
                sdxl.addition_time_embed_dim,
                unet.unet.flip_sin_to_cos,
                unet.unet.freq_shift,
            ),
            embedding: embeddings::TimestepEmbedding::new(
                vb.pp("add_embedding"),
                sdxl.add_embedding_input_dim,
                time_embed_dim,
            )?,
            bias: vb.get(time_embed_dim, TIME_EMBEDDING_BIAS)?,
        })
    }

    /// The `time_ids` of a `width`×`height` keyframe, as SDXL pipelines pass them by
    /// default: original size (height, width), crop top-left (0, 0), target size.
    pub fn time_ids((width, height): (usize, usize)) -> [usize; SDXL_TIME_IDS] {
        [height, width, 0, 0, height, width]
    }

    /// The added embedding `(time_embed_dim,)` for a pooled embedding `(1, projection_dim)`
    /// and a keyframe size.
    pub fn added(&self, pooled: &Tensor, size: (usize, usize)) -> candle_core::Result<Tensor> {
        let pooled = pooled.to_device(&Device::Cpu)?.to_dtype(DType::F32)?;
        let ids = Self::time_ids(size).map(|v| v as f32);
        let ids = Tensor::new(&ids, &Device::Cpu)?;
        // (6,) → (6, dim) → (1, 6·dim): each id's projection in turn, as diffusers flattens.
        let times = self.time_proj.forward(&ids)?.reshape((1, ()))?;
        let input = Tensor::cat(&[&pooled, &times], 1)?;
        self.embedding.forward(&input)?.squeeze(0)
    }

    /// [`TIME_EMBEDDING_BIAS`] with the added embedding folded in: `x·Wᵀ + b + a` is
    /// `x·Wᵀ + (b + a)`, so a UNet with this bias runs SDXL's UNet for this conditioning.
    pub fn folded_bias(
        &self,
        pooled: &Tensor,
        size: (usize, usize),
    ) -> candle_core::Result<Tensor> {
        &self.bias + self.added(pooled, size)?
    }
}

/// The UNet's safetensors with one tensor replaced: candle's UNet reads its weights
/// through this, so the folded bias reaches it without copying the file.
struct WithReplacedTensor {
    file: candle_core::safetensors::MmapedSafetensors,
    name: &'static str,
    tensor: Tensor,
}

impl SimpleBackend for WithReplacedTensor {
    fn get(
        &self,
        s: candle_core::Shape,
        name: &str,
        h: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        if name != self.name {
            return SimpleBackend::get(&self.file, s, name, h, dtype, dev);
        }
        if self.tensor.shape() != &s {
            return Err(candle_core::Error::UnexpectedShape {
                msg: format!("shape mismatch for {name}"),
                expected: s,
                got: self.tensor.shape().clone(),
            });
        }
        self.tensor.to_dtype(dtype)?.to_device(dev)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        if name == self.name {
            return self.tensor.to_dtype(dtype)?.to_device(dev);
        }
        SimpleBackend::get_unchecked(&self.file, name, dtype, dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        name == self.name || SimpleBackend::contains_tensor(&self.file, name)
    }
}

/// The conditioning an SDXL UNet was built for: the pooled embedding's bits and the size.
type FoldKey = (Vec<u32>, (usize, usize));

enum Unet {
    /// SD 1.x/2.x: built once.
    Plain(Arc<unet_2d::UNet2DConditionModel>),
    /// SDXL: built from `weights` with the added conditioning folded into
    /// [`TIME_EMBEDDING_BIAS`], again whenever the prompt or keyframe size changes; the
    /// last one built is kept (`None` key: the stored bias, built at load to check every
    /// tensor).
    Sdxl {
        weights: PathBuf,
        added: AddedConditioning,
        built: Mutex<Option<(Option<FoldKey>, Arc<unet_2d::UNet2DConditionModel>)>>,
    },
}

fn weights_file(dir: &Path, rels: [&str; 2], what: &str) -> Result<(String, PathBuf)> {
    for rel in rels {
        let p = dir.join(rel);
        if p.is_file() {
            return Ok((rel.to_string(), p));
        }
    }
    Err(DiffusionError::MissingFile {
        path: dir.join(rels[0]),
        what: format!("{what} ({} or {}, safetensors)", rels[0], rels[1]),
    })
}

/// Reads and checks a safetensors header: tensor name → shape.
fn safetensors_header(path: &Path) -> Result<BTreeMap<String, Vec<usize>>> {
    let bad = |message: String| DiffusionError::BadFile {
        path: path.to_path_buf(),
        message,
    };
    let io = |source| DiffusionError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let size = f.metadata().map_err(io)?.len();
    let mut len = [0u8; 8];
    f.read_exact(&mut len)
        .map_err(|_| bad("not a safetensors file (too short)".into()))?;
    let len = u64::from_le_bytes(len);
    if len > 100 << 20 || 8 + len > size {
        return Err(bad(format!(
            "not a safetensors file (header length {len}, file size {size})"
        )));
    }
    let mut header = vec![0u8; len as usize];
    f.read_exact(&mut header).map_err(io)?;
    let v: Value = serde_json::from_slice(&header)
        .map_err(|e| bad(format!("not a safetensors file (header: {e})")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| bad("not a safetensors file (header is not an object)".into()))?;
    let mut out = BTreeMap::new();
    for (name, t) in obj {
        if name == "__metadata__" {
            continue;
        }
        let shape = t
            .get("shape")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().map(|d| d.as_u64().map(|d| d as usize)).collect())
            .ok_or_else(|| bad(format!("tensor {name} has no shape")))?;
        out.insert(name.clone(), shape);
    }
    if out.is_empty() {
        return Err(bad("holds no tensors".into()));
    }
    Ok(out)
}

fn sha256_file(path: &Path, cancel: &AtomicBool) -> Result<String> {
    let io = |source| DiffusionError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Err(DiffusionError::Interrupted);
        }
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `stabilityai/sd-turbo` for a hub cache snapshot (`models--stabilityai--sd-turbo/
/// snapshots/<hash>`), the directory's own name otherwise.
fn model_name(dir: &Path) -> String {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    let parent = dir.parent();
    if parent.and_then(name).as_deref() == Some("snapshots") {
        if let Some(repo) = parent.and_then(Path::parent).and_then(name) {
            if let Some(rest) = repo.strip_prefix("models--") {
                return rest.replace("--", "/");
            }
        }
    }
    name(&dir).unwrap_or_else(|| "stable-diffusion".into())
}

/// Draws `n` standard normal values from a seed (Box–Muller on splitmix64).
fn normal(seed: u64, n: usize) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let u1 = 1.0 - rng.f64(); // (0, 1]
        let u2 = rng.f64();
        let r = (-2.0 * u1.ln()).sqrt();
        let a = std::f64::consts::TAU * u2;
        out.push((r * a.cos()) as f32);
        out.push((r * a.sin()) as f32);
    }
    out.truncate(n);
    out
}

/// The pad token's id, and a check that the tokenizer fits its text encoder.
fn checked_pad_id(
    tokenizer: &tokenizers::Tokenizer,
    pad: &str,
    clip: &ClipConfig,
    tokenizer_dir: &Path,
    encoder_config: &str,
) -> Result<u32> {
    let pad_id = tokenizer
        .token_to_id(pad)
        .ok_or_else(|| DiffusionError::BadFile {
            path: tokenizer_dir.to_path_buf(),
            message: format!("the pad token {pad:?} is not in the vocabulary"),
        })?;
    if tokenizer.get_vocab_size(true) > clip.vocab_size {
        return Err(DiffusionError::BadFile {
            path: tokenizer_dir.to_path_buf(),
            message: format!(
                "the tokenizer has {} tokens but the text encoder only {} (vocab_size in {encoder_config})",
                tokenizer.get_vocab_size(true),
                clip.vocab_size,
            ),
        });
    }
    Ok(pad_id)
}

/// Prompt → token ids, padded with `pad_id` (or cut) to `len`.
fn tokenize(
    tokenizer: &tokenizers::Tokenizer,
    pad_id: u32,
    len: usize,
    prompt: &str,
) -> Result<Vec<u32>> {
    let enc = tokenizer
        .encode(prompt, true)
        .map_err(|e| DiffusionError::Unsupported(format!("cannot tokenize the prompt: {e}")))?;
    let mut ids = enc.get_ids().to_vec();
    if ids.len() > len {
        // Keep the end-of-text token, as transformers' truncation does.
        let last = *ids.last().expect("non-empty");
        ids.truncate(len - 1);
        ids.push(last);
    }
    ids.resize(len, pad_id);
    Ok(ids)
}

/// The token whose final hidden state CLIP pools: the first `pool_id`, or with `None`
/// the first largest id (transformers' `argmax(input_ids)` for the legacy
/// `eos_token_id == 2`; in CLIP's vocabulary the end token is the largest id).
pub fn pooled_position(ids: &[u32], pool_id: Option<u32>) -> usize {
    let first = |want: u32| ids.iter().position(|&i| i == want);
    match pool_id {
        Some(id) => first(id).unwrap_or(ids.len().saturating_sub(1)),
        None => ids.iter().max().and_then(|&m| first(m)).unwrap_or(0),
    }
}

/// candle's UNet over the weights file, [`TIME_EMBEDDING_BIAS`] replaced by `bias`.
fn build_unet_with_bias(
    weights: &Path,
    bias: Tensor,
    config: &DiffusionConfig,
    device: &Device,
    dtype: DType,
) -> Result<unet_2d::UNet2DConditionModel> {
    // SAFETY: as in `load_on`: mapped read-only while the tensors are copied out.
    let file = unsafe { candle_core::safetensors::MmapedSafetensors::new(weights) }
        .map_err(load_err(weights))?;
    let vb = VarBuilder::from_backend(
        Box::new(WithReplacedTensor {
            file,
            name: TIME_EMBEDDING_BIAS,
            tensor: bias,
        }),
        dtype,
        device.clone(),
    );
    unet_2d::UNet2DConditionModel::new(
        vb,
        config.unet_in_channels,
        config.unet_out_channels,
        false,
        config.unet.clone(),
    )
    .map_err(load_err(weights))
}

impl DiffusionModel {
    /// Checks `dir`, loads the tokenizer and the three networks, hashes the weights. On
    /// the GPU when built with the `cuda` feature and one can be opened, else on the CPU.
    pub fn load(dir: &Path, cancel: &AtomicBool) -> Result<DiffusionModel> {
        // `cuda_if_available` only asks whether the feature is on: with no GPU (or no
        // driver) it is an error, so fall back here as `hallmark_detector` does.
        let device = Device::cuda_if_available(0).unwrap_or(Device::Cpu);
        Self::load_on(dir, device, cancel)
    }

    /// [`DiffusionModel::load`] on a given device.
    pub fn load_on(dir: &Path, device: Device, cancel: &AtomicBool) -> Result<DiffusionModel> {
        // 1. Everything is there and readable, before any heavy work.
        let config = DiffusionConfig::from_dir(dir)?;
        let tokenizer = load_tokenizer(dir)?;
        let mut files = vec![
            weights_file(
                dir,
                [layout::TEXT_ENCODER, layout::TEXT_ENCODER_FP16],
                "the CLIP text encoder weights",
            )?,
            weights_file(dir, [layout::UNET, layout::UNET_FP16], "the UNet weights")?,
            weights_file(dir, [layout::VAE, layout::VAE_FP16], "the VAE weights")?,
        ];
        let tokenizer_2 = match &config.sdxl {
            Some(_) => {
                files.push(weights_file(
                    dir,
                    [layout::TEXT_ENCODER_2, layout::TEXT_ENCODER_2_FP16],
                    "SDXL's second text encoder weights (CLIPTextModelWithProjection, text_projection included)",
                )?);
                Some(load_tokenizer_2(dir)?)
            }
            None => None,
        };
        for (_, p) in &files {
            safetensors_header(p)?;
        }
        let pad_id = checked_pad_id(
            &tokenizer,
            &config.pad_token,
            &config.clip,
            &dir.join("tokenizer"),
            layout::TEXT_ENCODER_CONFIG,
        )?;

        // 2. Load (shapes are checked tensor by tensor).
        let dtype = if device.is_cuda() {
            DType::F16
        } else {
            DType::F32
        };
        let vb = |p: &Path, dtype: DType, device: &Device| -> Result<VarBuilder<'static>> {
            // SAFETY: the files are memory-mapped read-only for the time the tensors are
            // copied out of them; they must not be truncated meanwhile, as with any mmap.
            unsafe { VarBuilder::from_mmaped_safetensors(&[p], dtype, device) }.map_err(load_err(p))
        };
        let clip = ClipTextModel::new(vb(&files[0].1, DType::F32, &device)?, &config.clip)
            .map_err(load_err(&files[0].1))?;
        let text2 = match (&config.sdxl, tokenizer_2) {
            (Some(x), Some(tokenizer)) => {
                let pad_id = checked_pad_id(
                    &tokenizer,
                    &x.pad_token_2,
                    &x.clip2,
                    &dir.join(layout::TOKENIZER_2),
                    layout::TEXT_ENCODER_2_CONFIG,
                )?;
                // transformers pools the first position of `eos_token_id`, or of the
                // largest id when that is the legacy 2; unset, the tokenizer's end token.
                let pool_id = match x.eos_token_id {
                    Some(2) => None,
                    Some(id) => Some(id),
                    None => tokenizer.token_to_id("<|endoftext|>"),
                };
                let p = &files[3].1;
                let vb2 = vb(p, DType::F32, &device)?;
                Some(SecondTextEncoder {
                    tokenizer,
                    pad_id,
                    pool_id,
                    clip: ClipTextModel::new(vb2.clone(), &x.clip2).map_err(load_err(p))?,
                    projection: candle_nn::linear_no_bias(
                        x.clip2.hidden_size,
                        x.projection_dim,
                        vb2.pp("text_projection"),
                    )
                    .map_err(load_err(p))?,
                })
            }
            _ => None,
        };
        if cancel.load(Ordering::Relaxed) {
            return Err(DiffusionError::Interrupted);
        }
        let unet_path = &files[1].1;
        let unet = match &config.sdxl {
            None => Unet::Plain(Arc::new(
                unet_2d::UNet2DConditionModel::new(
                    vb(unet_path, dtype, &device)?,
                    config.unet_in_channels,
                    config.unet_out_channels,
                    false,
                    config.unet.clone(),
                )
                .map_err(load_err(unet_path))?,
            )),
            Some(x) => {
                let added =
                    AddedConditioning::new(vb(unet_path, DType::F32, &Device::Cpu)?, &config, x)
                        .map_err(load_err(unet_path))?;
                // Built once with the stored bias so that every tensor is checked now;
                // the first keyframe rebuilds it with its conditioning folded in.
                let checked =
                    build_unet_with_bias(unet_path, added.bias.clone(), &config, &device, dtype)?;
                Unet::Sdxl {
                    weights: unet_path.clone(),
                    added,
                    built: Mutex::new(Some((None, Arc::new(checked)))),
                }
            }
        };
        if cancel.load(Ordering::Relaxed) {
            return Err(DiffusionError::Interrupted);
        }
        // The VAE stays in f32 everywhere: SDXL's overflows in f16.
        let vae = vae::AutoEncoderKL::new(
            vb(&files[2].1, DType::F32, &device)?,
            3,
            3,
            config.vae.clone(),
        )
        .map_err(load_err(&files[2].1))?;

        // 3. Identity: the weights' digest.
        let mut listed = Vec::new();
        for (rel, p) in &files {
            listed.push(WeightsFile {
                path: rel.clone(),
                sha256: sha256_file(p, cancel)?,
            });
        }
        listed.sort_by(|a, b| a.path.cmp(&b.path));
        let mut h = Sha256::new();
        for f in &listed {
            h.update(format!("{}  {}\n", f.sha256, f.path).as_bytes());
        }
        let identity = ModelIdentity {
            name: model_name(dir),
            sha256: hex(&h.finalize()),
            files: listed,
        };
        Ok(DiffusionModel {
            config,
            identity,
            tokenizer,
            pad_id,
            clip,
            text2,
            unet,
            vae,
            device,
            dtype,
        })
    }

    pub fn device_name(&self) -> &'static str {
        if self.device.is_cuda() {
            "cuda"
        } else {
            "cpu"
        }
    }

    /// Prompt → token ids, padded (or cut) to the text encoder's length.
    pub fn tokens(&self, prompt: &str) -> Result<Vec<u32>> {
        tokenize(
            &self.tokenizer,
            self.pad_id,
            self.config.clip.max_position_embeddings,
            prompt,
        )
    }

    /// The text conditioning: SD's last hidden state; for SDXL both encoders' penultimate
    /// hidden states side by side, and the second's pooled, projected embedding.
    pub fn encode_prompt(&self, prompt: &str) -> Result<PromptEmbedding> {
        let ids_tensor = |ids: Vec<u32>| {
            Tensor::new(ids.as_slice(), &self.device)
                .and_then(|t| t.unsqueeze(0))
                .map_err(candle_err("preparing the tokens"))
        };
        let ids = ids_tensor(self.tokens(prompt)?)?;
        let run = || -> candle_core::Result<PromptEmbedding> {
            let Some(t2) = &self.text2 else {
                return Ok(PromptEmbedding {
                    hidden: self.clip.forward(&ids)?.to_dtype(self.dtype)?,
                    pooled: None,
                });
            };
            let (hidden1, _) = self.clip.forward_hidden(&ids)?;
            let ids2 = tokenize(
                &t2.tokenizer,
                t2.pad_id,
                self.config.clip.max_position_embeddings,
                prompt,
            )
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
            let at = pooled_position(&ids2, t2.pool_id);
            let ids2 = Tensor::new(ids2.as_slice(), &self.device)?.unsqueeze(0)?;
            let (hidden2, last2) = t2.clip.forward_hidden(&ids2)?;
            let pooled = t2
                .projection
                .forward(&last2.narrow(1, at, 1)?.squeeze(1)?)?;
            Ok(PromptEmbedding {
                hidden: Tensor::cat(&[&hidden1, &hidden2], 2)?.to_dtype(self.dtype)?,
                pooled: Some(pooled),
            })
        };
        run().map_err(candle_err("running the text encoder"))
    }

    /// The UNet for this conditioning: SD's one UNet, or SDXL's with the added embedding
    /// for `text` and `size` folded in (built now unless it was the last one built).
    fn unet_for(
        &self,
        text: &PromptEmbedding,
        size: (usize, usize),
    ) -> Result<Arc<unet_2d::UNet2DConditionModel>> {
        let (weights, added, built) = match &self.unet {
            Unet::Plain(unet) => return Ok(unet.clone()),
            Unet::Sdxl {
                weights,
                added,
                built,
            } => (weights, added, built),
        };
        let pooled = text.pooled.as_ref().ok_or_else(|| {
            DiffusionError::Unsupported(
                "an SDXL UNet needs the pooled text embedding of encode_prompt".into(),
            )
        })?;
        let bits = pooled
            .flatten_all()
            .and_then(|t| t.to_dtype(DType::F32))
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(candle_err("reading the pooled embedding"))?;
        let key = Some((bits.iter().map(|v| v.to_bits()).collect(), size));
        // A poisoned lock only means another keyframe failed; the cache is still sound.
        let mut slot = built.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((k, unet)) = slot.as_ref() {
            if *k == key {
                return Ok(unet.clone());
            }
        }
        // Free the previous UNet before building the next: one set of weights at a time.
        *slot = None;
        let bias = added
            .folded_bias(pooled, size)
            .map_err(candle_err("computing SDXL's added conditioning"))?;
        let unet = Arc::new(build_unet_with_bias(
            weights,
            bias,
            &self.config,
            &self.device,
            self.dtype,
        )?);
        *slot = Some((key, unet.clone()));
        Ok(unet)
    }

    /// Paints one keyframe of `width`×`height` pixels (multiples of
    /// [`DiffusionConfig::size_multiple`]) in `steps` Euler ancestral steps. The starting
    /// noise and every step's noise come from `seed`.
    pub fn keyframe(
        &self,
        text: &PromptEmbedding,
        seed: u64,
        (width, height): (usize, usize),
        steps: usize,
        cancel: &AtomicBool,
    ) -> Result<Keyframe> {
        let m = self.config.size_multiple();
        if width == 0 || height == 0 || width % m != 0 || height % m != 0 {
            return Err(DiffusionError::Unsupported(format!(
                "keyframe size {width}x{height} is not a multiple of {m}"
            )));
        }
        let unet = self.unet_for(text, (width, height))?;
        let f = self.config.vae_factor();
        let shape = (1, self.config.unet_in_channels, height / f, width / f);
        let n = shape.1 * shape.2 * shape.3;
        let noise = |s: u64| Tensor::from_vec(normal(s, n), shape, &self.device);
        let sampler = &self.config.sampler;
        let (timesteps, sigmas) = sampler.schedule(steps);
        let step_err = candle_err("sampling");
        let run = || -> candle_core::Result<Option<Tensor>> {
            let mut x = (noise(mix(seed))? * sampler.init_noise_sigma(&sigmas))?;
            for (i, &t) in timesteps.iter().enumerate() {
                if cancel.load(Ordering::Relaxed) {
                    return Ok(None);
                }
                let (s, s_to) = (sigmas[i], sigmas[i + 1]);
                let input = (&x / (s * s + 1.0).sqrt())?.to_dtype(self.dtype)?;
                let out = unet
                    .forward(&input, t as f64, &text.hidden)?
                    .to_dtype(DType::F32)?;
                let x0 = match sampler.prediction {
                    Prediction::Epsilon => (&x - (&out * s)?)?,
                    Prediction::VPrediction => {
                        ((&out * (-s / (s * s + 1.0).sqrt()))? + (&x / (s * s + 1.0))?)?
                    }
                };
                let up = (s_to * s_to * (s * s - s_to * s_to) / (s * s))
                    .max(0.0)
                    .sqrt();
                let down = (s_to * s_to - up * up).max(0.0).sqrt();
                let d = ((&x - &x0)? / s)?;
                x = (&x + (d * (down - s))?)?;
                if up > 0.0 {
                    let z = noise(mix(
                        seed ^ (i as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03)
                    ))?;
                    x = (x + (z * up)?)?;
                }
            }
            if cancel.load(Ordering::Relaxed) {
                return Ok(None);
            }
            let x = (x / self.config.vae_scale)?.to_dtype(DType::F32)?;
            let img = decode_tiled(
                &self.vae,
                &x,
                self.config.vae_factor(),
                VAE_TILE,
                VAE_OVERLAP,
            )?;
            let img = ((img / 2.0)? + 0.5)?.permute((1, 2, 0))?.contiguous()?;
            Ok(Some(img))
        };
        let img = run()
            .map_err(step_err)?
            .ok_or(DiffusionError::Interrupted)?;
        let rgb = img
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(candle_err("reading the keyframe"))?
            .into_iter()
            .map(|v| {
                if v.is_finite() {
                    v.clamp(0.0, 1.0)
                } else {
                    0.0
                }
            })
            .collect();
        Ok(Keyframe {
            width,
            height,
            rgb,
            seed,
        })
    }
}

/// Latents wider or taller than this many cells are decoded in overlapping tiles: candle's
/// VAE decoder needs memory in proportion to the picture (measured on the CPU: about 3–4
/// GB more for a 256x256 tile, so some 16 GB for 512x512 in one piece); tiles of at most
/// 256x256 pixels keep it bounded, for about a quarter more work at 512x512.
pub const VAE_TILE: usize = 32;
/// Overlap of neighbouring tiles, in latent cells; blended linearly.
pub const VAE_OVERLAP: usize = 8;

/// Splits `len` cells into as few tiles as fit in `tile` cells each, overlapping by about
/// `overlap`: `(start, size)` pairs covering `0..len`.
pub fn tiles(len: usize, tile: usize, overlap: usize) -> Vec<(usize, usize)> {
    if len <= tile || tile <= overlap {
        return vec![(0, len)];
    }
    let n = (len - overlap).div_ceil(tile - overlap);
    let size = (len + (n - 1) * overlap).div_ceil(n).min(tile);
    (0..n)
        .map(|i| ((i * (len - size) + (n - 1) / 2) / (n - 1), size))
        .collect()
}

/// Decodes latents `(1, C, h, w)` (already divided by the scaling factor) to an RGB image
/// `(3, h·factor, w·factor)` in `[-1, 1]`, f32 on the CPU, tile by tile when they are large.
pub fn decode_tiled(
    vae: &vae::AutoEncoderKL,
    z: &Tensor,
    factor: usize,
    tile: usize,
    overlap: usize,
) -> candle_core::Result<Tensor> {
    let (_, _, h, w) = z.dims4()?;
    let (ty, tx) = (tiles(h, tile, overlap), tiles(w, tile, overlap));
    let host = |t: Tensor| t.to_device(&Device::Cpu)?.to_dtype(DType::F32)?.squeeze(0);
    if ty.len() == 1 && tx.len() == 1 {
        return host(vae.decode(z)?);
    }
    let (ph, pw, ov) = (h * factor, w * factor, (overlap * factor).max(1) as f32);
    let mut acc = vec![0f32; 3 * ph * pw];
    let mut wsum = vec![0f32; ph * pw];
    // Weight of pixel `p` of a tile `size` pixels long: ramps up over the overlap where
    // there is a neighbour before, down where there is one after.
    let ramp = |p: usize, size: usize, first: bool, last: bool| -> f32 {
        let up = if first {
            1.0
        } else {
            ((p as f32 + 0.5) / ov).min(1.0)
        };
        let down = if last {
            1.0
        } else {
            (((size - p) as f32 - 0.5) / ov).min(1.0)
        };
        up * down
    };
    for (iy, &(y0, th)) in ty.iter().enumerate() {
        for (ix, &(x0, tw)) in tx.iter().enumerate() {
            let part = host(vae.decode(&z.narrow(2, y0, th)?.narrow(3, x0, tw)?)?)?;
            let data = part.flatten_all()?.to_vec1::<f32>()?;
            let (hp, wp) = (th * factor, tw * factor);
            for y in 0..hp {
                let wy = ramp(y, hp, iy == 0, iy + 1 == ty.len());
                let oy = y0 * factor + y;
                for x in 0..wp {
                    let wgt = wy * ramp(x, wp, ix == 0, ix + 1 == tx.len());
                    let o = oy * pw + x0 * factor + x;
                    wsum[o] += wgt;
                    for c in 0..3 {
                        acc[c * ph * pw + o] += wgt * data[(c * hp + y) * wp + x];
                    }
                }
            }
        }
    }
    for (i, v) in acc.iter_mut().enumerate() {
        *v /= wsum[i % (ph * pw)];
    }
    Tensor::from_vec(acc, (3, ph, pw), &Device::Cpu)
}

// ---------------------------------------------------------------------------------------
// Options and the animation
// ---------------------------------------------------------------------------------------

/// Default keyframe area on the CPU: 384² pixels (512x320 for a 16:9 clip with SD-Turbo),
/// about half the cost of 512².
pub const CPU_KEYFRAME_SIDE: usize = 384;
/// Default keyframe area on a GPU: 512², what the turbo models are distilled at.
pub const GPU_KEYFRAME_SIDE: usize = 512;

/// Options of the diffusion backend.
#[derive(Debug, Clone, PartialEq)]
pub struct DiffusionOptions {
    /// The checkpoint directory (diffusers layout).
    pub weights: PathBuf,
    /// Keyframes to paint; `None`: 2 up to 4 s, 3 beyond.
    pub keyframes: Option<usize>,
    /// Keyframe size; `None`: about [`CPU_KEYFRAME_SIDE`]² pixels on the CPU and
    /// [`GPU_KEYFRAME_SIDE`]² on a GPU (at most the model's training area), in the clip's
    /// aspect ratio.
    pub keyframe_size: Option<(usize, usize)>,
    /// Sampling steps per keyframe (1 to 50); turbo models want 1 to 4.
    pub steps: usize,
}

impl DiffusionOptions {
    pub fn new(weights: impl Into<PathBuf>) -> DiffusionOptions {
        DiffusionOptions {
            weights: weights.into(),
            keyframes: None,
            keyframe_size: None,
            steps: 1,
        }
    }

    /// How many keyframes a clip of `duration_s` gets.
    pub fn keyframe_count(&self, duration_s: f64) -> usize {
        self.keyframes
            .unwrap_or(if duration_s <= 4.0 { 2 } else { 3 })
            .clamp(1, 16)
    }
}

/// The seed of keyframe `k` (53 bits: exact in JSON, fits the manifest's CBOR integers).
fn keyframe_seed(seed: u64, k: usize) -> u64 {
    mix(seed ^ 0xD1F_F051_0000 ^ (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)) & ((1 << 53) - 1)
}

/// Progress while preparing a diffusion clip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preparing {
    /// Checking, loading and hashing the weights.
    Loading,
    /// `done` of `total` keyframes painted.
    Keyframes { done: usize, total: usize },
}

/// Loads the model, paints the keyframes and returns the animation (frames + sound) and
/// what the manifest records about it.
pub(crate) fn prepare(
    prompt: &str,
    scene: Scene,
    options: &GenerateOptions,
    diffusion: &DiffusionOptions,
    total_frames: u64,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(Preparing),
) -> Result<(Animation, Value)> {
    if !(1..=50).contains(&diffusion.steps) {
        return Err(DiffusionError::Unsupported(format!(
            "{} sampling steps is not supported (1 to 50)",
            diffusion.steps
        )));
    }
    progress(Preparing::Loading);
    let model = DiffusionModel::load(&diffusion.weights, cancel)?;
    let count = diffusion.keyframe_count(options.duration_s);
    let size = match diffusion.keyframe_size {
        Some(s) => s,
        None => model.config.keyframe_size(
            f64::from(options.width) / f64::from(options.height),
            if model.device.is_cuda() {
                GPU_KEYFRAME_SIDE
            } else {
                CPU_KEYFRAME_SIDE
            },
        ),
    };
    let m = model.config.size_multiple();
    if size.0 == 0 || size.1 == 0 || size.0 % m != 0 || size.1 % m != 0 || size.0.max(size.1) > 2048
    {
        return Err(DiffusionError::Unsupported(format!(
            "keyframe size {}x{} is not supported by this model (multiples of {m}, at most 2048)",
            size.0, size.1
        )));
    }
    let text = model.encode_prompt(prompt)?;
    progress(Preparing::Keyframes {
        done: 0,
        total: count,
    });
    let mut keyframes = Vec::with_capacity(count);
    for k in 0..count {
        if cancel.load(Ordering::Relaxed) {
            return Err(DiffusionError::Interrupted);
        }
        keyframes.push(model.keyframe(
            &text,
            keyframe_seed(options.seed, k),
            size,
            diffusion.steps,
            cancel,
        )?);
        progress(Preparing::Keyframes {
            done: k + 1,
            total: count,
        });
    }
    let anim = Animation::new(scene, options.clone(), keyframes, total_frames);
    let sampler = &model.config.sampler;
    let mut described = json!({
        "model": model.identity.label(),
        "model_name": model.identity.name,
        "model_sha256": model.identity.sha256,
        "weights": model.identity.files.iter().map(|f| json!({"path": f.path, "sha256": f.sha256})).collect::<Vec<_>>(),
        "pipeline": model.config.pipeline,
        "keyframes": count,
        "keyframe_size": [size.0, size.1],
        "keyframe_seeds": anim.keyframes.iter().map(|k| k.seed).collect::<Vec<_>>(),
        "keyframe_times_s": anim.keyframe_times(),
        "steps": diffusion.steps,
        "sampler": "euler-ancestral",
        "prediction": match sampler.prediction { Prediction::Epsilon => "epsilon", Prediction::VPrediction => "v_prediction" },
        "camera": anim.camera.name(),
        "crossfade_s": anim.fade_s,
        "device": model.device_name(),
    });
    if model.config.sdxl.is_some() {
        // What SDXL's added conditioning was given (only SDXL manifests carry it).
        described["sdxl_time_ids"] = json!(AddedConditioning::time_ids(size));
    }
    Ok((anim, described))
}

/// Keyframes animated into frames (camera move + cross-fades), with the sound bed.
pub(crate) struct Animation {
    keyframes: Vec<Keyframe>,
    camera: CameraMove,
    /// Handheld sway phases and the pan/zoom direction, from the seed.
    phases: [f64; 4],
    dir: f64,
    fade_s: f64,
    options: GenerateOptions,
    synth: audio::Synth,
    frames: crate::FrameClock,
    scene: Scene,
}

fn smoothstep(x: f64) -> f64 {
    let x = x.clamp(0.0, 1.0);
    x * x * (3.0 - 2.0 * x)
}

impl Animation {
    pub(crate) fn new(
        scene: Scene,
        options: GenerateOptions,
        keyframes: Vec<Keyframe>,
        total_frames: u64,
    ) -> Animation {
        let seed = crate::clip_seed(&scene, &options);
        let (w, h) = (options.width, options.height);
        let duration = total_frames as f64 / f64::from(options.fps);
        let aspect = w as f32 / h as f32;
        // The scene's sound bed, fireworks thumps included when the prompt asks for them.
        let bursts = if scene.has(Element::Fireworks) {
            render::schedule_bursts(seed, duration, aspect)
        } else {
            Vec::new()
        };
        let total_samples = total_frames * u64::from(options.sample_rate) / u64::from(options.fps);
        let synth = audio::Synth::new(
            &scene,
            &bursts,
            aspect,
            options.sample_rate,
            seed,
            total_samples,
        );
        let mut rng = Rng::new(seed ^ 0xCA3E_0000);
        let phases = std::array::from_fn(|_| rng.range64(0.0, std::f64::consts::TAU));
        let dir = if rng.f32() < 0.5 { -1.0 } else { 1.0 };
        let seg = duration / keyframes.len().max(1) as f64;
        Animation {
            keyframes,
            camera: scene.camera,
            phases,
            dir,
            fade_s: (seg * 0.4).min(1.5),
            frames: crate::FrameClock::new(&options, total_frames),
            options,
            synth,
            scene,
        }
    }

    fn duration(&self) -> f64 {
        self.frames.total() as f64 / f64::from(self.options.fps)
    }

    /// When each keyframe is fully on screen (middle of its segment).
    fn keyframe_times(&self) -> Vec<f64> {
        let seg = self.duration() / self.keyframes.len() as f64;
        (0..self.keyframes.len())
            .map(|k| ((k as f64 + 0.5) * seg * 1000.0).round() / 1000.0)
            .collect()
    }

    /// Keyframe weights at time `t`: `(index, weight)` pairs (one or two).
    fn blend(&self, t: f64) -> Vec<(usize, f32)> {
        let n = self.keyframes.len();
        let seg = self.duration() / n as f64;
        let k = ((t / seg) as usize).min(n - 1);
        let half = self.fade_s / 2.0;
        // Near the boundary with the next keyframe (or the previous one), cross-fade.
        for (a, b, boundary) in [
            (k, k + 1, (k + 1) as f64 * seg),
            (k.wrapping_sub(1), k, k as f64 * seg),
        ] {
            if b < n && a < n && (t - boundary).abs() < half && half > 0.0 {
                let w = smoothstep((t - (boundary - half)) / self.fade_s) as f32;
                return vec![(a, 1.0 - w), (b, w)];
            }
        }
        vec![(k, 1.0)]
    }

    /// The camera at time `t`: zoom (≥ 1) and centre offset in `[-1, 1]²` of the margin.
    fn camera_at(&self, t: f64) -> (f64, f64, f64) {
        let p = (t / self.duration()).clamp(0.0, 1.0);
        let e = smoothstep(p) * 0.6 + p * 0.4; // eased, never quite still
        let ph = &self.phases;
        match self.camera {
            CameraMove::Static => (1.02 + 0.04 * p, 0.0, 0.0),
            CameraMove::Zoom => (1.0 + 0.22 * e, 0.15 * self.dir, -0.1),
            CameraMove::Dolly => (1.04 + 0.16 * e, 0.0, 0.25 - 0.35 * e),
            CameraMove::Pan => (1.15, self.dir * (1.6 * e - 0.8), 0.0),
            CameraMove::Handheld => {
                let s = |f: f64, k: usize| (std::f64::consts::TAU * f * t + ph[k]).sin();
                (
                    1.1 + 0.02 * s(0.13, 3),
                    0.35 * s(0.31, 0) + 0.15 * s(0.77, 1),
                    0.3 * s(0.23, 2) + 0.12 * s(0.91, 0),
                )
            }
        }
    }

    /// Frame at time `t` into YUV 4:2:0 planes (BT.709, limited range).
    fn render(&self, t: f64, planes: &mut [Vec<u8>]) {
        let (w, h) = (self.options.width as usize, self.options.height as usize);
        let blend = self.blend(t);
        let (zoom, cx, cy) = self.camera_at(t);
        let k0 = &self.keyframes[blend[0].0];
        let (kw, kh) = (k0.width as f64, k0.height as f64);
        // The largest window with the clip's aspect inside the keyframe, zoomed, moved.
        let aspect = w as f64 / h as f64;
        let (bw, bh) = if kw / kh > aspect {
            (kh * aspect, kh)
        } else {
            (kw, kw / aspect)
        };
        let (ww, wh) = (bw / zoom, bh / zoom);
        let x0 = (kw - ww) / 2.0 + cx.clamp(-1.0, 1.0) * (bw - ww) / 2.0;
        let y0 = (kh - wh) / 2.0 + cy.clamp(-1.0, 1.0) * (bh - wh) / 2.0;
        let (sx, sy) = (ww / w as f64, wh / h as f64);
        // The mapping is separable: a source column (with its neighbour and weight) per
        // output column, a source row per output row. All keyframes share one size.
        let (kwi, khi) = (k0.width, k0.height);
        let taps = |o: f64, n: usize| -> (usize, usize, f32) {
            let f = o.max(0.0).min(n as f64 - 1.0);
            let i = f as usize;
            (i, (i + 1).min(n - 1), (f - i as f64) as f32)
        };
        let cols: Vec<(usize, usize, f32)> = (0..w)
            .map(|x| taps(x0 + (x as f64 + 0.5) * sx - 0.5, kwi))
            .collect();
        let layers: Vec<(&[f32], f32)> = blend
            .iter()
            .map(|&(k, wgt)| {
                debug_assert_eq!(
                    (self.keyframes[k].width, self.keyframes[k].height),
                    (kwi, khi)
                );
                (self.keyframes[k].rgb.as_slice(), wgt)
            })
            .collect();
        // One output row, RGB interleaved.
        let row = |y: usize, out: &mut [f32]| {
            let (iy, jy, ty) = taps(y0 + (y as f64 + 0.5) * sy - 0.5, khi);
            out.fill(0.0);
            for &(rgb, wgt) in &layers {
                let r0 = &rgb[iy * kwi * 3..(iy + 1) * kwi * 3];
                let r1 = &rgb[jy * kwi * 3..(jy + 1) * kwi * 3];
                for (o, &(ix, jx, tx)) in out.chunks_exact_mut(3).zip(&cols) {
                    for c in 0..3 {
                        let (a0, a1) = (r0[ix * 3 + c], r0[jx * 3 + c]);
                        let (b0, b1) = (r1[ix * 3 + c], r1[jx * 3 + c]);
                        let a = a0 + (a1 - a0) * tx;
                        let b = b0 + (b1 - b0) * tx;
                        o[c] += (a + (b - a) * ty) * wgt;
                    }
                }
            }
        };
        let (yp, rest) = planes.split_at_mut(1);
        let (up, vp) = rest.split_at_mut(1);
        let cw = w / 2;
        yp[0]
            .par_chunks_mut(w * 2)
            .zip(up[0].par_chunks_mut(cw))
            .zip(vp[0].par_chunks_mut(cw))
            .enumerate()
            .for_each(|(cy_, ((yrows, urow), vrow))| {
                let mut rows = vec![0.0f32; w * 6];
                let (top, bottom) = rows.split_at_mut(w * 3);
                row(cy_ * 2, top);
                row(cy_ * 2 + 1, bottom);
                for (i, px) in rows.chunks_exact(3).enumerate() {
                    let luma = 0.2126 * px[0] + 0.7152 * px[1] + 0.0722 * px[2];
                    yrows[i] = (16.0 + 219.0 * luma).round().clamp(16.0, 235.0) as u8;
                }
                let (top, bottom) = rows.split_at(w * 3);
                for x in 0..cw {
                    let avg = |c: usize| {
                        (top[x * 6 + c]
                            + top[x * 6 + 3 + c]
                            + bottom[x * 6 + c]
                            + bottom[x * 6 + 3 + c])
                            / 4.0
                    };
                    let (r, g, b) = (avg(0), avg(1), avg(2));
                    let luma = 0.2126 * r + 0.7152 * g + 0.0722 * b;
                    urow[x] = (128.0 + 224.0 * (b - luma) / 1.8556)
                        .round()
                        .clamp(16.0, 240.0) as u8;
                    vrow[x] = (128.0 + 224.0 * (r - luma) / 1.5748)
                        .round()
                        .clamp(16.0, 240.0) as u8;
                }
            });
    }

    pub(crate) fn video_info(&self) -> VideoInfo {
        self.frames.video_info()
    }

    pub(crate) fn audio_info(&self) -> AudioInfo {
        self.frames.audio_info()
    }

    /// The sound bed's scene and music, for the manifest.
    pub(crate) fn describe_sound(&self) -> Value {
        const NOTES: [&str; 12] = [
            "C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B",
        ];
        let (root, minor, bpm) = self.synth.key;
        let mut d = self.scene.describe();
        d["music"] = json!({
            "key": format!("{} {}", NOTES[root.rem_euclid(12) as usize], if minor { "minor" } else { "major" }),
            "tempo_bpm": (bpm * 10.0).round() / 10.0,
        });
        d
    }

    /// Frame `i`, then the audio covering it; `None` when done.
    pub(crate) fn next_frame(&mut self) -> Option<MediaFrame> {
        let mut job = match self.frames.next()? {
            crate::Next::Ready(chunk) => return Some(chunk),
            crate::Next::Paint(job) => job,
        };
        self.synth.render(&mut job.samples);
        self.render(job.pts_s, &mut job.planes);
        Some(self.frames.finish(job))
    }
}

#[cfg(test)]
#[path = "diffusion_tests.rs"]
mod tests;
