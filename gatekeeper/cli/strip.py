"""`gatekeeper strip`: remove all metadata, with no face check (and no database)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from gatekeeper import media
from gatekeeper.cli.common import _emit, _fail, _runtime
from gatekeeper.cli.files import (
    _check_named,
    _iter_files,
    _not_regular,
    _progress,
    _read_regular,
    _say,
    _show_bar,
)
from gatekeeper.config import MediaSettings
from gatekeeper.errors import GatekeeperError, InvalidInputError, MediaError
from gatekeeper.media.refusals import explain
from gatekeeper.storage import opaque_name, write_atomic

# The file name extensions a clean copy of each output format may be written under.
_EXTENSIONS = {"jpeg": (".jpg", ".jpeg"), "png": (".png",), "webp": (".webp",)}


@click.command()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Batch mode: write clean copies into this folder under opaque names.",
)
@click.option("--json", "as_json", is_flag=True, help="Batch mode: one JSON object per file on stdout.")
@click.option("--force", is_flag=True, help="`strip IN OUT`: replace OUT if it exists (never IN itself).")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.pass_context
def strip(
    ctx: click.Context, out_dir: Path | None, as_json: bool, force: bool, paths: tuple[Path, ...]
) -> None:
    """Remove all metadata, with no face check: `strip IN OUT` or `strip --out DIR PATH...`.

    JPEG is cleaned losslessly; HEIC/HEIF and TIFF become JPEG, GIF becomes PNG: OUT's extension
    must name the format written (.jpg or .jpeg, .png, .webp). OUT must not exist unless --force is
    given, and is never IN itself. The clean copy is verified by a strict parser before it is
    written.
    """
    settings = _runtime(ctx).settings.media
    if out_dir is None:
        if len(paths) != 2 or as_json:
            raise click.UsageError("use `strip IN OUT` for one file, or `strip --out DIR [--json] PATH...`")
        _strip_one(settings, *paths, force=force)
        return
    if force:
        raise click.UsageError("--force is for `strip IN OUT`; with --out every copy gets a new name")
    _check_named(paths)
    files, skipped = _iter_files(paths)
    failures = len(skipped)
    for path, reason in skipped:
        if as_json:
            _emit({"source": str(path), "output": None, "error": reason})
        else:
            click.echo(f"SKIPPED {path}: {reason}", err=True)
    bar_shown = _show_bar(len(files))
    with _progress(files, len(files), "stripping") as bar:
        for path in bar:
            output, error = None, None
            try:
                data = _read_regular(path)
                if len(data) > settings.max_bytes:
                    raise InvalidInputError(f"file is larger than {settings.max_bytes} bytes")
                clean = media.sanitise(
                    data, max_pixels=settings.max_pixels, jpeg_quality=settings.jpeg_quality
                )
                target = out_dir / opaque_name(clean.extension)
                write_atomic(target, clean.data)
                output = str(target)
            except (GatekeeperError, OSError) as exc:
                failures += 1
                if isinstance(exc, MediaError):
                    error = explain(exc).words
                else:
                    error = str(exc) if isinstance(exc, InvalidInputError) else f"cannot read: {exc}"
            if as_json:
                _say(json.dumps({"source": str(path), "output": output, "error": error}), bar=bar_shown)
            elif error:
                _say(f"FAILED {path}: {error}", err=True, bar=bar_shown)
            else:
                _say(f"{path} -> {output}", bar=bar_shown)
    if failures:
        ctx.exit(1)


def _strip_one(settings: MediaSettings, source: Path, target: Path, *, force: bool) -> None:
    """`strip IN OUT`: refuse anything that would surprise before any work, then write atomically."""
    reason = _not_regular(source)
    if reason is not None:
        raise click.UsageError(f"{source}: {reason}")
    if target.is_dir():
        raise click.UsageError(
            f"{target} is a folder: give OUT as a file name, or use `strip --out {target} {source}` "
            "to write a copy there under an opaque name"
        )
    if target.exists() and os.path.samefile(source, target):
        raise click.UsageError(f"IN and OUT are the same file ({target}): the original is never replaced")
    if target.exists() and not force:
        raise click.ClickException(f"{target} exists: choose another name, or add --force to replace it")
    try:
        clean = media.sanitise(
            _read_regular(source), max_pixels=settings.max_pixels, jpeg_quality=settings.jpeg_quality
        )
    except GatekeeperError as exc:
        _fail(exc)
    allowed = _EXTENSIONS[clean.format]
    if target.suffix.lower() not in allowed:
        raise click.ClickException(
            f"the clean copy of {source.name} is {clean.format.upper()}: name OUT with "
            f"{' or '.join(allowed)} (for example {target.with_suffix(allowed[0]).name}); nothing written"
        )
    try:
        write_atomic(target, clean.data, replace=force)
    except FileExistsError:
        raise click.ClickException(
            f"{target} exists: choose another name, or add --force to replace it"
        ) from None
    except OSError as exc:
        raise click.ClickException(f"cannot write {target}: {exc.strerror or exc}") from exc
