//! Lab probe: the sound detector's answer for a file, and with `PROBE_CLIP=hex` the whole
//! pattern of that clip id (under the key's id) searched for on it, as the verifier does for
//! a clip id named elsewhere (the picture's mark, the store).
//!
//! `cargo run --release -p hallmark-detector --example probe_sound -- FILE KEYFILE`
//! (KEYFILE: a hex watermark key such as `$HALLMARK_HOME/keys/watermark.key`).
use hallmark_media::{Decoder, MediaFrame, PixelLayout};
use hallmark_watermark::AudioDetector;

#[path = "common/key.rs"]
mod key;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    hallmark_media::init();
    let key = key::key_file(&a[2]);
    let mut det = AudioDetector::new(std::slice::from_ref(&key));
    let mut d = Decoder::open(std::path::Path::new(&a[1]), PixelLayout::Yuv420p).expect("open");
    while let Ok(Some(f)) = d.next_frame() {
        if let MediaFrame::Audio(chunk) = f {
            det.add_chunk(&chunk);
        }
    }
    let r = det.result();
    println!(
        "sound: z {:.2} p {:.2e} payload {:?} time scale {:?}",
        r.score,
        r.p_value,
        r.payload.map(|p| format!("{:016x}", p.clip_id)),
        r.time_scale
    );
    if let Ok(hex) = std::env::var("PROBE_CLIP") {
        let named = hallmark_watermark::Payload {
            clip_id: u64::from_str_radix(&hex, 16).expect("hex clip id"),
            key_id: key.key_id(),
        };
        if let Some((k, match_p)) = det.result_naming(&[named]) {
            println!(
                "its whole pattern: z {:.2} p {:.2e} match p {:.2e} payload {:?} time scale {:?}",
                k.score,
                k.p_value,
                match_p.unwrap_or(1.0),
                k.payload.map(|p| format!("{:016x}", p.clip_id)),
                k.time_scale
            );
        }
    }
}
