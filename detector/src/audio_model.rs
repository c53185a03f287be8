//! The sound watermark detector's front end as a candle model.
//!
//! [`BandEnergyModel`] takes a batch of analysis frames — `[N, frame_len]` f32, 16 kHz mono,
//! framed by `hallmark_watermark::AudioDetector::take_frames` — on a [`Device`] and returns
//! their band energies `[N, bands + 1]` (each band, then the total), the numbers that
//! `AudioDetector::add_band_energies` turns into tiles, symbols and folds:
//!
//! 1. **Window**: `x · w` (Hann, f32, the product the plain path takes).
//! 2. **DFT** of the bins that matter (1 ..= frame_len/2 − 1: the total needs them all, the
//!    bands are a subset) as one matmul against a precomputed `[frame_len, 2K]` basis, the
//!    cosines of the K bins, then their sines.
//! 3. **Power and band sums**: square, then a matmul with a `[2K, bands + 1]` 0/1 matrix
//!    (bin k's cosine and sine rows have a 1 in its band's column and in the total's).
//!
//! The plain path (`AudioDetector::add_chunk`) computes the same sums with an FFT in f64;
//! here they run in [`Config::dtype`] (f32 by default, which every device has and which
//! stays within the tolerance `tests/audio_model.rs` measures). Nothing is learned: the
//! constants come from `hallmark_watermark::audio_framing`.

use candle_core::{bail, DType, Device, Result, Tensor};
use hallmark_watermark::{audio_framing, AudioFraming};

/// Hyper-parameters of [`BandEnergyModel`].
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Analysis frames (4 ms apart) per batch in the detector's pipeline: 512 ≈ 2 s of
    /// sound, 1 MB of frames.
    pub batch_size: usize,
    /// Type of the DFT and the band sums. The window product is always f32, as in the
    /// plain path. `F64` is closer to the plain path on the CPU; not every GPU has it.
    pub dtype: DType,
    /// On the CPU, leave the model out of the scan ([`crate::scan::AudioScan`]) and measure
    /// the frames with the watermark crate's own FFT (the plain path's numbers, in f64), as
    /// the picture's model runs its fused kernels there. candle's CPU matmul hands its work
    /// to a thread pool whose caller spins until every worker is done: in a scan the caller
    /// is a decoding thread, and with the decoders holding both cores the workers wait for
    /// one — the unmarked 10 s 1080p verify took 1.155 s with the model against 1.125 s
    /// without (medians of 6, 2026-12-04). Ignored on a GPU, which runs the model.
    pub plain_cpu: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            batch_size: 512,
            dtype: DType::F32,
            plain_cpu: true,
        }
    }
}

/// The sound detector's front end: analysis frames → band energies.
pub struct BandEnergyModel {
    config: Config,
    device: Device,
    framing: AudioFraming,
    /// `[1, frame_len]` f32.
    window: Tensor,
    /// `[frame_len, 2K]`: `cos(2πjk/frame_len)` for the K bins, then `sin`.
    basis: Tensor,
    /// `[2K, bands + 1]` 0/1.
    band_sums: Tensor,
}

impl BandEnergyModel {
    pub fn new(config: Config, device: &Device) -> Result<BandEnergyModel> {
        if config.batch_size == 0 {
            bail!("batch_size must be at least 1")
        }
        if !matches!(config.dtype, DType::F32 | DType::F64) {
            bail!("dtype must be f32 or f64, got {:?}", config.dtype)
        }
        let framing = audio_framing();
        let n = framing.frame_len;
        let (lo, hi) = framing.total_bins;
        let bins: Vec<usize> = (lo..hi).collect();
        let k = bins.len();
        if framing.bands.iter().any(|&(b0, b1)| b0 < lo || b1 > hi) {
            bail!("a band lies outside the total's bins")
        }
        let mut basis = vec![0f64; n * 2 * k];
        for j in 0..n {
            for (c, &bin) in bins.iter().enumerate() {
                // j·k mod n keeps the angle small, so it is exact before the cos.
                let a = 2.0 * std::f64::consts::PI * ((j * bin) % n) as f64 / n as f64;
                basis[j * 2 * k + c] = a.cos();
                basis[j * 2 * k + k + c] = a.sin();
            }
        }
        let nb = framing.bands.len();
        let mut sums = vec![0f64; 2 * k * (nb + 1)];
        for (c, &bin) in bins.iter().enumerate() {
            for row in [c, k + c] {
                sums[row * (nb + 1) + nb] = 1.0;
                if let Some(b) = framing
                    .bands
                    .iter()
                    .position(|&(b0, b1)| (b0..b1).contains(&bin))
                {
                    sums[row * (nb + 1) + b] = 1.0;
                }
            }
        }
        let dtype = config.dtype;
        Ok(BandEnergyModel {
            window: Tensor::from_slice(&framing.window, (1, n), device)?,
            basis: Tensor::from_vec(basis, (n, 2 * k), device)?.to_dtype(dtype)?,
            band_sums: Tensor::from_vec(sums, (2 * k, nb + 1), device)?.to_dtype(dtype)?,
            config,
            device: device.clone(),
            framing,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The framing the model measures (the watermark crate's).
    pub fn framing(&self) -> &AudioFraming {
        &self.framing
    }

    /// `[N, frame_len]` f32 frames → `[N, bands + 1]` energies in [`Config::dtype`].
    pub fn forward(&self, frames: &Tensor) -> Result<Tensor> {
        if frames.dtype() != DType::F32 {
            bail!("frames must be f32, got {:?}", frames.dtype())
        }
        let (_, len) = frames.dims2()?;
        if len != self.framing.frame_len {
            bail!(
                "frames must hold {} samples, got {len}",
                self.framing.frame_len
            )
        }
        let x = frames
            .to_device(&self.device)?
            .broadcast_mul(&self.window)?
            .to_dtype(self.config.dtype)?;
        x.matmul(&self.basis)?.sqr()?.matmul(&self.band_sums)
    }

    /// [`BandEnergyModel::forward`] of `frames` (whole frames, row-major) on the host, as
    /// `AudioDetector::add_band_energies` takes them.
    pub fn energies(&self, frames: &[f32]) -> Result<Vec<f64>> {
        let len = self.framing.frame_len;
        if frames.is_empty() {
            return Ok(Vec::new());
        }
        if !frames.len().is_multiple_of(len) {
            bail!("{} samples are not whole frames of {len}", frames.len())
        }
        let x = Tensor::from_slice(frames, (frames.len() / len, len), &self.device)?;
        self.forward(&x)?
            .to_dtype(DType::F64)?
            .flatten_all()?
            .to_vec1::<f64>()
    }
}
