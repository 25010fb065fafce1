"""Proof photo cost: time and peak memory per 12-megapixel photo through services.photos.

What one proof photo costs the worker's request (after the download): validation (format,
size, pixel limit), decoding, EXIF stripping with orientation applied, the perceptual hash, the
2048-px copy others see (the "thumbnail"), writing it, and the same-picture check against the
case's and the worker's earlier photos.

Each format runs in a fresh child process. Peak memory is the kernel's high-water mark of
resident memory (VmHWM), reset after imports and reading the file (/proc/self/clear_refs), so it
is that of the photo work alone.

`--breakdown` times the steps of services.photos.clean_photo one by one on the JPEG, and the same
pipeline with the decoder asked for half scale (what a one-line change to clean_photo's `draft`
call would give), to show where the time goes.

    .venv/bin/python bench/proof_photo.py               # 12 MP JPEG (and HEIC), 20 runs each
    .venv/bin/python bench/proof_photo.py --runs 50 --formats jpeg --breakdown
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WIDTH, HEIGHT = 4000, 3000  # 12 MP, a phone camera's usual size


def make_photo(fmt: str) -> bytes:
    """A 12 MP photo-like picture (smooth gradients, texture, shapes) with EXIF incl. GPS, as a phone writes."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(20261121)
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    base = np.stack([x / WIDTH * 200 + 30, y / HEIGHT * 180 + 40, (x + y) / (WIDTH + HEIGHT) * 150 + 60], axis=-1)
    base += rng.normal(0, 6, size=base.shape).astype(np.float32)  # sensor noise: keeps the JPEG photo-sized
    image = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(60):
        x0, y0 = int(rng.integers(0, WIDTH)), int(rng.integers(0, HEIGHT))
        draw.ellipse((x0, y0, x0 + int(rng.integers(50, 600)), y0 + int(rng.integers(50, 600))),
                     fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotated, so the EXIF transpose does real work
    exif[0x010F] = "PhoneMaker"
    gps = exif.get_ifd(0x8825)
    gps.update({1: "N", 2: (31.0, 13.0, 49.0), 3: "E", 4: (121.0, 28.0, 25.0)})
    out = io.BytesIO()
    if fmt == "heic":
        from pillow_heif import register_heif_opener

        register_heif_opener()
        image.save(out, format="HEIF", quality=80, exif=exif.tobytes())
    else:
        image.save(out, format="JPEG", quality=90, exif=exif.tobytes())
    return out.getvalue()


def child(path: Path, runs: int) -> dict:
    """Runs in a fresh process: time each step and the peak memory above the baseline."""
    from services.photos import clean_photo, is_same_picture, save_photo

    data = path.read_bytes()
    earlier = [f"{i:016x}" for i in range(1, 201)]  # 200 earlier hashes: a busy worker's recent proofs
    clean_photo(data)  # warm-up: first-call costs (imports, caches) are not per photo
    baseline_kb = _reset_peak()
    totals, cleans, others = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(runs):
            t0 = time.perf_counter()
            clean = clean_photo(data)
            t1 = time.perf_counter()
            save_photo(Path(tmp), clean)
            is_same_picture(clean.phash, earlier)
            t2 = time.perf_counter()
            totals.append((t2 - t0) * 1000)
            cleans.append((t1 - t0) * 1000)
            others.append((t2 - t1) * 1000)
            for item in Path(tmp).glob("photos/*/*"):
                item.unlink()  # save again each run, as each proof is a new file
    peak_kb = _peak_kb()
    return {
        "bytes": len(data), "runs": runs, "out_size": [clean.width, clean.height], "out_bytes": len(clean.jpeg),
        "total_ms": totals, "clean_ms": cleans, "save_and_compare_ms": others,
        "peak_extra_mb": (peak_kb - baseline_kb) / 1024, "baseline_mb": baseline_kb / 1024,
    }


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _reset_peak() -> int:
    """Reset the resident high-water mark to the current size (Linux ≥ 4.0); returns that size in kB."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _status_kb("VmRSS")
    except OSError:  # not Linux: fall back to the lifetime peak, which over-states nothing here
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _peak_kb() -> int:
    try:
        return _status_kb("VmHWM")
    except (OSError, KeyError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def breakdown(path: Path, runs: int) -> None:
    """Time clean_photo's steps one by one, as it does them, and with a half-scale JPEG decode."""
    import imagehash
    from PIL import Image, ImageOps

    data = path.read_bytes()
    for label, draft_box in (("as clean_photo does (draft to 2048 box)", (2048, 2048)),
                             ("decoder at half scale (draft to 1024 box)", (1024, 1024))):
        steps: dict[str, list[float]] = {k: [] for k in ("decode", "transpose", "convert", "resize", "encode",
                                                         "phash", "total")}
        size = None
        for _ in range(runs):
            t0 = time.perf_counter()
            image = Image.open(io.BytesIO(data), formats=("JPEG",))
            image.draft("RGB", draft_box)
            image.load()
            t1 = time.perf_counter()
            upright = ImageOps.exif_transpose(image)
            t2 = time.perf_counter()
            rgb = upright.convert("RGB")
            t3 = time.perf_counter()
            rgb.thumbnail((2048, 2048), Image.Resampling.LANCZOS)
            t4 = time.perf_counter()
            rgb.save(io.BytesIO(), format="JPEG", quality=85, optimize=True)
            t5 = time.perf_counter()
            imagehash.phash(rgb)
            t6 = time.perf_counter()
            size = (image.size, rgb.size)
            for key, value in zip(steps, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5, t6 - t0),
                                  strict=True):
                steps[key].append(value * 1000)
        cells = " ".join(f"{k} {statistics.median(v):.0f}" for k, v in steps.items())
        print(f"  {label}: decoded {size[0][0]}x{size[0][1]} → {size[1][0]}x{size[1][1]}; median ms: {cells}")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--formats", default="jpeg,heic")
    parser.add_argument("--breakdown", action="store_true", help="also time the JPEG pipeline step by step")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.runs)))
        return
    print(f"proof photo bench: {WIDTH}x{HEIGHT} ({WIDTH * HEIGHT / 1e6:.0f} MP), {args.runs} runs per format, "
          "one child process per format")
    print(f"{'format':6} {'input':>8} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'clean p50':>10} "
          f"{'save+cmp p50':>13} {'peak +MB':>9} {'output':>14}")
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in [f.strip() for f in args.formats.split(",") if f.strip()]:
            path = Path(tmp) / f"photo.{fmt}"
            path.write_bytes(make_photo(fmt))
            done = subprocess.run([sys.executable, __file__, "--child", str(path), "--runs", str(args.runs)],
                                  check=True, capture_output=True, text=True)
            r = json.loads(done.stdout)
            print(f"{fmt:6} {r['bytes'] / 1e6:>6.1f}MB {statistics.median(r['total_ms']):>8.0f} "
                  f"{pct(r['total_ms'], 0.95):>8.0f} {max(r['total_ms']):>8.0f} "
                  f"{statistics.median(r['clean_ms']):>10.0f} {statistics.median(r['save_and_compare_ms']):>13.1f} "
                  f"{r['peak_extra_mb']:>9.0f} {r['out_size'][0]}x{r['out_size'][1]} "
                  f"{r['out_bytes'] / 1e3:.0f}kB")
            if args.breakdown and fmt == "jpeg":
                breakdown(path, args.runs)
    print("target: ≤ 150 ms per 12 MP JPEG, with bounded memory")


if __name__ == "__main__":
    main()
