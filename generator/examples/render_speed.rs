//! Measures render speed: `cargo run --release -p hallmark-generator --example render_speed -- [WxH] [seconds] [prompt]`.
//!
//! With `HALLMARK_DUMP=dir` it also writes the raw YUV and PCM (f32le stereo) there.

use std::io::Write;
use std::time::Instant;

use hallmark_generator::{GenerateOptions, Generator, Scene};
use hallmark_media::MediaFrame;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (w, h) = args
        .first()
        .and_then(|s| s.split_once('x'))
        .map(|(a, b)| (a.parse().unwrap(), b.parse().unwrap()))
        .unwrap_or((1280, 720));
    let secs: f64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10.0);
    let prompt = args.get(2).cloned().unwrap_or_else(|| {
        "Me, on the beach at sunset, with a glass of sparkling wine, while fireworks split the sky"
            .to_string()
    });
    let dump = std::env::var("HALLMARK_DUMP").ok();
    let scene = Scene::from_prompt(&prompt, 7);
    println!("scene: {}", scene.describe());
    let options = GenerateOptions {
        width: w,
        height: h,
        fps: 30,
        duration_s: secs,
        ..GenerateOptions::default()
    };
    let mut gen = Generator::new(scene, options).expect("valid options");
    let (mut vfile, mut afile) = match &dump {
        Some(d) => {
            std::fs::create_dir_all(d).unwrap();
            (
                Some(std::fs::File::create(format!("{d}/video.yuv")).unwrap()),
                Some(std::fs::File::create(format!("{d}/audio.f32")).unwrap()),
            )
        }
        None => (None, None),
    };
    let start = Instant::now();
    let mut frames = 0u64;
    while let Some(f) = gen.next_frame() {
        match f {
            MediaFrame::Video(v) => {
                frames += 1;
                if let Some(file) = vfile.as_mut() {
                    for p in &v.planes {
                        file.write_all(p).unwrap();
                    }
                }
            }
            MediaFrame::Audio(a) => {
                if let Some(file) = afile.as_mut() {
                    for s in &a.samples {
                        file.write_all(&s.to_le_bytes()).unwrap();
                    }
                }
            }
        }
    }
    let total = start.elapsed().as_secs_f64();
    println!(
        "{w}x{h}: {frames} frames (picture + sound) in {total:.2} s → {:.1} frames/s on {} threads",
        frames as f64 / total,
        rayon::current_num_threads()
    );
}
