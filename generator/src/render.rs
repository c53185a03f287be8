//! The picture: layered parallax composed per pixel at half resolution (the chroma grid),
//! luma upsampled 2×, written straight to BT.709 limited-range YUV 4:2:0.

use rayon::prelude::*;

use crate::rng::{hash3, Rng};
use crate::scene::{
    CameraMove, Element as E, Mood, Scene, Setting as S, TimeOfDay as T, Weather as W,
};

type Rgb = [f32; 3];

#[inline]
fn lerp(a: f32, b: f32, t: f32) -> f32 {
    a + (b - a) * t
}
#[inline]
fn mix(a: Rgb, b: Rgb, t: f32) -> Rgb {
    [
        lerp(a[0], b[0], t),
        lerp(a[1], b[1], t),
        lerp(a[2], b[2], t),
    ]
}
#[inline]
fn scale(a: Rgb, k: f32) -> Rgb {
    [a[0] * k, a[1] * k, a[2] * k]
}
#[inline]
fn mul(a: Rgb, b: Rgb) -> Rgb {
    [a[0] * b[0], a[1] * b[1], a[2] * b[2]]
}
#[inline]
fn add(a: Rgb, b: Rgb) -> Rgb {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}
#[inline]
fn clamp01(x: f32) -> f32 {
    x.clamp(0.0, 1.0)
}
#[inline]
fn smooth(e0: f32, e1: f32, x: f32) -> f32 {
    let t = clamp01((x - e0) / (e1 - e0));
    t * t * (3.0 - 2.0 * t)
}
/// `floor` without a libm call (baseline x86-64 has no `roundss`).
#[inline]
fn ffloor(x: f32) -> f32 {
    let i = x as i32 as f32;
    if i > x {
        i - 1.0
    } else {
        i
    }
}
#[inline]
fn fract(x: f32) -> f32 {
    x - ffloor(x)
}
/// Polynomial sine, |error| < 1e-3: plenty for pictures.
#[inline]
fn fsin(x: f32) -> f32 {
    use std::f32::consts::{PI, TAU};
    let x = x - TAU * ffloor(x / TAU + 0.5); // [-pi, pi)
    let y = (4.0 / PI) * x - (4.0 / (PI * PI)) * x * x.abs();
    0.225 * (y * y.abs() - y) + y
}
trait Fast {
    fn fsin(self) -> f32;
    fn ffloor(self) -> f32;
}
impl Fast for f32 {
    #[inline]
    fn fsin(self) -> f32 {
        fsin(self)
    }
    #[inline]
    fn ffloor(self) -> f32 {
        ffloor(self)
    }
}

/// Cheap integer hash of two lattice coordinates to `[0, 1)`.
#[inline]
fn ihash(a: i32, b: i32, seed: u32) -> f32 {
    let mut h = (a as u32).wrapping_mul(0x8da6_b343) ^ (b as u32).wrapping_mul(0xd816_3841) ^ seed;
    h ^= h >> 15;
    h = h.wrapping_mul(0x2c1b_3c6d);
    h ^= h >> 12;
    (h >> 8) as f32 / (1u32 << 24) as f32
}
/// Distance from `p` to the segment `a`–`b`.
#[inline]
fn seg_dist(px: f32, py: f32, ax: f32, ay: f32, bx: f32, by: f32) -> f32 {
    let (pax, pay, bax, bay) = (px - ax, py - ay, bx - ax, by - ay);
    let h = clamp01((pax * bax + pay * bay) / (bax * bax + bay * bay + 1e-9));
    let (dx, dy) = (pax - bax * h, pay - bay * h);
    (dx * dx + dy * dy).sqrt()
}

/// Front-to-back compositing accumulator.
struct Acc {
    c: Rgb,
    a: f32,
}
impl Acc {
    #[inline]
    fn put(&mut self, col: Rgb, alpha: f32) {
        let w = (1.0 - self.a) * alpha;
        self.c = add(self.c, scale(col, w));
        self.a += w;
    }
    #[inline]
    fn full(&self) -> bool {
        self.a > 0.998
    }
}

/// A height profile `v = f(u)` over the world's horizontal range.
struct Profile {
    u0: f32,
    inv_du: f32,
    h: Vec<f32>,
    id: Vec<u32>,
}
impl Profile {
    const N: usize = 4096;
    const U0: f32 = -1.5;
    fn new(aspect: f32, f: impl Fn(f32) -> (f32, u32)) -> Profile {
        let span = aspect + 3.0;
        let du = span / Self::N as f32;
        let (h, id) = (0..Self::N).map(|i| f(Self::U0 + i as f32 * du)).unzip();
        Profile {
            u0: Self::U0,
            inv_du: 1.0 / du,
            h,
            id,
        }
    }
    #[inline]
    fn at(&self, u: f32) -> (f32, u32) {
        let x = ((u - self.u0) * self.inv_du).max(0.0);
        let i = (x as usize).min(Self::N - 2);
        let f = (x - i as f32).min(1.0);
        (lerp(self.h[i], self.h[i + 1], f), self.id[i])
    }
}

/// Smooth 1-D value noise.
fn noise1(seed: u64, x: f32) -> f32 {
    let i = x.ffloor();
    let f = x - i;
    let a = hash3(seed, i as i64 as u64, 7);
    let b = hash3(seed, (i as i64 + 1) as u64, 7);
    lerp(a, b, f * f * (3.0 - 2.0 * f))
}
fn fbm1(seed: u64, x: f32, oct: u32) -> f32 {
    let (mut s, mut amp, mut fr, mut norm) = (0.0, 1.0, 1.0, 0.0);
    for o in 0..oct {
        s += amp * noise1(seed.wrapping_add(u64::from(o)), x * fr);
        norm += amp;
        amp *= 0.5;
        fr *= 2.03;
    }
    s / norm
}

/// Tileable 2-D fbm texture, values in `[0, 1]`.
struct Tex {
    w: usize,
    h: usize,
    d: Vec<f32>,
}
impl Tex {
    fn clouds(seed: u64, w: usize, h: usize) -> Tex {
        let mut d = vec![0.0f32; w * h];
        let octaves = [(8usize, 1.0f32), (16, 0.5), (32, 0.25), (64, 0.125)];
        for (o, &(cells, amp)) in octaves.iter().enumerate() {
            let cy = (cells * h / w).max(2);
            let g: Vec<f32> = (0..cells * cy)
                .map(|i| hash3(seed, o as u64, i as u64))
                .collect();
            for y in 0..h {
                let fy = y as f32 * cy as f32 / h as f32;
                let (iy, ty) = (fy as usize, fract(fy));
                let ty = ty * ty * (3.0 - 2.0 * ty);
                for x in 0..w {
                    let fx = x as f32 * cells as f32 / w as f32;
                    let (ix, tx) = (fx as usize, fract(fx));
                    let tx = tx * tx * (3.0 - 2.0 * tx);
                    let at = |a: usize, b: usize| g[(b % cy) * cells + (a % cells)];
                    let v = lerp(
                        lerp(at(ix, iy), at(ix + 1, iy), tx),
                        lerp(at(ix, iy + 1), at(ix + 1, iy + 1), tx),
                        ty,
                    );
                    d[y * w + x] += v * amp / 1.875;
                }
            }
        }
        Tex { w, h, d }
    }
    /// Bilinear, wrapping; `w` and `h` are powers of two.
    #[inline]
    fn sample(&self, u: f32, v: f32) -> f32 {
        let x = u * self.w as f32;
        let y = v * self.h as f32;
        let (fx, fy) = (ffloor(x), ffloor(y));
        let (tx, ty) = (x - fx, y - fy);
        let (mw, mh) = (self.w as i32 - 1, self.h as i32 - 1);
        let (ix, iy) = (fx as i32 & mw, fy as i32 & mh);
        let (jx, jy) = ((ix + 1) & mw, (iy + 1) & mh);
        let (ix, iy, jx, jy) = (ix as usize, iy as usize, jx as usize, jy as usize);
        let r0 = lerp(self.d[iy * self.w + ix], self.d[iy * self.w + jx], tx);
        let r1 = lerp(self.d[jy * self.w + ix], self.d[jy * self.w + jx], tx);
        lerp(r0, r1, ty)
    }
}

/// One scheduled firework explosion.
#[derive(Debug, Clone)]
pub struct Burst {
    /// Explosion time in seconds.
    pub t: f64,
    /// Position in sky-layer world units (height = 1).
    pub x: f32,
    pub y: f32,
    pub color: Rgb,
    pub color2: Rgb,
    pub sparks: usize,
    pub speed: f32,
    pub launch_x: f32,
    pub seed: u64,
    /// Loudness / brightness, 0.6..1.
    pub size: f32,
}

/// Schedules firework bursts over `[0.8, duration - 0.6]`, spaced 0.9–2.1 s.
pub fn schedule_bursts(seed: u64, duration: f64, aspect: f32) -> Vec<Burst> {
    let mut rng = Rng::new(seed ^ 0xF12E_3011);
    let palette: [Rgb; 7] = [
        [1.0, 0.35, 0.25],
        [1.0, 0.8, 0.35],
        [0.4, 0.7, 1.0],
        [0.5, 1.0, 0.5],
        [1.0, 0.45, 0.9],
        [0.95, 0.95, 1.0],
        [0.75, 0.45, 1.0],
    ];
    let mut out = Vec::new();
    let mut t = 0.8 + rng.range64(0.0, 0.6);
    while t < duration - 0.6 {
        let x = rng.range(0.15, 0.85) * aspect;
        out.push(Burst {
            t,
            x,
            y: rng.range(0.12, 0.32),
            color: palette[rng.below(7)],
            color2: palette[rng.below(7)],
            sparks: 70 + rng.below(60),
            speed: rng.range(0.4, 0.55),
            launch_x: x + rng.range(-0.08, 0.08),
            seed: rng.next_u64(),
            size: rng.range(0.6, 1.0),
        });
        t += rng.range64(0.9, 2.1);
    }
    out
}

/// Per-layer affine camera transform: world = a * screen + b.
#[derive(Clone, Copy, Default)]
struct Xf {
    a: f32,
    bx: f32,
    by: f32,
}

/// Grading lookup: input range `[0, LUT_N / LUT_SCALE)`.
const LUT_N: usize = 4096;
const LUT_SCALE: f32 = 1024.0;

/// Per channel: linear value → graded (tint, contrast, soft shoulder) contribution to
/// BT.709 limited-range Y, U, V, in 1/256 code values.
fn grading_lut(tint: Rgb, contrast: f32) -> Vec<[[i32; 3]; LUT_N]> {
    const Y: Rgb = [0.2126, 0.7152, 0.0722];
    const U: Rgb = [-0.2126 / 1.8556, -0.7152 / 1.8556, 0.5];
    const V: Rgb = [0.5, -0.7152 / 1.5748, -0.0722 / 1.5748];
    (0..3)
        .map(|k| {
            std::array::from_fn(|i| {
                let mut q = i as f32 / LUT_SCALE * tint[k];
                q = 0.5 + (q - 0.5) * contrast;
                if q > 0.85 {
                    q = 0.85 + 0.15 * (q - 0.85) / (q - 0.85 + 0.15);
                }
                let g = clamp01(q) * 256.0;
                [
                    (219.0 * Y[k] * g).round() as i32,
                    (224.0 * U[k] * g).round() as i32,
                    (224.0 * V[k] * g).round() as i32,
                ]
            })
        })
        .collect()
}

const STAR_W: usize = 1024;
const STAR_H: usize = 512;
const SKY: usize = 0;
const FAR: usize = 1;
const MID: usize = 2;
const GROUND: usize = 3;
const PERSON: usize = 4;
const PARALLAX: [f32; 5] = [0.04, 0.15, 0.4, 1.0, 0.75];
const DOLLY_DEPTH: [f32; 5] = [0.0, 0.12, 0.35, 1.0, 0.85];

/// Everything that changes per frame, computed once before the pixels.
struct Fs {
    t: f32,
    sky_lut: Vec<Rgb>,
    horizon_col: Rgb,
    sun: Option<(f32, f32, f32, Rgb, f32)>,
    moon: Option<(f32, f32, f32)>,
    light: Rgb,
    cloud_cov: f32,
    cloud_col: Rgb,
    fog: f32,
    fog_col: Rgb,
    star_vis: f32,
    flash: Rgb,
    xf: [Xf; 5],
    hand: (f32, f32, f32, f32),
    person_x: f32,
    glitter_q: u64,
    lit_frac: f32,
    gx: [Vec<f32>; 5],
    gy: [Vec<f32>; 5],
    ground_top: Vec<f32>,
    mid_top: Vec<f32>,
    mid_id: Vec<u32>,
    far_top: Vec<f32>,
    far_id: Vec<u32>,
    water: Vec<WaterRow>,
}

/// What the sea looks like along one pixel row (everything but the waves).
struct WaterRow {
    cov: f32,
    d: f32,
    z: f32,
    base: Rgb,
    reflect: Rgb,
}

pub(crate) struct Renderer {
    w: usize,
    hw: usize,
    hh: usize,
    aspect: f32,
    duration: f32,
    seed: u64,
    setting: S,
    time: T,
    weather: W,
    camera: CameraMove,
    mask: u32,
    horizon: f32,
    ground: Option<f32>,
    far: Option<Profile>,
    mid: Option<Profile>,
    clouds: Tex,
    stars: Vec<u8>,
    pub bursts: Vec<Burst>,
    lut: Vec<[[i32; 3]; LUT_N]>,
    vignette: Vec<f32>,
    rgb: Vec<Rgb>,
    skym: Vec<f32>,
    skyq: Vec<Rgb>,
    qw: usize,
    qh: usize,
    yhalf: Vec<u16>,
    boats: Vec<(f32, f32, f32)>,
    birds: Vec<(f32, f32, f32, f32)>,
    cars: Vec<(f32, f32, Rgb, usize)>,
    pan_speed: f32,
    pub raise: (f32, f32),
    person_x0: f32,
    fire_x: f32,
}

impl Renderer {
    pub fn new(scene: &Scene, seed: u64, w: usize, h: usize, duration: f64) -> Renderer {
        let (hw, hh) = (w / 2, h / 2);
        let aspect = w as f32 / h as f32;
        let mut rng = Rng::new(seed);
        let setting = scene.setting;
        let horizon = match setting {
            S::Beach => 0.52,
            S::Sea => 0.55,
            S::City => 0.62,
            S::Space => 0.9,
            S::Interior => 0.5,
            _ => 0.6,
        };
        let ground = match setting {
            S::Beach => Some(0.74),
            S::Sea => None,
            S::City => Some(0.8),
            S::Forest => Some(0.82),
            S::Mountains => Some(0.84),
            S::Desert => Some(0.78),
            S::SnowField => Some(0.76),
            S::Space => Some(0.84),
            S::Interior => Some(0.8),
        };
        let ps = rng.next_u64();
        let far = match setting {
            S::Beach | S::Sea => {
                let side = if rng.f32() < 0.5 { -1.0 } else { 1.0 };
                Some(Profile::new(aspect, |u| {
                    let c = aspect * 0.5 + side * aspect * 0.55;
                    let bump = (1.0 - ((u - c) / (aspect * 0.35)).powi(2)).max(0.0);
                    (
                        horizon - 0.07 * bump * (0.6 + 0.4 * fbm1(ps, u * 6.0, 4)) + 0.001,
                        0,
                    )
                }))
            }
            S::City => {
                let mut edges = Vec::new();
                let mut u = Profile::U0;
                while u < aspect + 1.6 {
                    let wdt = rng.range(0.05, 0.14);
                    edges.push((u, u + wdt, horizon - rng.range(0.06, 0.3)));
                    u += wdt;
                }
                Some(Profile::new(aspect, move |u| {
                    let i = edges.iter().position(|e| u < e.1).unwrap_or(0);
                    (edges[i].2, i as u32)
                }))
            }
            S::Mountains | S::SnowField | S::Interior | S::Forest => {
                let amp = match setting {
                    S::Forest => 0.09,
                    S::Interior => 0.12,
                    _ => 0.3,
                };
                Some(Profile::new(aspect, |u| {
                    let r = 1.0 - (fbm1(ps, u * 2.2, 5) * 2.0 - 1.0).abs();
                    (horizon - amp * (0.25 + 0.75 * r * r), 0)
                }))
            }
            S::Desert => Some(Profile::new(aspect, |u| {
                let d = (u * 3.0 + fbm1(ps, u * 2.0, 3) * 4.0).fsin() * 0.5 + 0.5;
                (horizon - 0.05 * d, 0)
            })),
            S::Space => None,
        };
        let g = ground.unwrap_or(1.0);
        let ms = rng.next_u64();
        let mid = match setting {
            S::City => {
                let mut edges = Vec::new();
                let mut u = Profile::U0;
                while u < aspect + 1.6 {
                    let wdt = rng.range(0.1, 0.25);
                    edges.push((u, u + wdt, g - rng.range(0.15, 0.45)));
                    u += wdt + rng.range(0.0, 0.06);
                    edges.push((u - 0.0, u, 2.0));
                }
                Some(Profile::new(aspect, move |u| {
                    let i = edges.iter().position(|e| u < e.1).unwrap_or(0);
                    (edges[i].2, i as u32)
                }))
            }
            S::Forest => Some(Profile::new(aspect, |u| {
                let spacing = 0.045;
                let k = (u / spacing).ffloor();
                let f = fract(u / spacing);
                let ht = 0.1 + 0.14 * hash3(ms, k as i64 as u64, 1);
                let tri = 1.0 - (f - 0.5).abs() * 2.0;
                (g - ht * tri.powf(0.7) + 0.005, 0)
            })),
            S::Mountains => Some(Profile::new(aspect, |u| {
                (g - 0.03 - 0.1 * fbm1(ms, u * 3.0, 4), 0)
            })),
            S::Desert => Some(Profile::new(aspect, |u| {
                (
                    g - 0.02 - 0.07 * ((u * 2.1 + fbm1(ms, u, 2) * 3.0).fsin() * 0.5 + 0.5),
                    0,
                )
            })),
            _ => None,
        };
        // Stars: sparse texture in sky world space.
        let mut stars = vec![0u8; STAR_W * STAR_H];
        let n_stars = if setting == S::Space { 2500 } else { 900 };
        for _ in 0..n_stars {
            let i = rng.below(STAR_W * STAR_H);
            let b = rng.f32();
            stars[i] = (40.0 + 215.0 * b * b * b) as u8;
        }
        let bursts = if scene.has(E::Fireworks) {
            schedule_bursts(seed, duration, aspect)
        } else {
            Vec::new()
        };
        let mut tint = [1.0f32; 3];
        let mut contrast = 1.0f32;
        let mut vig_k = 0.35f32;
        for m in &scene.moods {
            let t: Rgb = match m {
                Mood::Warm => [1.07, 1.0, 0.9],
                Mood::Cold => [0.9, 0.98, 1.1],
                Mood::Blue => [0.88, 0.96, 1.14],
                Mood::Golden => [1.1, 1.02, 0.82],
                Mood::Pink => [1.1, 0.92, 1.05],
                Mood::Purple => [1.02, 0.86, 1.14],
                Mood::Green => [0.92, 1.08, 0.92],
                Mood::Red => [1.14, 0.94, 0.88],
                Mood::Dramatic => {
                    contrast *= 1.15;
                    vig_k = 0.55;
                    [1.0; 3]
                }
                Mood::Calm => {
                    contrast *= 0.95;
                    [1.0; 3]
                }
                Mood::Mysterious => [0.85, 0.87, 0.95],
                Mood::Melancholic => [0.93, 0.95, 1.0],
                Mood::Romantic => [1.06, 0.96, 1.0],
                Mood::Joyful => [1.04, 1.03, 1.0],
            };
            tint = mul(tint, t);
        }
        let vignette = (0..hw * hh)
            .map(|i| {
                let x = (i % hw) as f32 / hw as f32 - 0.5;
                let y = (i / hw) as f32 / hh as f32 - 0.5;
                1.0 - vig_k * (x * x + y * y) * 1.3
            })
            .collect();
        let boats = (0..if scene.has(E::Boats) { 3 } else { 0 })
            .map(|_| {
                (
                    rng.range(0.0, aspect),
                    rng.range(-0.012, 0.012),
                    rng.range(0.7, 1.3),
                )
            })
            .collect();
        let birds = (0..if scene.has(E::Birds) { 5 } else { 0 })
            .map(|_| {
                (
                    rng.range(-0.3, aspect),
                    rng.range(0.1, 0.35),
                    rng.range(0.04, 0.08),
                    rng.f32() * 6.0,
                )
            })
            .collect();
        let car_cols: [Rgb; 5] = [
            [0.6, 0.1, 0.1],
            [0.15, 0.2, 0.45],
            [0.8, 0.8, 0.8],
            [0.1, 0.1, 0.1],
            [0.85, 0.7, 0.2],
        ];
        let cars = (0..if scene.has(E::Cars) { 6 } else { 0 })
            .map(|i| {
                let lane = i % 2;
                let sp = rng.range(0.15, 0.3) * if lane == 0 { -1.0 } else { 1.0 };
                (
                    rng.range(-1.0, aspect + 1.0),
                    sp,
                    car_cols[rng.below(5)],
                    lane,
                )
            })
            .collect();
        let pan_speed = match scene.camera {
            CameraMove::Pan => 0.03 * if rng.f32() < 0.5 { -1.0 } else { 1.0 },
            CameraMove::Handheld => 0.006,
            CameraMove::Dolly => 0.008,
            _ => 0.0,
        } / (duration as f32 / 8.0).max(1.0);
        let d = duration as f32;
        let raise = (d * rng.range(0.3, 0.4), d * 0.12 + 0.4);
        let person_x0 = aspect * if pan_speed < 0.0 { 0.36 } else { 0.42 };
        Renderer {
            w,
            hw,
            hh,
            aspect,
            duration: d,
            seed,
            setting,
            time: scene.time,
            weather: scene.weather,
            camera: scene.camera,
            mask: scene.elements.iter().fold(0, |m, e| m | 1 << *e as u32),
            horizon,
            ground,
            far,
            mid,
            clouds: Tex::clouds(seed ^ 0xC10D, 512, 256),
            stars,
            bursts,
            lut: grading_lut(tint, contrast),
            vignette,
            rgb: vec![[0.0; 3]; hw * hh],
            skyq: vec![[0.0; 3]; hw.div_ceil(2) * hh.div_ceil(2)],
            qw: hw.div_ceil(2),
            qh: hh.div_ceil(2),
            skym: vec![0.0; hw * hh],
            yhalf: vec![0; hw * hh],
            boats,
            birds,
            cars,
            pan_speed,
            raise,
            person_x0,
            fire_x: aspect * 0.72,
        }
    }

    #[inline]
    fn has(&self, e: E) -> bool {
        self.mask & (1 << e as u32) != 0
    }

    fn frame_state(&self, t: f32) -> Fs {
        let p = clamp01(t / self.duration);
        let hz = self.horizon;
        let fireworks = !self.bursts.is_empty();
        // Sky palette: zenith, middle, horizon; sun height (relative to horizon), light.
        let (zen, midc, hor, sun_dv, sun_col, light_lvl, light_col): (
            Rgb,
            Rgb,
            Rgb,
            f32,
            Rgb,
            f32,
            Rgb,
        ) = match self.time {
            T::Day => (
                [0.2, 0.42, 0.85],
                [0.45, 0.66, 0.95],
                [0.78, 0.86, 0.96],
                -0.4 + 0.02 * p,
                [1.0, 0.97, 0.88],
                1.0,
                [1.0, 0.98, 0.95],
            ),
            T::Dawn => (
                mix([0.22, 0.25, 0.5], [0.35, 0.45, 0.72], p),
                mix([0.72, 0.5, 0.6], [0.85, 0.7, 0.7], p),
                mix([1.0, 0.68, 0.45], [1.0, 0.82, 0.62], p),
                0.01 - 0.12 * p,
                [1.0, 0.75, 0.5],
                0.55 + 0.2 * p,
                [1.0, 0.85, 0.75],
            ),
            T::Sunset => {
                let e = if fireworks {
                    0.35 + 0.6 * p
                } else {
                    0.1 + 0.7 * p
                };
                (
                    mix([0.55, 0.42, 0.55], [0.24, 0.12, 0.22], e),
                    mix([0.98, 0.6, 0.35], [0.7, 0.28, 0.26], e),
                    mix([1.0, 0.8, 0.45], [1.0, 0.5, 0.22], e),
                    -0.13 + 0.17 * e,
                    mix([1.0, 0.75, 0.35], [1.0, 0.45, 0.15], e),
                    lerp(0.62, 0.28, e),
                    [1.0, 0.72, 0.55],
                )
            }
            T::Night => (
                [0.008, 0.012, 0.04],
                [0.02, 0.03, 0.08],
                if self.setting == S::City {
                    [0.16, 0.1, 0.09]
                } else {
                    [0.05, 0.07, 0.14]
                },
                -0.3,
                [0.9, 0.9, 1.0],
                0.16,
                [0.6, 0.7, 1.0],
            ),
        };
        let (grey, dark) = match self.weather {
            W::Clear => (0.0, 1.0),
            W::Clouds => (0.25, 0.9),
            W::Fog => (0.55, 0.9),
            W::Rain => (0.65, 0.6),
            W::Snow => (0.6, 0.85),
        };
        let desat = |c: Rgb| {
            let l = 0.3 * c[0] + 0.59 * c[1] + 0.11 * c[2];
            scale(mix(c, [l; 3], grey), dark)
        };
        let (zen, midc, hor) = if self.setting == S::Space {
            ([0.0, 0.0, 0.01], [0.01, 0.0, 0.02], [0.02, 0.01, 0.04])
        } else {
            (desat(zen), desat(midc), desat(hor))
        };
        let sky_lut: Vec<Rgb> = (0..256)
            .map(|i| {
                let s = i as f32 / 255.0 * 1.3; // wy / horizon
                if s < 0.55 {
                    mix(zen, midc, smooth(0.0, 0.55, s))
                } else {
                    mix(midc, hor, clamp01((s - 0.55) / 0.45).powf(0.8))
                }
            })
            .collect();
        let clear_sun = matches!(self.weather, W::Clear | W::Clouds);
        let sun = (self.has(E::Sun) && clear_sun).then(|| {
            let x = self.aspect * 0.66;
            let int = if self.time == T::Day { 0.8 } else { 1.0 };
            (x, hz + sun_dv, 0.035, sun_col, int)
        });
        let moon = self
            .has(E::Moon)
            .then_some((self.aspect * 0.78, 0.2, 0.028));
        let light = scale(mul(light_col, [light_lvl; 3]), dark.max(0.7));
        let cloud_cov = match self.weather {
            W::Clear => 0.18,
            W::Clouds => 0.62,
            W::Fog => 0.4,
            W::Rain => 0.95,
            W::Snow => 0.85,
        };
        let cloud_col = match self.time {
            T::Day => [0.95, 0.95, 0.97],
            T::Dawn => [1.0, 0.75, 0.75],
            T::Sunset => mix(sun_col, [0.55, 0.35, 0.45], 0.3 + 0.5 * p),
            T::Night => [0.07, 0.08, 0.12],
        };
        let cloud_col = desat(cloud_col);
        let fog = match self.weather {
            W::Fog => 0.6,
            W::Rain => 0.25,
            W::Snow => 0.2,
            _ => 0.0,
        };
        let star_vis = match self.time {
            T::Night => 1.0,
            T::Sunset if fireworks => smooth(0.3, 1.0, p) * 0.6,
            _ => 0.0,
        };
        // Firework flash lights the whole scene briefly.
        let mut flash = [0.0f32; 3];
        for b in &self.bursts {
            let tau = t - b.t as f32;
            if (0.0..0.5).contains(&tau) {
                let k = (1.0 - tau / 0.5).powi(3) * 0.22 * b.size;
                flash = add(flash, scale(mix(b.color, [1.0; 3], 0.4), k));
            }
        }
        // Camera.
        let (zoom, depth) = match self.camera {
            CameraMove::Zoom => (1.0 + 0.2 * smooth(0.0, 1.0, p), [1.0; 5]),
            CameraMove::Dolly => (1.0 + 0.18 * smooth(0.0, 1.0, p), DOLLY_DEPTH),
            _ => (1.0, [1.0; 5]),
        };
        let (mut dx, mut dy) = (0.0, 0.0);
        if self.camera == CameraMove::Handheld {
            let s = (self.seed % 1000) as f32;
            dx = 0.006
                * ((t * 1.1 + s).fsin()
                    + 0.6 * (t * 2.3 + s * 1.7).fsin()
                    + 0.3 * (t * 5.1).fsin());
            dy = 0.005
                * ((t * 1.3 + s * 0.3).fsin()
                    + 0.5 * (t * 2.9 + s).fsin()
                    + 0.3 * (t * 4.7).fsin());
        }
        let (cx, cy) = (self.aspect * 0.5, 0.5);
        let ox = self.pan_speed * t;
        let mut xf = [Xf::default(); 5];
        for l in 0..5 {
            let z = 1.0 + (zoom - 1.0) * depth[l];
            let a = 1.0 / z;
            xf[l] = Xf {
                a,
                bx: cx - cx * a + ox * PARALLAX[l] + dx,
                by: cy - cy * a + dy,
            };
        }
        // The raised glass: hand position, elbow position.
        // With a glass, the person raises it (a toast); otherwise the arm stays down.
        let r = if self.has(E::Glass) {
            smooth(self.raise.0, self.raise.0 + self.raise.1, t)
        } else {
            0.0
        };
        let person_x = self.person_x0 + 0.004 * (t * 0.7).fsin();
        let hand = (
            lerp(0.085, 0.165, r),
            lerp(0.83, 0.52, r),
            lerp(0.095, 0.145, r),
            lerp(0.73, 0.65, r),
        );
        let lit_frac = match self.time {
            T::Night => 0.5,
            T::Sunset => 0.2 + 0.3 * p,
            T::Dawn => 0.15,
            T::Day => 0.0,
        };
        let hh = self.hh as f32;
        let gx: [Vec<f32>; 5] = std::array::from_fn(|l| {
            (0..self.hw)
                .map(|px| xf[l].a * (px as f32 + 0.5) / hh + xf[l].bx)
                .collect()
        });
        let gy: [Vec<f32>; 5] = std::array::from_fn(|l| {
            (0..self.hh)
                .map(|py| xf[l].a * (py as f32 + 0.5) / hh + xf[l].by)
                .collect()
        });
        let g0 = self.ground.unwrap_or(2.0);
        let ground_top = gx[GROUND]
            .iter()
            .map(|&wx| match self.setting {
                S::Beach => g0 + 0.012 * (wx * 2.0).sin(),
                S::Desert => g0 + 0.03 * (wx * 1.5 + 1.0).sin(),
                S::Mountains | S::SnowField | S::Forest => g0 + 0.015 * (wx * 2.5).sin(),
                S::Space => g0 + 0.01 * (wx * 4.0).sin(),
                _ => g0,
            })
            .collect();
        let (mid_top, mid_id) = match &self.mid {
            Some(p) => gx[MID].iter().map(|&wx| p.at(wx)).unzip(),
            None => (vec![9.0; self.hw], vec![0; self.hw]),
        };
        let (far_top, far_id) = match &self.far {
            Some(p) => gx[FAR].iter().map(|&wx| p.at(wx)).unzip(),
            None => (vec![9.0; self.hw], vec![0; self.hw]),
        };
        let water = {
            let hz = self.horizon;
            let shore = self.ground.unwrap_or(1.0);
            let deep = mul([0.05, 0.16, 0.24], light);
            let flash_w = scale(flash, 0.5);
            gy[MID]
                .iter()
                .map(|&wy| {
                    let cov = clamp01((wy - hz) * self.hh as f32 / xf[MID].a + 0.5);
                    let d = clamp01((wy - hz) / (shore - hz + 0.02));
                    let reflect = sky_lut[((0.9 - 0.5 * d) / 1.3 * 255.0) as usize];
                    let fr = clamp01(1.0 - d * 1.2);
                    let fres = fr * fr.sqrt() * 0.6 + 0.35;
                    WaterRow {
                        cov,
                        d,
                        z: 1.0 / (d + 0.06),
                        base: add(mix(deep, reflect, fres), flash_w),
                        reflect: scale(reflect, 0.12 * (1.0 - d * 0.5)),
                    }
                })
                .collect()
        };
        Fs {
            water,
            gx,
            gy,
            ground_top,
            mid_top,
            mid_id,
            far_top,
            far_id,
            t,
            sky_lut,
            horizon_col: hor,
            sun,
            moon,
            light,
            cloud_cov,
            cloud_col,
            fog,
            fog_col: mix(hor, [0.6, 0.62, 0.65], 0.4),
            star_vis,
            flash,
            xf,
            hand,
            person_x,
            glitter_q: (t * 12.0) as u64,
            lit_frac,
        }
    }

    /// Renders the frame at time `t` (seconds) into the three YUV 4:2:0 planes.
    pub fn render(&mut self, t: f64, planes: &mut [Vec<u8>]) {
        let fs = self.frame_state(t as f32);
        let hw = self.hw;
        let mut skyq = std::mem::take(&mut self.skyq);
        {
            let this = &*self;
            let qh = self.qh as f32;
            skyq.par_chunks_mut(self.qw)
                .enumerate()
                .for_each(|(qy, row)| {
                    let sy = (qy as f32 + 0.5) / qh;
                    for (qx, o) in row.iter_mut().enumerate() {
                        *o = this.sky_base(&fs, (qx as f32 + 0.5) / qh, sy);
                    }
                });
        }
        self.skyq = skyq;
        let mut rgb = std::mem::take(&mut self.rgb);
        let mut skym = std::mem::take(&mut self.skym);
        {
            let this = &*self;
            rgb.par_chunks_mut(hw)
                .zip(skym.par_chunks_mut(hw))
                .enumerate()
                .for_each(|(py, (row, mrow))| {
                    let sky_row = this.sky_row(py);
                    for (px, (o, m)) in row.iter_mut().zip(mrow.iter_mut()).enumerate() {
                        let (c, sa) = this.shade(&fs, px, py, &sky_row);
                        *o = c;
                        *m = sa;
                    }
                });
        }
        self.draw_fireworks(&fs, &mut rgb, &skym);
        self.draw_birds(&fs, &mut rgb, &skym);
        self.draw_precip(&fs, &mut rgb);
        self.rgb = rgb;
        self.skym = skym;
        self.write_yuv(planes);
    }

    #[inline]
    fn wxy(&self, fs: &Fs, l: usize, px: usize, py: usize) -> (f32, f32) {
        (fs.gx[l][px], fs.gy[l][py])
    }

    #[inline]
    fn world(&self, fs: &Fs, l: usize, sx: f32, sy: f32) -> (f32, f32) {
        let x = fs.xf[l];
        (x.a * sx + x.bx, x.a * sy + x.by)
    }

    /// Coverage of "below the edge `top`" for a pixel at world height `wy`.
    #[inline]
    fn cover(&self, fs: &Fs, l: usize, wy: f32, top: f32) -> f32 {
        clamp01((wy - top) * self.hh as f32 / fs.xf[l].a + 0.5)
    }

    /// The quarter-resolution sky interpolated vertically to half-resolution row `py`.
    fn sky_row(&self, py: usize) -> Vec<Rgb> {
        let fy = (py as f32 + 0.5) * 0.5 - 0.5;
        let y0 = fy.max(0.0) as usize;
        let ty = (fy - y0 as f32).clamp(0.0, 1.0);
        let y1 = (y0 + 1).min(self.qh - 1);
        let (top, bot) = (
            &self.skyq[y0 * self.qw..(y0 + 1) * self.qw],
            &self.skyq[y1 * self.qw..(y1 + 1) * self.qw],
        );
        top.iter().zip(bot).map(|(&a, &b)| mix(a, b, ty)).collect()
    }

    fn shade(&self, fs: &Fs, px: usize, py: usize, sky_row: &[Rgb]) -> (Rgb, f32) {
        let mut acc = Acc {
            c: [0.0; 3],
            a: 0.0,
        };
        let mut glow = [0.0f32; 3];
        if self.has(E::Person) {
            self.person(fs, px, py, &mut acc);
        }
        if self.has(E::Fire) || self.has(E::Candles) {
            self.fire(fs, px, py, &mut acc, &mut glow);
        }
        if !acc.full() && !self.cars.is_empty() {
            self.cars(fs, px, py, &mut acc, &mut glow);
        }
        if self.setting == S::Interior {
            if !acc.full() {
                self.interior(fs, px, py, &mut acc);
            }
        } else if !acc.full() {
            self.ground(fs, px, py, &mut acc);
        }
        if !acc.full() && self.has(E::StreetLights) {
            self.street_lights(fs, px, py, &mut acc, &mut glow);
        }
        if !acc.full() && self.has(E::Waves) && self.setting != S::Interior {
            self.water(fs, px, py, &mut acc);
        }
        if !acc.full() {
            self.hills(fs, px, py, &mut acc);
        }
        let mut sky_a = 0.0;
        if !acc.full() {
            sky_a = 1.0 - acc.a;
            let c = self.sky(fs, px, py, sky_row);
            acc.put(c, 1.0);
        }
        (add(acc.c, glow), sky_a)
    }

    /// Stars on top of the (quarter-resolution, upsampled) sky.
    fn sky(&self, fs: &Fs, px: usize, py: usize, sky_row: &[Rgb]) -> Rgb {
        // horizontal half of the bilinear upsample (the vertical half is per row)
        let fx = (px as f32 + 0.5) * 0.5 - 0.5;
        let x0 = fx.max(0.0) as usize;
        let tx = (fx - x0 as f32).clamp(0.0, 1.0);
        let x1 = (x0 + 1).min(self.qw - 1);
        let mut c = mix(sky_row[x0], sky_row[x1], tx);
        let (wx, wy) = self.wxy(fs, SKY, px, py);
        // stars
        if fs.star_vis > 0.0 {
            let u = ((wx + 2.0) * 180.0) as usize & (STAR_W - 1);
            let v = ((wy + 0.3) * 180.0).max(0.0) as usize;
            if v < STAR_H {
                let b = self.stars[v * STAR_W + u];
                if b > 0 {
                    let tw = 0.65 + 0.35 * (fs.t * (2.0 + f32::from(b % 7)) + f32::from(b)).fsin();
                    let k = f32::from(b) / 255.0
                        * tw
                        * fs.star_vis
                        * smooth(self.horizon, self.horizon - 0.15, wy);
                    c = add(c, [k, k, k * 1.05]);
                }
            }
        }
        c
    }

    /// The sky without stars, evaluated at quarter resolution.
    fn sky_base(&self, fs: &Fs, sx: f32, sy: f32) -> Rgb {
        let (wx, wy) = self.world(fs, SKY, sx, sy);
        let s = (wy / self.horizon).clamp(0.0, 1.3);
        let mut c = fs.sky_lut[(s / 1.3 * 255.0) as usize];
        if let Some((x, y, r, col, int)) = fs.sun {
            let (dx, dy) = (wx - x, (wy - y) * 1.0);
            let d2 = dx * dx + dy * dy;
            let g = int * (0.35 / (1.0 + 900.0 * d2) + 0.25 / (1.0 + 25.0 * d2));
            let disc = clamp01((r - d2.sqrt()) * self.hh as f32 + 0.5);
            c = add(c, scale(col, g));
            c = mix(c, mix(col, [1.0, 1.0, 0.9], 0.6), disc);
        }
        if let Some((x, y, r)) = fs.moon {
            let (dx, dy) = (wx - x, wy - y);
            let d2 = dx * dx + dy * dy;
            let disc = clamp01((r - d2.sqrt()) * self.hh as f32 + 0.5);
            let crater = self.clouds.sample(dx * 3.0, dy * 3.0);
            c = add(c, scale([0.6, 0.65, 0.8], 0.12 / (1.0 + 600.0 * d2)));
            c = mix(c, scale([0.95, 0.94, 0.88], 0.8 + 0.3 * crater), disc);
        }
        if self.setting == S::Space {
            let n1 = self.clouds.sample(wx * 0.35 + 0.3, wy * 0.5);
            let n2 = self.clouds.sample(wx * 0.5 + 0.7, wy * 0.7 + 0.4);
            let neb = smooth(0.45, 0.8, n1);
            c = add(
                c,
                add(
                    scale([0.35, 0.1, 0.45], neb * 0.6),
                    scale([0.05, 0.25, 0.35], smooth(0.5, 0.85, n2) * 0.5),
                ),
            );
        }
        // clouds
        if self.setting != S::Space {
            let horizon_fade = smooth(self.horizon + 0.02, self.horizon - 0.1, wy);
            let n = self.clouds.sample(
                wx * 0.28 + fs.t * 0.004,
                wy * 0.9 / (0.25 + (self.horizon - wy).max(0.0)) * 0.25,
            );
            let thr = 1.0 - fs.cloud_cov;
            let dens = smooth(thr * 0.85, thr * 0.85 + 0.25, n) * horizon_fade;
            if dens > 0.0 {
                let shade = 0.8 + 0.4 * (n - thr).max(0.0);
                c = mix(c, scale(fs.cloud_col, shade), dens * 0.9);
            }
        }
        c = add(c, fs.flash);
        if fs.fog > 0.0 {
            c = mix(c, fs.fog_col, fs.fog * 0.7);
        }
        c
    }

    fn hills(&self, fs: &Fs, px: usize, py: usize, acc: &mut Acc) {
        let base_light = fs.light;
        if self.mid.is_some() {
            let (wx, wy) = self.wxy(fs, MID, px, py);
            let (top, id) = (fs.mid_top[px], fs.mid_id[px]);
            let cov = self.cover(fs, MID, wy, top);
            if cov > 0.0 {
                let depth = clamp01((wy - top) * 5.0);
                let mut c = match self.setting {
                    S::City => {
                        let fac = 0.25 + 0.2 * hash3(self.seed, u64::from(id), 3);
                        let mut c = scale(mul([fac, fac * 0.95, fac * 0.92], base_light), 1.0);
                        let (fx, fy) = (fract(wx * 70.0), fract(wy * 85.0));
                        if (0.25..0.75).contains(&fx) && (0.2..0.7).contains(&fy) {
                            let hsh = ihash(
                                (wx * 70.0).ffloor() as i32,
                                (wy * 85.0).ffloor() as i32,
                                (self.seed) as u32,
                            );
                            if hsh < fs.lit_frac {
                                c = [1.0, 0.78, 0.45];
                            } else {
                                c = add(c, scale(fs.horizon_col, 0.1));
                            }
                        }
                        c
                    }
                    S::Forest => mul([0.06, 0.16, 0.08], base_light),
                    S::Mountains if self.weather == W::Snow => mul(
                        mix([0.85, 0.88, 0.95], [0.7, 0.74, 0.82], depth),
                        base_light,
                    ),
                    S::Mountains => mul(
                        mix([0.28, 0.36, 0.22], [0.2, 0.26, 0.18], depth),
                        base_light,
                    ),
                    S::Desert => mul([0.85, 0.6, 0.36], scale(base_light, 0.9 - 0.2 * depth)),
                    _ => mul([0.3, 0.3, 0.3], base_light),
                };
                c = add(c, scale(fs.flash, 0.3));
                if fs.fog > 0.0 {
                    c = mix(c, fs.fog_col, fs.fog * 0.55);
                }
                acc.put(c, cov);
                if acc.full() {
                    return;
                }
            }
        }
        if self.far.is_some() {
            let (wx, wy) = self.wxy(fs, FAR, px, py);
            let (top, id) = (fs.far_top[px], fs.far_id[px]);
            let cov = self.cover(fs, FAR, wy, top);
            if cov > 0.0 {
                let haze = 0.55;
                let mut c = match self.setting {
                    S::City => {
                        let fac = 0.35 + 0.15 * hash3(self.seed, u64::from(id), 5);
                        let mut c = mul([fac * 0.8, fac * 0.85, fac], base_light);
                        let (fx, fy) = (fract(wx * 140.0), fract(wy * 170.0));
                        if fx < 0.5
                            && fy < 0.5
                            && ihash(
                                (wx * 140.0) as i32,
                                (wy * 170.0) as i32,
                                (self.seed ^ 9) as u32,
                            ) < fs.lit_frac * 0.8
                        {
                            c = [0.9, 0.72, 0.45];
                        }
                        c
                    }
                    S::Mountains | S::SnowField => {
                        let snow = smooth(self.horizon - 0.17, self.horizon - 0.2, wy).max(
                            if self.setting == S::SnowField {
                                0.7
                            } else {
                                0.0
                            },
                        );
                        mul(mix([0.32, 0.36, 0.45], [0.92, 0.94, 1.0], snow), base_light)
                    }
                    S::Forest => mul([0.12, 0.22, 0.16], base_light),
                    S::Desert => mul([0.9, 0.66, 0.42], base_light),
                    _ => mul([0.16, 0.18, 0.2], base_light),
                };
                // Atmospheric perspective: the foot of the range melts into the horizon haze.
                let h = self.horizon;
                c = mix(
                    c,
                    fs.horizon_col,
                    haze * (0.45 + 0.5 * smooth(h - 0.25, h, wy)),
                );
                c = add(c, scale(fs.flash, 0.2));
                if fs.fog > 0.0 {
                    c = mix(c, fs.fog_col, fs.fog * 0.8);
                }
                acc.put(c, cov);
            }
        }
    }

    fn water(&self, fs: &Fs, px: usize, py: usize, acc: &mut Acc) {
        let row = &fs.water[py];
        if row.cov <= 0.0 {
            return;
        }
        let (wx, wy) = self.wxy(fs, MID, px, py);
        let (cov, d, z) = (row.cov, row.d, row.z);
        let (gx, _) = self.wxy(fs, GROUND, px, py);
        let xw = lerp(wx, gx, d) - self.aspect * 0.5;
        let t = fs.t;
        let xp = xw * z;
        let h = (xp * 2.1 + z * 1.7 - t * 1.3).fsin()
            + 0.6 * (xp * 4.3 - z * 2.9 + t * 1.9).fsin()
            + 0.35 * (xp * 9.0 + z * 5.3 - t * 2.7).fsin();
        let mut c = add(row.base, scale(row.reflect, h));
        // Sun / moon path on the water, sparkling.
        let path = fs
            .sun
            .map(|(x, _, _, col, int)| (x, col, int))
            .or(fs.moon.map(|(x, _, _)| (x, [0.8, 0.85, 1.0], 0.6)));
        if let Some((x, col, int)) = path {
            let (sxw, _) = self.wxy(fs, SKY, px, py);
            let dist = (sxw - x).abs() / (0.02 + 0.22 * d);
            if dist < 1.0 {
                let q = ihash(
                    (wx * 600.0) as i32,
                    (wy * 900.0) as i32,
                    (self.seed ^ fs.glitter_q.wrapping_mul(0x9E37_79B9)) as u32,
                );
                let spark = smooth(0.55, 0.95, q + 0.15 * h) * (1.0 - dist) * int;
                c = add(c, scale(col, spark * 1.2 + (1.0 - dist) * 0.15 * int));
            }
        }
        if fs.fog > 0.0 {
            c = mix(c, fs.fog_col, fs.fog * (1.0 - d) * 0.8);
        }
        acc.put(c, cov);
    }

    fn boats(&self, fs: &Fs, px: usize, py: usize, acc: &mut Acc) {
        let (wx, wy) = self.wxy(fs, FAR, px, py);
        let hz = self.horizon;
        for &(x0, v, s) in &self.boats {
            let bx = x0 + v * fs.t;
            let dx = wx - bx;
            if dx.abs() > 0.04 * s {
                continue;
            }
            let hull = wy > hz - 0.008 * s
                && wy < hz + 0.001
                && dx.abs() < 0.03 * s - (wy - (hz - 0.008 * s)) * 0.5;
            let sail_top = hz - 0.07 * s;
            let sail = wy > sail_top
                && wy < hz - 0.01 * s
                && dx > -0.002
                && dx < 0.028 * s * (wy - sail_top) / (0.06 * s);
            if hull || sail {
                let c = mul(
                    if sail {
                        [0.5, 0.5, 0.52]
                    } else {
                        [0.08, 0.08, 0.1]
                    },
                    fs.light,
                );
                acc.put(c, 1.0);
                return;
            }
        }
    }

    fn ground(&self, fs: &Fs, px: usize, py: usize, acc: &mut Acc) {
        if self.ground.is_none() {
            return;
        }
        let (wx, wy) = self.wxy(fs, GROUND, px, py);
        let t = fs.t;
        let top = fs.ground_top[px];
        let cov = self.cover(fs, GROUND, wy, top);
        if cov <= 0.0 {
            if self.has(E::Boats) {
                self.boats(fs, px, py, acc);
            }
            return;
        }
        let grain = ihash((wx * 700.0) as i32, (wy * 700.0) as i32, (self.seed) as u32) - 0.5;
        let depth = clamp01((wy - top) / (1.0 - top + 0.01));
        let light = fs.light;
        let mut c = match self.setting {
            S::Beach => {
                let sand = [0.82, 0.68, 0.5];
                let wet = [0.5, 0.42, 0.34];
                // Swash: a thin sheet of water running up the sand and back.
                let swash = if wy < top + 0.045 {
                    0.035 * (0.5 + 0.5 * (t * std::f32::consts::TAU / 7.0).fsin())
                        + 0.004 * (wx * 9.0 + t).fsin()
                } else {
                    0.0
                };
                let wet_k = smooth(top + 0.06, top + 0.02, wy);
                let mut c = mul(
                    mix(sand, wet, wet_k),
                    scale(light, 1.0 + grain * 0.08 + depth * 0.1),
                );
                if wy < top + swash {
                    let edge = smooth(top + swash - 0.006, top + swash, wy);
                    let sheet = mix(fs.sky_lut[230], [0.95, 0.97, 1.0], edge);
                    c = mix(
                        c,
                        mul(sheet, scale(light, 1.1).map(|v| v.max(0.25))),
                        0.55 + 0.4 * edge,
                    );
                }
                c
            }
            S::City => {
                if wy < top + 0.02 {
                    mul([0.45, 0.44, 0.42], light)
                } else {
                    let mut c = mul([0.16, 0.16, 0.17], scale(light, 1.0 + grain * 0.1));
                    let lane = (wy - 0.905).abs() < 0.003 && fract(wx * 4.0) < 0.5;
                    if lane {
                        c = mul([0.8, 0.8, 0.7], light);
                    }
                    if self.weather == W::Rain {
                        c = add(c, scale(fs.sky_lut[220], 0.3));
                    }
                    c
                }
            }
            S::Forest | S::Mountains if self.weather == W::Snow => mul(
                [0.9, 0.93, 1.0],
                scale(light, 0.95 + grain * 0.06 - depth * 0.1),
            ),
            S::Forest => mul([0.14, 0.2, 0.08], scale(light, 0.8 + grain * 0.2)),
            S::Mountains => mul([0.3, 0.38, 0.18], scale(light, 0.85 + grain * 0.2)),
            S::Desert => mul(
                [0.9, 0.68, 0.44],
                scale(light, 0.95 + grain * 0.1 - depth * 0.1),
            ),
            // Snow catches what light there is (moonlight included).
            S::SnowField => mul(
                [0.9, 0.93, 1.0],
                scale(light, 1.2 + grain * 0.06 - depth * 0.1),
            ),
            S::Space => mul([0.45, 0.44, 0.43], scale([0.5 + grain * 0.3; 3], 1.0)),
            _ => mul([0.3, 0.3, 0.3], light),
        };
        // Skylight on the ground.
        c = add(c, scale(fs.horizon_col, 0.12));
        c = add(c, scale(fs.flash, 0.35));
        if fs.fog > 0.0 {
            c = mix(c, fs.fog_col, fs.fog * 0.3);
        }
        acc.put(c, cov);
        if !acc.full() && self.has(E::Boats) {
            self.boats(fs, px, py, acc);
        }
    }

    fn interior(&self, fs: &Fs, px: usize, py: usize, acc: &mut Acc) {
        let (wx, wy) = self.wxy(fs, GROUND, px, py);
        let floor = self.ground.unwrap_or(0.8);
        let warm = if self.has(E::Candles) || self.has(E::Fire) {
            1.0
        } else {
            0.0
        };
        let lamp: Rgb = [0.55 + 0.2 * warm, 0.42 + 0.1 * warm, 0.32];
        let (x0, x1, y0, y1) = (self.aspect * 0.2, self.aspect * 0.75, 0.12, 0.6);
        let in_window = wx > x0 && wx < x1 && wy > y0 && wy < y1;
        let bar = (wx - (x0 + x1) * 0.5).abs() < 0.008 || (wy - (y0 + y1) * 0.5).abs() < 0.008;
        let frame = in_window
            && ((wx - x0) < 0.015 || (x1 - wx) < 0.015 || (wy - y0) < 0.015 || (y1 - wy) < 0.015);
        if in_window && !bar && !frame {
            return; // the outside shows through
        }
        let c = if wy > floor {
            let plank = ihash((wy * 60.0) as i32, 3, self.seed as u32) * 0.1;
            mul([0.35 + plank, 0.22 + plank * 0.6, 0.12], scale(lamp, 0.9))
        } else if in_window {
            [0.08, 0.06, 0.05]
        } else {
            let dx = (wx - self.aspect * 0.5) / self.aspect;
            mul(
                [0.7, 0.6, 0.5],
                scale(lamp, 1.0 - dx * dx * 1.5 - (floor - wy) * 0.3),
            )
        };
        acc.put(add(c, scale(fs.flash, 0.15)), 1.0);
    }

    fn street_lights(&self, fs: &Fs, px: usize, py: usize, acc: &mut Acc, glow: &mut Rgb) {
        let (wx, wy) = self.wxy(fs, GROUND, px, py);
        let base = self.ground.unwrap_or(0.8) + 0.005;
        let spacing = 0.7;
        let k = ((wx - 0.2) / spacing + 0.5).ffloor();
        let x = k * spacing + 0.2;
        let (lamp_x, lamp_y) = (x + 0.05, base - 0.42);
        let pole = (wx - x).abs() < 0.005 && wy > base - 0.43 && wy < base;
        let arm = wy > lamp_y - 0.006 && wy < lamp_y && wx > x - 0.005 && wx < x + 0.06;
        if pole || arm {
            acc.put(mul([0.1, 0.1, 0.11], fs.light), 1.0);
        }
        let on = matches!(self.time, T::Night | T::Sunset) as u8 as f32;
        for xl in [lamp_x, lamp_x - spacing, lamp_x + spacing] {
            let (dx, dy) = (wx - xl, wy - lamp_y - 0.004);
            let d2 = dx * dx + dy * dy;
            let g = on * (0.9 / (1.0 + 30000.0 * d2) + 0.2 / (1.0 + 300.0 * d2));
            *glow = add(*glow, scale([1.0, 0.75, 0.4], g));
        }
    }

    fn cars(&self, fs: &Fs, px: usize, py: usize, acc: &mut Acc, glow: &mut Rgb) {
        let (wx, wy) = self.wxy(fs, GROUND, px, py);
        let span = self.aspect + 2.0;
        let night = matches!(self.time, T::Night | T::Sunset);
        for &(x0, v, col, lane) in &self.cars {
            let s = if lane == 0 { 0.7 } else { 1.0 };
            let base = if lane == 0 { 0.88 } else { 0.97 };
            let cx = (x0 + v * fs.t + 1.0).rem_euclid(span) - 1.0;
            let (dx, dy) = (wx - cx, base - wy);
            let (len, hgt) = (0.2 * s, 0.05 * s);
            if dx.abs() < len * 0.5 && dy > 0.0 && dy < hgt {
                let cabin = dy > hgt * 0.55;
                let inside = !cabin || dx.abs() < len * 0.28 - (dy - hgt * 0.55) * 0.6;
                if inside {
                    let mut c = mul(col, fs.light);
                    if cabin {
                        c = scale(mul(fs.horizon_col, [0.5; 3]), 0.6);
                    }
                    if dy < hgt * 0.12 && (dx.abs() > len * 0.3 && dx.abs() < len * 0.42) {
                        c = [0.03, 0.03, 0.03]; // wheels
                    }
                    acc.put(add(c, scale(fs.flash, 0.3)), 1.0);
                }
            }
            if night {
                let front = if v > 0.0 { 1.0 } else { -1.0 };
                let hx = cx + front * len * 0.49;
                let tx = cx - front * len * 0.49;
                let ly = base - hgt * 0.35;
                let dh = (wx - hx).powi(2) * 0.3 + (wy - ly).powi(2);
                let dt = (wx - tx).powi(2) + (wy - ly).powi(2);
                *glow = add(
                    *glow,
                    scale([1.0, 0.95, 0.8], 0.7 / (1.0 + 60000.0 * dh / s)),
                );
                *glow = add(
                    *glow,
                    scale([1.0, 0.1, 0.05], 0.5 / (1.0 + 100000.0 * dt / s)),
                );
            }
        }
    }

    fn fire(&self, fs: &Fs, px: usize, py: usize, acc: &mut Acc, glow: &mut Rgb) {
        let (wx, wy) = self.wxy(fs, GROUND, px, py);
        let t = fs.t;
        let flames: &[(f32, f32, f32)] = if self.has(E::Candles) {
            &[(0.0, 0.0, 0.35), (0.07, 0.01, 0.3), (0.14, -0.005, 0.4)]
        } else {
            &[(0.0, 0.0, 1.0)]
        };
        let gy = if self.setting == S::Interior {
            0.78
        } else {
            self.ground.unwrap_or(0.85) + 0.06
        };
        for (i, &(ox, oy, s)) in flames.iter().enumerate() {
            let fx = self.fire_x + ox;
            let fy = gy + oy;
            let flick =
                0.85 + 0.15 * (t * 13.0 + i as f32).fsin() * (t * 7.3 + 1.0 + i as f32).fsin();
            let hgt = 0.09 * s * flick;
            let (dx, dy) = (
                wx - fx - 0.006 * s * (t * 9.0 + i as f32 * 2.0).fsin() * (fy - wy) / hgt,
                fy - wy,
            );
            if dy > 0.0 && dy < hgt {
                let wdt = 0.025 * s * (1.0 - dy / hgt).powf(0.6) * (dy / hgt * 6.0).clamp(0.4, 1.0);
                if dx.abs() < wdt {
                    let core = 1.0 - dx.abs() / wdt;
                    let c = mix([1.0, 0.35, 0.05], [1.0, 0.95, 0.7], core * (1.0 - dy / hgt));
                    acc.put(scale(c, 1.2), 0.95);
                }
            }
            if self.has(E::Candles) && dy < 0.0 && dy > -0.06 && dx.abs() < 0.008 {
                acc.put(
                    mul([0.9, 0.85, 0.75], scale(fs.light, 0.5).map(|v| v + 0.3)),
                    1.0,
                );
            }
            let d2 = dx * dx + (dy - hgt * 0.4).powi(2);
            *glow = add(
                *glow,
                scale([1.0, 0.55, 0.2], flick * s * 0.35 / (1.0 + 120.0 * d2 / s)),
            );
        }
    }

    fn person(&self, fs: &Fs, px: usize, py: usize, acc: &mut Acc) {
        let (wx, wy) = self.wxy(fs, PERSON, px, py);
        let x0 = fs.person_x;
        let right = x0 + (fs.hand.0 + 0.03).max(0.125);
        let top = (fs.hand.1 - 0.1).min(0.45);
        if wy < top || wx < x0 - 0.12 || wx > right {
            return;
        }
        let breath = 0.002 * (fs.t * 1.6).fsin();
        let (hx, hy, ex, ey) = fs.hand;
        let (hx, hy, ex, ey) = (x0 + hx, hy + breath, x0 + ex, ey + breath);
        let (shx, shy) = (x0 + 0.075, 0.645 + breath);
        let dx = wx - x0;
        // signed distances (negative inside)
        let head = ((dx * dx) + (wy - 0.53 - breath).powi(2) * 0.8).sqrt() - 0.047;
        let neck = seg_dist(wx, wy, x0, 0.57, x0, 0.62) - 0.028;
        let hwid = lerp(0.085, 0.07, clamp01((wy - 0.62) / 0.25));
        let torso = (dx.abs() - hwid).max(0.64 + breath - wy);
        let shoulders =
            seg_dist(wx, wy, x0 - 0.06, 0.625 + breath, x0 + 0.06, 0.625 + breath) - 0.03;
        let upper = seg_dist(wx, wy, shx, shy, ex, ey) - 0.022;
        let fore = seg_dist(wx, wy, ex, ey, hx, hy) - 0.018;
        let hand = ((wx - hx).powi(2) + (wy - hy).powi(2)).sqrt() - 0.017;
        let d = head
            .min(neck)
            .min(torso)
            .min(shoulders)
            .min(upper)
            .min(fore)
            .min(hand);
        // glass (flute) in front of the hand
        if self.has(E::Glass) {
            let stem = seg_dist(wx, wy, hx, hy - 0.01, hx, hy - 0.035) - 0.0025;
            let bowl = seg_dist(wx, wy, hx, hy - 0.042, hx, hy - 0.08) - 0.011;
            let px = fs.xf[PERSON].a / self.hh as f32;
            let ga = clamp01(0.5 - bowl / px);
            if ga > 0.0 {
                let liquid = wy > hy - 0.07;
                let hi = clamp01(1.0 - ((wx - hx + 0.005).abs() / 0.0025));
                let base = if liquid {
                    [0.95, 0.72, 0.3]
                } else {
                    [0.8, 0.82, 0.85]
                };
                let lit = add(
                    scale(base, 0.25 + 0.6 * fs.light[0].max(0.3)),
                    scale([1.0, 0.95, 0.85], hi * 0.8),
                );
                acc.put(
                    add(lit, scale(fs.flash, 1.5)),
                    ga * if liquid { 0.85 } else { 0.45 },
                );
            }
            let sa = clamp01(0.5 - stem / px);
            if sa > 0.0 {
                acc.put(scale([0.8, 0.82, 0.85], 0.3 + 0.5 * fs.light[0]), sa * 0.6);
            }
        }
        let px = fs.xf[PERSON].a / self.hh as f32;
        let a = clamp01(0.5 - d / px);
        if a > 0.0 {
            // Rim light from the sun or the fireworks.
            let rim = smooth(-0.006, 0.0, d);
            let rim_col = match fs.sun {
                Some((_, _, _, col, int)) => scale(col, int * 0.6),
                None => scale(fs.horizon_col, 0.5),
            };
            let c = add(
                [0.02, 0.018, 0.022],
                scale(add(rim_col, scale(fs.flash, 2.0)), rim),
            );
            acc.put(c, a);
        }
    }

    fn draw_fireworks(&self, fs: &Fs, rgb: &mut [Rgb], skym: &[f32]) {
        let t = fs.t;
        let xf = fs.xf[SKY];
        let (hw, hh) = (self.hw as i32, self.hh as f32);
        let to_px = |wx: f32, wy: f32| ((wx - xf.bx) / xf.a * hh, (wy - xf.by) / xf.a * hh);
        let rad = (hh / 300.0).max(0.7);
        let mut splat = |x: f32, y: f32, col: Rgb, k: f32, r: f32| {
            let (cx, cy) = (x as i32, y as i32);
            let ri = (r * 2.0).ceil() as i32;
            for yy in cy - ri..=cy + ri {
                if yy < 0 || yy >= self.hh as i32 {
                    continue;
                }
                for xx in cx - ri..=cx + ri {
                    if xx < 0 || xx >= hw {
                        continue;
                    }
                    let (ddx, ddy) = (xx as f32 + 0.5 - x, yy as f32 + 0.5 - y);
                    let q = 1.0 - (ddx * ddx + ddy * ddy) / (r * r * 4.0);
                    if q <= 0.0 {
                        continue;
                    }
                    let f = q * q;
                    let i = yy as usize * self.hw + xx as usize;
                    let m = skym[i];
                    if m > 0.0 {
                        rgb[i] = add(rgb[i], scale(col, k * f * m));
                    }
                }
            }
        };
        for b in &self.bursts {
            let tau = t - b.t as f32;
            // rocket
            if (-0.9..0.0).contains(&tau) {
                let f = 1.0 - (-tau / 0.9);
                let e = 1.0 - (1.0 - f) * (1.0 - f);
                let x = lerp(b.launch_x, b.x, e);
                let y = lerp(self.horizon, b.y, e);
                for k in 0..4 {
                    let ek = 1.0 - (1.0 - (f - k as f32 * 0.03).max(0.0)).powi(2);
                    let (px, py) = to_px(lerp(b.launch_x, b.x, ek), lerp(self.horizon, b.y, ek));
                    splat(px, py, [1.0, 0.8, 0.5], 0.35 / (1.0 + k as f32), rad);
                }
                let (px, py) = to_px(x, y);
                splat(px, py, [1.0, 0.9, 0.7], 0.6, rad);
            }
            if !(0.0..2.4).contains(&tau) {
                continue;
            }
            // core flash
            if tau < 0.25 {
                let (px, py) = to_px(b.x, b.y);
                splat(
                    px,
                    py,
                    mix(b.color, [1.0; 3], 0.6),
                    1.6 * (1.0 - tau / 0.25),
                    rad * 6.0,
                );
            }
            let life = 2.0 + 0.4 * b.size;
            let drag = 1.6f32;
            let grav = 0.09f32;
            let mut rng = Rng::new(b.seed);
            for i in 0..b.sparks {
                let ang =
                    i as f32 / b.sparks as f32 * std::f32::consts::TAU + rng.range(-0.05, 0.05);
                let u = rng.f32();
                let sp = b.speed * b.size * (1.0 - u * u * u).sqrt() * rng.range(0.85, 1.0);
                let col = if i % 3 == 0 { b.color2 } else { b.color };
                let tw = rng.f32();
                let my_life = life * rng.range(0.75, 1.0);
                if tau > my_life {
                    continue;
                }
                let fade = (1.0 - tau / my_life).powf(1.4);
                let flicker = if tau > my_life * 0.5
                    && hash3(b.seed, i as u64, (tau * 25.0) as u64) < 0.35 + 0.3 * tw
                {
                    0.2
                } else {
                    1.0
                };
                for k in 0..4 {
                    let tk = (tau - k as f32 * 0.035).max(0.0);
                    let r = (1.0 - (-drag * tk).exp()) / drag;
                    let x = b.x + ang.cos() * sp * r;
                    let y = b.y + ang.fsin() * sp * r + grav * (tk - r) / drag * 2.0;
                    let (px, py) = to_px(x, y);
                    let k_b = fade * flicker * [1.3, 0.55, 0.3, 0.15][k];
                    splat(
                        px,
                        py,
                        mix(col, [1.0, 1.0, 0.9], (0.4 - tau).max(0.0)),
                        k_b,
                        rad,
                    );
                }
            }
        }
    }

    fn draw_birds(&self, fs: &Fs, rgb: &mut [Rgb], skym: &[f32]) {
        if self.birds.is_empty() || self.time == T::Night {
            return;
        }
        let xf = fs.xf[FAR];
        let hh = self.hh as f32;
        let span = self.aspect + 0.6;
        for &(x0, y0, v, ph) in &self.birds {
            let bx = (x0 + v * fs.t + 0.3).rem_euclid(span) - 0.3;
            let by = y0 + 0.01 * (fs.t * 0.5 + ph).fsin();
            let flap = (fs.t * 6.0 + ph).fsin() * 0.008;
            let sz = 0.018;
            for s in 0..24 {
                let f = s as f32 / 23.0 * 2.0 - 1.0; // -1..1 across the wings
                let x = bx + f * sz;
                let y = by - flap * f.abs() + f.abs() * 0.004 - (1.0 - f.abs()) * 0.002;
                let px = ((x - xf.bx) / xf.a * hh) as i32;
                let py = ((y - xf.by) / xf.a * hh) as i32;
                if px >= 0 && py >= 0 && (px as usize) < self.hw && (py as usize) < self.hh {
                    let i = py as usize * self.hw + px as usize;
                    rgb[i] = mix(rgb[i], scale(fs.light, 0.12), skym[i] * 0.85);
                }
            }
        }
    }

    fn draw_precip(&self, fs: &Fs, rgb: &mut [Rgb]) {
        let (hw, hh) = (self.hw, self.hh);
        let area = (hw * hh) as f32 / (640.0 * 360.0);
        match self.weather {
            W::Rain => {
                let n = (450.0 * area.max(0.2)) as u64;
                let col = add(scale(fs.light, 0.5), [0.15, 0.16, 0.18]);
                for i in 0..n {
                    let x0 = hash3(self.seed, i, 11);
                    let y0 = hash3(self.seed, i, 12);
                    let sp = 1.4 + hash3(self.seed, i, 13);
                    let y = fract(y0 + fs.t * sp * 0.8) * 1.2 - 0.1;
                    let x = fract(x0 + fs.t * sp * 0.1) * self.aspect;
                    let len = 0.03 * sp;
                    for s in 0..8 {
                        let f = s as f32 / 8.0;
                        let px = ((x - f * len * 0.12) * hh as f32) as i64;
                        let py = ((y - f * len) * hh as f32) as i64;
                        if px >= 0 && py >= 0 && (px as usize) < hw && (py as usize) < hh {
                            let idx = py as usize * hw + px as usize;
                            rgb[idx] = mix(rgb[idx], col, 0.22 * (1.0 - f));
                        }
                    }
                }
            }
            W::Snow => {
                let n = (350.0 * area.max(0.2)) as u64;
                for i in 0..n {
                    let x0 = hash3(self.seed, i, 21);
                    let y0 = hash3(self.seed, i, 22);
                    let depth = hash3(self.seed, i, 23);
                    let y = fract(y0 + fs.t * (0.05 + 0.08 * depth)) * 1.1 - 0.05;
                    let x =
                        fract(x0 + 0.02 * (fs.t * (0.8 + depth) + i as f32).fsin()) * self.aspect;
                    let px = (x * hh as f32) as i64;
                    let py = (y * hh as f32) as i64;
                    let r = if depth > 0.7 { 1 } else { 0 };
                    for yy in py - r..=py + r {
                        for xx in px - r..=px + r {
                            if xx >= 0 && yy >= 0 && (xx as usize) < hw && (yy as usize) < hh {
                                let idx = yy as usize * hw + xx as usize;
                                rgb[idx] = mix(
                                    rgb[idx],
                                    add(scale(fs.light, 0.6), [0.35; 3]),
                                    0.5 + 0.4 * depth,
                                );
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// Grades the half-resolution picture and writes YUV 4:2:0 (BT.709, limited range).
    fn write_yuv(&mut self, planes: &mut [Vec<u8>]) {
        const BAYER: [u16; 16] = [0, 8, 2, 10, 12, 4, 14, 6, 3, 11, 1, 9, 15, 7, 13, 5];
        let (hw, hh, w) = (self.hw, self.hh, self.w);
        let (lr, lg, lb) = (&self.lut[0], &self.lut[1], &self.lut[2]);
        let rgb = &self.rgb;
        let vig = &self.vignette;
        let (yp, rest) = planes.split_at_mut(1);
        let (up, vp) = rest.split_at_mut(1);
        self.yhalf
            .par_chunks_mut(hw)
            .zip(up[0].par_chunks_mut(hw))
            .zip(vp[0].par_chunks_mut(hw))
            .enumerate()
            .for_each(|(y, ((yrow, urow), vrow))| {
                for x in 0..hw {
                    let i = y * hw + x;
                    let v = vig[i] * LUT_SCALE;
                    let c = rgb[i];
                    // float → index without a saturating conversion: the low mantissa bits of
                    // `x + 2^23` are `round(x)` for 0 <= x < 2^23.
                    let idx = |q: f32| {
                        ((q * v).clamp(0.0, (LUT_N - 1) as f32) + 8_388_608.0).to_bits() as usize
                            & (LUT_N - 1)
                    };
                    let (r, g, b) = (lr[idx(c[0])], lg[idx(c[1])], lb[idx(c[2])]);
                    let d = i32::from(BAYER[(y & 3) * 4 + (x & 3)]) * 16;
                    yrow[x] = ((16 * 256 + r[0] + g[0] + b[0]) >> 4) as u16;
                    urow[x] = ((128 * 256 + r[1] + g[1] + b[1] + d) >> 8).clamp(16, 240) as u8;
                    vrow[x] = ((128 * 256 + r[2] + g[2] + b[2] + d) >> 8).clamp(16, 240) as u8;
                }
            });
        let yh = &self.yhalf;
        yp[0]
            .par_chunks_mut(w * 2)
            .enumerate()
            .for_each(|(ry, rows)| {
                // output rows 2ry and 2ry+1
                let (r0, r1) = rows.split_at_mut(w);
                let c = ry;
                let up = c.saturating_sub(1);
                let dn = (c + 1).min(hh - 1);
                let mut v = vec![0u32; hw];
                for (out, nb, oy) in [(r0, up, 2 * ry), (r1, dn, 2 * ry + 1)] {
                    let a = &yh[c * hw..c * hw + hw];
                    let b = &yh[nb * hw..nb * hw + hw];
                    for ((o, &p), &q) in v.iter_mut().zip(a).zip(b) {
                        *o = u32::from(p) * 3 + u32::from(q);
                    }
                    let brow = &BAYER[(oy & 3) * 4..(oy & 3) * 4 + 4];
                    let (d0, d1, d2, d3) = (
                        u32::from(brow[0]) * 16 + 8,
                        u32::from(brow[1]) * 16 + 8,
                        u32::from(brow[2]) * 16 + 8,
                        u32::from(brow[3]) * 16 + 8,
                    );
                    for (x, o) in out.chunks_exact_mut(2).enumerate() {
                        let cc = v[x] * 3;
                        let l = v[x.saturating_sub(1)];
                        let r = v[(x + 1).min(hw - 1)];
                        let (da, db) = if x & 1 == 0 { (d0, d1) } else { (d2, d3) };
                        o[0] = ((cc + l + da) >> 8).min(255) as u8;
                        o[1] = ((cc + r + db) >> 8).min(255) as u8;
                    }
                }
            });
    }
}
