"""Measure face distances on the corpus, to choose and check the matching thresholds.

    uv run python bench/calibrate.py [--corpus ../shared/corpus] [--top 5]

Encodes every face of corpus/faces with DlibFaceEngine (identities from the manifest, group photos
left to right), prints as JSON: same-person and different-person distance statistics, the
closest different-person and farthest same-person pairs, a leave-one-photo-out run of the §4
matching rule at the configured thresholds, and a face-size sweep (obama.jpg scaled down until
the HOG detector stops finding the face). Reads the corpus in place; writes nothing.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from gatekeeper.config import Settings
from gatekeeper.faces import DlibFaceEngine, TemplateIndex

UNKNOWN = "unknown"
SWEEP_PHOTO = "obama/obama.jpg"
SWEEP_FACE_PX = (120, 80, 60, 50, 45, 42, 40, 38, 36, 32, 30, 28, 26, 24, 22, 20)
SWEEP_MIN_DETECT = (64, 40, 32, 24)  # DlibFaceEngine(min_detect_px=...); 32 is the default


@dataclass(frozen=True)
class Face:
    """One face of the corpus with its identity and encoding."""

    file: str
    index: int
    identity: str
    encoding: np.ndarray


def load_rgb(path: Path) -> np.ndarray:
    """Decode a photo upright as HxWx3 uint8 RGB."""
    with Image.open(path) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))


def iou(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    """Intersection over union of two (left, top, right, bottom) boxes."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(width, 0) * max(height, 0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def encode_corpus(engine: DlibFaceEngine, faces_dir: Path) -> list[Face]:
    """Every manifest face, encoded; raises SystemExit when detection disagrees with the manifest."""
    with open(faces_dir / "manifest.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    faces = []
    for row in rows:
        identities = row["identity"].split(";")
        boxes = [tuple(int(v) for v in box.split()) for box in row["face_boxes_ltrb"].split(";")]
        found = engine.analyse(load_rgb(faces_dir / row["file"])).faces
        if len(found) != len(identities):
            raise SystemExit(
                f"{row['file']}: manifest has {len(identities)} faces, engine found {len(found)}"
            )
        for i, (face, identity, box) in enumerate(zip(found, identities, boxes, strict=True)):
            if face.encoding is None or iou(face.box, box) <= 0.5:
                raise SystemExit(f"{row['file']} face {i}: box {face.box} vs manifest {box}, or too small")
            faces.append(Face(row["file"], i, identity, face.encoding))
    return faces


def label(face: Face) -> str:
    """How a face is named in the report: file#position (identity)."""
    return f"{face.file}#{face.index} ({face.identity})"


def stats(values: list[float]) -> dict[str, Any]:
    """Count, extremes and percentiles, rounded for reading."""
    if not values:
        return {"count": 0}
    array = np.asarray(values)
    percentiles = {f"p{p}": round(float(np.percentile(array, p)), 4) for p in (1, 5, 50, 95, 99)}
    return {
        "count": len(values),
        "min": round(float(array.min()), 4),
        **percentiles,
        "max": round(float(array.max()), 4),
    }


def classify(index: TemplateIndex, encoding: np.ndarray, settings: Settings) -> tuple[str, str | None]:
    """The §4 rule: (identified | uncertain | unknown, candidate key)."""
    matches = index.best_matches(encoding, limit=2)
    if not matches or matches[0].distance > settings.policy.review_distance:
        return UNKNOWN, None
    best = matches[0]
    runner_up = matches[1].distance if len(matches) > 1 else float("inf")
    if (
        best.distance <= settings.policy.accept_distance
        and runner_up - best.distance >= settings.policy.margin
    ):
        return "identified", best.key
    return "uncertain", best.key


def nearest_other_person(different: list[tuple[float, Face, Face]]) -> dict[str, float]:
    """For each identity, the smallest distance from any of its faces to anyone else's."""
    nearest: dict[str, float] = {}
    for distance, a, b in different:
        for identity in (a.identity, b.identity):
            nearest[identity] = min(nearest.get(identity, distance), distance)
    return {identity: round(d, 4) for identity, d in sorted(nearest.items())}


def leave_one_photo_out(faces: list[Face], settings: Settings) -> dict[str, Any]:
    """Each face matched against templates from every other photo; counts outcomes and errors."""
    outcomes: dict[str, int] = {"identified_correct": 0, "identified_wrong": 0, "uncertain": 0, "unknown": 0}
    details = []
    gaps: list[float] = []
    for probe in faces:
        others = [f for f in faces if f.file != probe.file and f.identity != UNKNOWN]
        index = TemplateIndex([f.identity for f in others], np.stack([f.encoding for f in others]))
        outcome, key = classify(index, probe.encoding, settings)
        matches = index.best_matches(probe.encoding, limit=2)
        if outcome == "identified" and len(matches) == 2:
            gaps.append(matches[1].distance - matches[0].distance)
        enrolled = probe.identity in {f.identity for f in others}
        if outcome == "identified":
            outcome = "identified_correct" if key == probe.identity else "identified_wrong"
        outcomes[outcome] += 1
        # Worth a look: a wrong identity, or an enrolled person not recognised.
        if outcome == "identified_wrong" or (enrolled and outcome != "identified_correct"):
            details.append({"probe": label(probe), "outcome": outcome, "candidate": key})
        if not enrolled and outcome != UNKNOWN:
            details.append({"probe": label(probe), "outcome": outcome, "candidate": key, "enrolled": False})
    smallest_gap = round(min(gaps), 4) if gaps else None
    return {"outcomes": outcomes, "smallest_margin_when_identified": smallest_gap, "attention": details}


def size_sweep(faces_dir: Path, settings: Settings) -> list[dict[str, Any]]:
    """Scale obama.jpg so its face is N px wide; does HOG still find it, and how far is the encoding?"""
    with open(faces_dir / "manifest.csv", newline="", encoding="utf-8") as fh:
        row = next(r for r in csv.DictReader(fh) if r["file"] == SWEEP_PHOTO)
    left, _, right, _ = (int(v) for v in row["face_boxes_ltrb"].split())
    full = load_rgb(faces_dir / SWEEP_PHOTO)
    reference = DlibFaceEngine().encode_single(full)
    # min_face_px=1 so that faces below the production minimum are still encoded and measured.
    engines = {px: DlibFaceEngine(min_face_px=1, min_detect_px=px, probe_step=0) for px in SWEEP_MIN_DETECT}
    results = []
    for face_px in SWEEP_FACE_PX:
        scale = face_px / (right - left)
        height, width = full.shape[:2]
        image = Image.fromarray(full).resize(
            (round(width * scale), round(height * scale)), Image.Resampling.LANCZOS
        )
        pixels = np.asarray(image)
        entry: dict[str, Any] = {"face_px": face_px, "image": f"{image.width}x{image.height}"}
        for px, engine in engines.items():
            found = engine.analyse(pixels).faces
            if not found:
                entry[f"min_detect_{px}"] = None
                continue
            face = max(found, key=lambda f: f.score)
            entry[f"min_detect_{px}"] = {
                "box_px": min(face.box[2] - face.box[0], face.box[3] - face.box[1]),
                "score": round(face.score, 3),
                "possible": face.possible,
                "too_small_at_min_face_px": min(face.box[2] - face.box[0], face.box[3] - face.box[1])
                < settings.faces.min_face_px,
                "distance_to_full_size": None
                if face.encoding is None
                else round(float(np.linalg.norm(face.encoding - reference)), 4),
            }
        results.append(entry)
    return results


ENROLLED = {
    "obama": "obama/obama.jpg",
    "biden": "biden/biden.jpg",
    "alex_lacamoire": "alex_lacamoire/alex_lacamoire_img1.jpg",
    "kit_harington": "kit_harington/kit_harington_john1.jpeg",
    "rose_leslie": "rose_leslie/rose_leslie_img1.jpg",
}


def _variant(pixels: np.ndarray, name: str) -> np.ndarray:
    """A corpus photo as taken in worse conditions: blurred (radius 2) or in dim light (35 %)."""
    from PIL import ImageFilter

    if name == "blur_2":
        return np.asarray(Image.fromarray(pixels).filter(ImageFilter.GaussianBlur(2)))
    if name == "dim_35":
        return (pixels.astype(np.float32) * 0.35).astype(np.uint8)
    return pixels


def _decide(
    analysis: Any, index: TemplateIndex, states: Any, channel: str, now: Any, rules: Any, new: bool
) -> Any:
    """policy.decide on one analysis, as the gate calls it (three candidates per face); `new` False:
    as before the second look (two candidates, no quality)."""
    from gatekeeper import policy

    inputs = [
        policy.FaceInput(
            ()
            if f.encoding is None
            else tuple(
                policy.Candidate(m.key, m.distance) for m in index.best_matches(f.encoding, 3 if new else 2)
            ),
            too_small=f.too_small,
            possible=f.possible,
            degraded=f.degraded and new,
        )
        for f in analysis.faces
    ]
    return policy.decide(inputs, states, channel, now, rules, limit=analysis.limit)


def review_share(faces_dir: Path, settings: Settings, variants: list[str]) -> dict[str, Any]:
    """The share of consented photos sent to review (and blocked), with the reasons, with and without the
    second look: every corpus photo whose people are all enrolled (one photo each, ENROLLED, consented
    on every channel), and its `variants`, analysed at each channel's size and decided by policy.decide.
    """
    from datetime import UTC, date, datetime

    from gatekeeper import media, policy

    now = datetime(2026, 6, 1, tzinfo=UTC)
    granted = datetime(2025, 9, 1, tzinfo=UTC)
    states = {
        key: policy.PersonState(
            key,
            date(1980, 1, 1),
            tuple(policy.ConsentFact(c, "grant", granted) for c in settings.policy.channels),
        )
        for key in ENROLLED
    }
    rules = policy.Policy(
        settings.policy.accept_distance, settings.policy.review_distance, settings.policy.margin
    )
    with open(faces_dir / "manifest.csv", newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if set(r["identity"].split(";")) <= set(ENROLLED)]
    channels = ("website", "social_media", "print")
    report: dict[str, Any] = {"photos": len(rows) * len(variants), "variants": variants}
    for second_look in (False, True):
        engine = DlibFaceEngine(min_face_px=settings.faces.min_face_px, second_look=second_look)
        keys = list(ENROLLED)
        index = TemplateIndex(
            keys, np.stack([engine.encode_single(load_rgb(faces_dir / ENROLLED[k])) for k in keys])
        )
        side: dict[str, Any] = {}
        started = time.perf_counter()
        for channel in channels:
            verdicts: dict[str, int] = {}
            reasons: dict[str, int] = {}
            analysed: dict[tuple[str, str, int | None], tuple[str, tuple[str, ...]]] = {}
            for row in rows:
                data = (faces_dir / row["file"]).read_bytes()
                edge = settings.media.long_edge(channel)
                for name in variants:
                    memo = (row["file"], name, edge)
                    if memo not in analysed:
                        source = media.decode_source(
                            data, max_pixels=settings.media.max_pixels, long_edge=edge
                        )
                        pixels = np.ascontiguousarray(_variant(source.image.pixels, name))
                        analysis = engine.analyse(pixels)
                        verdict = _decide(analysis, index, states, channel, now, rules, second_look)
                        outcome, why = verdict.verdict, verdict.reasons
                        alike = any(v.also for v in verdict.faces)
                        if not second_look and outcome == "publishable" and alike:
                            # Before, two consented people too close to call were an uncertain match.
                            outcome, why = "review", ("uncertain_match",)
                        analysed[memo] = (outcome, why)
                    outcome, why = analysed[memo]
                    verdicts[outcome] = verdicts.get(outcome, 0) + 1
                    for reason in why:
                        reasons[reason] = reasons.get(reason, 0) + 1
            total = sum(verdicts.values())
            side[channel] = {
                "verdicts": verdicts,
                "review_share": round(verdicts.get("review", 0) / total, 3),
                "reasons": reasons,
            }
        side["seconds"] = round(time.perf_counter() - started, 1)
        report["with_second_look" if second_look else "without_second_look"] = side
    return report


def main(argv: list[str] | None = None) -> int:
    """Run the measurement and print JSON to stdout."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_corpus = os.environ.get("GATEKEEPER_CORPUS") or str(
        Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"
    )
    parser.add_argument("--corpus", type=Path, default=Path(default_corpus))
    parser.add_argument("--top", type=int, default=5, help="how many extreme pairs to list")
    parser.add_argument("--no-sweep", action="store_true", help="skip the face-size sweep")
    parser.add_argument(
        "--review-share",
        nargs="*",
        metavar="VARIANT",
        help="only the share of consented photos sent to review per channel, for these variants "
        "(clean, blur_2, dim_35; default clean)",
    )
    args = parser.parse_args(argv)
    faces_dir = args.corpus / "faces"
    settings = Settings()
    if args.review_share is not None:
        json.dump(review_share(faces_dir, settings, args.review_share or ["clean"]), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0

    started = time.perf_counter()
    faces = encode_corpus(DlibFaceEngine(min_face_px=settings.faces.min_face_px), faces_dir)
    encode_seconds = time.perf_counter() - started

    same: list[tuple[float, Face, Face]] = []
    different: list[tuple[float, Face, Face]] = []
    for a, b in itertools.combinations(faces, 2):
        distance = float(np.linalg.norm(a.encoding - b.encoding))
        # The unknown child is nobody's second photo: every pair with it is a different-person pair.
        if a.identity == b.identity and a.identity != UNKNOWN:
            same.append((distance, a, b))
        else:
            different.append((distance, a, b))
    same.sort(key=lambda t: t[0])
    different.sort(key=lambda t: t[0])

    def pairs(chosen: list[tuple[float, Face, Face]]) -> list[dict[str, Any]]:
        return [{"distance": round(d, 4), "a": label(a), "b": label(b)} for d, a, b in chosen]

    report: dict[str, Any] = {
        "engine": {
            "model": DlibFaceEngine.model,
            "detector": "dlib HOG, greyscale",
            "min_detect_px": 32,
            "jitters": 1,
        },
        "counts": {
            "photos": len({f.file for f in faces}),
            "faces": len(faces),
            "identities": sorted({f.identity for f in faces}),
            "same_pairs": len(same),
            "different_pairs": len(different),
        },
        "same_person": stats([d for d, _, _ in same]),
        "different_person": stats([d for d, _, _ in different]),
        "nearest_other_person": nearest_other_person(different),
        "closest_different": pairs(different[: args.top]),
        "farthest_same": pairs(same[::-1][: args.top]),
        "thresholds": {
            "accept_distance": settings.policy.accept_distance,
            "review_distance": settings.policy.review_distance,
            "margin": settings.policy.margin,
            "same_within_accept": all(d <= settings.policy.accept_distance for d, _, _ in same),
            "different_beyond_review": all(d > settings.policy.review_distance for d, _, _ in different),
        },
        "leave_one_photo_out": leave_one_photo_out(faces, settings),
        "seconds": {"encode_corpus": round(encode_seconds, 2)},
    }
    if not args.no_sweep:
        started = time.perf_counter()
        report["size_sweep"] = {"photo": SWEEP_PHOTO, "rows": size_sweep(faces_dir, settings)}
        report["seconds"]["size_sweep"] = round(time.perf_counter() - started, 2)
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
