"""Where exports land, through fsspec: list a prefix, fetch a file (S3, GCS, Azure, SFTP, a local directory).

fsspec is an optional extra (``watch``), and so is each scheme's filesystem: ``s3`` (s3fs), ``gcs``
(gcsfs), ``azure`` (adlfs), ``sftp`` (paramiko). Listings are never cached between polls.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

EXTRAS: Final = {
    "s3": "s3",
    "s3a": "s3",
    "gs": "gcs",
    "gcs": "gcs",
    "az": "azure",
    "abfs": "azure",
    "abfss": "azure",
    "sftp": "sftp",
    "ssh": "sftp",
}


class UnsafePath(Exception):
    """An object whose key would be copied outside the work directory (``..`` in it): never fetched."""


@dataclass(frozen=True, slots=True)
class StoredFile:
    """One object (or file) under the watched prefix, as listed."""

    path: str  # as the filesystem names it (``bucket/key`` for object stores)
    relative: str  # below the watched prefix
    url: str  # with its scheme: what messages and the ledger name
    size: int
    etag: str  # the object's ETag, else its generation or modification time: changes when it is rewritten
    mtime: float | None

    @property
    def version(self) -> str:
        return f"{self.etag}|{self.size}"


def _seconds(value: object) -> float | None:
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def _mtime(info: Mapping[str, Any]) -> float | None:
    for key in ("LastModified", "mtime", "last_modified", "updated", "modified"):
        if key in info:
            found = _seconds(info[key])
            if found is not None:
                return found
    return None


def _etag(info: Mapping[str, Any], mtime: float | None) -> str:
    for key in ("ETag", "etag", "generation", "md5Hash", "content_md5"):
        value = info.get(key)
        if value:
            return str(value).strip('"')
    return f"mtime:{mtime!r}"


class Storage:
    """A prefix of one filesystem."""

    def __init__(self, url: str, options: Mapping[str, Any] | None = None) -> None:
        try:
            import fsspec
        except ImportError:
            raise ImportError(
                "audience-sync watch needs fsspec: pip install 'inbound-decisioning[watch]' (and the extra of the "
                "URL's scheme: s3, gcs, azure or sftp)"
            ) from None
        scheme = url.split("://", 1)[0] if "://" in url else "file"
        try:
            fs, root = fsspec.core.url_to_fs(url, **dict(options or {}))
        except ImportError as exc:
            extra = EXTRAS.get(scheme, scheme)
            raise ImportError(f"{url}: {exc} (pip install 'inbound-decisioning[watch,{extra}]')") from None
        self.url = url
        self.fs: Any = fs
        self.root = root.rstrip("/")
        self.local = "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))

    def list(self) -> list[StoredFile]:
        """Every file below the prefix (OSError and the filesystem's errors when it cannot be listed)."""
        self.fs.invalidate_cache()
        found = self.fs.find(self.root, detail=True, withdirs=False)
        files: list[StoredFile] = []
        for path, info in sorted(found.items()):
            if info.get("type", "file") != "file":
                continue
            relative = path[len(self.root) :].lstrip("/") if path.startswith(self.root) else path
            mtime = _mtime(info)
            url = path if self.local else self.fs.unstrip_protocol(path)
            files.append(StoredFile(path, relative, url, int(info.get("size") or 0), _etag(info, mtime), mtime))
        return files

    def fetch(self, stored: StoredFile, directory: str) -> str:
        """A local path holding the file's content: the file itself when local, else a copy under ``directory``
        (modified when the object was: ``LastModified``). UnsafePath for a key that leads outside it (``..``)."""
        if self.local:
            return stored.path
        base = os.path.abspath(directory)
        target = os.path.normpath(os.path.join(base, stored.relative))
        if os.path.commonpath([base, target]) != base or target == base:
            raise UnsafePath(f"{stored.url}: its key leads outside the work directory ({stored.relative!r}): not read")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        self.fs.get_file(stored.path, target)
        if stored.mtime is not None:  # the copy's modification time is the object's: its export time (attributes)
            os.utime(target, (stored.mtime, stored.mtime))
        return target
