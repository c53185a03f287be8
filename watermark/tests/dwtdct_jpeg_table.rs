//! Table (ignored; `scripts/make-third-party-fixtures --table bench-out/third-party-table`,
//! then `DWTDCT_TABLE=bench-out/third-party-table cargo test --release -p hallmark-watermark
//! --test dwtdct_jpeg_table -- --ignored --nocapture`): the p-value of the right generator
//! on JPEG copies of each generator's marked photo, by size and quality, as the scan decodes
//! them (4:2:0), and the smallest p on the unmarked photos' copies.

use std::path::Path;

use hallmark_media::{Decoder, MediaFrame, PixelLayout};
use hallmark_watermark::{ThirdPartyDetector, ThirdPartyMark};

fn marks(path: &Path) -> Vec<ThirdPartyMark> {
    hallmark_media::init();
    let mut d = Decoder::open(path, PixelLayout::Yuv420p)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut det = ThirdPartyDetector::new();
    while let Some(f) = d.next_frame().expect("decodes") {
        if let MediaFrame::Video(f) = f {
            det.add_frame(&f);
        }
    }
    det.result()
}

#[test]
#[ignore]
fn jpeg_copies_by_size_and_quality() {
    let dir = std::env::var("DWTDCT_TABLE").expect("DWTDCT_TABLE=dir of --table output");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(dir);
    let rows = [
        ("sd1-chelsea", "Stable Diffusion 1.x", "SD 1.x (136 bits)"),
        ("sd2-coffee", "Stable Diffusion 2.x", "SD 2.x (32 bits)"),
        (
            "sdxl-astronaut",
            "SDXL / Stable Video Diffusion",
            "SDXL generative-models",
        ),
        (
            "sdxl-diffusers-motorcycle",
            "SDXL / Stable Video Diffusion",
            "SDXL diffusers",
        ),
        ("flux-rocket", "FLUX.1", "FLUX.1"),
    ];
    let sizes = [256, 512, 768, 1024];
    println!("| generator | 256 | 512 | 768 | 1024 |\n|---|---|---|---|---|");
    for q in [85, 90, 95] {
        for (stem, generator, shown) in rows {
            let cells: Vec<String> = sizes
                .iter()
                .map(|size| {
                    let m = marks(&dir.join(format!("{stem}-{size}-q{q}.jpg")));
                    let right = m.iter().find(|x| x.generator == generator).unwrap();
                    let wrong = m[0].generator != generator && m[0].detected;
                    format!(
                        "{:.1e}{}{}",
                        right.p_value,
                        if right.detected { " ✔" } else { "" },
                        if wrong {
                            " (WRONG generator first)"
                        } else {
                            ""
                        }
                    )
                })
                .collect();
            println!("| {shown}, q{q} | {} |", cells.join(" | "));
        }
    }
    let mut smallest = (1.0f64, String::new());
    for (stem, _, _) in rows {
        for size in sizes {
            let name = format!("unmarked-{stem}-{size}-q90.jpg");
            for m in marks(&dir.join(&name)) {
                assert!(!m.detected, "{name}: {m:?}");
                if m.p_value < smallest.0 {
                    smallest = (m.p_value, format!("{name} {}", m.generator));
                }
            }
        }
    }
    println!(
        "unmarked copies: none detected, smallest p {:.1e} ({})",
        smallest.0, smallest.1
    );
}
