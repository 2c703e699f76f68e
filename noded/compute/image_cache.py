"""The node's content-addressed image cache: <root>/<sha256>, downloaded from
the controller over the node session's mTLS channel, verified, then renamed
into place. A second guest from the same image downloads nothing; a broken
download resumes from where it stopped."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from noded.metrics import NodeMetrics

log = logging.getLogger("kumo.noded.images")

# fetch(sha256, offset) yields the blob's bytes from offset on.
Fetch = Callable[[str, int], Iterator[bytes]]


class ImageCacheError(Exception):
    pass


class ImageCache:
    def __init__(self, root: Path, fetch: Fetch, metrics: NodeMetrics | None = None) -> None:
        self.metrics = metrics
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)  # qemu (libvirt-qemu) reads backing files here
        self.fetch = fetch
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.downloads = 0  # how many blobs this process fetched (for tests and logs)

    def path(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ImageCacheError(f"not a sha256: {sha256!r}")
        return self.root / sha256

    def _lock(self, sha256: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(sha256, threading.Lock())

    def ensure(self, sha256: str, size: int) -> Path:
        """The cached file for sha256, downloading it first if missing."""
        final = self.path(sha256)
        if final.exists():
            self._count("hit")
            return final
        with self._lock(sha256):
            if final.exists():
                self._count("hit")  # another thread fetched it meanwhile
                return final
            part = final.with_suffix(".part")
            digest = hashlib.sha256()
            offset = 0
            if part.exists():  # resume: hash what is there already
                with open(part, "rb") as fh:
                    while chunk := fh.read(1 << 20):
                        digest.update(chunk)
                        offset += len(chunk)
                if offset > size:
                    part.unlink()
                    digest, offset = hashlib.sha256(), 0
            with open(part, "ab") as out:
                for chunk in self.fetch(sha256, offset):
                    out.write(chunk)
                    digest.update(chunk)
                    offset += len(chunk)
                    if offset > size:
                        break
                out.flush()
                os.fsync(out.fileno())
            if offset != size or digest.hexdigest() != sha256:
                part.unlink(missing_ok=True)
                raise ImageCacheError(
                    f"image {sha256[:12]} download did not verify: got {offset} bytes "
                    f"(want {size}), sha256 {digest.hexdigest()[:12]}"
                )
            os.chmod(part, 0o644)
            os.replace(part, final)
            self.downloads += 1
            self._count("miss")
            if self.metrics is not None:
                self.metrics.image_download_bytes.inc(size)
            log.info("image cached", extra={"sha256": sha256, "bytes": size})
            return final

    def _count(self, result: str) -> None:
        if self.metrics is not None:
            self.metrics.image_cache_requests.labels(result).inc()

    def prune(self, keep: set[str]) -> list[str]:
        """Removes cached images not in `keep` (those no guest uses any more)."""
        removed = []
        for entry in self.root.iterdir():
            if entry.suffix == ".part" or entry.name in keep:
                continue
            entry.unlink(missing_ok=True)
            removed.append(entry.name)
        return removed
