"""The image catalog on a real PostgreSQL server: the row locks that stand in
for SQLite's write lock keep the byte quota and the shared blobs right."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator

import grpc
import pytest

from bench.procs import MIB, create_image, upload_requests
from kumo.v1 import image_pb2 as pb
from tests.harness import ControllerProc, error_reason
from tests.test_images import blob_path, download, random_raw

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def pg_controller(postgres, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    url = postgres.create_database("kumo_images")
    data = tmp_path_factory.mktemp("pgimg") / "data"
    data.mkdir()
    proc = ControllerProc(
        data,
        extra_args=["--database-url", url],
        extra_env={"KUMO_IMAGE_QUOTA_BYTES": str(5 * MIB), "KUMO_IMAGE_QUOTA_COUNT": "10"},
    ).start()
    yield proc
    proc.stop()


def _race(client, images: list[pb.Image], payload: bytes) -> dict[str, object]:  # type: ignore[no-untyped-def]
    barrier = threading.Barrier(len(images))
    out: dict[str, object] = {}

    def go(image: pb.Image) -> None:
        def gen() -> Iterator[pb.UploadImageDataRequest]:
            msgs = upload_requests(image.id, payload, chunk=256 * 1024)
            yield next(msgs)
            barrier.wait()
            yield from msgs

        try:
            out[image.id] = client.images.UploadImageData(gen())
        except grpc.RpcError as exc:
            out[image.id] = exc

    threads = [threading.Thread(target=go, args=(i,)) for i in images]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_images_on_postgres(pg_controller: ControllerProc) -> None:
    admin = pg_controller.login()
    # Same content three times at once: one blob, all active (3 x 1 MiB fits the 5 MiB quota).
    data = random_raw(MIB)
    sha = hashlib.sha256(data).hexdigest()
    twins = [create_image(admin, f"pg-twin-{i}") for i in range(3)]
    results = _race(admin, twins, data)
    assert all(isinstance(r, pb.Image) and r.checksum_sha256 == sha for r in results.values()), results
    assert blob_path(pg_controller, sha).read_bytes() == data
    assert download(admin, twins[0].id) == data
    # 3 MiB used: of two racing 2 MiB uploads exactly one fits.
    racers = [create_image(admin, f"pg-race-{i}") for i in range(2)]
    results = _race(admin, racers, random_raw(2 * MIB))
    won = [r for r in results.values() if isinstance(r, pb.Image)]
    lost = [r for r in results.values() if isinstance(r, grpc.RpcError)]
    assert len(won) == 1 and len(lost) == 1
    assert error_reason(lost[0]) == "IMAGE_QUOTA_BYTES"
    # Deleting every user of the blob frees it.
    for image in twins:
        admin.images.DeleteImage(pb.DeleteImageRequest(id=image.id))
    assert not blob_path(pg_controller, sha).exists()
