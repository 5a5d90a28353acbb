"""Measure how well dlib's HOG detector finds a face turned in the image plane, per angle and size.

    uv run python bench/angles.py [--corpus ../shared/corpus] [--sizes 32,40,64] [--step 15]

Every single-face corpus photo's face, cut with half a face of context, is turned by each angle
(0-345 degrees) and pasted on a grey canvas at each face size (its width, in pixels of the image that
would be published). The detector then scans the canvas as the engine does, at the scale that makes
a face of `min_px` 64 px wide, once per orientation probe (the image turned by 0, 90, 180 and 270
degrees, and, for the 45-degree strategy, by 45, 135, 225 and 315 degrees as well); a face counts
as found by a probe when a detection scoring at least the threshold has its centre within half a
face of the turned face's centre. Prints JSON: recall per angle, size and strategy, and the lowest
best score seen, so the safety margin of each strategy is visible.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

DETECTOR_FACE_PX = 64


def faces(corpus: Path) -> list[np.ndarray]:
    """Each single-face corpus photo's face with half a face of context, as RGB crops."""
    crops = []
    with open(corpus / "faces" / "manifest.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            boxes = [b for b in row["face_boxes_ltrb"].split(";") if b.strip()]
            if len(boxes) != 1 or "partial" in row["file"]:
                continue
            left, top, right, bottom = (int(v) for v in boxes[0].split())
            with Image.open(corpus / "faces" / row["file"]) as image:
                rgb = ImageOps.exif_transpose(image).convert("RGB")
            margin = (right - left) // 2
            crops.append(
                np.asarray(
                    rgb.crop((left - margin, top - margin, right + margin, bottom + margin))
                )  # PIL pads outside the photo with black; the canvas is grey, close enough
            )
    return crops


def scene(crop: np.ndarray, face_px: int, angle: float) -> tuple[np.ndarray, tuple[float, float]]:
    """A grey canvas with the face `face_px` wide turned by `angle` (counter-clockwise); its centre."""
    factor = face_px / (crop.shape[1] / 2)  # the crop is two faces wide
    size = (max(1, round(crop.shape[1] * factor)), max(1, round(crop.shape[0] * factor)))
    face = Image.fromarray(crop).resize(size, Image.Resampling.LANCZOS)
    turned = face.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=(128, 128, 128))
    side = max(turned.size) + 4 * face_px
    canvas = Image.new("RGB", (side, side), (128, 128, 128))
    x, y = (side - turned.size[0]) // 2, (side - turned.size[1]) // 2
    canvas.paste(turned, (x, y))
    return np.asarray(canvas.convert("L")), (side / 2, side / 2)


def best_score(
    detector: Any,
    grey: np.ndarray,
    centre: tuple[float, float],
    face_px: int,
    scale: float,
    probe: float,
    threshold: float,
) -> float | None:
    """The best score of a detection near `centre` with the image turned by `probe` degrees."""
    image = Image.fromarray(grey)
    height, width = grey.shape
    if probe:
        image = image.rotate(probe, resample=Image.Resampling.BILINEAR, expand=True, fillcolor=128)
    size = (max(1, round(image.size[0] * scale)), max(1, round(image.size[1] * scale)))
    scanned = np.ascontiguousarray(np.asarray(image.resize(size, Image.Resampling.BILINEAR)))
    rects, scores, _ = detector.run(scanned, 0, threshold)
    # The face's centre in the turned, scaled image.
    cx, cy = centre[0] - width / 2, centre[1] - height / 2
    rad = math.radians(probe)
    tx = cx * math.cos(rad) + cy * math.sin(rad) + image.size[0] / 2
    ty = -cx * math.sin(rad) + cy * math.cos(rad) + image.size[1] / 2
    tx, ty = tx * scale, ty * scale
    best = None
    for r, s in zip(rects, scores, strict=True):
        mx, my = (r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2
        if math.hypot(mx - tx, my - ty) <= face_px * scale / 2 and (best is None or s > best):
            best = float(s)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--corpus", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "corpus"
    )
    parser.add_argument("--sizes", default="32,40,64")
    parser.add_argument("--min-px", type=int, default=32, help="the smallest face the scan is scaled for")
    parser.add_argument("--step", type=int, default=15)
    parser.add_argument("--threshold", type=float, default=-0.3)
    args = parser.parse_args()
    import dlib

    detector = dlib.get_frontal_face_detector()
    crops = faces(args.corpus)
    sizes = [int(s) for s in args.sizes.split(",")]
    scale = DETECTOR_FACE_PX / args.min_px
    probes = {"90": [0, 90, 180, 270], "45": [0, 45, 90, 135, 180, 225, 270, 315]}
    results: list[dict[str, Any]] = []
    for face_px in sizes:
        for angle in range(0, 360, args.step):
            per_probe: dict[int, list[float | None]] = {p: [] for p in probes["45"]}
            for crop in crops:
                grey, centre = scene(crop, face_px, angle)
                for probe in probes["45"]:
                    per_probe[probe].append(
                        best_score(detector, grey, centre, face_px, scale, probe, args.threshold)
                    )
            row: dict[str, Any] = {"face_px": face_px, "angle": angle, "faces": len(crops)}
            for name, used in probes.items():
                bests = [
                    max((per_probe[p][i] for p in used if per_probe[p][i] is not None), default=None)
                    for i in range(len(crops))
                ]
                found = [b for b in bests if b is not None]
                row[f"recall_{name}"] = round(len(found) / len(crops), 3)
                row[f"confident_{name}"] = round(sum(b >= 0 for b in found) / len(crops), 3)
                row[f"lowest_best_{name}"] = round(min(found), 3) if found else None
            row["upright_only"] = round(sum(s is not None for s in per_probe[0]) / len(crops), 3)
            results.append(row)
            print(json.dumps(row), flush=True)
    summary = {
        name: {
            str(face_px): {
                "min_recall": min(r[f"recall_{name}"] for r in results if r["face_px"] == face_px),
                "angles_missed": [
                    r["angle"] for r in results if r["face_px"] == face_px and r[f"recall_{name}"] < 1
                ],
            }
            for face_px in sizes
        }
        for name in probes
    }
    print(json.dumps({"summary": summary, "min_px": args.min_px, "threshold": args.threshold}))


if __name__ == "__main__":
    main()
