//! Prints how the fingerprint of a reference clip compares with other files:
//! `cargo run --release -p hallmark-store --example compare REF FILE...`
//! (used to measure the match thresholds; see README.md).

use std::path::Path;

use hallmark_media::{Decoder, MediaFrame, PixelLayout};
use hallmark_store::{Fingerprint, Fingerprinter};

fn fingerprint(path: &Path) -> Result<Fingerprint, String> {
    let mut decoder = Decoder::open(path, PixelLayout::Yuv420p).map_err(|e| e.to_string())?;
    let mut print = Fingerprinter::new();
    while let Some(frame) = decoder.next_frame().map_err(|e| e.to_string())? {
        match frame {
            MediaFrame::Video(v) => print.add_frame(&v),
            MediaFrame::Audio(a) => print.add_audio(&a),
        }
    }
    Ok(print.finish())
}

fn main() {
    hallmark_media::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((reference, others)) = args.split_first() else {
        eprintln!("usage: compare REF FILE...");
        std::process::exit(2);
    };
    let reference = match fingerprint(Path::new(reference)) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{reference}: {e}");
            std::process::exit(2);
        }
    };
    let show = |s: Option<f64>| s.map(|s| format!("{s:.3}")).unwrap_or_else(|| "-".into());
    println!("| file | picture | sound | match |\n|---|---|---|---|");
    for other in others {
        match fingerprint(Path::new(other)) {
            Ok(p) => {
                let s = reference.compare(&p);
                println!(
                    "| {other} | {} | {} | {:?} |",
                    show(s.video),
                    show(s.audio),
                    s.decision()
                );
            }
            Err(e) => println!("| {other} | error: {e} | | |"),
        }
    }
}
