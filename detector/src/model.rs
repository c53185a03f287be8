//! The video watermark detector's front end as a candle model.
//!
//! [`ResidualModel`] takes a batch of decoded luma frames of one size as a `u8` tensor
//! `[B, 1, H, W]` on a [`Device`] and returns, per frame, the analysis-grid *whitened
//! residual* `[B, 1, rows, grid_w]` (f32) that `hallmark_watermark::VideoDetector` sums over
//! the clip — the same numbers as the plain-Rust
//! [`AnalysisGrid::residual`](hallmark_watermark::AnalysisGrid::residual):
//!
//! 1. **Downscale** to the analysis grid ([`ANALYSIS_ROWS`] rows of square cells): a box
//!    filter (sum of the frame pixels of each cell × 1/count) for frames at least as tall as
//!    the grid, bilinear interpolation for shorter ones. The bins and taps come from
//!    [`AnalysisGrid`], so every path bins identically. As tensor ops: `u8 → f32`, two
//!    `index_add`s (rows, then columns) and a multiply; bilinear is `index_select` ×
//!    weights.
//! 2. **Whiten**: residual `r = x − box3(x)` (3×3 mean, edges replicated), activity
//!    `a = box3(|r|)`, output `clamp(r / (a + act_eps), ±clip)`.
//!
//! A GPU (`cuda` feature) runs both stages as the generic tensor ops above. On the CPU
//! they run by default as two fused kernels ([`Config::fused_cpu_kernels`]) that call the
//! watermark crate's own code — the box filter sums the `u8` pixels in `u16`/`u32` and
//! never materialises the frame in f32 — which is ≈ 20× faster than candle's generic CPU
//! ops here. All paths compute the same numbers (the tests compare them bit for bit).
//!
//! Nothing is learned: the model has no weights, only constants derived from the frame
//! size (cached per size). The statistical back end (fold, scale/shift search, p-value,
//! payload) stays in `hallmark-watermark`, fed through `VideoDetector::add_residual`.

use std::sync::{Arc, OnceLock};

use candle_core::{
    bail, CpuStorage, CustomOp1, DType, Device, Layout, Result, Shape, Tensor, WithDType,
};
use hallmark_watermark::{
    whitened_residual, AnalysisGrid, Tap, ANALYSIS_ROWS, WHITEN_ACT_EPS, WHITEN_CLIP,
};

/// Hyper-parameters of [`ResidualModel`]. The defaults are the watermark's own; other
/// values give a model that no longer matches `VideoDetector`'s statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Rows of the analysis grid ([`ANALYSIS_ROWS`]).
    pub analysis_rows: usize,
    /// Frames per batch handed to [`ResidualModel::forward`] by the detector's pipeline
    /// (memory: `batch_size` decoded luma planes, ≈ 2 MB each at 1080p).
    pub batch_size: usize,
    /// Added to the local activity before dividing by it ([`WHITEN_ACT_EPS`]).
    pub act_eps: f32,
    /// Clip of the whitened residual ([`WHITEN_CLIP`]).
    pub clip: f32,
    /// On the CPU, run the two stages as fused kernels (the box downscale over the `u8`
    /// pixels, the whitening frame by frame) instead of generic tensor ops: the same
    /// numbers, ≈ 20× less time (candle's generic CPU ops convert the whole frame to f32,
    /// `index_add` element by element, and hand large element-wise ops to a spinning thread
    /// pool that competes with the decoder). Ignored on a GPU, which runs the generic ops.
    pub fused_cpu_kernels: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            analysis_rows: ANALYSIS_ROWS,
            batch_size: 8,
            act_eps: WHITEN_ACT_EPS,
            clip: WHITEN_CLIP,
            fused_cpu_kernels: true,
        }
    }
}

/// The device detection runs on: with the `cuda` feature the first CUDA GPU if one can be
/// opened, otherwise the CPU. Chosen once per process.
pub fn default_device() -> &'static Device {
    static DEVICE: OnceLock<Device> = OnceLock::new();
    DEVICE.get_or_init(|| {
        #[cfg(feature = "cuda")]
        if let Ok(d) = Device::new_cuda(0) {
            return d;
        }
        Device::Cpu
    })
}

/// Constants of one frame size, on the model's device.
struct Plan {
    grid: Arc<AnalysisGrid>,
    kind: PlanKind,
}

enum PlanKind {
    /// Cells averaging their exact span of the frame ([`AnalysisGrid::for_reading`]: small
    /// frames, fewer than three pixels a cell): computed on the host with the watermark
    /// crate's code on every device, which keeps every path's numbers the same (a weighted
    /// sum has no exact order on a GPU); such frames are small.
    Area,
    Box {
        /// Analysis row of every frame row / column of every frame column, `[H]` / `[W]` u32.
        row_ids: Tensor,
        col_ids: Tensor,
        /// `[1, 1, rows, grid_w]`
        inv_count: Tensor,
    },
    Bilinear {
        /// Per analysis column / row: the two frame columns / rows (u32) and their weights
        /// (`1 − w`, `w`), shaped to broadcast over `[B, H, grid_w]` / `[B, rows, grid_w]`.
        c: [Tensor; 2],
        cw: [Tensor; 2],
        r: [Tensor; 2],
        rw: [Tensor; 2],
    },
}

impl Plan {
    fn new(grid: AnalysisGrid, device: &Device) -> Result<Plan> {
        let (w, h) = grid.frame_size();
        let (wa, ha) = grid.grid_size();
        let kind = if grid.is_area() {
            PlanKind::Area
        } else if grid.is_box() {
            PlanKind::Box {
                row_ids: Tensor::from_slice(grid.row_bins(), h, device)?,
                col_ids: Tensor::from_slice(grid.column_bins(), w, device)?,
                inv_count: Tensor::from_slice(grid.inverse_counts(), (1, 1, ha, wa), device)?,
            }
        } else {
            let (cols, rows) = grid.bilinear_taps();
            let split = |taps: &[Tap], shape: (usize, usize, usize)| {
                let i0: Vec<u32> = taps.iter().map(|t| t.0).collect();
                let i1: Vec<u32> = taps.iter().map(|t| t.1).collect();
                let w0: Vec<f32> = taps.iter().map(|t| 1.0 - t.2).collect();
                let w1: Vec<f32> = taps.iter().map(|t| t.2).collect();
                let n = taps.len();
                Ok::<_, candle_core::Error>((
                    [
                        Tensor::from_vec(i0, n, device)?,
                        Tensor::from_vec(i1, n, device)?,
                    ],
                    [
                        Tensor::from_vec(w0, shape, device)?,
                        Tensor::from_vec(w1, shape, device)?,
                    ],
                ))
            };
            let (c, cw) = split(cols, (1, 1, wa))?;
            let (r, rw) = split(rows, (1, ha, 1))?;
            PlanKind::Bilinear { c, cw, r, rw }
        };
        Ok(Plan {
            grid: Arc::new(grid),
            kind,
        })
    }
}

/// Fused CPU box downscale: `[B, 1, H, W]` u8 → `[B, 1, rows, grid_w]` f32, the exact
/// integers of the generic path (pixel sums × 1/count); for area cells, the plain path's
/// numbers ([`PlanKind::Area`]).
struct FusedBoxDownscale(Arc<AnalysisGrid>);

impl CustomOp1 for FusedBoxDownscale {
    fn name(&self) -> &'static str {
        "hallmark-box-downscale"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let CpuStorage::U8(data) = storage else {
            bail!("{}: frames must be u8", self.name())
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            bail!("{}: frames must be contiguous", self.name())
        };
        let (b, _, h, w) = layout.shape().dims4()?;
        let (fw, fh) = self.0.frame_size();
        let (wa, ha) = self.0.grid_size();
        if (w, h) != (fw, fh) {
            bail!("{}: frame size {w}x{h}, plan {fw}x{fh}", self.name())
        }
        let mut out = Vec::with_capacity(b * wa * ha);
        for frame in data[start..end].chunks_exact(w * h) {
            out.extend(self.0.downscale(frame));
        }
        Ok((CpuStorage::F32(out), Shape::from((b, 1, ha, wa))))
    }
}

/// Fused CPU whitening: `[B, 1, rows, grid_w]` f32 → same shape, frame by frame with the
/// plain path's [`whitened_residual`] (bit-identical to the generic ops).
struct FusedWhiten;

impl CustomOp1 for FusedWhiten {
    fn name(&self) -> &'static str {
        "hallmark-whiten"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = storage else {
            bail!("{}: the analysis grid must be f32", self.name())
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            bail!("{}: the analysis grid must be contiguous", self.name())
        };
        let (b, c, h, w) = layout.shape().dims4()?;
        let mut out = Vec::with_capacity(b * c * h * w);
        for img in data[start..end].chunks_exact(w * h) {
            out.extend(whitened_residual(img, w, h));
        }
        Ok((CpuStorage::F32(out), Shape::from((b, c, h, w))))
    }
}

/// The detector's front end: luma frames → whitened analysis-grid residuals.
pub struct ResidualModel {
    config: Config,
    device: Device,
    /// Plan of the last frame size seen.
    plan: Option<Plan>,
    /// Scalar 9 (f32), for the exact `/ 9` of the 3×3 mean.
    nine: Tensor,
}

/// The planes of `planes` whose `picked` entry is set, in order: what the fine model of
/// [`ResidualModel::forward_planes`] is handed.
pub fn picked_planes<'a>(planes: &[&'a [u8]], picked: &[bool]) -> Vec<&'a [u8]> {
    planes
        .iter()
        .zip(picked)
        .filter(|p| *p.1)
        .map(|p| *p.0)
        .collect()
}

impl ResidualModel {
    pub fn new(config: Config, device: &Device) -> Result<ResidualModel> {
        if config.analysis_rows == 0 || config.batch_size == 0 {
            bail!("analysis_rows and batch_size must be at least 1")
        }
        Ok(ResidualModel {
            nine: Tensor::new(9f32, device)?,
            config,
            device: device.clone(),
            plan: None,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Analysis grid of a `w×h` frame: `(grid_w, rows)`.
    pub fn grid_size(&mut self, w: usize, h: usize) -> Result<(usize, usize)> {
        Ok(self.plan(w, h)?.grid.grid_size())
    }

    fn plan(&mut self, w: usize, h: usize) -> Result<&Plan> {
        if w == 0 || h == 0 {
            bail!("empty frame {w}x{h}")
        }
        if self
            .plan
            .as_ref()
            .is_none_or(|p| p.grid.frame_size() != (w, h))
        {
            let grid = AnalysisGrid::for_reading(w, h, self.config.analysis_rows);
            self.plan = Some(Plan::new(grid, &self.device)?);
        }
        Ok(self.plan.as_ref().expect("plan just set"))
    }

    /// `[B, 1, H, W]` u8 luma → `[B, 1, rows, grid_w]` f32 whitened residuals.
    pub fn forward(&mut self, frames: &Tensor) -> Result<Tensor> {
        let grid = self.downscale(frames)?;
        self.whiten(&grid)
    }

    /// Like [`ResidualModel::forward`], plus the sum of the batch's residuals
    /// `[1, rows, grid_w]`.
    pub fn forward_with_sum(&mut self, frames: &Tensor) -> Result<(Tensor, Tensor)> {
        let r = self.forward(frames)?;
        let sum = r.sum(0)?;
        Ok((r, sum))
    }

    /// `[B, 1, H, W]` u8 luma → `[B, 1, rows, grid_w]` f32 analysis grid.
    pub fn downscale(&mut self, frames: &Tensor) -> Result<Tensor> {
        if frames.dtype() != DType::U8 {
            bail!("frames must be u8, got {:?}", frames.dtype())
        }
        let (b, c, h, w) = frames.dims4()?;
        if c != 1 {
            bail!("frames must have one (luma) channel, got {c}")
        }
        let fused = self.config.fused_cpu_kernels && self.device.is_cpu();
        let device = self.device.clone();
        let frames = frames.to_device(&device)?;
        let plan = self.plan(w, h)?;
        let (wa, ha) = plan.grid.grid_size();
        match &plan.kind {
            PlanKind::Area => {
                let host = frames.to_device(&Device::Cpu)?.contiguous()?;
                let cells = host.apply_op1_no_bwd(&FusedBoxDownscale(plan.grid.clone()))?;
                cells.to_device(&device)
            }
            PlanKind::Box { .. } if fused => frames
                .contiguous()?
                .apply_op1_no_bwd(&FusedBoxDownscale(plan.grid.clone())),
            PlanKind::Box {
                row_ids,
                col_ids,
                inv_count,
            } => {
                // Integer-valued f32 sums (≤ 255·pixels per cell < 2²⁴): exact in any order.
                let x = frames.to_dtype(DType::F32)?.reshape((b, h, w))?;
                let rows =
                    Tensor::zeros((b, ha, w), DType::F32, &device)?.index_add(row_ids, &x, 1)?;
                let rows_t = rows.transpose(1, 2)?.contiguous()?; // [B, W, rows]
                let cells = Tensor::zeros((b, wa, ha), DType::F32, &device)?
                    .index_add(col_ids, &rows_t, 1)?; // [B, grid_w, rows]
                cells
                    .transpose(1, 2)?
                    .reshape((b, 1, ha, wa))?
                    .broadcast_mul(inv_count)
            }
            PlanKind::Bilinear { c, cw, r, rw } => {
                let x = frames.to_dtype(DType::F32)?.reshape((b, h, w))?;
                let lerp = |t: &Tensor, ids: &[Tensor; 2], wts: &[Tensor; 2], dim: usize| {
                    let a = t.index_select(&ids[0], dim)?.broadcast_mul(&wts[0])?;
                    let b = t.index_select(&ids[1], dim)?.broadcast_mul(&wts[1])?;
                    a + b
                };
                let top = lerp(&x, c, cw, 2)?; // [B, H, grid_w]
                lerp(&top, r, rw, 1)?.reshape((b, 1, ha, wa))
            }
        }
    }

    /// Whether this model computes the plain path's numbers with the watermark crate's own
    /// code (the fused CPU kernels with the watermark's constants): then it can read luma
    /// planes where they lie ([`ResidualModel::forward_planes`]).
    fn runs_plain_kernels(&self) -> bool {
        self.config.fused_cpu_kernels
            && self.device.is_cpu()
            && (self.config.act_eps, self.config.clip) == (WHITEN_ACT_EPS, WHITEN_CLIP)
    }

    /// The residuals of `w×h` luma planes on the host (each at least `w·h` bytes), frame
    /// after frame: this model's of every plane and, with `fine`, that model's of the
    /// planes its mask selects. The numbers of [`ResidualModel::forward`] on the batch
    /// tensor of the same planes.
    ///
    /// Where both models run the fused CPU kernels the planes are read in place — no batch
    /// tensor is built (copying a batch of 1080p planes into one, and freeing it, cost a
    /// 10 s 1080p scan ≈ 0.4 s of CPU, more than both kernels) — and, where this model's
    /// grid nests in the fine one (128 rows in 256 or 512),
    /// each selected plane is summed once for both grids
    /// ([`AnalysisGrid::residuals_with`]). Elsewhere (a GPU, the generic ops) one batch
    /// tensor goes through both models (the fine one's only the selected planes).
    pub fn forward_planes(
        &mut self,
        planes: &[&[u8]],
        w: usize,
        h: usize,
        fine: Option<(&mut ResidualModel, &[bool])>,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        if let Some(p) = planes.iter().find(|p| p.len() < w * h) {
            bail!("a luma plane of {} bytes, frame {w}x{h}", p.len())
        }
        if let Some((_, picked)) = &fine {
            if picked.len() != planes.len() {
                bail!(
                    "{} fine selections for {} planes",
                    picked.len(),
                    planes.len()
                )
            }
        }
        if planes.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let in_place =
            self.runs_plain_kernels() && fine.as_ref().is_none_or(|(f, _)| f.runs_plain_kernels());
        if in_place {
            let grid = self.plan(w, h)?.grid.clone();
            let fine = match fine {
                Some((f, picked)) => Some((f.plan(w, h)?.grid.clone(), picked)),
                None => None,
            };
            let (wa, ha) = grid.grid_size();
            let mut coarse = Vec::with_capacity(planes.len() * wa * ha);
            let mut fine_out = Vec::new();
            for (i, y) in planes.iter().enumerate() {
                let y = &y[..w * h];
                match &fine {
                    Some((fg, picked)) if picked[i] => {
                        let (c, f) = grid.residuals_with(fg, y);
                        coarse.extend(c);
                        fine_out.extend(f);
                    }
                    _ => coarse.extend(grid.residual(y)),
                }
            }
            return Ok((coarse, fine_out));
        }
        let batch = |planes: &mut dyn Iterator<Item = &&[u8]>, n: usize, device: &Device| {
            let mut data = Vec::with_capacity(n * w * h);
            for y in planes {
                data.extend_from_slice(&y[..w * h]);
            }
            Tensor::from_vec(data, (n, 1, h, w), device)
        };
        let frames = batch(&mut planes.iter(), planes.len(), &self.device)?;
        let coarse = to_host(&self.forward(&frames)?)?;
        let fine_out = match fine {
            None => Vec::new(),
            Some((model, picked)) => {
                let n = picked.iter().filter(|&&p| p).count();
                if n == 0 {
                    Vec::new()
                } else {
                    let t = if n == planes.len() {
                        frames
                    } else {
                        batch(&mut picked_planes(planes, picked).iter(), n, &model.device)?
                    };
                    to_host(&model.forward(&t)?)?
                }
            }
        };
        Ok((coarse, fine_out))
    }

    /// 3×3 mean with replicated edges over the last two dims of `[B, 1, h, w]`; the sums
    /// run in the same order as the plain path's (left + centre + right, then up + centre
    /// + down, then / 9), so the result is bit-identical.
    fn box3(&self, x: &Tensor) -> Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        let p = x.pad_with_same(3, 1, 1)?;
        let t = ((p.narrow(3, 0, w)? + p.narrow(3, 1, w)?)? + p.narrow(3, 2, w)?)?;
        let p = t.pad_with_same(2, 1, 1)?;
        let s = ((p.narrow(2, 0, h)? + p.narrow(2, 1, h)?)? + p.narrow(2, 2, h)?)?;
        s.broadcast_div(&self.nine)
    }

    /// `[B, 1, rows, grid_w]` analysis grid → whitened residual (same shape).
    pub fn whiten(&self, grid: &Tensor) -> Result<Tensor> {
        let (eps, clip) = (self.config.act_eps, self.config.clip);
        // The fused kernel is the plain path, which has the watermark's constants built in.
        let own_constants = (eps, clip) == (WHITEN_ACT_EPS, WHITEN_CLIP);
        if self.config.fused_cpu_kernels && self.device.is_cpu() && own_constants {
            return grid.contiguous()?.apply_op1_no_bwd(&FusedWhiten);
        }
        let r = (grid - self.box3(grid)?)?;
        let act = self.box3(&r.abs()?)?;
        let den = (act + f64::from(eps))?;
        (r / den)?.clamp(-clip, clip)
    }
}

/// Copies a `[B, 1, rows, grid_w]` result to the host as one row-major `Vec` (frame after
/// frame).
pub fn to_host<T: WithDType>(t: &Tensor) -> Result<Vec<T>> {
    t.flatten_all()?.to_vec1::<T>()
}
