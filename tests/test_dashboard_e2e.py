"""End to end: a real TCG guest's serial console in the browser. The
dashboard's console page (xterm.js over its websocket, relayed to
ComputeService.AttachConsole) shows the test image's boot marker, and a
command typed into the page is answered by the guest's shell."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from bench.procs import ADMIN_PASSWORD
from kumo.v1 import compute_pb2 as pb
from tests.cloudutil import destroy_guests, libvirt_and_test_image, libvirt_cloud
from tests.dashboardutil import DashboardProc, dashboard_cert
from tests.netutil import state_dir
from tests.waits import diagnose, wait_until

pytestmark = pytest.mark.e2e

SCREEN = (
    "const b = window.kumoTerminal ? window.kumoTerminal.buffer.active : null;"
    "if (!b) return '';"
    "const out = []; for (let i = 0; i < b.length; i++) out.push(b.getLine(i).translateToString(true));"
    "return out.join('\\n');"
)


@pytest.fixture(scope="module")
def cloud(dashboard_key: bytes) -> Iterator[dict]:
    libvirt_and_test_image()
    base = state_dir("kumo-dash-e2e-")
    try:
        with libvirt_cloud(base, "dash-host", "dash.small", reconcile_seconds=5) as c:
            cert, key = dashboard_cert(c["ctl"], dashboard_key, base / "tls")
            dash = DashboardProc(c["ctl"], base, cert, key).start()
            try:
                yield {**c, "dash": dash}
            finally:
                dash.stop()
    finally:
        destroy_guests(str(base))
        shutil.rmtree(base, ignore_errors=True)


def test_a_real_guests_console_in_the_browser(browser: Any, cloud: dict) -> None:
    admin = cloud["admin"]
    inst = admin.compute.CreateInstance(
        pb.CreateInstanceRequest(name="webconsole", image="kumo-test", flavor="dash.small")
    )
    wait_until(
        lambda: (
            admin.compute.GetInstance(pb.GetInstanceRequest(id=inst.id)).state == pb.INSTANCE_STATE_ACTIVE
        ),
        what="the guest ACTIVE",
        explain=lambda: diagnose(admin, inst.id),
    )
    browser.delete_all_cookies()
    browser.get(cloud["dash"].url + "/login")
    browser.find_element(By.ID, "user").send_keys("admin")
    browser.find_element(By.ID, "password").send_keys(ADMIN_PASSWORD)
    browser.find_element(By.ID, "login").click()
    wait_until(lambda: "Overview of" in browser.page_source, what="logged in", base=30)
    browser.get(f"{cloud['dash'].url}/servers/{inst.id}/console")
    wait_until(
        lambda: browser.find_element(By.ID, "console-status").text == "connected",
        what="the console websocket connected",
        base=30,
    )
    # KUMO-NICS is the test image's marker, printed just before its shell starts on ttyS0.
    wait_until(
        lambda: "KUMO-NICS" in browser.execute_script(SCREEN),
        what="the guest's boot marker in the browser's terminal",
        explain=lambda: diagnose(admin, inst.id),
    )
    box = browser.find_element(By.CSS_SELECTOR, "#terminal .xterm-helper-textarea")
    last = 0.0

    def answered() -> bool:
        nonlocal last
        if time.monotonic() - last > 3:  # the shell may not read yet: type again now and then
            box.send_keys("echo KUMO-WEB-$((6*7))", Keys.ENTER)
            last = time.monotonic()
        return "KUMO-WEB-42" in browser.execute_script(SCREEN)

    wait_until(
        answered,
        what="the guest's answer in the browser",
        explain=lambda: browser.execute_script(SCREEN)[-800:],
    )
    admin.compute.DeleteInstance(pb.DeleteInstanceRequest(id=inst.id))
