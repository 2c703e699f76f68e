"""The dashboard's server list with 1,000 servers (fake nodes): time to
first byte (an HTTPS client, and the browser's own navigation timing) and
time to fully rendered in headless Chromium (load event), p50 and p90."""

from __future__ import annotations

import re
import ssl
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from bench.browser import browser_available, new_browser
from bench.fakecloud import fake_cloud, load, ms, pct, table
from bench.procs import ADMIN_PASSWORD, DashboardProc

SERVERS = 1000
NODES = 4
SAMPLES = 15
# One page of all of them (the list pages by 100 unless told; 1000 is the API maximum).
PAGE = f"/servers?size={SERVERS}"


def main() -> None:
    if not browser_available():
        print("skipped: chromium and chromium-driver are not installed")
        return
    env = {
        "KUMO_QUOTA_INSTANCES": "100000",
        "KUMO_QUOTA_VCPUS": "100000",
        "KUMO_QUOTA_RAM_MB": "100000000",
        "KUMO_QUOTA_PORTS": "100000",
        "KUMO_NODE_HEARTBEAT_SECONDS": "2",
    }
    node_args = ["--fake-vcpus", "64", "--fake-memory-mb", "262144", "--fake-disk-gb", "2000"]
    with fake_cloud("kumo-dash-bench-", NODES, env, node_args, flavor=("b.small", 1, 256, 1)) as cloud:
        from kumo.v1 import compute_pb2 as cpb

        def create(i: int) -> None:
            cloud.admin.compute.CreateInstance(
                cpb.CreateInstanceRequest(name=f"s{i:04d}", image=cloud.image_id, flavor="b.small")
            )

        start = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(create, range(SERVERS)))
        print(f"  made {SERVERS} servers in {time.perf_counter() - start:.1f} s", flush=True)
        dash = DashboardProc(cloud.ctl, cloud.base).start()
        try:
            measure(cloud, dash)
        finally:
            dash.stop()


def measure(cloud, dash: DashboardProc) -> None:  # type: ignore[no-untyped-def]
    client = httpx.Client(
        base_url=dash.url, verify=ssl.create_default_context(cafile=cloud.ctl.ca_file), timeout=120
    )
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    client.post("/login", data={"csrf_token": token, "user": "admin", "password": ADMIN_PASSWORD})
    ttfb, total = [], []
    for _ in range(SAMPLES):
        t0 = time.perf_counter()
        with client.stream("GET", PAGE) as resp:
            ttfb.append(time.perf_counter() - t0)
            body = b"".join(resp.iter_bytes())
        total.append(time.perf_counter() - t0)
    rows = body.count(b"<tr data-id=")
    assert rows == SERVERS, f"the page lists {rows} servers"
    key = (cloud.ctl.data_dir / "pki" / "server.key").read_bytes()
    work = Path(tempfile.mkdtemp(prefix="kumo-dash-bench-browser-"))
    browser = new_browser(key, work)
    nav_ttfb, rendered = [], []
    try:
        browser.get(dash.url + "/login")
        browser.find_element("id", "user").send_keys("admin")
        browser.find_element("id", "password").send_keys(ADMIN_PASSWORD)
        browser.find_element("id", "login").click()
        for _ in range(SAMPLES):
            browser.get(dash.url + PAGE)
            t = browser.execute_script(
                "const n = performance.getEntriesByType('navigation')[0];"
                "return [n.responseStart - n.startTime, n.loadEventEnd - n.startTime,"
                " document.querySelectorAll('#server-rows tr').length];"
            )
            assert t[2] == SERVERS, t
            nav_ttfb.append(t[0] / 1000)
            rendered.append(t[1] / 1000)
    finally:
        browser.quit()
    print(f"  server list page, {SERVERS} servers, {SAMPLES} samples each ({load()})")
    table(
        [
            ("TTFB (HTTPS client) p50 / p90", f"{ms(pct(ttfb, 0.5))} / {ms(pct(ttfb, 0.9))}"),
            ("whole page (HTTPS client) p50", ms(pct(total, 0.5))),
            ("TTFB (Chromium navigation) p50", ms(pct(nav_ttfb, 0.5))),
            ("fully rendered (load event) p50 / p90", f"{ms(pct(rendered, 0.5))} / {ms(pct(rendered, 0.9))}"),
            ("page size", f"{len(body) / 1024:.0f} KiB"),
        ]
    )


if __name__ == "__main__":
    main()
