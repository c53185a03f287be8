//! A clip id named for the sound's mark elsewhere (the picture's mark, the store) searched
//! for as its whole pattern: every symbol known, sync and coded
//! (`AudioDetector::result_naming`).
mod audio_common;

use audio_common::*;
use hallmark_watermark::{AudioDetector, Payload, NAMED_MATCH_P};

fn detector(path: &std::path::Path, k: &hallmark_watermark::WatermarkKey) -> AudioDetector {
    let mut d = AudioDetector::new(std::slice::from_ref(k));
    for c in decode(path) {
        d.add_chunk(&c);
    }
    d
}

/// 12 s of the shared music (stereo) through MP3 at 32 kbit/s: the sync symbols alone leave
/// the mark unproven (z 4.7, p 1.7e-3, no payload); searched for as the whole pattern of the
/// clip id the picture names, it is proven with that clip id (z 8.3, p 4e-12; its coded
/// symbols single the clip id out at 3e-9). Another clip's id is not named, and the
/// unmarked music through the same encode is not found with the clip id. (Over three keys:
/// sync p 3.6e-5, 1.9e-7, 1.7e-3 → 4e-14, 7e-17, 4e-12; voice at tempo 1.15, detected by the
/// sync without its payload, 5e-10 → 1e-33 with it.)
#[test]
fn sound_its_sync_symbols_leave_unproven_is_found_as_the_whole_pattern_of_the_clip_id_named_for_it()
{
    let dir = Scratch::new("audio_named");
    let music = music(&dir);
    let k = key(29, 5);
    let ours = payload(&k);
    let marked = mark(&dir, &music, &k, "marked.wav");
    let mp3 = ["-c:a", "libmp3lame", "-b:a", "32k"];
    let mut d = detector(&attack(&dir, &marked.path, &mp3, "marked", "mp3"), &k);
    let plain = d.result();
    assert!(
        !plain.detected && plain.payload.is_none(),
        "the sync symbols alone: {plain:?}"
    );
    let (named, match_p) = d.result_naming(&[ours]).expect("a pattern of the key");
    assert!(named.detected, "{named:?}");
    assert_eq!(named.payload, Some(ours));
    assert!(match_p.is_some_and(|p| p <= NAMED_MATCH_P), "{match_p:?}");
    assert_eq!(named.key_index, Some(0));

    let other = Payload {
        clip_id: 0x7e3a_91c4_05d2_b86f,
        key_id: ours.key_id,
    };
    let (theirs, _) = d.result_naming(&[other]).expect("a pattern of the key");
    assert!(theirs.payload.is_none(), "{theirs:?}");
    let elsewhere = Payload {
        key_id: ours.key_id ^ 1,
        ..ours
    };
    assert!(d.result_naming(&[elsewhere]).is_none());
    // The detector's own answer is unchanged by the searches.
    assert_eq!(d.result(), plain);

    let mut unmarked = detector(&attack(&dir, &music, &mp3, "unmarked", "mp3"), &k);
    let (found, _) = unmarked
        .result_naming(&[ours])
        .expect("a pattern of the key");
    assert!(
        !found.detected && found.payload.is_none(),
        "unmarked: {found:?}"
    );
}
