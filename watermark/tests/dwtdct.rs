//! Third-party marks on files marked by the real `invisible-watermark` package the way each
//! generator's reference code calls it (testdata/third-party/, made by
//! scripts/make-third-party-fixtures), and on the unmarked originals.

use std::path::{Path, PathBuf};

use hallmark_media::{Decoder, MediaFrame, PixelLayout, VideoFrame};
use hallmark_watermark::{ThirdPartyDetector, ThirdPartyMark};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixture(name: &str) -> PathBuf {
    root().join("testdata/third-party").join(name)
}

fn shared(rel: &str) -> PathBuf {
    root().join("../shared/media").join(rel)
}

fn frames(path: &Path, layout: PixelLayout) -> Vec<VideoFrame> {
    hallmark_media::init();
    let mut d = Decoder::open(path, layout).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    while let Some(f) = d.next_frame().expect("decodes") {
        if let MediaFrame::Video(f) = f {
            out.push(f);
        }
    }
    assert!(!out.is_empty(), "{}: no picture", path.display());
    out
}

fn marks(path: &Path, layout: PixelLayout) -> Vec<ThirdPartyMark> {
    let mut det = ThirdPartyDetector::new();
    for f in frames(path, layout) {
        det.add_frame(&f);
    }
    det.result()
}

fn show(name: &str, layout: PixelLayout, m: &[ThirdPartyMark]) {
    for x in m {
        eprintln!(
            "{name:40} {layout:?} {:32} {:>3}/{:<3} p={:.2e} {} [{}]",
            x.generator,
            x.matching_bits,
            x.bits,
            x.p_value,
            if x.detected { "DETECTED" } else { "-" },
            x.source
        );
    }
}

/// The one detected mark of `path`, which must be `generator`'s from `source`.
fn assert_detected(
    path: &Path,
    layout: PixelLayout,
    generator: &str,
    source: &str,
) -> ThirdPartyMark {
    let m = marks(path, layout);
    show(&path.file_name().unwrap().to_string_lossy(), layout, &m);
    let found: Vec<&ThirdPartyMark> = m.iter().filter(|x| x.detected).collect();
    assert_eq!(found.len(), 1, "{}: {found:#?}", path.display());
    assert_eq!(found[0].generator, generator, "{}", path.display());
    assert!(
        found[0].source.starts_with(source),
        "{}: {}",
        path.display(),
        found[0].source
    );
    found[0].clone()
}

const SD1: (&str, &str) = ("Stable Diffusion 1.x", "CompVis/stable-diffusion");
const SD2: (&str, &str) = ("Stable Diffusion 2.x", "Stability-AI/stablediffusion");
const SGM: (&str, &str) = (
    "SDXL / Stable Video Diffusion",
    "Stability-AI/generative-models",
);
const DIFFUSERS: (&str, &str) = ("SDXL / Stable Video Diffusion", "huggingface/diffusers");
const FLUX: (&str, &str) = ("FLUX.1", "black-forest-labs/flux");

#[test]
fn each_generators_png_is_read_exactly() {
    for (name, (generator, source), message) in [
        ("sd1-chelsea.png", SD1, "StableDiffusionV1"),
        ("sd2-coffee.png", SD2, "SDV2"),
        ("sdxl-astronaut.png", SGM, "0xB3EC907BB19E"),
        ("sdxl-diffusers-motorcycle.png", DIFFUSERS, "0xB3EC907BB19E"),
        (
            "flux-rocket.png",
            FLUX,
            "0b1010101111111010000111100111001111010100101110",
        ),
    ] {
        // RGB (the package's own arithmetic) and 4:2:0 (what the scan decodes).
        for layout in [PixelLayout::Rgb24, PixelLayout::Yuv420p] {
            let m = assert_detected(&fixture(name), layout, generator, source);
            assert_eq!(m.message, message);
            assert_eq!(m.matching_bits, m.bits, "{name} {layout:?}");
            assert_eq!(m.frames, 1);
        }
    }
}

#[test]
fn jpeg_quality_90_copies() {
    // Quality 90 keeps about a fifth of each mark's lone peak (libjpeg, 4:2:0); its height
    // above its neighbourhood, alone or added to its phase, reads it. At 512×512 (4096
    // blocks: 30 per bit of SD 1.x's 136, 85 per bit of SDXL's 48) and at each generator's
    // own output size, every generator's copy is proven.
    for (name, (generator, source)) in [
        ("sd1-chelsea-512-q90.jpg", SD1),
        ("sd2-coffee-512-q90.jpg", SD2),
        ("sdxl-astronaut-512-q90.jpg", SGM),
        ("sdxl-diffusers-motorcycle-512-q90.jpg", DIFFUSERS),
        // FLUX.1 on a rocket in the sky: flat chroma hides the peaks' heights, their phase
        // and height together still prove it.
        ("flux-rocket-512-q90.jpg", FLUX),
        ("sd2-coffee-768-q90.jpg", SD2),
        ("sdxl-astronaut-1024-q90.jpg", SGM),
        ("sdxl-diffusers-motorcycle-1024-q90.jpg", DIFFUSERS),
        ("flux-rocket-1024-q90.jpg", FLUX),
    ] {
        let m = assert_detected(&fixture(name), PixelLayout::Yuv420p, generator, source);
        assert!(m.matching_bits * 4 >= m.bits * 3, "{name}: {m:?}");
    }
}

#[test]
fn svd_clip_in_h264_is_found_from_its_frames() {
    let path = fixture("svd-bbb.mp4");
    let m = assert_detected(&path, PixelLayout::Yuv420p, SGM.0, SGM.1);
    assert_eq!(m.frames, 14);
    assert!(m.matching_bits >= 44, "{m:?}");
    // What the scan's sampler takes of a 7 fps clip (4 a second): still proven.
    let mut det = ThirdPartyDetector::new();
    for f in frames(&path, PixelLayout::Yuv420p).iter().step_by(2) {
        det.add_frame(f);
    }
    let r = det.result();
    show("svd-bbb.mp4 every 2nd frame", PixelLayout::Yuv420p, &r);
    assert!(r[0].detected && r[0].generator == SGM.0, "{r:#?}");
}

#[test]
fn repeating_a_frame_adds_no_evidence() {
    // A still's frames repeated (a slideshow, a still re-encoded as video) score as the still.
    for name in ["sd2-coffee-512-q90.jpg", "flux-rocket-512-q90.jpg"] {
        let f = frames(&fixture(name), PixelLayout::Yuv420p).remove(0);
        let mut once = ThirdPartyDetector::new();
        once.add_frame(&f);
        let mut many = ThirdPartyDetector::new();
        for _ in 0..50 {
            many.add_frame(&f);
        }
        let (once, many) = (once.result(), many.result());
        for (a, b) in once.iter().zip(&many) {
            assert_eq!((a.generator, a.source), (b.generator, b.source));
            assert_eq!(a.matching_bits, b.matching_bits);
            assert!(
                (a.p_value - b.p_value).abs() <= 1e-12 * a.p_value.max(1e-300),
                "{a:?} {b:?}"
            );
        }
    }
}

#[test]
fn unmarked_originals_show_none() {
    for name in [
        "images/chelsea.png",
        "images/coffee.png",
        "images/astronaut.png",
        "images/motorcycle_left.png",
        "images/rocket.jpg",
        "video/bigbuckbunny.mp4",
    ] {
        for layout in [PixelLayout::Rgb24, PixelLayout::Yuv420p] {
            let m = marks(&shared(name), layout);
            show(name, layout, &m);
            assert_eq!(m.len(), 4);
            assert!(
                m.iter().all(|x| !x.detected && x.p_value > 1e-3),
                "{name}: {m:#?}"
            );
        }
    }
}

#[test]
fn nothing_to_score_without_frames_or_blocks() {
    let mut det = ThirdPartyDetector::new();
    assert!(det.result().is_empty());
    // Smaller than one 8×8 block, and a frame whose planes do not match its size.
    det.add_frame(&VideoFrame::black(6, 100, PixelLayout::Yuv420p, 0.0));
    let mut bad = VideoFrame::black(64, 64, PixelLayout::Rgb24, 0.0);
    bad.planes[0].truncate(10);
    det.add_frame(&bad);
    assert_eq!(det.frames(), 0);
    assert!(det.result().is_empty());
    // A flat frame: every vote the same, nothing read.
    det.add_frame(&VideoFrame::black(64, 64, PixelLayout::Yuv420p, 0.0));
    let r = det.result();
    assert_eq!(r.len(), 4);
    assert!(r.iter().all(|x| x.p_value == 1.0 && !x.detected), "{r:#?}");
}
