"""A content-addressed blob store on the local filesystem (data_dir/images/).

    blobs/<sha256[:2]>/<sha256>   finished blobs, named by the sha256 of their bytes
    tmp/upload-<uuid>.part        uploads being written (same filesystem: rename is atomic)
    tmp/<sha256>.<uuid>.trash     a blob being deleted, until the database commit

A writer hashes on the fly and fsyncs before the blob is renamed into place, so
a blob file under blobs/ is always complete and its name is its checksum. The
store knows nothing of images or the database: domain/images.py decides when a
blob is placed or removed (under the database write lock) and the node-facing
code can stream blobs with `open(sha256).chunks(offset, length)`.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import queue
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc

from controller.errors import KumoError

log = logging.getLogger(__name__)

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
READ_CHUNK = 1024 * 1024
# While an upload is written, start writeback of every this many bytes, so the
# final fsync does not have to flush the whole file at once.
WRITEBACK_BYTES = 32 * 1024 * 1024


def _sync_file_range() -> Callable[[int, int, int], None] | None:
    """Linux sync_file_range(fd, offset, n, SYNC_FILE_RANGE_WRITE): starts
    writeback of a range without waiting for it. None where unavailable."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return lambda fd, offset, n: fn(fd, offset, n, 2)


_start_writeback = _sync_file_range()


class BlobMissing(KumoError):
    """A blob the catalog says exists is not on disk: lost data, not bad input."""

    code = grpc.StatusCode.DATA_LOSS
    default_reason = "IMAGE_DATA_MISSING"


class BlobWriter:
    """A temporary file that hashes what is written to it.

    Hashing and writing run on a helper thread, so the caller (an upload
    stream) can receive the next chunk meanwhile; both release the GIL. An
    error on that thread (say, a full disk) is raised by the next write() or
    by finish()."""

    QUEUE_CHUNKS = 8

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = 0
        self.sha256 = ""
        self._hash = hashlib.sha256()
        self._written = 0
        self._flushed = 0
        self._error: BaseException | None = None
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        self._queue: queue.Queue[bytes | memoryview | None] = queue.Queue(self.QUEUE_CHUNKS)
        self._thread: threading.Thread | None = threading.Thread(
            target=self._run, name="blob-writer", daemon=True
        )
        self._thread.start()

    def write(self, data: bytes | memoryview) -> None:
        """Queues `data` (which must not change afterwards: bytes or a view of bytes)."""
        if self._error is not None:
            raise self._error
        assert self._thread is not None, "writer is closed"
        self._queue.put(data)
        self.size += len(data)

    def _run(self) -> None:
        while (data := self._queue.get()) is not None:
            if self._error is not None:
                continue  # drain until told to stop
            try:
                self._hash.update(data)
                view = memoryview(data)
                while view:
                    n = os.write(self._fd, view)  # type: ignore[arg-type]
                    view = view[n:]
                self._written += len(data)
                if _start_writeback is not None and self._written - self._flushed >= WRITEBACK_BYTES:
                    _start_writeback(self._fd, self._flushed, self._written - self._flushed)  # type: ignore[arg-type]
                    self._flushed = self._written
            except BaseException as exc:
                self._error = exc

    def _stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def finish(self) -> str:
        """Waits for the data, flushes it to disk and returns its sha256 (hex)."""
        assert self._fd is not None, "writer is closed"
        self._stop()
        if self._error is not None:
            raise self._error
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = None
        self.sha256 = self._hash.hexdigest()
        return self.sha256

    def discard(self) -> None:
        self._error = self._error or RuntimeError("discarded")
        self._stop()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.path.unlink(missing_ok=True)


class BlobReader:
    """An open blob. The file stays readable while open even if it is deleted."""

    def __init__(self, sha256: str, path: Path) -> None:
        self.sha256 = sha256
        try:
            self._file = open(path, "rb", buffering=0)
        except FileNotFoundError:
            raise BlobMissing(
                f"the data of blob {sha256} is missing from the image store (see the controller log)"
            ) from None
        self.size = os.fstat(self._file.fileno()).st_size

    def chunks(self, offset: int = 0, length: int = 0, chunk_size: int = READ_CHUNK) -> Iterator[bytes]:
        """Yields the bytes from `offset`, `length` of them (0: to the end), in
        pieces of at most `chunk_size`. Closes the file when done."""
        try:
            end = self.size if length <= 0 else min(self.size, offset + length)
            fd = self._file.fileno()
            try:
                os.posix_fadvise(fd, offset, end - offset, os.POSIX_FADV_SEQUENTIAL)
            except OSError:
                pass
            pos = offset
            while pos < end:
                data = os.pread(fd, min(chunk_size, end - pos), pos)
                if not data:
                    raise BlobMissing(f"blob {self.sha256} is shorter than recorded ({pos} of {end} bytes)")
                pos += len(data)
                yield data
        finally:
            self._file.close()

    def close(self) -> None:
        self._file.close()


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.blob_dir = root / "blobs"
        self.tmp_dir = root / "tmp"
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        if not SHA256_RE.match(sha256):
            raise ValueError(f"not a sha256: {sha256!r}")
        return self.blob_dir / sha256[:2] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def writer(self) -> BlobWriter:
        return BlobWriter(self.tmp_dir / f"upload-{uuid.uuid4()}.part")

    def place(self, writer: BlobWriter) -> bool:
        """Moves a finished upload into place. True if the blob is new; False if
        the same content was already stored (the upload is then dropped)."""
        assert writer.sha256, "finish() the writer first"
        final = self.path(writer.sha256)
        if final.is_file():
            writer.discard()
            return False
        final.parent.mkdir(exist_ok=True)
        os.rename(writer.path, final)
        _fsync_dir(final.parent)
        return True

    def open(self, sha256: str) -> BlobReader:
        return BlobReader(sha256, self.path(sha256))

    def trash(self, sha256: str) -> Path | None:
        """First step of removing a blob: rename it aside (undo with untrash)."""
        trash = self.tmp_dir / f"{sha256}.{uuid.uuid4()}.trash"
        try:
            os.rename(self.path(sha256), trash)
        except FileNotFoundError:
            log.warning("blob to delete was already gone", extra={"sha256": sha256})
            return None
        return trash

    def untrash(self, trash: Path, sha256: str) -> None:
        os.rename(trash, self.path(sha256))

    @staticmethod
    def purge(trash: Path) -> None:
        trash.unlink(missing_ok=True)

    def stored(self) -> dict[str, Path]:
        """Every blob file, by sha256 (files with other names are ignored)."""
        out = {}
        for sub in self.blob_dir.iterdir():
            if sub.is_dir():
                for f in sub.iterdir():
                    if SHA256_RE.match(f.name):
                        out[f.name] = f
        return out

    def leftovers(self) -> tuple[list[Path], list[tuple[str, Path]]]:
        """Unfinished uploads, and blobs that were being deleted, left by a crash."""
        parts, trashed = [], []
        for f in self.tmp_dir.iterdir():
            if f.name.endswith(".part"):
                parts.append(f)
            elif f.name.endswith(".trash"):
                trashed.append((f.name.split(".", 1)[0], f))
        return parts, trashed


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
