"""Reproducible zip files: the same inputs give byte-identical archives.

Entries are sorted, every timestamp is the zip epoch (1980-01-01), permissions
are normalised (0644, or 0755 for scripts) and no absolute path is stored.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

EPOCH = (1980, 1, 1, 0, 0, 0)


def write_zip(path: Path, files: dict[str, bytes | str], executable: set[str] = frozenset()) -> None:
    """``files`` maps archive names (relative, '/'-separated) to contents."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        for name in sorted(files):
            if name.startswith("/") or ".." in name.split("/"):
                raise ValueError(f"unsafe archive name {name!r}")
            info = zipfile.ZipInfo(name, date_time=EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # unix, so the permission bits below are honoured
            info.external_attr = ((0o100755 if name in executable else 0o100644) << 16)
            data = files[name]
            archive.writestr(info, data.encode() if isinstance(data, str) else data,
                             compresslevel=9)


def tree(folder: Path, prefix: str, skip=("__pycache__",)) -> dict[str, bytes]:
    """Every file below ``folder`` as archive entries under ``prefix``."""
    entries = {}
    for file in sorted(folder.rglob("*")):
        if file.is_file() and not any(part in skip for part in file.parts) \
                and file.suffix not in (".pyc",):
            entries[f"{prefix}/{file.relative_to(folder).as_posix()}"] = file.read_bytes()
    return entries
