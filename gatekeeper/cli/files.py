"""The files named on the command line: only regular files are read, with a progress bar on a terminal.

Shared by `gate` and `strip`: a named pipe would block a read forever, and a device or socket is not
a photo.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TypeVar

import click

from gatekeeper.errors import InvalidInputError

T = TypeVar("T")


def _not_regular(path: Path) -> str | None:
    """None for a regular file (or a link to one); otherwise why it is not read."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "broken symbolic link" if path.is_symlink() else "not found"
    except OSError as exc:
        return f"cannot read: {exc.strerror}"
    return None if stat.S_ISREG(mode) else _kind(mode)


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISDIR, "a folder"),
    ):
        if test(mode):
            return f"not a regular file: {name}"
    return "not a regular file"


def _iter_files(paths: Sequence[Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Regular files named directly or below named folders (non-hidden), in a stable order, and
    everything else that was named or found, with the reason it is skipped.

    Only regular files are ever opened: a named pipe would block a read forever, and a device or
    socket is not a photo.
    """
    found: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    for path in paths:
        if path.is_dir():
            for p in sorted(path.rglob("*")):
                if any(part.startswith(".") for part in p.relative_to(path).parts) or p.is_dir():
                    continue
                reason = _not_regular(p)
                if reason is None:
                    found.append(p)
                else:
                    skipped.append((p, reason))
        elif (reason := _not_regular(path)) is None:
            found.append(path)
        else:
            skipped.append((path, reason))
    return found, skipped


def _check_named(paths: Sequence[Path]) -> None:
    """Refuse names that do not exist at all (a typo); a broken link is reported later, per file."""
    missing = [str(p) for p in paths if not os.path.lexists(p)]
    if missing:
        raise click.UsageError(f"not found: {', '.join(missing)}")


def _show_bar(length: int) -> bool:
    return sys.stderr.isatty() and length > 1


def _progress(items: Iterable[T], length: int, label: str) -> AbstractContextManager[Iterable[T]]:
    """A progress bar on stderr when it is a terminal; otherwise the items as they are."""
    if _show_bar(length):
        return click.progressbar(items, length=length, label=label, file=sys.stderr, show_pos=True)
    return nullcontext(items)


def _say(text: str, *, err: bool = False, bar: bool = False) -> None:
    """Print a line; with a progress bar on the terminal, erase the bar's line first.

    The bar is drawn without a newline and redrawn after each item, so a line printed over an
    erased bar stands on its own and the bar reappears below it.
    """
    if bar:
        sys.stderr.write("\r\033[K")
        sys.stderr.flush()
    click.echo(text, err=err)


def _read_regular(path: Path) -> bytes:
    """The bytes of a regular file; raises InvalidInputError for anything else (never blocks)."""
    with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as fh:
        mode = os.fstat(fh.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise InvalidInputError(_kind(mode))
        return fh.read()
