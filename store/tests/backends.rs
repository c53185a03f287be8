//! The store's behaviour, the same suite against both backends: an embedded SQLite file and
//! PostgreSQL. The PostgreSQL half needs `HALLMARK_TEST_POSTGRES` (a URL of a server where it
//! may create databases); `scripts/test` starts a throw-away cluster and always sets it.

use std::path::{Path, PathBuf};
use std::process::Command;

use hallmark_store::{
    fingerprint_file, Fingerprint, ManifestStore, StoredManifest, SCHEMA_VERSION, STORE_FILE,
};

const MEDIA: &str = "../../shared/media/video";

#[path = "support/fresh_postgres.rs"]
mod fresh_postgres;
use fresh_postgres::fresh_postgres;

fn fresh_sqlite(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join(STORE_FILE)
}

fn record(id: &str, clip: &str, sealed_at: &str, fingerprint: Fingerprint) -> StoredManifest {
    StoredManifest {
        manifest_id: id.into(),
        clip_id: clip.into(),
        bindings: vec![
            ("org.hallmark.watermark.audio.1".into(), clip.into()),
            ("org.hallmark.watermark.video.1".into(), clip.into()),
        ],
        format: "video/mp4".into(),
        manifest: vec![1, 2, 3, id.len() as u8],
        fingerprint,
        sealed_at: sealed_at.into(),
    }
}

/// A deterministic pseudo-random picture print (xorshift): other content.
fn noise_print(seed: u64, samples: usize) -> Fingerprint {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    Fingerprint {
        video: (0..samples)
            .map(|_| {
                let mut cells = [0u8; 256];
                for c in cells.iter_mut() {
                    *c = (next() % 256) as u8;
                }
                Some(cells)
            })
            .collect(),
        audio: Vec::new(),
    }
}

fn round_trip(location: &Path) {
    assert!(ManifestStore::open_existing(location).unwrap().is_none());
    let print = Fingerprint {
        video: vec![None, Some([3; 256])],
        audio: vec![-20.0, -21.5],
    };
    let mut store = ManifestStore::open(location).unwrap();
    let a = record(
        "urn:c2pa:a",
        "00000000000000aa",
        "2026-11-25T10:00:00Z",
        print.clone(),
    );
    let b = record(
        "urn:c2pa:b",
        "00000000000000aa",
        "2026-11-25T11:00:00Z",
        print,
    );
    store.insert(&a).unwrap();
    store.insert(&b).unwrap();
    store.insert(&a).unwrap(); // idempotent
    let c = record(
        "urn:c2pa:c",
        "00000000000000cc",
        "2026-11-25T10:30:00Z",
        Fingerprint::default(),
    );
    store.insert(&c).unwrap();
    drop(store);

    let store = ManifestStore::open_existing(location).unwrap().unwrap();
    assert_eq!(store.get("urn:c2pa:a").unwrap(), Some(a));
    assert_eq!(store.get("urn:c2pa:none").unwrap(), None);
    // Each clip id once, by its newest record (aa's b at 11:00 before cc at 10:30).
    assert_eq!(
        store.recent_clip_ids(10).unwrap(),
        ["00000000000000aa", "00000000000000cc"]
    );
    assert_eq!(store.recent_clip_ids(1).unwrap(), ["00000000000000aa"]);
    let video = "org.hallmark.watermark.video.1";
    assert_eq!(
        store.find_by_binding(video, "00000000000000aa").unwrap(),
        vec!["urn:c2pa:b".to_string(), "urn:c2pa:a".to_string()]
    );
    assert_eq!(
        store
            .find_by_binding_limited(video, "00000000000000aa", 1)
            .unwrap(),
        vec!["urn:c2pa:b".to_string()]
    );
    assert!(store
        .find_by_binding(video, "00000000000000ab")
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .find_by_clip_id("00000000000000AA")
            .unwrap()
            .unwrap()
            .manifest_id,
        "urn:c2pa:b"
    );
}

#[test]
fn records_round_trip_and_resolve_by_binding_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    round_trip(&fresh_sqlite(&dir));
}

#[test]
fn records_round_trip_and_resolve_by_binding_postgres() {
    if let Some(url) = fresh_postgres("round_trip") {
        round_trip(&url);
    }
}

/// What one host records, another host's connection reads at once (the store they share).
#[test]
fn a_record_written_through_one_connection_is_read_through_another_postgres() {
    let Some(url) = fresh_postgres("two_hosts") else {
        return;
    };
    let mut sealing_host = ManifestStore::open(&url).unwrap();
    let serving_host = ManifestStore::open_existing(&url).unwrap().unwrap();
    assert!(serving_host
        .find_by_clip_id("00000000000000cc")
        .unwrap()
        .is_none());
    sealing_host
        .insert(&record(
            "urn:c2pa:c",
            "00000000000000cc",
            "2026-12-03T10:00:00Z",
            noise_print(1, 8),
        ))
        .unwrap();
    let found = serving_host.find_by_clip_id("00000000000000cc").unwrap();
    assert_eq!(found.unwrap().manifest_id, "urn:c2pa:c");
    assert_eq!(serving_host.backend(), "postgres");
}

/// Hosts that open a new database at the same moment migrate it once, without error.
#[test]
fn concurrent_opens_migrate_once_postgres() {
    let Some(url) = fresh_postgres("concurrent") else {
        return;
    };
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || ManifestStore::open(&url).map(|_| ()))
        })
        .collect();
    for t in threads {
        t.join().unwrap().unwrap();
    }
    let mut client = postgres::Client::connect(url.to_str().unwrap(), postgres::NoTls).unwrap();
    let versions: Vec<i64> = client
        .query("SELECT version FROM hallmark_schema ORDER BY version", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, (1..=SCHEMA_VERSION).collect::<Vec<_>>());
}

/// A SQLite store at `path` as hallmark wrote it at schema `version` (1: before the content
/// index, user_version 0; 2: the picture's keys only — none here), holding one clip with
/// `print`.
fn old_store(path: &Path, version: i64, manifest_id: &str, print: &Fingerprint) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "CREATE TABLE manifests (manifest_id TEXT PRIMARY KEY, clip_id TEXT NOT NULL,
           format TEXT NOT NULL, manifest BLOB NOT NULL, fingerprint BLOB NOT NULL,
           sealed_at TEXT NOT NULL);
         CREATE TABLE bindings (alg TEXT NOT NULL, value TEXT NOT NULL,
           manifest_id TEXT NOT NULL, PRIMARY KEY (alg, value, manifest_id));",
    )
    .unwrap();
    if version >= 2 {
        conn.execute_batch(
            "CREATE TABLE content_keys (key INTEGER NOT NULL, seq INTEGER NOT NULL);
             PRAGMA user_version = 2;",
        )
        .unwrap();
    }
    conn.execute(
        "INSERT INTO manifests VALUES (?1, '00000000000000dd', 'video/mp4', x'01', ?2, '2026-01-01T00:00:00Z')",
        rusqlite::params![manifest_id, print.to_bytes()],
    )
    .unwrap();
}

/// A store made before the content index existed (schema 1, user_version 0) gets it, filled
/// from its fingerprints, when it is next opened for writing.
#[test]
fn an_old_sqlite_store_is_migrated_and_its_clips_found_by_content() {
    let dir = tempfile::tempdir().unwrap();
    let path = fresh_sqlite(&dir);
    let print = noise_print(7, 20);
    old_store(&path, 1, "urn:c2pa:old", &print);
    // Read-only (a verifier, serve): no index yet, so nothing by content, and no error.
    let old = ManifestStore::open_existing(&path).unwrap().unwrap();
    assert!(old.find_by_content(&print, 10).unwrap().is_empty());
    assert!(old.get("urn:c2pa:old").unwrap().is_some());
    drop(old);
    ManifestStore::open(&path).unwrap();
    let store = ManifestStore::open_existing(&path).unwrap().unwrap();
    let found = store.find_by_content(&print, 10).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].manifest_id, "urn:c2pa:old");
    assert_eq!(found[0].score, 100);
    let version: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
}

fn ffmpeg(args: &[&str]) {
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args(args)
        .status()
        .expect("ffmpeg (scripts/setup installs it)");
    assert!(status.success(), "ffmpeg {args:?}");
}

/// The real clips of ../shared/media among many other stored clips: a re-encoded, resized
/// and darkened copy of one is found by its content alone, with its measured similarity;
/// content the store does not hold finds nothing.
fn finds_real_clips_by_content(location: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let media = Path::new(env!("CARGO_MANIFEST_DIR")).join(MEDIA);
    let bbb = media.join("bigbuckbunny.mp4");
    let bikes = media.join("bikes.mp4");
    let carphone = media.join("carphone_pristine.mp4");
    let mut store = ManifestStore::open(location).unwrap();
    for (i, clip) in [&bbb, &bikes].iter().enumerate() {
        let print = fingerprint_file(clip, 600.0).unwrap();
        store
            .insert(&record(
                &format!("urn:c2pa:real-{i}"),
                &format!("{i:016x}"),
                "2026-12-03T10:00:00Z",
                print,
            ))
            .unwrap();
    }
    // Others: 500 clips of other content, 5 s each.
    for i in 0..500u64 {
        store
            .insert(&record(
                &format!("urn:c2pa:other-{i}"),
                &format!("{:016x}", 1000 + i),
                "2026-12-03T09:00:00Z",
                noise_print(100 + i, 20),
            ))
            .unwrap();
    }
    let copy = dir.path().join("copy.mp4");
    ffmpeg(&[
        "-i",
        bbb.to_str().unwrap(),
        "-vf",
        "scale=640:-2,eq=brightness=-0.08",
        "-c:v",
        "libx264",
        "-crf",
        "32",
        "-c:a",
        "aac",
        copy.to_str().unwrap(),
    ]);
    let upload = fingerprint_file(&copy, 600.0).unwrap();
    let found = store.find_by_content(&upload, 10).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].manifest_id, "urn:c2pa:real-0");
    assert!(
        (75..=100).contains(&found[0].score),
        "the measured similarity: {found:?}"
    );
    assert!(found[0].score < 100 || found[0].similarity.video.unwrap() > 0.995);

    let excerpt = dir.path().join("excerpt.mp4");
    ffmpeg(&[
        "-ss",
        "1",
        "-i",
        bikes.to_str().unwrap(),
        "-t",
        "4",
        "-c:v",
        "libx264",
        "-crf",
        "28",
        excerpt.to_str().unwrap(),
    ]);
    let found = store
        .find_by_content(&fingerprint_file(&excerpt, 600.0).unwrap(), 10)
        .unwrap();
    assert_eq!(
        found
            .iter()
            .map(|m| m.manifest_id.as_str())
            .collect::<Vec<_>>(),
        ["urn:c2pa:real-1"]
    );

    let unknown = fingerprint_file(&carphone, 600.0).unwrap();
    assert!(store.find_by_content(&unknown, 10).unwrap().is_empty());
    assert!(store
        .find_by_content(&Fingerprint::default(), 10)
        .unwrap()
        .is_empty());
    assert!(store.find_by_content(&upload, 0).unwrap().is_empty());
}

#[test]
fn finds_real_clips_by_content_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    finds_real_clips_by_content(&fresh_sqlite(&dir));
}

#[test]
fn finds_real_clips_by_content_postgres() {
    if let Some(url) = fresh_postgres("content") {
        finds_real_clips_by_content(&url);
    }
}

const AUDIO: &str = "../../shared/media/audio";

/// A deterministic pseudo-random sound envelope (a random walk of levels, dB): other sound.
fn noise_sound_print(seed: u64, seconds: usize) -> Fingerprint {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut level = -30.0f32;
    Fingerprint {
        video: Vec::new(),
        audio: (0..seconds * 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                level = (level + (x % 1000) as f32 / 100.0 - 5.0).clamp(-60.0, -5.0);
                level
            })
            .collect(),
    }
}

/// Sound-only clips made from ../shared/media/audio: 12 s of the music and 14 s of the
/// voice recordings (WAV), and speech in another order for mixing under the voice.
fn real_sounds(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let audio = Path::new(env!("CARGO_MANIFEST_DIR")).join(AUDIO);
    let music = dir.join("music.wav");
    let track = audio.join("music-introzik.ogg");
    ffmpeg(&[
        "-ss",
        "60",
        "-t",
        "12",
        "-i",
        track.to_str().unwrap(),
        music.to_str().unwrap(),
    ]);
    let speech = |order: &[&str], repeat: usize, trim: &str, out: &Path| {
        let mut args: Vec<String> = Vec::new();
        for _ in 0..repeat {
            for n in order {
                args.extend([
                    "-i".into(),
                    audio.join(format!("{n}.wav")).display().to_string(),
                ]);
            }
        }
        let n = order.len() * repeat;
        args.extend([
            "-filter_complex".into(),
            format!("concat=n={n}:v=0:a=1,atrim=start={trim}"),
            "-ar".into(),
            "48000".into(),
            "-ac".into(),
            "1".into(),
            out.display().to_string(),
        ]);
        ffmpeg(&args.iter().map(String::as_str).collect::<Vec<_>>());
    };
    let voice = dir.join("voice.wav");
    speech(
        &["Front_Center", "Front_Left", "Rear_Center", "Side_Left"],
        2,
        "0",
        &voice,
    );
    let babble = dir.join("babble.wav");
    speech(
        &["Side_Left", "Rear_Center", "Front_Left", "Front_Center"],
        4,
        "0.7",
        &babble,
    );
    (music, voice, babble)
}

/// A clip with no picture is found by its sound alone (the sound's keys): 12 s of music
/// after MP3 at 32 kbit/s, a 3 s excerpt of a voice, and — as a candidate for a mark's clip
/// id, not as a search's answer — the voice with other speech mixed 3 dB under it; sound
/// the store does not hold finds nothing.
fn finds_sound_only_clips_by_content(location: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let (music, voice, babble) = real_sounds(dir.path());
    let mut store = ManifestStore::open(location).unwrap();
    for (i, clip) in [&music, &voice].iter().enumerate() {
        let print = fingerprint_file(clip, 600.0).unwrap();
        assert!(print.video.is_empty() && print.audio.len() > 200);
        store
            .insert(&record(
                &format!("urn:c2pa:sound-{i}"),
                &format!("{i:016x}"),
                "2026-12-06T10:00:00Z",
                print,
            ))
            .unwrap();
    }
    for i in 0..300u64 {
        store
            .insert(&record(
                &format!("urn:c2pa:other-{i}"),
                &format!("{:016x}", 1000 + i),
                "2026-12-06T09:00:00Z",
                noise_sound_print(100 + i, 15),
            ))
            .unwrap();
    }
    let ids = |found: Vec<hallmark_store::ContentMatchFound>| -> Vec<String> {
        found.into_iter().map(|m| m.manifest_id).collect()
    };
    let path = |name: &str| dir.path().join(name).display().to_string();
    let mp3 = path("music-32k.mp3");
    ffmpeg(&[
        "-i",
        music.to_str().unwrap(),
        "-c:a",
        "libmp3lame",
        "-b:a",
        "32k",
        &mp3,
    ]);
    let upload = fingerprint_file(Path::new(&mp3), 600.0).unwrap();
    assert_eq!(
        ids(store.find_by_content(&upload, 10).unwrap()),
        ["urn:c2pa:sound-0"]
    );

    let excerpt = path("voice-3s.wav");
    ffmpeg(&[
        "-i",
        voice.to_str().unwrap(),
        "-ss",
        "2.3",
        "-t",
        "3",
        &excerpt,
    ]);
    let upload = fingerprint_file(Path::new(&excerpt), 600.0).unwrap();
    assert_eq!(
        ids(store.find_by_content(&upload, 10).unwrap()),
        ["urn:c2pa:sound-1"]
    );

    let mixed = path("voice-under-speech.wav");
    ffmpeg(&[
        "-i",
        voice.to_str().unwrap(),
        "-i",
        babble.to_str().unwrap(),
        "-filter_complex",
        "[1:a]volume=-3dB[s];[0:a][s]amix=inputs=2:duration=first:normalize=0",
        "-c:a",
        "pcm_f32le",
        &mixed,
    ]);
    let upload = fingerprint_file(Path::new(&mixed), 600.0).unwrap();
    assert_eq!(
        ids(store.find_same_content(&upload, 10).unwrap()),
        ["urn:c2pa:sound-1"]
    );

    let audio = Path::new(env!("CARGO_MANIFEST_DIR")).join(AUDIO);
    for other in ["startup3.wav", "Noise.wav"] {
        let upload = fingerprint_file(&audio.join(other), 600.0).unwrap();
        assert!(
            store.find_same_content(&upload, 10).unwrap().is_empty(),
            "{other}"
        );
    }
}

#[test]
fn finds_sound_only_clips_by_content_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    finds_sound_only_clips_by_content(&fresh_sqlite(&dir));
}

#[test]
fn finds_sound_only_clips_by_content_postgres() {
    if let Some(url) = fresh_postgres("sound") {
        finds_sound_only_clips_by_content(&url);
    }
}

/// A store of schema 2 (content keys of the picture only) gets the sound's keys of the clips
/// it holds when next opened for writing: a sound-only clip sealed before is then found by
/// its sound.
#[test]
fn a_schema_2_store_gets_the_sound_keys_of_its_clips() {
    let dir = tempfile::tempdir().unwrap();
    let path = fresh_sqlite(&dir);
    let (music, _, _) = real_sounds(dir.path());
    let print = fingerprint_file(&music, 600.0).unwrap();
    old_store(&path, 2, "urn:c2pa:music", &print);
    let old = ManifestStore::open_existing(&path).unwrap().unwrap();
    assert!(old.find_by_content(&print, 10).unwrap().is_empty());
    drop(old);
    ManifestStore::open(&path).unwrap();
    let store = ManifestStore::open_existing(&path).unwrap().unwrap();
    let found = store.find_by_content(&print, 10).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].manifest_id, "urn:c2pa:music");
    let keys: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("SELECT count(*) FROM content_keys", [], |r| r.get(0))
        .unwrap();
    assert_eq!(keys as usize, print.sound_keys().len());
}

/// A server that is not there fails clearly, naming the store but not its password.
#[test]
fn an_unreachable_postgres_fails_with_the_url_without_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "postgresql://hallmark:s3cret@{}/hallmark?connect_timeout=2",
        dir.path().to_str().unwrap().replace('/', "%2F")
    );
    let err = ManifestStore::open_existing(Path::new(&url))
        .err()
        .expect("no server there");
    let text = err.to_string();
    assert!(text.contains("postgresql://hallmark:***@"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
    let err = ManifestStore::open(Path::new("postgres://bad url with spaces"))
        .err()
        .expect("not a URL");
    assert!(err.to_string().contains("manifest store"), "{err}");
}

/// Sealing processes that open and write one new SQLite store at the same moment all succeed:
/// none sees "database is locked" (CI stop 28: two `hallmark seal` runs sharing a home).
#[test]
fn concurrent_sealers_share_a_new_sqlite_store() {
    for round in 0..12 {
        let dir = tempfile::tempdir().unwrap();
        let path = fresh_sqlite(&dir);
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(6));
        let threads: Vec<_> = (0..6)
            .map(|i| {
                let path = path.clone();
                let barrier = barrier.clone();
                std::thread::spawn(move || -> Result<(), String> {
                    barrier.wait();
                    let mut store = ManifestStore::open(&path).map_err(|e| format!("open: {e}"))?;
                    drop(ManifestStore::open_existing(&path).map_err(|e| format!("reopen: {e}"))?);
                    store
                        .insert(&record(
                            &format!("urn:c2pa:{round}-{i}"),
                            &format!("{i:016x}"),
                            "2026-12-05T10:00:00Z",
                            noise_print(i as u64, 4),
                        ))
                        .map_err(|e| format!("insert: {e}"))?;
                    drop(store);
                    let reader = ManifestStore::open_existing(&path)
                        .map_err(|e| e.to_string())?
                        .ok_or("no store")?;
                    reader
                        .find_by_clip_id(&format!("{i:016x}"))
                        .map_err(|e| e.to_string())?
                        .ok_or("not found")?;
                    Ok(())
                })
            })
            .collect();
        for t in threads {
            t.join()
                .unwrap()
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
        }
    }
}

/// The index by key covers the clip (schema 4): a probe's votes are counted from the index
/// alone, without reading the table (at a million clips, 178 → 43 ms for 30 s of sound:
/// `scripts/bench-store`). A new store and one migrated from schema 2 both have it, and the
/// old one-column index is gone; SQLite's plan for the vote says so.
#[test]
fn the_content_index_covers_the_clip_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let fresh = fresh_sqlite(&dir);
    ManifestStore::open(&fresh).unwrap();
    let migrated = dir.path().join("old.sqlite");
    old_store(&migrated, 2, "urn:c2pa:old", &noise_print(3, 8));
    ManifestStore::open(&migrated).unwrap();
    for path in [fresh, migrated] {
        let conn = rusqlite::Connection::open(&path).unwrap();
        let columns = |index: &str| -> Vec<String> {
            let mut stmt = conn
                .prepare(&format!("PRAGMA index_info('{index}')"))
                .unwrap();
            let names = stmt
                .query_map([], |r| r.get::<_, String>(2))
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            names
        };
        assert_eq!(columns("content_keys_by_key_seq"), ["key", "seq"]);
        assert!(columns("content_keys_by_key").is_empty());
        let plan: Vec<String> = conn
            .prepare(
                "EXPLAIN QUERY PLAN SELECT seq, count(*) AS votes FROM content_keys
                 WHERE key IN (1, 2, 3) GROUP BY seq",
            )
            .unwrap()
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter()
                .any(|step| step.contains("USING COVERING INDEX content_keys_by_key_seq")),
            "{plan:?}"
        );
    }
}

#[test]
fn the_content_index_covers_the_clip_postgres() {
    let Some(url) = fresh_postgres("covering") else {
        return;
    };
    ManifestStore::open(&url).unwrap();
    let mut client = postgres::Client::connect(url.to_str().unwrap(), postgres::NoTls).unwrap();
    let indexes: Vec<String> = client
        .query(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'content_keys' ORDER BY indexname",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(indexes.len(), 2, "{indexes:?}");
    assert!(
        indexes[0].contains("content_keys_by_key_seq") && indexes[0].ends_with("(key, seq)"),
        "{indexes:?}"
    );
    assert!(indexes[1].ends_with("(seq)"), "{indexes:?}");
}
