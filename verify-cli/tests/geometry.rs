//! The picture mark after the geometry people apply before reposting, through the product:
//! `verify --json` says how the picture was found (mirrored) and where the mark lies (a split
//! screen), with the sealed clip id; the same edits of the unsealed clip show no mark.

mod common;

use common::*;

/// `filter` applied to `src` (x264, no manifest left).
fn edited(src: &std::path::Path, filter: &str, name: &str) -> std::path::PathBuf {
    edited_with(src, filter, name, &[])
}

fn clip_id(r: &serde_json::Value) -> String {
    r["watermark"]["video"]["payload"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_mirrored_clip_is_found_mirrored_and_a_split_screen_where_it_is() {
    let (home, sealed) = sealed_clip();
    let (_, original) = verify_json(home.path(), sealed, &["--no-store"]);
    let id = clip_id(&original);
    assert_eq!(id.len(), 16, "{original:#}");
    assert_eq!(original["watermark"]["video"]["orientation"], "upright");
    assert_eq!(original["watermark"]["video"]["wide_search"], false);

    let mirrored = edited(sealed, "hflip", "geometry-mirrored.mp4");
    let (_, r) = verify_json(home.path(), &mirrored, &["--no-store"]);
    let v = &r["watermark"]["video"];
    assert_eq!(v["detected"], true, "{r:#}");
    assert_eq!(clip_id(&r), id, "{r:#}");
    assert_eq!(v["orientation"], "mirrored-horizontally", "{r:#}");
    // A flip keeps the seal's scale and grid: it is proven at the mirrored as-sealed
    // registration, before any search (until session 17 only the orientation search, with
    // ≈ 10⁸ times the hypotheses, found it).
    assert_eq!(v["wide_search"], false, "{r:#}");

    // The sealed clip's left half beside black: the mark is on the left.
    let split = edited(
        sealed,
        "crop=iw/2:ih:0:0,pad=iw*2:ih:0:0",
        "geometry-split.mp4",
    );
    let (_, r) = verify_json(home.path(), &split, &["--no-store"]);
    let v = &r["watermark"]["video"];
    assert_eq!(v["detected"], true, "{r:#}");
    assert_eq!(clip_id(&r), id, "{r:#}");
    let region = &v["region"];
    let (x, w) = (region["x"].as_f64().unwrap(), region["w"].as_f64().unwrap());
    assert!(x < 0.05 && w > 0.4 && x + w < 0.6, "{region}");

    // The same edits of the clip before sealing: nothing.
    for (filter, name) in [
        ("hflip", "geometry-plain-mirrored.mp4"),
        (
            "crop=iw/2:ih:0:0,pad=iw*2:ih:0:0",
            "geometry-plain-split.mp4",
        ),
    ] {
        let plain = edited(&short_clip(), filter, name);
        let (_, r) = verify_json(home.path(), &plain, &["--no-store"]);
        finds_no_mark(&r, &["region", "orientation"]);
    }
}

/// A mirrored repost is proven from its key frames (`--quick`): the key-frame pass tries every
/// orientation at the plain scales when upright fails, instead of falling to the full scan.
/// The same edit of the unsealed clip: the quick pass proves nothing and the full scan
/// follows, which finds nothing either.
#[test]
fn a_mirrored_clip_is_proven_from_its_key_frames() {
    let (home, sealed) = sealed_clip();
    let (_, original) = verify_json(home.path(), sealed, &["--no-store"]);
    let id = clip_id(&original);
    // A key frame every half second, as platforms encode: the quick pass has some.
    let mirror = |src: &std::path::Path, name: &str| edited_with(src, "hflip", name, &["-g", "12"]);
    let mirrored = mirror(sealed, "geometry-mirrored-gop12.mp4");
    let (_, r) = verify_json(home.path(), &mirrored, &["--quick", "--no-store"]);
    let v = &r["watermark"]["video"];
    assert_eq!(v["scan"], "key-frames", "{r:#}");
    assert_eq!(v["detected"], true, "{r:#}");
    assert_eq!(clip_id(&r), id, "{r:#}");
    assert_eq!(v["orientation"], "mirrored-horizontally", "{r:#}");

    let plain = mirror(&short_clip(), "geometry-plain-mirrored-gop12.mp4");
    let (_, r) = verify_json(home.path(), &plain, &["--quick", "--no-store"]);
    let v = &r["watermark"]["video"];
    assert_ne!(v["scan"], "key-frames", "the full scan follows: {r:#}");
    assert_eq!(v["scan_passes"], 2, "{r:#}");
    assert_eq!(v["detected"], false, "{r:#}");
}

/// A turned, a stretched and a slanted repost: the lattice stage registers them, the report
/// gives the warp (rotation, periods, shear) and the human report says it in words; the same
/// edits of the unsealed clip: nothing.
#[test]
fn a_turned_a_stretched_and_a_slanted_clip_are_found_with_their_warp() {
    let (home, sealed) = sealed_clip();
    let (_, original) = verify_json(home.path(), sealed, &["--no-store"]);
    let id = clip_id(&original);
    assert!(original["watermark"]["video"].get("warp").is_none());

    let turned = "rotate=3*PI/180,crop=iw*0.9:ih*0.9,scale=1280:720";
    let r = {
        let f = edited(sealed, turned, "geometry-turned.mp4");
        verify_json(home.path(), &f, &["--no-store"]).1
    };
    let v = &r["watermark"]["video"];
    assert_eq!(v["detected"], true, "{r:#}");
    assert_eq!(clip_id(&r), id, "{r:#}");
    let angle = v["warp"]["rotation_deg"].as_f64().unwrap();
    assert!((angle.abs() - 3.0).abs() < 0.5, "{r:#}");

    let stretched = "scale=1600:720";
    let f = edited(sealed, stretched, "geometry-stretched.mp4");
    let (_, r) = verify_json(home.path(), &f, &["--no-store"]);
    let v = &r["watermark"]["video"];
    assert_eq!(v["detected"], true, "{r:#}");
    assert_eq!(clip_id(&r), id, "{r:#}");
    let aspect = v["warp"]["scale_x"].as_f64().unwrap() / v["warp"]["scale_y"].as_f64().unwrap();
    assert!((aspect - 1.25).abs() < 0.05, "{r:#}");
    let human = hallmark(home.path(), &["verify", "--no-store", f.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains("stretched to 125 % of its width against its height"),
        "{text}"
    );

    // A screen filmed slightly from the side (the bench's "mild perspective"): its middle
    // is sheared, and the sheared lattice registers it.
    let slanted = "perspective=x0=W*0.03:y0=H*0.02:x1=W*0.98:y1=0:x2=0:y2=H:x3=W*0.96:y3=H*0.97";
    let f = edited(sealed, slanted, "geometry-slanted.mp4");
    let (_, r) = verify_json(home.path(), &f, &["--no-store"]);
    let v = &r["watermark"]["video"];
    assert_eq!(v["detected"], true, "{r:#}");
    assert_eq!(clip_id(&r), id, "{r:#}");
    let shear = v["warp"]["shear_deg"].as_f64().unwrap();
    assert!((1.5..6.0).contains(&shear.abs()), "{r:#}");
    let human = hallmark(home.path(), &["verify", "--no-store", f.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains(&format!("sheared {:.1}° (seen at a slant)", shear.abs())),
        "{text}"
    );

    for (filter, name) in [
        (turned, "geometry-plain-turned.mp4"),
        (stretched, "geometry-plain-stretched.mp4"),
        (slanted, "geometry-plain-slanted.mp4"),
    ] {
        let plain = edited(&short_clip(), filter, name);
        let (_, r) = verify_json(home.path(), &plain, &["--no-store"]);
        finds_no_mark(&r, &["warp"]);
    }
}

/// `filter_complex` over the sealed (or plain) clip `[0:v]` and other footage `[1:v]`
/// (bikes, looped), its output `[v]` (x264, no manifest left).
fn composed(src: &std::path::Path, graph: &str, name: &str) -> std::path::PathBuf {
    let out = scratch().join(name);
    let bikes = media("video/bikes.mp4");
    let mut args = vec![
        "-i",
        src.to_str().unwrap(),
        "-stream_loop",
        "-1",
        "-i",
        bikes.to_str().unwrap(),
        "-filter_complex",
        graph,
        "-map",
        "[v]",
    ];
    args.extend_from_slice(&REPOST);
    args.push(out.to_str().unwrap());
    ffmpeg(&args);
    out
}

/// The picture shown smaller than it was sealed: at half size over other footage
/// (picture-in-picture), letterboxed into a portrait canvas, turned a quarter. The fine
/// stage finds each with the clip id; for the picture-in-picture the report says where the
/// inset is (JSON and words); the same edits of the unsealed clip: nothing.
#[test]
fn a_clip_shown_small_inside_other_footage_is_found_where_it_is() {
    let (home, sealed) = sealed_clip();
    let (_, original) = verify_json(home.path(), sealed, &["--no-store"]);
    let id = clip_id(&original);
    // The sealed clip at half its size, its top-left corner at (40 %, 10 %) of bikes
    // scaled to the same 1280x720.
    let pip = "[1:v]scale=1280:720,setsar=1[bg];[0:v]scale=640:360[pip];\
               [bg][pip]overlay=512:72:shortest=1[v]";
    let f = composed(sealed, pip, "geometry-pip.mp4");
    let (_, r) = verify_json(home.path(), &f, &["--no-store"]);
    let v = &r["watermark"]["video"];
    assert_eq!(v["detected"], true, "{r:#}");
    assert_eq!(clip_id(&r), id, "{r:#}");
    assert_eq!(v["wide_search"], true, "{r:#}");
    let region = &v["region"];
    let at = |k: &str| region[k].as_f64().unwrap();
    // The inset spans x 40–90 %, y 10–60 %. The region is built from blocks (an eighth or a
    // sixteenth of the height) and its edges move by a block or so with the key on a 2 s
    // clip: it must overlap the inset by at least 0.6 of their union (the whole frame: 0.25;
    // the other half of the frame: 0) and hold the inset's centre.
    let (x0, y0, x1, y1) = (at("x"), at("y"), at("x") + at("w"), at("y") + at("h"));
    let inter = (x1.min(0.9) - x0.max(0.4)).max(0.0) * (y1.min(0.6) - y0.max(0.1)).max(0.0);
    let union = (x1 - x0) * (y1 - y0) + 0.25 - inter;
    assert!(
        inter / union >= 0.6 && (x0..x1).contains(&0.65) && (y0..y1).contains(&0.35),
        "{region}: overlap {:.2} ({r:#})",
        inter / union
    );
    let human = hallmark(home.path(), &["verify", "--no-store", f.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains("% of the frame"), "{text}");

    let letterbox = "scale=1080:-2,pad=1080:1920:0:(oh-ih)/2";
    // The common 9:16 repost: the picture over a blurred, enlarged copy of itself.
    let blurred = "split[a][b];[a]scale=1080:1920:force_original_aspect_ratio=increase,\
                   crop=1080:1920,boxblur=20:2[bg];[b]scale=1080:-2[fg];[bg][fg]overlay=0:(H-h)/2";
    let transpose = "transpose=1";
    for (filter, name, orientation) in [
        (letterbox, "geometry-letterbox-9x16.mp4", "upright"),
        (blurred, "geometry-blurred-9x16.mp4", "upright"),
        (transpose, "geometry-transposed.mp4", "turned-clockwise"),
    ] {
        let f = edited(sealed, filter, name);
        let (_, r) = verify_json(home.path(), &f, &["--no-store"]);
        let v = &r["watermark"]["video"];
        assert_eq!(v["detected"], true, "{name}: {r:#}");
        assert_eq!(clip_id(&r), id, "{name}: {r:#}");
        assert_eq!(v["orientation"], orientation, "{name}: {r:#}");
        if filter != transpose {
            // Found inside its bars, as sealed (not by the wider searches, as before the
            // bars were looked for), and the region is the picture: y 34–66 %.
            assert_eq!(v["wide_search"], false, "{name}: {r:#}");
            let region = &v["region"];
            let y0 = region["y"].as_f64().unwrap();
            let y1 = y0 + region["h"].as_f64().unwrap();
            assert!(
                (y0 - 0.342).abs() < 0.03 && (y1 - 0.658).abs() < 0.03,
                "{name}: {region}"
            );
        }
    }

    let plain = composed(&short_clip(), pip, "geometry-plain-pip.mp4");
    let mut unsealed = vec![plain];
    for (filter, name) in [
        (letterbox, "geometry-plain-letterbox-9x16.mp4"),
        (blurred, "geometry-plain-blurred-9x16.mp4"),
        (transpose, "geometry-plain-transposed.mp4"),
    ] {
        unsealed.push(edited(&short_clip(), filter, name));
    }
    for f in unsealed {
        let (_, r) = verify_json(home.path(), &f, &["--no-store"]);
        finds_no_mark(&r, &["region"]);
    }
}

/// An unsealed copy's report: no mark found, and none of `fields` (where the mark lies, how
/// it was turned or warped) unless there was a reading to place. An unmarked picture comes out
/// inconclusive (p ≤ 0.01) with about one key in a hundred by design, and such a reading says
/// where it was taken: the picture-in-picture test failed so in CI once (the unsealed inset
/// at p 0.0068, its region reported) when it asserted no region at all.
fn finds_no_mark(r: &serde_json::Value, fields: &[&str]) {
    let v = &r["watermark"]["video"];
    assert_eq!(v["detected"], false, "{r:#}");
    assert_ne!(r["verdict"], "watermarked", "{r:#}");
    if v["inconclusive"] != true {
        for field in fields {
            assert!(v.get(*field).is_none(), "{field}: {r:#}");
        }
    }
}
