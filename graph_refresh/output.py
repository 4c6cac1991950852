"""Writing what a run produces (the report, dry-run manifests) without ever damaging the path (design: Outputs
and data from outside).

The only module that writes files a user named; what is written comes ready-made as text.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from pathlib import Path

STDOUT = "-"  # the report path that means standard output
NEW_FILE_MODE = 0o666  # before the umask, as open() and shells create files (0644 under umask 022)
TEMP_NAME_ATTEMPTS = 100  # temporary file names tried before giving up (a clash is already unlikely)


def write_output(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (see :func:`write_atomically`), or to stdout when ``path`` is ``-``.

    No folder is created: a missing one is an error (FileNotFoundError), as a mistyped path should be.
    """
    if str(path) == STDOUT:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    if not path.parent.is_dir():
        raise FileNotFoundError(errno.ENOENT, "no such folder", str(path.parent))
    write_atomically(path, text)


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` without ever damaging what ``path`` is (design: Outputs and data from outside).

    A new path or a regular file is replaced atomically through a temporary file beside it, so a reader sees
    the old file or the whole new one. Anything else (a symlink, a device such as /dev/stdout, a FIFO) is
    opened and written through, never replaced: a symlink stays a link and its target gets the text. New
    files get ``0666 & ~umask`` (0644 under umask 022). On failure the temporary file is removed.
    """
    data = text.encode("utf-8")
    if path.is_symlink() or (path.exists() and not stat.S_ISREG(path.stat().st_mode)):
        with open(path, "wb") as stream:  # O_TRUNC is ignored by devices and FIFOs
            stream.write(data)
        return
    fd, tmp = _create_beside(path)
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _create_beside(path: Path) -> tuple[int, Path]:
    """A new, empty hidden file in ``path``'s folder, opened for writing; the kernel applies the umask to its
    mode (tempfile.mkstemp would give 0600 whatever the umask)."""
    for _ in range(TEMP_NAME_ATTEMPTS):
        tmp = path.with_name(f".{path.name}.{os.urandom(4).hex()}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, NEW_FILE_MODE), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary file name beside it", str(path))
