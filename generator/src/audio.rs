//! The sound: surf, wind, rain, city murmur, fire crackle, firework bursts (in sync with
//! the picture's explosions) and a soft music bed, synthesised sample by sample.

use std::f64::consts::TAU;

use crate::render::Burst;
use crate::rng::{hash3, Rng};
use crate::scene::{Element as E, Mood, Scene, Setting as S, TimeOfDay as T, Weather as W};

/// A cheap white-noise source (xorshift32), values in `[-1, 1)`.
#[derive(Clone)]
struct Noise(u32);
impl Noise {
    fn new(seed: u64) -> Noise {
        Noise((crate::rng::mix(seed) as u32) | 1)
    }
    #[inline]
    fn next(&mut self) -> f32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        (x as f32 / u32::MAX as f32) * 2.0 - 1.0
    }
}

/// One-pole low-pass.
#[derive(Clone, Default)]
struct Lp(f32);
impl Lp {
    #[inline]
    fn run(&mut self, x: f32, k: f32) -> f32 {
        self.0 += k * (x - self.0);
        self.0
    }
}
fn lp_coef(hz: f32, sr: f32) -> f32 {
    1.0 - (-std::f32::consts::TAU * hz / sr).exp()
}

/// State-variable band-pass.
#[derive(Clone, Default)]
struct Bp {
    low: f32,
    band: f32,
}
impl Bp {
    #[inline]
    fn run(&mut self, x: f32, f: f32, q: f32) -> f32 {
        self.low += f * self.band;
        let high = x - self.low - q * self.band;
        self.band += f * high;
        self.band
    }
}
fn svf_coef(hz: f32, sr: f32) -> f32 {
    2.0 * (std::f32::consts::PI * hz / sr).sin()
}

struct BurstVoice {
    start: u64,
    gain_l: f32,
    gain_r: f32,
    size: f32,
    crackle_env: f32,
    noise: Noise,
    lp: Lp,
    seed: u64,
}

struct Layers {
    surf: f32,
    wind: f32,
    rain: f32,
    crowd: f32,
    fire: f32,
    music: f32,
}

pub(crate) struct Synth {
    sr: f32,
    n: u64,
    total: u64,
    seed: u64,
    lv: Layers,
    noise: [Noise; 6],
    surf_lp: [Lp; 2],
    rumble_lp: [Lp; 2],
    wind_bp: [Bp; 2],
    rain_lp: [Lp; 2],
    crowd_bp: [Bp; 4],
    traffic_lp: Lp,
    fire_env: f32,
    fire_lp: Lp,
    bursts: Vec<BurstVoice>,
    // music
    chords: Vec<[f64; 4]>,
    bar_s: f64,
    beat_s: f64,
    swell_period: f32,
    swell_phase: f32,
    /// Key (MIDI root), minor mode, tempo: for the description.
    pub key: (i32, bool, f64),
}

/// MIDI note → Hz.
fn hz(m: i32) -> f64 {
    440.0 * 2f64.powf(f64::from(m - 69) / 12.0)
}

impl Synth {
    pub fn new(
        scene: &Scene,
        bursts: &[Burst],
        aspect: f32,
        sample_rate: u32,
        seed: u64,
        total: u64,
    ) -> Synth {
        let sr = sample_rate as f32;
        let seed = seed ^ 0xA0D1_0000;
        let mut rng = Rng::new(seed);
        let outdoor = scene.setting != S::Interior && scene.setting != S::Space;
        let lv = Layers {
            surf: if scene.has(E::Waves) && outdoor {
                0.2
            } else {
                0.0
            },
            wind: match scene.setting {
                S::Mountains | S::SnowField | S::Desert => 0.16,
                S::Space => 0.0,
                S::Interior => 0.0,
                _ => 0.06,
            } + if scene.weather == W::Snow { 0.05 } else { 0.0 },
            rain: if scene.weather == W::Rain { 0.12 } else { 0.0 },
            crowd: if scene.setting == S::City { 0.1 } else { 0.0 },
            fire: if scene.has(E::Fire) || scene.has(E::Candles) {
                if scene.has(E::Fire) {
                    0.25
                } else {
                    0.06
                }
            } else {
                0.0
            },
            music: 0.06,
        };
        let voices = bursts
            .iter()
            .map(|b| {
                let pan = (b.x / aspect).clamp(0.0, 1.0);
                let a = pan * std::f32::consts::FRAC_PI_2;
                BurstVoice {
                    start: (b.t * f64::from(sample_rate)).ceil() as u64,
                    gain_l: a.cos() * 1.2,
                    gain_r: a.sin() * 1.2,
                    size: b.size,
                    crackle_env: 0.0,
                    noise: Noise::new(b.seed),
                    lp: Lp::default(),
                    seed: b.seed,
                }
            })
            .collect();
        // Music: key and tempo from the seed, major or minor from the mood and light.
        let minor = scene.has_mood(Mood::Melancholic)
            || scene.has_mood(Mood::Mysterious)
            || scene.has_mood(Mood::Cold)
            || (scene.time == T::Night
                && !scene.has(E::Fireworks)
                && !scene.has_mood(Mood::Joyful))
            || scene.weather == W::Rain;
        let root = 45 + rng.below(7) as i32; // A2..D#3
        let prog: [[i32; 3]; 4] = if minor {
            [[0, 3, 7], [-4, 0, 3], [3, 7, 10], [-2, 2, 5]]
        } else {
            [[0, 4, 7], [7, 11, 14], [9, 12, 16], [5, 9, 12]]
        };
        let chords = prog
            .iter()
            .map(|c| {
                let bass = root + if c[0] > 6 { c[0] - 12 } else { c[0] };
                [
                    hz(bass),
                    hz(root + 12 + c[0]),
                    hz(root + 12 + c[1]),
                    hz(root + 12 + c[2]),
                ]
            })
            .collect();
        let bpm = if scene.has_mood(Mood::Dramatic) || scene.has_mood(Mood::Joyful) {
            rng.range64(84.0, 100.0)
        } else {
            rng.range64(60.0, 80.0)
        };
        let beat_s = 60.0 / bpm;
        Synth {
            sr,
            n: 0,
            total,
            seed,
            lv,
            noise: std::array::from_fn(|i| Noise::new(seed.wrapping_add(i as u64 * 7919))),
            surf_lp: Default::default(),
            rumble_lp: Default::default(),
            wind_bp: Default::default(),
            rain_lp: Default::default(),
            crowd_bp: Default::default(),
            traffic_lp: Lp::default(),
            fire_env: 0.0,
            fire_lp: Lp::default(),
            bursts: voices,
            chords,
            bar_s: beat_s * 4.0,
            beat_s,
            swell_period: 7.0,
            swell_phase: rng.range(0.0, 0.3),
            key: (root, minor, bpm),
        }
    }

    /// Fills `out` (interleaved stereo) with the next `out.len() / 2` samples.
    pub fn render(&mut self, out: &mut [f32]) {
        let sr = self.sr;
        let k_rumble = lp_coef(140.0, sr);
        let k_rain = lp_coef(2500.0, sr);
        let k_traffic = lp_coef(90.0, sr);
        let k_fire = lp_coef(300.0, sr);
        let crackle_decay = (-1.0 / (0.0015 * sr)).exp();
        let fire_decay = (-1.0 / (0.004 * sr)).exp();
        for frame in out.chunks_exact_mut(2) {
            let n = self.n;
            let t = n as f64 / f64::from(sr);
            let tf = t as f32;
            let (mut l, mut r) = (0.0f32, 0.0f32);
            // Surf: swells in step with the picture's 7 s wash, a low rumble under it.
            if self.lv.surf > 0.0 {
                let ph = (tf / self.swell_period + self.swell_phase).fract();
                let s = (0.5 + 0.5 * (ph * std::f32::consts::TAU - 1.2).sin()).powi(3);
                let env = 0.25 + 0.75 * s;
                let k = lp_coef(350.0 + 1400.0 * s, sr);
                let (a, b) = (self.noise[0].next(), self.noise[1].next());
                let sl = self.surf_lp[0].run(a, k);
                let srr = self.surf_lp[1].run(0.7 * b + 0.3 * a, k);
                let rl = self.rumble_lp[0].run(a, k_rumble);
                let rr = self.rumble_lp[1].run(b, k_rumble);
                l += self.lv.surf * (env * sl * 1.6 + rl * (2.0 + 4.0 * env));
                r += self.lv.surf * (env * srr * 1.6 + rr * (2.0 + 4.0 * env));
            }
            if self.lv.wind > 0.0 {
                let gust = 0.55 + 0.45 * (tf * 0.31 + 1.0).sin() * (tf * 0.13).sin();
                let f = svf_coef(500.0 + 300.0 * gust, sr);
                let a = self.noise[2].next();
                let b = self.noise[3].next();
                l += self.lv.wind * gust * self.wind_bp[0].run(a, f, 0.35);
                r += self.lv.wind * gust * self.wind_bp[1].run(b, f, 0.35);
            }
            if self.lv.rain > 0.0 {
                let a = self.noise[4].next();
                let b = self.noise[5].next();
                let hl = a - self.rain_lp[0].run(a, k_rain);
                let hr = b - self.rain_lp[1].run(b, k_rain);
                l += self.lv.rain * hl;
                r += self.lv.rain * hr;
            }
            if self.lv.crowd > 0.0 {
                let mut cl = 0.0;
                let mut cr = 0.0;
                for v in 0..4 {
                    let rate = 3.0 + v as f32 * 0.7;
                    let syl =
                        ((tf * rate + v as f32 * 1.3).sin() * (tf * 0.4 + v as f32).sin()).abs();
                    let x = self.noise[v % 6].next();
                    let y =
                        self.crowd_bp[v].run(x, svf_coef(380.0 + 170.0 * v as f32, sr), 0.5) * syl;
                    if v % 2 == 0 {
                        cl += y;
                        cr += 0.5 * y;
                    } else {
                        cr += y;
                        cl += 0.5 * y;
                    }
                }
                let tr = self.traffic_lp.run(self.noise[3].next(), k_traffic)
                    * (1.0 + 0.5 * (tf * 0.2).sin());
                l += self.lv.crowd * (cl + tr * 4.0);
                r += self.lv.crowd * (cr + tr * 4.0);
            }
            if self.lv.fire > 0.0 {
                if hash3(self.seed, n, 31) < 9.0 / sr {
                    self.fire_env = 1.0;
                }
                self.fire_env *= fire_decay;
                let x = self.noise[4].next();
                let c = x * self.fire_env + self.fire_lp.run(x, k_fire) * 0.8;
                l += self.lv.fire * c;
                r += self.lv.fire * c * 0.8;
            }
            // Fireworks: thump + rumble at the explosion, then crackle; the bed ducks under them.
            let mut duck = 1.0f32;
            let (bed_l, bed_r) = (l, r);
            l = 0.0;
            r = 0.0;
            for b in &mut self.bursts {
                if n < b.start {
                    continue;
                }
                let tau = (n - b.start) as f32 / sr;
                if tau > 3.0 {
                    continue;
                }
                let f_ph = 40.0 * tau + 60.0 * 0.12 * (1.0 - (-tau / 0.12).exp());
                let thump = (std::f32::consts::TAU * f_ph).sin() * (-tau / 0.22).exp() * 0.5;
                let nz = b.noise.next();
                let boom = b.lp.run(nz, 0.08) * (-tau / 0.22).exp() * 2.5
                    + nz * (-tau / 0.03).exp() * 0.35;
                let dens = if tau > 0.15 {
                    110.0 * (-(tau - 0.15) / 0.45).exp()
                } else {
                    0.0
                };
                if hash3(b.seed, n, 77) < dens / sr {
                    b.crackle_env = 0.5 + 0.5 * hash3(b.seed, n, 78);
                }
                b.crackle_env *= crackle_decay;
                let crackle = nz * b.crackle_env * 0.4;
                let s = (0.75 + 0.25 * b.size) * (thump + boom + crackle);
                duck = duck.min(1.0 - 0.55 * (-tau / 0.8).exp());
                l += s * b.gain_l;
                r += s * b.gain_r;
            }
            // Music bed: soft pad chords, a quiet arpeggio.
            let (ml, mr) = self.music(t);
            l += duck * (bed_l + self.lv.music * ml);
            r += duck * (bed_r + self.lv.music * mr);
            // Fades and a soft limiter that keeps |x| < 0.9.
            let fade = (t as f32 / 0.25).min(1.0)
                * (((self.total - n.min(self.total)) as f32 / sr) / 0.5).min(1.0);
            frame[0] = 0.9 * (l * fade / 0.9).tanh();
            frame[1] = 0.9 * (r * fade / 0.9).tanh();
            self.n += 1;
        }
    }

    fn music(&self, t: f64) -> (f32, f32) {
        let nc = self.chords.len();
        let bar = (t / self.bar_s).floor();
        let within = t - bar * self.bar_s;
        let cur = &self.chords[bar as usize % nc];
        let prev = &self.chords[(bar as usize + nc - 1) % nc];
        let xfade = (within / 1.5).min(1.0);
        let swell = 0.8 + 0.2 * (t * 0.21).sin();
        let voice = |c: &[f64; 4], det: f64| -> f64 {
            let mut s = 0.0;
            for (i, &f) in c.iter().enumerate() {
                let g = if i == 0 { 0.6 } else { 0.55 };
                s += g
                    * ((TAU * (f * (1.0 + det) * t).fract()).sin()
                        + (TAU * (f * (1.0 - det) * t).fract()).sin());
            }
            s
        };
        let start = (t / 1.5).min(1.0);
        let mut l = start
            * swell
            * (xfade * voice(cur, 0.0012)
                + if bar > 0.0 {
                    (1.0 - xfade) * voice(prev, 0.0012)
                } else {
                    0.0
                });
        let mut r = start
            * swell
            * (xfade * voice(cur, 0.0017)
                + if bar > 0.0 {
                    (1.0 - xfade) * voice(prev, 0.0017)
                } else {
                    0.0
                });
        // Arpeggio: one chord tone every half beat, decaying.
        let step_s = self.beat_s / 2.0;
        let step = (t / step_s).floor();
        let tau = t - step * step_s;
        let note = cur[1 + (step as usize % 3)] * 2.0;
        let env = (-tau / 0.5).exp() * (tau / 0.01).min(1.0);
        let pl =
            env * ((TAU * (note * t).fract()).sin() + 0.3 * (TAU * (2.0 * note * t).fract()).sin());
        if (step as u64).is_multiple_of(2) {
            l += 0.9 * pl;
            r += 0.5 * pl;
        } else {
            l += 0.5 * pl;
            r += 0.9 * pl;
        }
        (l as f32 * 0.5, r as f32 * 0.5)
    }
}
