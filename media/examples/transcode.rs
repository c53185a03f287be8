//! Decode a file and re-encode it: `cargo run -p hallmark-media --example transcode -- IN OUT [rgb]`.
//! The output format follows OUT's extension (mp4/mov/m4v, m4a, wav, mp3, png, jpg).

use std::path::PathBuf;

use hallmark_media::{
    Decoder, EncodeSettings, Encoder, MediaFrame, MediaKind, OutputFormat, PixelLayout,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(input), Some(output)) = (args.first(), args.get(1)) else {
        eprintln!("usage: transcode IN OUT [rgb]");
        std::process::exit(2);
    };
    let layout = match args.get(2).map(String::as_str) {
        Some("rgb") => PixelLayout::Rgb24,
        _ => PixelLayout::Yuv420p,
    };
    let (input, output) = (PathBuf::from(input), PathBuf::from(output));
    let format = OutputFormat::from_path(&output)?;
    let mut dec = Decoder::open(&input, layout)?;
    let info = dec.info().clone();
    eprintln!("{info:#?}");
    let kind = format.kind();
    let video = info.video.as_ref().filter(|_| kind != MediaKind::Audio);
    let audio = info.audio.as_ref().filter(|_| kind != MediaKind::Image);
    let mut enc = Encoder::create(&output, format, video, audio, &EncodeSettings::default())?;
    let (mut frames, mut chunks) = (0u64, 0u64);
    while let Some(f) = dec.next_frame()? {
        match f {
            MediaFrame::Video(v) if video.is_some() => {
                if kind == MediaKind::Image && frames > 0 {
                    continue;
                }
                enc.write_video(&v)?;
                frames += 1;
            }
            MediaFrame::Audio(a) if audio.is_some() => {
                enc.write_audio(&a)?;
                chunks += 1;
            }
            _ => {}
        }
    }
    enc.finish()?;
    eprintln!(
        "wrote {} ({frames} video frames, {chunks} audio chunks)",
        output.display()
    );
    Ok(())
}
