#!/usr/bin/env python3
"""The peer under the same attacks: invisible-watermark's dwtDctSvd on the clip and the attack list
of scripts/bench-watermark. Run it through scripts/bench-peer, which makes the venv and the clip.

The package marks still images; for video it is used the way its README shows for an image, on
every frame: the same 64-bit payload is embedded in each frame (WatermarkEncoder.set_watermark
('bits', ...), encode(bgr, 'dwtDctSvd')), the frames go back to H.264 at CRF 16 with the sound
copied, and after each attack every k-th frame is decoded (WatermarkDecoder('bits', 64)
.decode(bgr, 'dwtDctSvd')). A clip's payload is the per-bit majority vote over its decoded frames.
"""
import argparse
import importlib.metadata as md
import json
import math
import os
import re
import subprocess
import sys
import time
import types

try:  # imwatermark/__init__ imports rivaGan, which imports torch at module level; dwtDctSvd never uses it.
    import torch  # noqa: F401
except ImportError:
    sys.modules["torch"] = types.ModuleType("torch")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from imwatermark import WatermarkDecoder, WatermarkEncoder  # noqa: E402

cv2.setNumThreads(1)
METHOD = "dwtDctSvd"
NBITS = 64
P_THRESHOLD = 1e-6  # the threshold hallmark's "present" uses
FF = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]


def payload_bits():
    """A fixed payload with 32 ones and 32 zeros, so that a decoder stuck on one value scores 0.5."""
    return np.random.default_rng(2026).permutation(np.array([1] * 32 + [0] * 32, dtype=np.uint8))


def bits_hex(bits):
    return "%016x" % int("".join(str(int(b)) for b in bits), 2)


def probe(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets", "-show_entries",
                          "stream=width,height,r_frame_rate,nb_read_packets", "-of", "json", path],
                         check=True, capture_output=True, text=True).stdout
    s = json.loads(out)["streams"][0]
    num, den = s["r_frame_rate"].split("/")
    return int(s["width"]), int(s["height"]), float(num) / float(den), int(s["nb_read_packets"])


def frames(path, every=1):
    """The clip's frames as BGR arrays (every k-th one, counting from the first)."""
    w, h, _, _ = probe(path)
    vf = [] if every == 1 else ["-vf", "select=not(mod(n\\,%d))" % every, "-vsync", "0"]
    p = subprocess.Popen(FF + ["-i", path] + vf + ["-f", "rawvideo", "-pix_fmt", "bgr24", "-"],
                         stdout=subprocess.PIPE)
    size = w * h * 3
    try:
        while True:
            buf = p.stdout.read(size)
            if len(buf) < size:
                break
            yield np.frombuffer(buf, np.uint8).reshape(h, w, 3)
    finally:
        p.stdout.close()
        if p.wait() != 0:
            raise RuntimeError("ffmpeg failed decoding %s" % path)


def encoder(out, w, h, fps, audio_from):
    return subprocess.Popen(FF + ["-f", "rawvideo", "-pix_fmt", "bgr24", "-s", "%dx%d" % (w, h), "-r", "%g" % fps,
                                  "-i", "-", "-i", audio_from, "-map", "0:v", "-map", "1:a", "-c:v", "libx264",
                                  "-preset", "fast", "-crf", "16", "-pix_fmt", "yuv420p", "-c:a", "copy", out],
                            stdin=subprocess.PIPE)


def embed(src, marked, plain, bits, every):
    """Marks every frame of src into `marked`; writes the same frames unmarked through the same
    pipeline into `plain` (the unmarked twin). Returns (frames, seconds spent in encode(), the
    bits decoded from every k-th marked frame in memory, before the H.264 encode)."""
    w, h, fps, _ = probe(src)
    enc = WatermarkEncoder()
    enc.set_watermark("bits", [int(b) for b in bits])
    dec = WatermarkDecoder("bits", NBITS)
    pm, pp = encoder(marked, w, h, fps, src), encoder(plain, w, h, fps, src)
    n, spent, in_memory = 0, 0.0, []
    for f in frames(src):
        t = time.perf_counter()
        m = enc.encode(f.copy(), METHOD)
        spent += time.perf_counter() - t
        if n % every == 0:
            in_memory.append(np.asarray(dec.decode(m, METHOD), dtype=np.uint8))
        pm.stdin.write(np.ascontiguousarray(m, dtype=np.uint8).tobytes())
        pp.stdin.write(f.tobytes())
        n += 1
    for p in (pm, pp):
        p.stdin.close()
        if p.wait() != 0:
            raise RuntimeError("ffmpeg failed encoding")
    return n, spent, np.array(in_memory)


def decode(path, every):
    dec = WatermarkDecoder("bits", NBITS)
    got, spent = [], 0.0
    for f in frames(path, every):
        t = time.perf_counter()
        got.append(np.asarray(dec.decode(f, METHOD), dtype=np.uint8))
        spent += time.perf_counter() - t
    return np.array(got), spent


def apply_attack(src, dst, ffargs, bg):
    """One line of attacks.txt, as scripts/bench-common.sh's bench_apply runs it: {w} {h} are src's
    size, {bg} other footage, " >> " separates successive ffmpeg runs. Split on plain spaces only:
    a no-break space belongs to a filter's text."""
    w, h, _, _ = probe(src)
    ffargs = ffargs.replace("{w}", str(w)).replace("{h}", str(h)).replace("{bg}", bg)
    runs = ffargs.split(" >> ")
    root, ext = os.path.splitext(dst)
    cur = src
    for i, run in enumerate(runs):
        out = dst if i == len(runs) - 1 else "%s.run%d%s" % (root, i + 1, ext)
        subprocess.run(FF + ["-i", cur] + [a for a in run.split(" ") if a] + [out], check=True)
        if cur != src:
            os.remove(cur)
        cur = out


def binom_tail(k, n=NBITS):
    """P(at least k of n fair coin flips agree): the chance an unrelated clip's vote matches this well."""
    return sum(math.comb(n, i) for i in range(k, n + 1)) / 2.0 ** n


def score(got, bits):
    if len(got) == 0:
        return dict(frames=0, frame_acc=0.0, vote_acc=0.0, exact=False, frames_exact=0.0, p=1.0, detected=False)
    agree = got == bits[None, :]
    vote = (got.mean(axis=0) > 0.5).astype(np.uint8)  # a tie votes 0
    k = int((vote == bits).sum())
    p = binom_tail(k)
    return dict(frames=len(got), frame_acc=float(agree.mean()), vote_acc=k / NBITS, exact=bool(k == NBITS),
                frames_exact=float(agree.all(axis=1).mean()), p=p, detected=p <= P_THRESHOLD, vote=bits_hex(vote))


def quality(marked, plain, out):
    """Per-frame PSNR (Y, U) and SSIM (Y, all) of marked vs plain, with ffmpeg's psnr and ssim filters."""
    ps, ss = os.path.join(out, "psnr.log"), os.path.join(out, "ssim.log")
    subprocess.run(FF + ["-i", marked, "-i", plain, "-lavfi",
                         "[0:v][1:v]psnr=stats_file=%s;[0:v][1:v]ssim=stats_file=%s" % (ps, ss), "-f", "null", "-"],
                   check=True)

    def col(path, key):
        vals = []
        for line in open(path):
            kv = dict(t.split(":", 1) for t in line.split() if ":" in t)
            v = kv[key].split("(")[0]
            vals.append(float("inf") if v == "inf" else float(v))
        return np.array(vals)

    q = {}
    for name, path, key in (("psnr_y", ps, "psnr_y"), ("psnr_u", ps, "psnr_u"), ("psnr_v", ps, "psnr_v"),
                            ("ssim_y", ss, "Y"), ("ssim_all", ss, "All")):
        v = col(path, key)
        q[name] = dict(mean=float(v.mean()), min=float(v.min()))
    return q


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", default="bench-out/clips/bbb.mp4")
    ap.add_argument("--out", default="bench-out/peer")
    ap.add_argument("--every", type=int, default=int(os.environ.get("PEER_EVERY", "5")),
                    help="decode every k-th frame of each clip (default 5: 6 frames/s)")
    ap.add_argument("--attacks", default="scripts/attacks.txt")
    ap.add_argument("--only", default="", help="only the attacks whose name matches this regular expression")
    ap.add_argument("--bg", default="bench-out/clips/bikes.mp4", help="other footage, for {bg} (picture-in-picture)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    t0 = time.time()
    bits = payload_bits()
    marked, plain = os.path.join(args.out, "marked.mp4"), os.path.join(args.out, "plain.mp4")

    n, spent, in_memory = embed(args.src, marked, plain, bits, args.every)
    mem = score(in_memory, bits)
    w, h, fps, _ = probe(args.src)
    q = quality(marked, plain, args.out)

    attacks = []
    for line in open(args.attacks, encoding="utf-8"):
        line = line.rstrip("\n")
        if line and not line.startswith("#"):
            name, ext, ffargs = line.split("|", 2)
            if re.search(args.only, name, re.IGNORECASE):
                attacks.append((name, ext, ffargs))

    rows, dec_frames, dec_spent = [], 0, 0.0
    for name, ext, ffargs in attacks:
        res = {}
        for which, inp in (("marked", marked), ("plain", plain)):
            dst = os.path.join(args.out, "%s.%s" % ("attacked" if which == "marked" else "attacked-plain", ext))
            apply_attack(inp, dst, ffargs, args.bg)
            got, s = decode(dst, args.every)
            dec_frames += len(got)
            dec_spent += s
            res[which] = score(got, bits)
        rows.append((name, res))
        print("peer: %-36s marked vote %.3f (%d frames), unmarked vote %.3f" % (
            name, res["marked"]["vote_acc"], res["marked"]["frames"], res["plain"]["vote_acc"]),
            file=sys.stderr, flush=True)

    versions = ", ".join("%s %s" % (p, md.version(p)) for p in
                         ("invisible-watermark", "numpy", "PyWavelets", "opencv-python-headless"))
    ffv = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.split("\n")[0].split(" Copyright")[0]
    with open(os.path.join(args.out, "results.json"), "w") as fh:
        json.dump(dict(payload=bits_hex(bits), every=args.every, embed_frames=n, embed_s=spent, quality=q, in_memory=mem,
                       decode_frames=dec_frames, decode_s=dec_spent, rows=[dict(attack=a, **r) for a, r in rows]),
                  fh, indent=1)

    print("Peer: invisible-watermark %s, 64-bit payload %s in every frame (%s); %d frames %dx%d %g fps, "
          "each clip decoded on every %s frame." % (METHOD, bits_hex(bits), versions, n, w, h, fps,
                                                    "" if args.every == 1 else "%dth" % args.every))
    print("Before the H.264 encode (marked frames in memory): bit accuracy %.3f per frame, %d/%d frames exact." % (
        mem["frame_acc"], round(mem["frames_exact"] * mem["frames"]), mem["frames"]))
    print("Marked vs the same pipeline unmarked (ffmpeg psnr/ssim, per frame mean / min): "
          "PSNR Y %.1f / %.1f dB, U %.1f / %.1f dB, V %.1f / %.1f dB; SSIM Y %.4f / %.4f, all %.4f / %.4f." % (
              q["psnr_y"]["mean"], q["psnr_y"]["min"], q["psnr_u"]["mean"], q["psnr_u"]["min"],
              q["psnr_v"]["mean"], q["psnr_v"]["min"], q["ssim_y"]["mean"], q["ssim_y"]["min"],
              q["ssim_all"]["mean"], q["ssim_all"]["min"]))
    print("Embed %.1f frames/s, decode %.1f frames/s (the package's own calls, one core; %s)." % (
        n / spent, dec_frames / dec_spent if dec_spent else 0.0, ffv))
    print()
    print("| attack | detected | p-value | payload exact (vote) | bit accuracy: vote / per frame | frames exact "
          "| unmarked copy: vote bit accuracy, p (detected?) |")
    print("|---|---|---|---|---|---|---|")
    hits = fp = 0
    for name, r in rows:
        m, u = r["marked"], r["plain"]
        hits += m["detected"]
        fp += u["detected"]
        print("| %s | %s | %.1e | %s | %.3f / %.3f | %d/%d | %.3f, %.2g (%s) |" % (
            name, "yes" if m["detected"] else "NO", m["p"], "yes" if m["exact"] else "no", m["vote_acc"],
            m["frame_acc"], round(m["frames_exact"] * m["frames"]), m["frames"], u["vote_acc"], u["p"],
            "DETECTED" if u["detected"] else "no"))
    print()
    print("Marked copies detected: %d/%d; unmarked copies detected: %d/%d. Runtime %.0f s." % (
        hits, len(rows), fp, len(rows), time.time() - t0))


if __name__ == "__main__":
    main()
