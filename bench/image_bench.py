"""Image upload and download throughput: kumo (gRPC over loopback TLS) against
nginx + curl (the HTTP way Glance serves images) on the same 1 GiB file, in
the same run.

    make bench            (all benchmarks)
    python -m bench image (this one; KUMO_BENCH_IMAGE_MIB=256 for a quicker run)

nginx runs from a temporary prefix with a temporary config on a free loopback
port, serving the file over HTTPS with the controller's own certificate (so
both sides pay for TLS), and over plain HTTP (sendfile) for reference.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from bench.procs import ControllerProc
from cli import transfer
from kumo.v1 import image_pb2 as pb

MIB = 1024 * 1024
SIZE = int(os.environ.get("KUMO_BENCH_IMAGE_MIB", "1024")) * MIB
RUNS = int(os.environ.get("KUMO_BENCH_RUNS", "3"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _make_file(path: Path) -> str:
    digest = hashlib.sha256()
    block = os.urandom(16 * MIB)
    with open(path, "wb") as fh:
        written = 0
        while written < SIZE:
            # Vary each block so the file is not 64 copies of one.
            piece = (
                hashlib.sha256(written.to_bytes(8, "little")).digest()
                + block[32 : min(16 * MIB, SIZE - written)]
            )
            fh.write(piece)
            digest.update(piece)
            written += len(piece)
    return digest.hexdigest()


def _mbps(nbytes: int, seconds: float) -> float:
    return nbytes / seconds / 1e6


NGINX_CONF = """
worker_processes 1;
daemon off;
master_process off;
user {user};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    types {{ application/octet-stream bin; }}
    server {{
        listen 127.0.0.1:{https_port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.3;
        root {root};
    }}
    server {{
        listen 127.0.0.1:{http_port};
        root {root};
    }}
}}
"""


class Nginx:
    def __init__(self, tmp: Path, root: Path, cert: Path, key: Path) -> None:
        self.prefix = tmp / "nginx"
        self.prefix.mkdir()
        self.https_port, self.http_port = _free_port(), _free_port()
        user = "root root" if os.geteuid() == 0 else os.environ.get("USER", "nobody")
        conf = self.prefix / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(
                user=user,
                prefix=self.prefix,
                https_port=self.https_port,
                http_port=self.http_port,
                cert=cert,
                key=key,
                root=root,
            )
        )
        self.proc = subprocess.Popen(
            ["nginx", "-p", str(self.prefix), "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.https_port), timeout=0.2).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"nginx did not start: {self.proc.stderr.read().decode()}") from None
                time.sleep(0.05)

    def fetch(self, url: str, ca: Path) -> float:
        """Seconds curl takes to fetch `url` to /dev/null."""
        start = time.perf_counter()
        out = subprocess.run(
            ["curl", "-sS", "--fail", "--cacert", str(ca), "-o", "/dev/null", "-w", "%{size_download}", url],
            capture_output=True,
            text=True,
            check=True,
        )
        elapsed = time.perf_counter() - start
        if int(out.stdout) != SIZE:
            raise RuntimeError(f"curl fetched {out.stdout} bytes, expected {SIZE}")
        return elapsed

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def main() -> None:
    if not shutil.which("nginx") or not shutil.which("curl"):
        print("nginx and curl are needed (apt-get install nginx-light curl)")
        return
    tmp = Path(tempfile.mkdtemp(prefix="kumo-image-bench-"))
    controller = nginx = None
    try:
        data_dir = tmp / "data"
        data_dir.mkdir()
        www = tmp / "www"
        www.mkdir()
        blob = www / "image.bin"
        sha = _make_file(blob)
        print(f"file: {SIZE / MIB:.0f} MiB random data; best of {RUNS} runs each (downloads interleaved)")

        controller = ControllerProc(data_dir, extra_env={"KUMO_LOG_LEVEL": "WARNING"}).start()
        client = controller.login()
        ca = Path(controller.ca_file)

        up_times, image_id = [], ""
        for i in range(RUNS):
            image = client.images.CreateImage(
                pb.CreateImageRequest(image=pb.Image(name=f"bench-{i}", disk_format=pb.DISK_FORMAT_RAW))
            )
            start = time.perf_counter()
            done, _ = transfer.upload(client.channel, client.metadata, image.id, blob, sha, timeout=600)
            up_times.append(time.perf_counter() - start)
            assert done.status == pb.IMAGE_STATUS_ACTIVE and done.checksum_sha256 == sha
            if image_id:  # keep one image; each run stored the same blob again
                client.images.DeleteImage(pb.DeleteImageRequest(id=done.id))
            else:
                image_id = done.id

        # Interleaved, so a busy machine slows every contender alike.
        nginx = Nginx(tmp, www, data_dir / "pki" / "server.crt", data_dir / "pki" / "server.key")
        down_times, https_times, http_times = [], [], []
        for _ in range(RUNS):
            start = time.perf_counter()
            got = transfer.download(client.channel, client.metadata, image_id, lambda _: None, timeout=600)
            down_times.append(time.perf_counter() - start)
            assert got == SIZE, got
            https_times.append(nginx.fetch(f"https://localhost:{nginx.https_port}/image.bin", ca))
            http_times.append(nginx.fetch(f"http://127.0.0.1:{nginx.http_port}/image.bin", ca))

        up = _mbps(SIZE, min(up_times))
        down = _mbps(SIZE, min(down_times))
        https = _mbps(SIZE, min(https_times))
        http = _mbps(SIZE, min(http_times))
        print(f"kumo upload   (gRPC, TLS, sha256 + fsync + qemu-img check): {up:8.0f} MB/s")
        print(f"kumo download (gRPC, TLS):                                 {down:8.0f} MB/s")
        print(f"nginx + curl  (HTTPS, TLS 1.3):                            {https:8.0f} MB/s")
        print(f"nginx + curl  (plain HTTP, sendfile; reference):           {http:8.0f} MB/s")
        print(f"kumo download / nginx HTTPS: {down / https:.2f}  (goal >= 0.70)")
        print(f"kumo download / nginx HTTP:  {down / http:.2f}")
        print(f"kumo upload / nginx HTTPS download: {up / https:.2f}")
    finally:
        if nginx is not None:
            nginx.stop()
        if controller is not None:
            controller.stop()
        shutil.rmtree(tmp, ignore_errors=True)
