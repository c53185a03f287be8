#!/usr/bin/env python3
"""Builds testdata/third-party/: shared photos and a short clip marked by the real PyPI
`invisible-watermark` package (dwtDct) exactly the way each open generator's reference code
calls it. Run it through scripts/make-third-party-fixtures, which makes the venv.

Each generator's call, as its code has it (the model's output is replaced by a photo):
- Stable Diffusion 1.x, CompVis/stable-diffusion scripts/txt2img.py put_watermark: uint8 RGB
  -> cv2.COLOR_RGB2BGR -> encode(bgr, 'dwtDct') with set_watermark('bytes',
  b'StableDiffusionV1') -> [:, :, ::-1] -> PNG.
- Stable Diffusion 2.x, Stability-AI/stablediffusion scripts/txt2img.py: the same with b'SDV2'.
- SDXL / SVD, Stability-AI/generative-models sgm/inference/helpers.py WatermarkEmbedder:
  float32 255*x (x in 0..1), [:, :, ::-1] to BGR, encode, back to RGB, clamp(x/255, 0, 1),
  saved as (255*x).astype(uint8); bits of 0xB3EC907BB19E (bin()[2:], 48 bits).
- SDXL in diffusers (StableDiffusionXLWatermarker.apply_watermark): float32 255*(x/2+0.5) in
  RGB order handed to encode as is, clamp(2*(x/255-0.5), -1, 1), saved by numpy_to_pil as
  round(255*(x/2+0.5)).
- FLUX.1, black-forest-labs/flux src/flux/util.py WatermarkEmbedder: as sgm's, on x in -1..1;
  saved as uint8 of 127.5*(x+1); bits of bin(0b0010...101110)[2:] (46 bits).
- The clip: SVD's scripts/sampling/simple_video_sample.py marks every frame with sgm's
  embedder and writes uint8 frames; here those frames go to H.264 (libx264, CRF 23, yuv420p)
  through ffmpeg.
"""
import os
import subprocess
import sys
import types

try:  # imwatermark/__init__ imports rivaGan, which imports torch at module level; dwtDct never uses it.
    import torch  # noqa: F401
except ImportError:
    sys.modules["torch"] = types.ModuleType("torch")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from imwatermark import WatermarkDecoder, WatermarkEncoder  # noqa: E402

SHARED = os.environ.get("SHARED_MEDIA", "../shared/media")
OUT = "testdata/third-party"
FF = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]

SGM_BITS = [int(b) for b in bin(0b101100111110110010010000011110111011000110011110)[2:]]
FLUX_BITS = [int(b) for b in bin(0b001010101111111010000111100111001111010100101110)[2:]]


def photo(name, size=256):
    """A shared photo as uint8 RGB, scaled so its short side is `size`, centre-cropped square."""
    bgr = cv2.imread(os.path.join(SHARED, "images", name), cv2.IMREAD_COLOR)
    h, w = bgr.shape[:2]
    s = size / min(h, w)
    bgr = cv2.resize(bgr, (max(size, round(w * s)), max(size, round(h * s))), interpolation=cv2.INTER_AREA)
    h, w = bgr.shape[:2]
    y, x = (h - size) // 2, (w - size) // 2
    return np.ascontiguousarray(bgr[y:y + size, x:x + size, ::-1])


def encoder(kind, content):
    enc = WatermarkEncoder()
    enc.set_watermark(kind, content)
    return enc


def sd_txt2img(rgb, text):
    """put_watermark of SD 1.x / 2.x txt2img.py."""
    enc = encoder("bytes", text.encode("utf-8"))
    bgr = cv2.cvtColor(np.array(rgb), cv2.COLOR_RGB2BGR)
    bgr = enc.encode(bgr, "dwtDct")
    return np.ascontiguousarray(bgr[:, :, ::-1])


def sgm_embedder(x01, bits):
    """WatermarkEmbedder.__call__ of sgm (and flux) on one image x in 0..1, float32 HWC RGB."""
    enc = encoder("bits", bits)
    image_np = (255 * x01).astype(np.float32)[:, :, ::-1]
    image_np = enc.encode(image_np, "dwtDct")
    return np.clip(image_np[:, :, ::-1] / 255, 0.0, 1.0)


def sdxl_generative_models(rgb):
    x = sgm_embedder(rgb.astype(np.float32) / 255, SGM_BITS)
    return (255.0 * x).astype(np.uint8)  # perform_save_locally


def sdxl_diffusers(rgb):
    images = rgb.astype(np.float32) / 127.5 - 1.0  # the pipeline's -1..1 output
    enc = encoder("bits", SGM_BITS)
    images = (255 * (images / 2 + 0.5)).astype(np.float32)
    images = enc.encode(images, "dwtDct")  # RGB order, as diffusers hands it
    images = np.clip(2 * (images / 255 - 0.5), -1.0, 1.0)
    x = np.clip(images / 2 + 0.5, 0, 1)  # postprocess: denormalize, numpy_to_pil
    return (x * 255).round().astype(np.uint8)


def flux(rgb):
    x = rgb.astype(np.float32) / 127.5 - 1.0
    x = 2 * sgm_embedder(0.5 * x + 0.5, FLUX_BITS) - 1
    x = np.clip(x, -1, 1)
    return (127.5 * (x + 1.0)).astype(np.uint8)  # cli.py: .byte()


def write_still(name, mark, photo_name, own_size):
    """The photo marked at 256x256 (the package's least size) as PNG, and as JPEG copies at
    quality 90 (libjpeg, 4:2:0, as cv2 and PIL write it): marked at 512x512 and at the
    generator's own output size (SD 2.x 768, SDXL and FLUX.1 1024). JPEG keeps only a fifth of
    the mark's lone peaks, so it survives only with enough 8x8 blocks per bit (watermark/README.md)."""
    bgr = np.ascontiguousarray(mark(photo(photo_name, 256))[:, :, ::-1])
    cv2.imwrite(os.path.join(OUT, name + ".png"), bgr, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    for size in sorted({512, own_size}):
        bgr = np.ascontiguousarray(mark(photo(photo_name, size))[:, :, ::-1])
        cv2.imwrite(os.path.join(OUT, "%s-%d-q90.jpg" % (name, size)), bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])


STILLS = [
    # (fixture name, marking, shared photo, the generator's own output size)
    ("sd1-chelsea", lambda rgb: sd_txt2img(rgb, "StableDiffusionV1"), "chelsea.png", 512),
    ("sd2-coffee", lambda rgb: sd_txt2img(rgb, "SDV2"), "coffee.png", 768),
    ("sdxl-astronaut", sdxl_generative_models, "astronaut.png", 1024),
    ("sdxl-diffusers-motorcycle", sdxl_diffusers, "motorcycle_left.png", 1024),
    ("flux-rocket", flux, "rocket.jpg", 1024),
]


def write_table(out):
    """`--table DIR`: every generator's photo marked at 256..1024 and saved as JPEG at quality
    85, 90 and 95 (not committed: the watermark crate's ignored dwtdct_jpeg_table test reads
    them and prints the p-value table of the README)."""
    os.makedirs(out, exist_ok=True)
    for name, mark, photo_name, _ in STILLS:
        for size in (256, 512, 768, 1024):
            bgr = np.ascontiguousarray(mark(photo(photo_name, size))[:, :, ::-1])
            for q in (85, 90, 95):
                cv2.imwrite(os.path.join(out, "%s-%d-q%d.jpg" % (name, size, q)), bgr, [cv2.IMWRITE_JPEG_QUALITY, q])
            unmarked = np.ascontiguousarray(photo(photo_name, size)[:, :, ::-1])
            cv2.imwrite(os.path.join(out, "unmarked-%s-%d-q90.jpg" % (name, size)), unmarked, [cv2.IMWRITE_JPEG_QUALITY, 90])


def package_decode(path, kind, length):
    """What the package's own decoder reads back from a written file (a sanity check)."""
    dec = WatermarkDecoder(kind, length)
    return dec.decode(cv2.imread(path), "dwtDct")


def svd_clip(name, seconds=2, fps=7, w=320, h=256):
    """Frames of Big Buck Bunny scaled to cover w x h, marked one by one like SVD, to H.264."""
    src = os.path.join(SHARED, "video", "bigbuckbunny.mp4")
    vf = "fps=%d,scale=-2:%d:flags=area,crop=%d:%d" % (fps, h, w, h)
    raw = subprocess.run(FF + ["-i", src, "-t", str(seconds), "-vf", vf, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         check=True, capture_output=True).stdout
    frames = np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3)
    enc = subprocess.Popen(FF + ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "%dx%d" % (w, h), "-r", str(fps), "-i", "-",
                                 "-c:v", "libx264", "-preset", "medium", "-crf", "23", "-pix_fmt", "yuv420p",
                                 "-movflags", "+faststart", os.path.join(OUT, name + ".mp4")], stdin=subprocess.PIPE)
    for f in frames:
        x = sgm_embedder(f.astype(np.float32) / 255, SGM_BITS)
        enc.stdin.write((x * 255).astype(np.uint8).tobytes())  # simple_video_sample.py: *255, uint8
    enc.stdin.close()
    if enc.wait() != 0:
        raise RuntimeError("ffmpeg failed")
    return len(frames)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--table":
        write_table(sys.argv[2])
        return
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        if f.endswith((".png", ".jpg", ".mp4")):
            os.remove(os.path.join(OUT, f))
    for name, mark, photo_name, own_size in STILLS:
        write_still(name, mark, photo_name, own_size)
    n = svd_clip("svd-bbb")
    print("svd-bbb.mp4: %d frames" % n)
    got = package_decode(os.path.join(OUT, "sd1-chelsea.png"), "bytes", 136)
    print("package decode of sd1-chelsea.png:", got)
    for f in sorted(os.listdir(OUT)):
        print("%-36s %7d bytes" % (f, os.path.getsize(os.path.join(OUT, f))))


if __name__ == "__main__":
    main()
