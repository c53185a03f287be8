//! An odd-width RGB picture encodes to the same bytes every time: swscale reads one pixel
//! past the last, so the padding of the frame handed to it must be initialised (it was not:
//! 4 of 5 JPEG encodes of the same photo differed).

mod common;

use hallmark_media::*;

#[test]
fn odd_width_rgb_encode_is_deterministic() {
    let path = common::media("images/chelsea.png");
    let mut dec = Decoder::open(&path, PixelLayout::Rgb24).unwrap();
    let Some(MediaFrame::Video(frame)) = dec.next_frame().unwrap() else {
        panic!("chelsea.png has a picture")
    };
    assert_eq!(frame.width % 2, 1, "the test needs an odd width");
    let info = dec.info().clone();
    let dir = tempfile::tempdir().unwrap();
    let mut outs = Vec::new();
    for i in 0..6 {
        // Heap churn with non-zero bytes, so uninitialised memory is not zero by luck.
        let junk: Vec<Vec<u8>> = (0..50)
            .map(|k| vec![(k * 37 + i) as u8 | 1; 600_000])
            .collect();
        drop(junk);
        let out = dir.path().join(format!("o{i}.jpg"));
        let mut enc = Encoder::create(
            &out,
            OutputFormat::from_path(&out).unwrap(),
            info.video.as_ref(),
            None,
            &EncodeSettings::default(),
        )
        .unwrap();
        enc.write_video(&frame).unwrap();
        enc.finish().unwrap();
        outs.push(std::fs::read(&out).unwrap());
    }
    let differ = outs.iter().filter(|o| **o != outs[0]).count();
    assert_eq!(differ, 0, "{differ} of 5 encodes differ from the first");
}
