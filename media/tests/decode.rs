mod common;

use common::{decode_all, media};
use hallmark_media::{Decoder, FrameSelection, MediaFrame, MediaKind, PixelLayout};

#[test]
fn bigbuckbunny_info_and_frame_count() {
    let d = decode_all(&media("video/bigbuckbunny.mp4"), PixelLayout::Yuv420p, 0);
    let info = &d.info;
    assert_eq!(info.kind, MediaKind::Video);
    assert!(info.container.contains("mp4"), "{}", info.container);
    let dur = info.duration_s.unwrap();
    assert!((dur - 5.312).abs() < 0.01, "duration {dur}");

    let v = info.video.as_ref().unwrap();
    assert_eq!((v.width, v.height), (1280, 720));
    assert_eq!(v.frame_rate, (25, 1));
    assert_eq!(v.frame_count_estimate, Some(132));
    assert_eq!(v.codec, "h264");

    let a = info.audio.as_ref().unwrap();
    assert_eq!(a.sample_rate, 48_000);
    assert_eq!(a.channels, 6);
    assert_eq!(a.codec, "aac");

    assert_eq!(d.video_frames, 132);
    assert_eq!(d.video_size, Some((1280, 720)));
    // Constant 25 fps from 0.
    assert!(d.video_pts[0].abs() < 1e-9);
    for (i, w) in d.video_pts.windows(2).enumerate() {
        assert!((w[1] - w[0] - 0.04).abs() < 1e-6, "frame {i}: {:?}", w);
    }
    assert_eq!((d.audio_rate, d.audio_channels), (48_000, 6));
    assert!(
        (d.audio_duration() - 5.312).abs() < 0.03,
        "audio {}",
        d.audio_duration()
    );
    assert!(d.first_audio_pts.unwrap().abs() < 0.03);
}

#[test]
fn frames_are_interleaved_in_file_order() {
    let mut dec = Decoder::open(&media("video/bigbuckbunny.mp4"), PixelLayout::Rgb24).unwrap();
    let (mut last_v, mut last_a) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    let (mut nv, mut na) = (0, 0);
    let mut max_skew: f64 = 0.0;
    while let Some(f) = dec.next_frame().unwrap() {
        match &f {
            MediaFrame::Video(v) => {
                assert_eq!(v.layout, PixelLayout::Rgb24);
                assert_eq!(v.planes.len(), 1);
                assert_eq!(v.planes[0].len(), 1280 * 720 * 3);
                assert!(v.pts_s > last_v);
                last_v = v.pts_s;
                nv += 1;
            }
            MediaFrame::Audio(a) => {
                assert!(a.pts_s > last_a);
                last_a = a.pts_s;
                na += 1;
            }
        }
        if nv > 0 && na > 0 {
            max_skew = max_skew.max((last_v - last_a).abs());
        }
    }
    assert_eq!(nv, 132);
    assert!(na > 100);
    // Interleaved, not "all video then all audio".
    assert!(max_skew < 1.5, "max A/V skew {max_skew}");
}

#[test]
fn small_videos_without_audio() {
    let d = decode_all(&media("video/bikes.mp4"), PixelLayout::Yuv420p, 0);
    assert_eq!(d.info.kind, MediaKind::Video);
    assert!(d.info.audio.is_none());
    let v = d.info.video.as_ref().unwrap();
    assert_eq!((v.width, v.height, v.frame_rate), (640, 272, (25, 1)));
    assert_eq!(d.video_frames, 250);

    let d = decode_all(
        &media("video/carphone_pristine.mp4"),
        PixelLayout::Yuv420p,
        0,
    );
    let v = d.info.video.as_ref().unwrap();
    assert_eq!((v.width, v.height, v.frame_rate), (176, 144, (30000, 1001)));
    assert_eq!(d.video_frames, 120);
    let f = d.first_video.unwrap();
    assert_eq!(f.planes[0].len(), 176 * 144);
    assert_eq!(f.planes[1].len(), 88 * 72);
}

#[test]
fn audio_files() {
    let d = decode_all(&media("audio/Front_Left.wav"), PixelLayout::Yuv420p, 0);
    assert_eq!(d.info.kind, MediaKind::Audio);
    assert_eq!(d.info.container, "wav");
    let a = d.info.audio.as_ref().unwrap();
    assert_eq!(
        (a.sample_rate, a.channels, a.codec.as_str()),
        (48_000, 1, "pcm_s16le")
    );
    assert!((d.audio_duration() - 1.480042).abs() < 0.001);
    assert_eq!(d.video_frames, 0);

    let d = decode_all(&media("audio/music-introzik.ogg"), PixelLayout::Yuv420p, 0);
    assert_eq!(d.info.kind, MediaKind::Audio);
    let a = d.info.audio.as_ref().unwrap();
    assert_eq!(
        (a.sample_rate, a.channels, a.codec.as_str()),
        (44_100, 2, "vorbis")
    );
    assert!(
        (d.audio_duration() - 195.513673).abs() < 0.05,
        "{}",
        d.audio_duration()
    );
}

#[test]
fn images() {
    for (name, w, h, codec) in [
        ("images/astronaut.png", 512, 512, "png"),
        ("images/camera.png", 512, 512, "png"),
        ("images/rocket.jpg", 640, 427, "mjpeg"),
        ("images/hubble_deep_field.jpg", 1000, 872, "mjpeg"),
        ("images/chelsea.png", 451, 300, "png"),
    ] {
        for layout in [PixelLayout::Rgb24, PixelLayout::Yuv420p] {
            let d = decode_all(&media(name), layout, 0);
            assert_eq!(d.info.kind, MediaKind::Image, "{name}");
            assert_eq!(d.info.duration_s, None);
            let v = d.info.video.as_ref().unwrap();
            assert_eq!(
                (v.width, v.height, v.codec.as_str()),
                (w, h, codec),
                "{name}"
            );
            assert_eq!(d.video_frames, 1, "{name}");
            let f = d.first_video.unwrap();
            assert_eq!((f.width, f.height, f.layout), (w, h, layout));
            assert_eq!(f.pts_s, 0.0);
        }
    }
}

#[test]
fn gray_png_decodes_to_gray_rgb() {
    let d = decode_all(&media("images/camera.png"), PixelLayout::Rgb24, 0);
    let f = d.first_video.unwrap();
    let px = &f.planes[0];
    assert!(px.chunks(3).all(|p| p[0] == p[1] && p[1] == p[2]));
    // Not a blank picture.
    let (min, max) = px
        .iter()
        .fold((255u8, 0u8), |(a, b), &v| (a.min(v), b.max(v)));
    assert!(max - min > 100);
}

/// Video frames (their timestamps) and the number of audio chunks, under one selection.
fn decode_selected(rel: &str, which: FrameSelection) -> (Vec<f64>, usize) {
    let mut dec = Decoder::open(&media(rel), PixelLayout::Yuv420p).unwrap();
    dec.select_video_frames(which);
    assert_eq!(dec.video_frame_selection(), which);
    let (mut pts, mut audio) = (Vec::new(), 0);
    while let Some(f) = dec.next_frame().unwrap() {
        match f {
            MediaFrame::Video(v) => pts.push(v.pts_s),
            MediaFrame::Audio(_) => audio += 1,
        }
    }
    (pts, audio)
}

#[test]
fn frame_selection_decodes_key_reference_or_every_frame() {
    // bikes.mp4: 250 frames; 135 that others are predicted from (its 75 I- and P-frames and
    // the B-frames of its B-pyramid that other B-frames reference); 6 key frames (I-frames
    // at 0, 1.2, 3.04, 5.48, 7.48 and 9.68 s per ffprobe).
    let (all, _) = decode_selected("video/bikes.mp4", FrameSelection::All);
    let (reference, _) = decode_selected("video/bikes.mp4", FrameSelection::Reference);
    let (key, _) = decode_selected("video/bikes.mp4", FrameSelection::Key);
    assert_eq!(all.len(), 250);
    assert_eq!(reference.len(), 135);
    let expected = [0.0, 1.2, 3.04, 5.48, 7.48, 9.68];
    assert_eq!(key.len(), expected.len(), "{key:?}");
    for (got, want) in key.iter().zip(expected) {
        assert!((got - want).abs() < 1e-6, "{key:?}");
    }
    // The selected frames are frames of the full decode, at the same times.
    for t in reference.iter().chain(&key) {
        assert!(all.iter().any(|a| (a - t).abs() < 1e-9), "{t}");
    }
    // A key frame decoded on its own is the very picture the full decode gives.
    let pictures = |which: FrameSelection| {
        let mut dec = Decoder::open(&media("video/bikes.mp4"), PixelLayout::Yuv420p).unwrap();
        dec.select_video_frames(which);
        let mut out = Vec::new();
        while let Some(f) = dec.next_frame().unwrap() {
            if let MediaFrame::Video(v) = f {
                if key.iter().any(|t| (t - v.pts_s).abs() < 1e-9) {
                    out.push(v.planes);
                }
            }
        }
        out
    };
    assert_eq!(pictures(FrameSelection::Key), pictures(FrameSelection::All));
    // The sound is not affected.
    let (v_all, a_all) = decode_selected("video/bigbuckbunny.mp4", FrameSelection::All);
    let (v_key, a_key) = decode_selected("video/bigbuckbunny.mp4", FrameSelection::Key);
    assert_eq!((v_all.len(), v_key), (132, vec![0.0]));
    assert_eq!(a_key, a_all);
}

#[test]
fn one_decoding_thread_gives_the_same_pictures_and_only_before_decoding() {
    // (threads set after opening, threads given at opening)
    let pictures = |threads: Option<usize>, at_open: usize| {
        let path = media("video/bikes.mp4");
        let mut dec =
            Decoder::open_with_video_threads(&path, PixelLayout::Yuv420p, at_open).unwrap();
        dec.select_video_frames(FrameSelection::Reference);
        if let Some(n) = threads {
            dec.set_video_threads(n).unwrap();
        }
        let mut out = Vec::new();
        while let Some(f) = dec.next_frame().unwrap() {
            if let MediaFrame::Video(v) = f {
                out.push((v.pts_s, v.planes));
            }
        }
        assert!(
            dec.set_video_threads(1).is_err(),
            "the thread count is fixed once decoding has started"
        );
        out
    };
    let default = pictures(None, 0);
    let one = pictures(Some(1), 0);
    let one_at_open = pictures(None, 1);
    assert_eq!(default.len(), 135);
    // Same frames, same pixels: the reopened decoder kept the selection (reference frames,
    // no deblocking) and decodes exactly as before.
    assert!(default == one, "frame threading changes nothing decoded");
    assert!(
        default == one_at_open,
        "nor does a thread count given at opening"
    );
}

/// Reference frames (time, planes) a decoder gives from where it stands; no sound may come.
fn pictures_from(mut dec: Decoder) -> Vec<(f64, Vec<Vec<u8>>)> {
    let mut out = Vec::new();
    while let Some(f) = dec.next_frame().unwrap() {
        match f {
            MediaFrame::Video(v) => out.push((v.pts_s, v.planes)),
            MediaFrame::Audio(_) => panic!("a picture-only decoder gave sound"),
        }
    }
    out
}

#[test]
fn a_picture_twin_decodes_from_a_key_frame_as_a_decoder_opened_anew() {
    // bikes.mp4's key frames: 0, 1.2, 3.04, 5.48, 7.48 and 9.68 s. Its copy in MPEG-TS (no
    // index), an MPEG-2 encode in MPEG-PS (its streams are found only once packets are
    // read, so its twin is opened the ordinary way).
    let dir = tempfile::tempdir().unwrap();
    let copy = |ext: &str, codec: &[&str]| {
        let out = dir.path().join(format!("bikes.{ext}"));
        let status = std::process::Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
            .arg(media("video/bikes.mp4"))
            .arg("-an")
            .args(codec)
            .arg(&out)
            .status()
            .expect("ffmpeg CLI");
        assert!(status.success());
        out
    };
    let ts = copy("ts", &["-c", "copy"]);
    let ps = copy("mpg", &["-c:v", "mpeg2video", "-q:v", "5"]);
    for path in [media("video/bikes.mp4"), ts, ps] {
        let first = Decoder::open(&path, PixelLayout::Yuv420p).unwrap();
        let twin = first.picture_twin().expect("a video's twin");
        let mut later = twin.open(1).unwrap();
        later.select_video_frames(FrameSelection::Reference);
        let before = later.video_key_frame_time(5.0, false);
        let after = later.video_key_frame_time(5.0, true);
        let from = later.start_video_at_key_frame(5.0, true).unwrap();
        assert_eq!(from, after, "{path:?}: looked up, then started at");
        let twin_frames = pictures_from(later);
        if path.extension().is_some_and(|e| e == "mp4") {
            // The index's key frames, exactly (MPEG-TS has no index to seek by).
            let near = |t: Option<f64>, want: f64| t.is_some_and(|t| (t - want).abs() < 0.02);
            assert!(
                near(before, 3.04) && near(after, 5.48),
                "{before:?} {after:?}"
            );
        }

        let mut anew = Decoder::open_with_video_threads(&path, PixelLayout::Yuv420p, 1).unwrap();
        anew.select_video_frames(FrameSelection::Reference);
        assert_eq!(anew.video_key_frame_time(5.0, false), before, "{path:?}");
        assert_eq!(anew.start_video_at_key_frame(5.0, true).unwrap(), from);
        let anew_frames = pictures_from(anew);
        assert!(twin_frames.len() > 50, "{path:?}: {}", twin_frames.len());
        assert!(
            twin_frames == anew_frames,
            "{path:?}: the same frames, the same pixels"
        );
    }
}
