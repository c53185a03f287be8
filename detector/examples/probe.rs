//! Lab probe: the picture detector's two answers for a clip — the frames as they come, and
//! the frames warped back along the camera's motion (a riding mark), and inside bars or an
//! inset — and the one `result`
//! gives, through the plain path; optionally on a crop of the frame (fractions x y w h), as
//! if the detector had found that region. PROBE_REF=1: the reference frames only, as the
//! full scan analyses them.
//!
//! `cargo run --release -p hallmark-detector --example probe -- CLIP KEYFILE [x y w h]`
//! (KEYFILE: a hex watermark key such as `$HALLMARK_HOME/keys/watermark.key`).
use hallmark_media::{Decoder, MediaFrame, PixelLayout, VideoFrame};
use hallmark_watermark::VideoDetector;

#[path = "common/key.rs"]
mod key;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    hallmark_media::init();
    let key = key::key_file(&a[2]);
    let crop: Option<Vec<f64>> =
        (a.len() >= 7).then(|| a[3..7].iter().map(|v| v.parse().unwrap()).collect());
    let mut det = VideoDetector::new(std::slice::from_ref(&key));
    let mut d = Decoder::open(std::path::Path::new(&a[1]), PixelLayout::Yuv420p).expect("open");
    if std::env::var_os("PROBE_REF").is_some() {
        d.select_video_frames(hallmark_media::FrameSelection::Reference);
    }
    while let Ok(Some(f)) = d.next_frame() {
        if let MediaFrame::Video(v) = f {
            match &crop {
                None => det.add_frame(&v),
                Some(c) => {
                    let (w, h) = (v.width as usize, v.height as usize);
                    let (x0, y0) = ((c[0] * w as f64) as usize, (c[1] * h as f64) as usize);
                    let (cw, ch) = (
                        ((c[2] * w as f64) as usize) & !1,
                        ((c[3] * h as f64) as usize) & !1,
                    );
                    let mut out =
                        VideoFrame::black(cw as u32, ch as u32, PixelLayout::Yuv420p, v.pts_s);
                    for r in 0..ch {
                        out.planes[0][r * cw..][..cw]
                            .copy_from_slice(&v.planes[0][(y0 + r) * w + x0..][..cw]);
                    }
                    det.add_frame(&out);
                }
            }
        }
    }
    let (fixed, rode) = det.result_parts();
    println!(
        "fixed: z {:.2} p {:.2e} payload {}",
        fixed.score,
        fixed.p_value,
        fixed.payload.is_some()
    );
    if let Some((r, n)) = rode {
        println!(
            "riding (tested {n}): z {:.2} p {:.2e} payload {}",
            r.score,
            r.p_value,
            r.payload.is_some()
        );
    }
    if let Some((r, n)) = det.riding_in_bars() {
        println!(
            "riding in bars or inset (tested {n}): z {:.2} p {:.2e} payload {}",
            r.score,
            r.p_value,
            r.payload.is_some()
        );
    }
    let r = det.result();
    println!(
        "z {:.2} p {:.2e} payload {:?} scale {:?} orient {:?} wide {} region {:?} warp {:?}",
        r.score,
        r.p_value,
        r.payload.map(|p| format!("{:016x}", p.clip_id)),
        r.scale,
        r.orientation,
        r.wide_search,
        r.region,
        r.warp
    );
    // PROBE_CLIP=hex: that clip id (under the key's id) as a payload named for the mark —
    // how well the reading singles it out, and the search for its whole tile.
    if let Ok(hex) = std::env::var("PROBE_CLIP") {
        let named = hallmark_watermark::Payload {
            clip_id: u64::from_str_radix(&hex, 16).expect("hex clip id"),
            key_id: key.key_id(),
        };
        if let Some(reading) = r.payload_reading.as_ref() {
            println!("clip {hex}: match p {:.2e}", reading.p_values(&[named])[0]);
        }
        if let Some((k, match_p)) = det.result_naming(&[named]) {
            println!(
                "its whole tile: z {:.2} p {:.2e} match p {:.2e} payload {:?} riding {} region {:?}",
                k.score,
                k.p_value,
                match_p.unwrap_or(1.0),
                k.payload.map(|p| format!("{:016x}", p.clip_id)),
                k.riding,
                k.region
            );
        }
    }
}
