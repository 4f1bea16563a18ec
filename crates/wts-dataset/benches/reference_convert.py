"""Python reference for the conversion benchmark: redo, the way a Python pipeline does, the very
frames `cargo bench -p wts-dataset --bench convert` converted (read from its manifest.json):
one accurate ffmpeg seek per frame (as AIO_ISC's pipeline does), PIL box drawing, PIL crop,
PIL JPEG at the same quality. Prints frames/s as one JSON line.

usage: python3 reference_convert.py OUT_DIR [--workers N]
"""
import io
import json
import os
import subprocess
import sys
import time
from multiprocessing import Pool

from PIL import Image, ImageDraw


def probe(path):
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
         "stream=width,height,r_frame_rate", "-of", "json", path],
        check=True, capture_output=True).stdout
    s = json.loads(out)["streams"][0]
    num, den = s["r_frame_rate"].split("/")
    return s["width"], s["height"], float(num) / float(den)


def render(job):
    path, (w, h, fps), entry, key = job
    t = max(0.0, (key["frame_index"] - 0.5) / fps)
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-ss", f"{t:.6f}", "-i", path, "-frames:v", "1",
         "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], check=True, capture_output=True).stdout
    img = Image.frombytes("RGB", (w, h), raw[: w * h * 3])
    draw = ImageDraw.Draw(img)
    for box in entry.get("boxes") or []:
        x, y, bw, bh = box["bbox"]
        color = (0, 255, 0) if box["subject"] == "pedestrian" else (0, 0, 255)
        draw.rectangle([x, y, x + bw, y + bh], outline=color, width=4)
    if entry.get("crop_region"):
        cx, cy, cw, ch = entry["crop_region"]
        img = img.crop((cx, cy, cx + cw, cy + ch))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=key.get("quality", 95))
    return len(buf.getvalue())


def main():
    out = sys.argv[1]
    workers = int(sys.argv[sys.argv.index("--workers") + 1]) if "--workers" in sys.argv else os.cpu_count()
    manifest_path = next(
        os.path.join(root, "manifest.json") for root, _, files in os.walk(os.path.join(out, "data"))
        if "manifest.json" in files)
    entries = json.load(open(manifest_path))["images"]
    infos = {}
    jobs = []
    for e in entries:
        key = json.loads(e["key"])
        path = key["frames_from"]
        if path not in infos:
            infos[path] = probe(path)
        jobs.append((path, infos[path], e, key))
    start = time.perf_counter()
    with Pool(workers) as pool:
        sizes = pool.map(render, jobs)
    secs = time.perf_counter() - start
    print(json.dumps({"bench": "reference_convert_python", "workers": workers, "images": len(sizes),
                      "seconds": round(secs, 3), "images_per_s": round(len(sizes) / secs, 1)}))


if __name__ == "__main__":
    main()
