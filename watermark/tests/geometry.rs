//! The picture's mark after geometry the plain search does not cover: mirrored, turned by
//! quarter turns, cropped to a small part of the frame, shown small inside other footage,
//! letterboxed into a larger canvas, covered by a caption bar. Each marked copy is found
//! with its payload, orientation and (for picture-in-picture) where it is; the unmarked
//! copies through the same attacks are not.

mod common;
use common::*;
use hallmark_media::{PixelLayout, VideoFrame};
use hallmark_watermark::*;

/// A luma-only warp: output pixel (x, y) samples the source bilinearly at `map(x, y)` (pixel
/// centres, source pixels), or takes `background`'s pixel (black without one) where `map`
/// says `None` or falls outside the source.
fn warp(
    src: &VideoFrame,
    ow: usize,
    oh: usize,
    background: Option<&VideoFrame>,
    map: impl Fn(f64, f64) -> Option<(f64, f64)>,
) -> VideoFrame {
    let (w, h) = (src.width as usize, src.height as usize);
    let mut out = VideoFrame::black(ow as u32, oh as u32, PixelLayout::Yuv420p, src.pts_s);
    let y = &src.planes[0];
    for oy in 0..oh {
        for ox in 0..ow {
            let bg = background.map_or(16, |b| b.planes[0][oy * ow + ox]);
            let v = match map(ox as f64 + 0.5, oy as f64 + 0.5) {
                Some((sx, sy)) if sx >= 0.0 && sy >= 0.0 && sx <= w as f64 && sy <= h as f64 => {
                    let cx = (sx - 0.5).clamp(0.0, (w - 1) as f64);
                    let cy = (sy - 0.5).clamp(0.0, (h - 1) as f64);
                    let (x0, y0) = (cx.floor() as usize, cy.floor() as usize);
                    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
                    let (fx, fy) = (cx - x0 as f64, cy - y0 as f64);
                    let g = |yy: usize, xx: usize| y[yy * w + xx] as f64;
                    let v = (g(y0, x0) * (1.0 - fx) + g(y0, x1) * fx) * (1.0 - fy)
                        + (g(y1, x0) * (1.0 - fx) + g(y1, x1) * fx) * fy;
                    v.round() as u8
                }
                _ => bg,
            };
            out.planes[0][oy * ow + ox] = v;
        }
    }
    out
}

type Attack = Box<dyn Fn(&VideoFrame, &VideoFrame) -> VideoFrame>;

/// Turned by `deg` degrees (clockwise on screen) about the centre, the central `keep` of
/// each side cropped (hiding the corners) and scaled back to the frame's size.
fn rotate_crop(f: &VideoFrame, deg: f64, keep: f64) -> VideoFrame {
    let (w, h) = (f.width as f64, f.height as f64);
    let (c, s) = (deg.to_radians().cos(), deg.to_radians().sin());
    warp(f, f.width as usize, f.height as usize, None, |x, y| {
        // Output → the rotated frame's crop → the source (inverse rotation).
        let (rx, ry) = ((x - w / 2.0) * keep, (y - h / 2.0) * keep);
        Some((w / 2.0 + c * rx + s * ry, h / 2.0 - s * rx + c * ry))
    })
}

/// The homography taking the unit square's corners (0,0), (1,0), (0,1), (1,1) to `to`
/// (row-major 3×3, last entry 1), by solving the eight equations.
fn homography(to: [(f64, f64); 4]) -> [f64; 9] {
    let from = [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0)];
    let mut m = [[0f64; 9]; 8];
    for (i, (&(x, y), &(u, v))) in from.iter().zip(&to).enumerate() {
        m[2 * i] = [x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y, u];
        m[2 * i + 1] = [0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y, v];
    }
    for col in 0..8 {
        let pivot = (col..8)
            .max_by(|&a, &b| m[a][col].abs().total_cmp(&m[b][col].abs()))
            .unwrap();
        m.swap(col, pivot);
        let pivot_row = m[col];
        for (r, row) in m.iter_mut().enumerate() {
            if r != col {
                let k = row[col] / pivot_row[col];
                for (x, p) in row.iter_mut().zip(&pivot_row).skip(col) {
                    *x -= k * p;
                }
            }
        }
    }
    let mut h = [1f64; 9];
    for (i, row) in m.iter().enumerate() {
        h[i] = row[8] / row[i];
    }
    h
}

/// A screen filmed at an angle: the frame's corners go to `corners` (fractions of the
/// frame: top-left, top-right, bottom-left, bottom-right), black outside.
fn perspective(f: &VideoFrame, corners: [(f64, f64); 4]) -> VideoFrame {
    let (w, h) = (f.width as f64, f.height as f64);
    // Output (fractions) → source (fractions): the inverse of frame → corners, found as the
    // homography from the square to the corners, inverted by solving per pixel.
    let fwd = homography(corners);
    warp(f, f.width as usize, f.height as usize, None, |x, y| {
        let (u, v) = (x / w, y / h);
        // Solve fwd(s, t) = (u, v): two linear equations in s, t.
        let (a, b, c) = (fwd[0] - u * fwd[6], fwd[1] - u * fwd[7], u - fwd[2]);
        let (d, e, g) = (fwd[3] - v * fwd[6], fwd[4] - v * fwd[7], v - fwd[5]);
        let det = a * e - b * d;
        if det.abs() < 1e-12 {
            return None;
        }
        let (s, t) = ((c * e - b * g) / det, (a * g - c * d) / det);
        (0.0..=1.0)
            .contains(&s)
            .then_some(())
            .and((0.0..=1.0).contains(&t).then_some((s * w, t * h)))
    })
}

/// Rotation, anamorphic stretch and perspective: the lattice stage's family.
fn lattice_attacks() -> Vec<(&'static str, Option<Orientation>, Attack)> {
    vec![
        (
            "rotated 3°, cropped to 90 %, scaled back",
            Some(Orientation::Upright),
            Box::new(|f, _| rotate_crop(f, 3.0, 0.9)),
        ),
        (
            "rotated 8°, cropped to 75 %, scaled back",
            Some(Orientation::Upright),
            Box::new(|f, _| rotate_crop(f, 8.0, 0.75)),
        ),
        (
            "rotated -6°, cropped to 80 %, scaled back",
            Some(Orientation::Upright),
            Box::new(|f, _| rotate_crop(f, -6.0, 0.8)),
        ),
        (
            "anamorphic stretch 1.25x horizontally (1600x720)",
            Some(Orientation::Upright),
            Box::new(|f, _| warp(f, 1600, 720, None, |x, y| Some((x / 1.25, y)))),
        ),
        (
            "anamorphic squeeze 0.8x horizontally (1024x720)",
            Some(Orientation::Upright),
            Box::new(|f, _| warp(f, 1024, 720, None, |x, y| Some((x / 0.8, y)))),
        ),
        (
            "keystone: top edge 92 % of the bottom",
            None,
            Box::new(|f, _| perspective(f, [(0.04, 0.0), (0.96, 0.0), (0.0, 1.0), (1.0, 1.0)])),
        ),
        (
            "screen recording: perspective as scripts/bench-geometry's",
            None,
            Box::new(|f, _| perspective(f, [(0.04, 0.03), (0.97, 0.0), (0.0, 1.0), (1.0, 0.96)])),
        ),
    ]
}

/// The attacks: name, the orientation the detector must report (`None`: a known limit,
/// printed but not required: see README, "Wider geometry: open"), and the attack (frame,
/// other footage's frame of the same size) → attacked frame.
fn attacks() -> Vec<(&'static str, Option<Orientation>, Attack)> {
    vec![
        (
            "mirrored horizontally",
            Some(Orientation::MirroredHorizontally),
            Box::new(|f, _| {
                let w = f.width as f64;
                warp(f, f.width as usize, f.height as usize, None, |x, y| {
                    Some((w - x, y))
                })
            }),
        ),
        (
            "mirrored vertically",
            Some(Orientation::MirroredVertically),
            Box::new(|f, _| {
                let h = f.height as f64;
                warp(f, f.width as usize, f.height as usize, None, |x, y| {
                    Some((x, h - y))
                })
            }),
        ),
        (
            "turned 90° clockwise",
            Some(Orientation::TurnedClockwise),
            // Output (x', y') shows source (y', H − x').
            Box::new(|f, _| {
                let h = f.height as f64;
                warp(f, f.height as usize, f.width as usize, None, |x, y| {
                    Some((y, h - x))
                })
            }),
        ),
        (
            "crop 16:9 to 9:16, scaled to 1080x1920",
            None,
            Box::new(|f, _| {
                let c = crop(f, 438, 0, 404, 720);
                resize(&c, 1080, 1920)
            }),
        ),
        (
            "mirrored + crop to 1:1, scaled to 1080x1080",
            Some(Orientation::MirroredHorizontally),
            Box::new(|f, _| {
                let w = f.width as f64;
                let m = warp(f, f.width as usize, f.height as usize, None, |x, y| {
                    Some((w - x, y))
                });
                resize(&crop(&m, 280, 0, 720, 720), 1080, 1080)
            }),
        ),
        (
            "crop to 40 % of the area, scaled back",
            Some(Orientation::Upright),
            Box::new(|f, _| crop_area(f, 0.40, 0.45, 0.55, true)),
        ),
        (
            "crop to 30 % of the area, scaled back",
            Some(Orientation::Upright),
            Box::new(|f, _| crop_area(f, 0.30, 0.5, 0.5, true)),
        ),
        (
            "picture-in-picture at 50 % over other footage",
            Some(Orientation::Upright),
            Box::new(|f, other| {
                let small = resize(f, 640, 360);
                warp(&small, 1280, 720, Some(other), |x, y| {
                    Some((x - 600.0, y - 300.0))
                })
            }),
        ),
        (
            "picture-in-picture at 50 % near the centre",
            Some(Orientation::Upright),
            Box::new(|f, other| {
                let small = resize(f, 640, 360);
                warp(&small, 1280, 720, Some(other), |x, y| {
                    Some((x - 280.0, y - 200.0))
                })
            }),
        ),
        (
            "picture-in-picture at 40 % in the top-right corner",
            // A known limit (see README, "Wider geometry: open"): printed, not required.
            None,
            Box::new(|f, other| {
                let small = resize(f, 512, 288);
                warp(&small, 1280, 720, Some(other), |x, y| {
                    Some((x - 744.0, y - 24.0))
                })
            }),
        ),
        (
            "picture-in-picture at 40 % in the bottom-left corner, mirrored",
            // A known limit (see README, "Wider geometry: open"): printed, not required.
            None,
            Box::new(|f, other| {
                let small = resize(f, 512, 288);
                warp(&small, 1280, 720, Some(other), |x, y| {
                    Some((512.0 - (x - 24.0), y - 408.0))
                })
            }),
        ),
        (
            "letterboxed into 1280x960",
            Some(Orientation::Upright),
            Box::new(|f, _| warp(f, 1280, 960, None, |x, y| Some((x, y - 120.0)))),
        ),
        (
            "letterboxed into 9:16 (1080x1920)",
            Some(Orientation::Upright),
            // 1080x608 in the middle of 1920 rows: the picture at 0.32 of its sealed height.
            Box::new(|f, _| {
                let k = 1280.0 / 1080.0;
                warp(f, 1080, 1920, None, move |x, y| {
                    Some((x * k, (y - 656.0) * k))
                })
            }),
        ),
        (
            "padded into a 1.3x canvas (1664x936) at an offset",
            Some(Orientation::Upright),
            Box::new(|f, _| warp(f, 1664, 936, None, |x, y| Some((x - 90.0, y - 196.0)))),
        ),
        (
            "pasted unscaled into a 1920x1080 canvas",
            Some(Orientation::Upright),
            Box::new(|f, other| {
                let bg = resize(other, 1920, 1080);
                warp(f, 1920, 1080, Some(&bg), |x, y| {
                    Some((x - 500.0, y - 250.0))
                })
            }),
        ),
        (
            "split screen: the marked left half beside other footage",
            Some(Orientation::Upright),
            Box::new(|f, other| {
                let w = f.width as usize;
                let mut o = other.clone();
                for (row, src) in o.planes[0]
                    .chunks_exact_mut(w)
                    .zip(f.planes[0].chunks_exact(w))
                {
                    row[..w / 2].copy_from_slice(&src[..w / 2]);
                }
                o
            }),
        ),
        (
            "caption bar over the bottom 20 %",
            Some(Orientation::Upright),
            Box::new(|f, _| {
                let (w, h) = (f.width as usize, f.height as usize);
                let mut o = f.clone();
                for y in h * 4 / 5..h {
                    for x in 0..w {
                        // White bar with dark glyph-like blocks.
                        let glyph = (x / 18 + y / 24) % 3 == 0 && (x % 18) < 12;
                        o.planes[0][y * w + x] = if glyph { 30 } else { 235 };
                    }
                }
                o
            }),
        ),
    ]
}

#[test]
fn geometry_attacks_are_registered_and_unmarked_copies_are_not_detected() {
    check(attacks());
}

#[test]
fn rotated_stretched_and_tilted_copies_are_registered_and_unmarked_ones_are_not() {
    check(lattice_attacks());
}

fn check(attacks: Vec<(&'static str, Option<Orientation>, Attack)>) {
    let k = key(7, 5);
    let frames = decode(&shared("video/bigbuckbunny.mp4"), 20);
    let others: Vec<VideoFrame> = decode(&shared("video/bikes.mp4"), 20)
        .iter()
        .map(|f| resize(f, 1280, 720))
        .collect();
    let mut emb = VideoEmbedder::new(&k, payload(&k), DEFAULT_STRENGTH);
    let marked: Vec<VideoFrame> = frames
        .iter()
        .map(|f| {
            let mut m = f.clone();
            emb.embed(&mut m);
            m
        })
        .collect();
    let mut failures = Vec::new();
    for (name, orientation, attack) in attacks {
        let run = |frames: &[VideoFrame]| {
            let mut det = VideoDetector::new(std::slice::from_ref(&k));
            for (i, (f, o)) in frames.iter().zip(&others).enumerate() {
                let mut a = attack(f, o);
                a.pts_s = i as f64 / 25.0;
                det.add_frame(&a);
            }
            det.result()
        };
        let r = run(&marked);
        let u = run(&frames);
        println!(
            "{name:48} z {:5.1} p {:8.1e} payload {:5} {:?} scale {:.3} wide {} region {:?} warp {:?} | unmarked p {:.2}",
            r.score,
            r.p_value,
            r.payload == Some(payload(&k)),
            r.orientation,
            r.scale.unwrap_or(f64::NAN),
            r.wide_search,
            r.region.map(|g| (
                (g.x * 100.0).round(),
                (g.y * 100.0).round(),
                (g.w * 100.0).round(),
                (g.h * 100.0).round()
            )),
            r.warp.map(|w| format!(
                "{:.2}° {:.3}×{:.3} shear {:.2}°",
                w.rotation_deg, w.scale_x, w.scale_y, w.shear_deg
            )),
            u.p_value,
        );
        if orientation.is_some() {
            if !(r.detected && r.payload == Some(payload(&k))) {
                failures.push(format!(
                    "{name}: not found with its payload (p {})",
                    r.p_value
                ));
            }
            if r.orientation != orientation {
                failures.push(format!("{name}: orientation {:?}", r.orientation));
            }
            let Some(region) = r.region else {
                failures.push(format!("{name}: no region"));
                continue;
            };
            // Where the marked picture is (fractions of the frame), and how close the region
            // must come: within one block of the 128-row grid (an eighth of the height) or,
            // for a picture inside other footage, found on the fine grid (blocks of a
            // sixteenth), within 8 % of the frame.
            let (expected, tol) = match name {
                n if n.starts_with("split screen") => ((0.0, 0.0, 0.5, 1.0), 1.0 / 7.0),
                n if n.starts_with("caption bar") => ((0.0, 0.0, 1.0, 0.8), 1.0 / 7.0),
                n if n.contains("50 % over") => ((0.469, 0.417, 0.5, 0.5), 0.08),
                n if n.contains("50 % near the centre") => ((0.219, 0.278, 0.5, 0.5), 0.08),
                n if n.contains("top-right corner") => ((0.581, 0.033, 0.4, 0.4), 0.08),
                n if n.contains("bottom-left corner") => ((0.019, 0.567, 0.4, 0.4), 0.08),
                n if n.starts_with("pasted unscaled") => ((0.26, 0.231, 0.667, 0.667), 0.08),
                // Letterbox and padding: the black bars are no part of the region.
                n if n.starts_with("letterboxed into 1280x960") => {
                    ((0.0, 0.125, 1.0, 0.75), 1.0 / 7.0)
                }
                n if n.starts_with("letterboxed into 9:16") => ((0.0, 0.342, 1.0, 0.317), 0.08),
                n if n.starts_with("padded into") => ((0.054, 0.209, 0.769, 0.769), 0.08),
                _ => ((0.0, 0.0, 1.0, 1.0), 1.0 / 7.0),
            };
            if (region.x - expected.0).abs() > tol
                || (region.y - expected.1).abs() > tol
                || (region.w - expected.2).abs() > tol
                || (region.h - expected.3).abs() > tol
            {
                failures.push(format!("{name}: region {region:?}, expected {expected:?}"));
            }
        }
        if u.detected || u.inconclusive {
            failures.push(format!("{name}: unmarked copy p {}", u.p_value));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn a_screen_seen_slightly_from_the_side_is_registered_by_a_sheared_lattice() {
    // `scripts/attacks.txt`'s mild perspective, and the same twice as strong, with the ffmpeg
    // CLI and x264 CRF 23, on 60 marked frames of Big Buck Bunny. At the picture's centre the
    // map is a rotation, a stretch and a shear (the two periods 3.5° and 7.3° off a right
    // angle); until session 15 the general lattices had no shear and nothing was found
    // (photo-zoom's first 60 frames: z 2.0, p 1; the fold under the true map: z 14.7), and
    // with ±6° of shear the stronger one was not (z 0.9; ±12° now).
    let k = key(7, 5);
    let frames = decode(&shared("video/bigbuckbunny.mp4"), 60);
    let marked = mark(&frames, &k);
    // (corners as fractions: top-left, top-right, bottom-left, bottom-right), shear range.
    for (corners, shear) in [
        (
            "x0=W*0.03:y0=H*0.02:x1=W*0.98:y1=0:x2=0:y2=H:x3=W*0.96:y3=H*0.97",
            -4.5..=-2.0,
        ),
        (
            "x0=W*0.06:y0=H*0.04:x1=W*0.96:y1=0:x2=0:y2=H:x3=W*0.92:y3=H*0.94",
            -9.0..=-5.5,
        ),
    ] {
        let filter = format!("perspective={corners}");
        let args = [
            "-vf", &filter, "-c:v", "libx264", "-preset", "veryfast", "-crf", "23",
        ];
        let read = |frames: &[VideoFrame]| {
            let mut det = VideoDetector::new(std::slice::from_ref(&k));
            for f in ffmpeg_round_trip(frames, 25.0, &args, "mp4") {
                det.add_frame(&f);
            }
            det.result()
        };
        let r = read(&marked);
        let u = read(&frames);
        println!(
            "{corners}: z {:.2} p {:.1e} payload {} warp {:?} | unmarked z {:.2} p {:.2}",
            r.score,
            r.p_value,
            r.payload == Some(payload(&k)),
            r.warp,
            u.score,
            u.p_value
        );
        assert!(r.detected, "{corners}: {r:?}");
        assert_eq!(r.payload, Some(payload(&k)), "{corners}");
        let w = r.warp.expect("the lattice stage registered it");
        assert!(w.rotation_deg.abs() < 3.0, "{w:?}");
        assert!(shear.contains(&w.shear_deg), "{corners}: {w:?}");
        assert!(
            (1.0..1.15).contains(&w.scale_x) && (1.0..1.15).contains(&w.scale_y),
            "{w:?}"
        );
        assert!(!u.detected && !u.inconclusive, "{corners}: {u:?}");
    }
}
