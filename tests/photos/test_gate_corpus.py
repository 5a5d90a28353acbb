"""The gate on real photos of known people: enrol one photo per identity, gate the rest."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import LargeBinary, func, inspect, select

from consent_db import audit
from consent_db.models import AuditEvent, Decision, Face, FaceTemplate, Photo, Publication
from consent_db.session import unit_of_work
from gatekeeper import media
from helpers import ENROLMENT, enrol_corpus, gate_json, run

pytestmark = pytest.mark.slow


@pytest.fixture
def enrolled(runtime: Any, corpus: Any) -> Any:
    """Every corpus identity but lin_manuel_miranda enrolled, consenting to the website."""
    enrol_corpus(runtime, corpus.faces_dir)
    return runtime


def solo_photos(corpus: Any) -> list[Any]:
    enrolment = set(ENROLMENT.values())
    return [
        e
        for e in corpus.faces()
        if len(e.identities) == 1 and e.file not in enrolment and e.identities[0] != "lin_manuel_miranda"
    ]


def test_every_photo_of_a_consented_person_alone_is_publishable(enrolled: Any, corpus: Any) -> None:
    photos = solo_photos(corpus)
    lines = gate_json(enrolled, "website", *(e.path for e in photos))
    assert len(lines) == len(photos) >= 15
    for entry, line in zip(photos, lines, strict=True):
        assert line["verdict"] == "publishable", (entry.file, line)
        assert [f["person"] for f in line["faces"]] == list(entry.identities), entry.file
        assert all(f["outcome"] == "consented" for f in line["faces"])


def test_group_photos_name_each_person_and_block_the_unknown_child(enrolled: Any, corpus: Any) -> None:
    groups = {e.file: e for e in corpus.faces() if e.file.startswith("group/")}
    lines = {
        Path(line["source"]).name: line
        for line in gate_json(enrolled, "website", *(e.path for e in groups.values()))
    }
    assert lines["two_people.jpg"]["verdict"] == "publishable"
    assert lines["kit_with_rose.jpg"]["verdict"] == "publishable"
    blocked = lines["obama_and_biden.jpg"]
    assert blocked["verdict"] == "blocked"
    assert blocked["reasons"] == ["unknown_face"]
    # Faces are reported left to right as in the manifest: biden, obama, the child.
    assert [f["person"] for f in blocked["faces"]] == ["biden", "obama", None]
    assert [f["outcome"] for f in blocked["faces"]] == ["consented", "consented", "unknown"]
    for name, line in lines.items():
        expected = groups[f"group/{name}"]
        assert len(line["faces"]) == len(expected.boxes)
        for got, want in zip(line["faces"], expected.boxes, strict=True):
            assert _iou(got["box"], want) > 0.5, (name, got["box"], want)


def test_a_person_with_no_enrolment_is_blocked_as_unknown(enrolled: Any, corpus: Any) -> None:
    [line] = gate_json(enrolled, "website", corpus.faces_dir / "lin_manuel_miranda/lin-manuel-miranda.png")
    assert (line["verdict"], line["reasons"]) == ("blocked", ["unknown_face"])
    assert line["faces"][0]["person"] is None


def test_consent_for_social_media_only_blocks_the_website(runtime: Any, corpus: Any) -> None:
    enrol_corpus(runtime, corpus.faces_dir, biden={"channels": ("social_media",)})
    photo = corpus.faces_dir / "biden/biden2.jpg"
    [website] = gate_json(runtime, "website", photo)
    [social] = gate_json(runtime, "social_media", photo)
    [instagram] = gate_json(runtime, "social_media:instagram", photo)
    assert (website["verdict"], website["reasons"]) == ("blocked", ["no_consent_for_channel"])
    assert website["faces"][0]["person"] == "biden"
    assert social["verdict"] == "publishable"
    assert instagram["verdict"] == "publishable"


def test_withdrawing_consent_flips_the_verdict(enrolled: Any, corpus: Any) -> None:
    photo = corpus.faces_dir / "kit_harington/kit_harington_john2.jpeg"
    assert gate_json(enrolled, "website", photo)[0]["verdict"] == "publishable"
    result = run(enrolled, "consent", "withdraw", "kit_harington", "--channel", "website")
    assert result.exit_code == 0, result.output
    [line] = gate_json(enrolled, "website", photo)
    assert (line["verdict"], line["reasons"]) == ("blocked", ["consent_withdrawn"])
    assert (
        run(
            enrolled, "consent", "grant", "kit_harington", "--channel", "website", "--granted-by", "self"
        ).exit_code
        == 0
    )
    assert gate_json(enrolled, "website", photo)[0]["verdict"] == "publishable"


def test_expired_consent_blocks(runtime: Any, corpus: Any) -> None:
    enrol_corpus(
        runtime,
        corpus.faces_dir,
        rose_leslie={"granted_on": date(2020, 1, 1), "valid_until": date(2021, 7, 31)},
    )
    [line] = gate_json(runtime, "website", corpus.faces_dir / "rose_leslie/rose_leslie_img2.jpg")
    assert (line["verdict"], line["reasons"]) == ("blocked", ["consent_expired"])


def test_a_sixteen_year_old_consenting_alone_is_blocked_under_an_eighteen_threshold(
    runtime: Any, corpus: Any
) -> None:
    # Dates relative to today (the command line reads the clock): sixteen and a month now, and when
    # consenting ten days ago, whatever day the test runs.
    today = date.today()
    enrol_corpus(
        runtime,
        corpus.faces_dir,
        alex_lacamoire={
            "born": today - timedelta(days=16 * 365 + 40),
            "granted_on": today - timedelta(days=10),
            "granted_by": "self",
            # Face matching of a learner needs a parent's consent (POFA 2012 s. 26).
            "biometric_granted_by": "parent",
        },
    )
    photo = corpus.faces_dir / "alex_lacamoire/alex_lacamoire_knn_test1.jpg"
    [line] = gate_json(runtime, "website", photo)
    assert (line["verdict"], line["reasons"]) == ("blocked", ["guardian_consent_required"])
    assert (
        run(
            runtime, "consent", "grant", "alex_lacamoire", "--channel", "website", "--granted-by", "parent"
        ).exit_code
        == 0
    )
    assert gate_json(runtime, "website", photo)[0]["verdict"] == "publishable"


def test_with_an_empty_database_faces_are_unknown_and_faceless_photos_publishable(
    runtime: Any, corpus: Any
) -> None:
    face = corpus.faces_dir / "obama/obama.jpg"
    landscape = corpus.metadata_dir / "orientation/landscape_1.jpg"
    lines = gate_json(runtime, "website", face, landscape)
    assert (lines[0]["verdict"], lines[0]["reasons"]) == ("blocked", ["unknown_face"])
    assert (lines[1]["verdict"], lines[1]["faces"]) == ("publishable", [])


def test_unreadable_files_are_blocked_and_the_batch_goes_on(
    runtime: Any, corpus: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "batch"
    folder.mkdir()
    jpeg = (corpus.metadata_dir / "canon_eos_40d.jpg").read_bytes()
    (folder / "a_empty.jpg").write_bytes(b"")
    (folder / "b_notes.jpg").write_text("not a photo at all")
    (folder / "c_truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (folder / "d_good.jpg").write_bytes(jpeg)
    out = tmp_path / "out"
    lines = gate_json(runtime, "website", folder, out=out)
    verdicts = {
        Path(line["source"]).name: (line["verdict"], line["reasons"], line["output"]) for line in lines
    }
    for name in ("a_empty.jpg", "b_notes.jpg", "c_truncated.jpg"):
        assert verdicts[name] == ("blocked", ["unreadable_image"], None)
    assert verdicts["d_good.jpg"][0] == "publishable"
    assert [p.name for p in out.iterdir()] == [Path(verdicts["d_good.jpg"][2]).name]


def test_the_pixel_cap_blocks_a_photo_as_unreadable(runtime: Any, corpus: Any) -> None:
    runtime.settings = runtime.settings.with_(media={"max_pixels": 100_000})
    [line] = gate_json(runtime, "website", corpus.faces_dir / "obama/obama-1080p.jpg")
    assert (line["verdict"], line["reasons"]) == ("blocked", ["unreadable_image"])


def test_files_over_the_size_cap_are_recorded_under_their_own_hash(runtime: Any, corpus: Any) -> None:
    runtime.settings = runtime.settings.with_(media={"max_bytes": 1000})
    paths = [corpus.faces_dir / "obama/obama.jpg", corpus.faces_dir / "biden/biden.jpg"]
    lines = gate_json(runtime, "website", *paths)
    assert [(line["verdict"], line["reasons"]) for line in lines] == [("blocked", ["unreadable_image"])] * 2
    with unit_of_work(runtime.sessions) as session:
        recorded = set(session.scalars(select(Photo.sha256)).all())
    assert recorded == {hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def test_a_photo_whose_clean_copy_cannot_be_made_is_blocked_with_or_without_out(
    runtime: Any, tmp_path: Path
) -> None:
    # Decodes fine, but its colour profile is corrupt: it can be neither kept nor converted.
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (120, 80, 40)).save(buffer, "JPEG", icc_profile=b"\0" * 200)
    path = tmp_path / "profile.jpg"
    path.write_bytes(buffer.getvalue())
    out = tmp_path / "out"
    for line in (gate_json(runtime, "website", path)[0], gate_json(runtime, "website", path, out=out)[0]):
        assert (line["verdict"], line["reasons"], line["output"]) == ("blocked", ["clean_copy_failed"], None)
    assert not out.exists() or list(out.iterdir()) == []


def test_clean_copies_have_opaque_names_no_metadata_and_the_same_pixels(
    enrolled: Any, corpus: Any, tmp_path: Path, exiftool: str
) -> None:
    import subprocess

    out = tmp_path / "out"
    sources = [corpus.faces_dir / "obama/obama.jpg", corpus.faces_dir / "group/kit_with_rose.jpg"]
    lines = gate_json(enrolled, "website", *sources, out=out)
    for source, line in zip(sources, lines, strict=True):
        assert line["verdict"] == "publishable"
        output = Path(line["output"])
        assert output.parent == out.resolve()
        assert "obama" not in output.name and "kit" not in output.name
        tags = json.loads(
            subprocess.run(
                [exiftool, "-j", "-a", "-G1", "-s", "-ee", str(output)], capture_output=True, check=True
            ).stdout
        )[0]
        leaked = [
            k
            for k in tags
            if k.split(":")[0]
            in ("GPS", "IFD1", "IPTC", "XMP-dc", "XMP-x", "Photoshop", "MakerNotes", "File:Comment")
            or "Comment" in k
        ]
        assert leaked == []
        before = media.decode(source.read_bytes(), max_pixels=50_000_000).pixels
        after = media.decode(output.read_bytes(), max_pixels=50_000_000).pixels
        assert np.array_equal(before, after)


def test_every_verdict_is_recorded_and_audited_without_storing_face_encodings(
    enrolled: Any, corpus: Any, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    paths = [corpus.faces_dir / "group/obama_and_biden.jpg", corpus.faces_dir / "obama/obama3.jpg"]
    gate_json(enrolled, "website", *paths, out=out)
    with unit_of_work(enrolled.sessions) as session:
        photos = session.scalars(select(Photo).order_by(Photo.id)).all()
        assert [p.status for p in photos] == ["blocked", "publishable"]
        assert photos[0].reasons == ["unknown_face"]
        assert session.scalar(select(func.count()).select_from(Decision)) == 2
        assert session.scalar(select(func.count()).select_from(Face)) == 4
        assert session.scalar(select(func.count()).select_from(Publication)) == 1
        assert session.scalar(select(func.count()).select_from(FaceTemplate)) == len(ENROLMENT)
        actions = session.scalars(select(AuditEvent.action)).all()
        assert actions.count("photo.gated") == 2
        assert actions.count("photo.published") == 1
        assert audit.verify(session).ok
        assert enrolled.originals.exists(photos[0].original_key)
    # Only enrolled templates hold biometric data: no other table has a binary column.
    inspector = inspect(enrolled.db)
    binary = [
        (table, col["name"])
        for table in inspector.get_table_names()
        for col in inspector.get_columns(table)
        if isinstance(col["type"], LargeBinary)
    ]
    assert binary == [("face_templates", "encoding")]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_face_photo_saved_with_any_exif_orientation_gives_the_upright_faces(
    enrolled: Any, corpus: Any, tmp_path: Path, orientation: int
) -> None:
    upright = Image.open(corpus.faces_dir / "biden/biden2.jpg").convert("RGB")
    # Store the pixels so that applying `orientation` turns them upright again.
    inverse = {
        1: None,
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_90,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_270,
    }[orientation]
    stored = upright if inverse is None else upright.transpose(inverse)
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    stored.save(buf, "JPEG", quality=95, exif=exif.tobytes())
    path = tmp_path / f"o{orientation}.jpg"
    path.write_bytes(buf.getvalue())
    reference = tmp_path / "upright.jpg"
    upright.save(reference, "JPEG", quality=95)
    ref_line, line = gate_json(enrolled, "website", reference, path)
    assert line["verdict"] == "publishable"
    assert [f["person"] for f in line["faces"]] == ["biden"]
    assert _iou(line["faces"][0]["box"], ref_line["faces"][0]["box"]) > 0.8


def test_the_orientation_samples_decode_to_the_same_upright_scene(enrolled: Any, corpus: Any) -> None:
    files = sorted((corpus.metadata_dir / "orientation").glob("landscape_*.jpg"))
    lines = gate_json(enrolled, "website", *files)
    assert len(lines) == 8
    assert all(line["verdict"] == "publishable" and line["faces"] == [] for line in lines)
    shapes = {media.decode(f.read_bytes(), max_pixels=50_000_000).pixels.shape for f in files}
    assert len(shapes) == 1


def _iou(a: list[int] | tuple[int, ...], b: list[int] | tuple[int, ...]) -> float:
    left, top = max(a[0], b[0]), max(a[1], b[1])
    right, bottom = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0, right - left) * max(0, bottom - top)
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / area if area else 0.0
