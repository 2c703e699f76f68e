"""The dashboard in a real headless Chromium (Debian's chromium and
chromium-driver, through Selenium) against a real controller and a real
kumo-noded on the fake driver: log in, launch a server and watch its badge
turn ACTIVE without a reload, upload an image and watch the progress bar,
make and attach a volume, type into the serial console (the fake guest's
console echoes), delete everything; a reader sees no write buttons and
their forged POST is refused; the session cookie's flags as the browser
holds them. One browser for the whole test session (tests/conftest.py)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from kumo.v1 import compute_pb2 as cpb
from kumo.v1 import image_pb2 as ipb
from kumo.v1 import network_pb2 as netpb
from kumo.v1 import node_pb2 as npb
from kumo.v1 import volume_pb2 as vpb
from tests.cloudutil import fake_cloud
from tests.dashboardutil import DashboardProc, dashboard_cert, login, one_line_error
from tests.harness import ADMIN_PASSWORD, two_tenants
from tests.waits import wait_until

UNKNOWN = "00000000-0000-4000-8000-000000000000"
UPLOAD_MIB = 48


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory, dashboard_key: bytes) -> Iterator[dict]:
    base = tmp_path_factory.mktemp("dashb")
    env = {"KUMO_NODE_HEARTBEAT_SECONDS": "1", "KUMO_INSTANCE_SYNC_SECONDS": "0.3"}
    with fake_cloud(base, 1, "dashb", env) as c:
        image = c.public_image("tiny")
        c.flavor("m1.tiny", vcpus=1, ram_mb=512)
        cert, key = dashboard_cert(c.ctl, dashboard_key, base / "tls")
        dash = DashboardProc(c.ctl, base, cert, key).start()
        try:
            yield {
                "ctl": c.ctl,
                "admin": c.admin,
                "dash": dash,
                "image": image,
                "base": base,
                **two_tenants(c.ctl, c.admin, "br"),
            }
        finally:
            dash.stop()


def sign_in(browser: Any, cloud: dict, user: str, password: str = "password-123") -> None:
    browser.delete_all_cookies()
    browser.get(cloud["dash"].url + "/login")
    browser.find_element(By.ID, "user").send_keys(user)
    browser.find_element(By.ID, "password").send_keys(password)
    browser.find_element(By.ID, "login").click()
    wait_until(lambda: "Overview of" in browser.page_source, what=f"{user} logged in", base=30)


def text_of(browser: Any, css: str) -> str:
    """The element's visible text, read in one script call: htmx swaps live
    parts of the page, so an element found first and read second can be gone."""
    return browser.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.innerText.trim() : '';", css
    )


def row_state(browser: Any, table_row: str) -> str:
    return text_of(browser, f"{table_row} .badge")


def submit(browser: Any, css: str, what: str) -> None:
    """Clicks the form button at `css` and waits for the page its POST leads to:
    a navigation started right after the click would abort the POST unsent."""
    browser.execute_script("window.kumoMarker = 'before the submit';")
    browser.find_element(By.CSS_SELECTOR, css).click()
    wait_until(
        lambda: browser.execute_script(
            "return window.kumoMarker === undefined && document.readyState === 'complete'"
        ),
        what=f"the page after {what}",
        base=30,
    )


def watch_without_reload(browser: Any, row: str, state: str, what: str) -> None:
    """Waits for `row`'s badge to read `state` on the page already shown, and checks it was not reloaded."""
    browser.execute_script("window.kumoMarker = 'not reloaded';")
    wait_until(lambda: row_state(browser, row) == state, what=what, base=30, step=0.2)
    assert browser.execute_script("return window.kumoMarker") == "not reloaded", "the page was reloaded"


def test_the_session_cookie_as_the_browser_holds_it(browser: Any, cloud: dict) -> None:
    sign_in(browser, cloud, "br-alice")
    cookie = browser.get_cookie("kumo_session")
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict", cookie
    assert "kumo_session" not in browser.execute_script("return document.cookie")
    # A POST from the page's own script without the CSRF header is refused.
    status = browser.execute_async_script(
        "const done = arguments[0];"
        "fetch('/keypairs', {method: 'POST', body: new URLSearchParams({name: 'no-csrf'})})"
        ".then(r => done(r.status));"
    )
    assert status == 403


def test_launch_a_server_and_watch_it_become_active_without_reloading(browser: Any, cloud: dict) -> None:
    sign_in(browser, cloud, "br-alice")
    browser.get(cloud["dash"].url + "/servers")
    browser.find_element(By.ID, "launch").click()
    browser.find_element(By.ID, "name").send_keys("web1")
    Select(browser.find_element(By.ID, "image")).select_by_visible_text("tiny")
    browser.find_element(By.ID, "launch-submit").click()
    wait_until(
        lambda: browser.find_elements(By.CSS_SELECTOR, 'tr[data-name="web1"]'), what="web1 listed", base=30
    )
    browser.execute_script("window.kumoMarker = 'not reloaded';")
    seen = set()

    def active() -> bool:
        seen.add(row_state(browser, 'tr[data-name="web1"]'))
        return "ACTIVE" in seen

    wait_until(active, what="web1's badge to turn ACTIVE", base=60, step=0.2)
    assert browser.execute_script("return window.kumoMarker") == "not reloaded", "the page was reloaded"
    server = next(
        s
        for s in cloud["alice"].compute.ListInstances(cpb.ListInstancesRequest()).instances
        if s.name == "web1"
    )
    assert server.state == cpb.INSTANCE_STATE_ACTIVE
    cloud["server"] = server


def test_upload_an_image_and_watch_the_progress_bar(browser: Any, cloud: dict, tmp_path: Path) -> None:
    path = tmp_path / "disk.raw"
    with open(path, "wb") as fh:
        for _ in range(UPLOAD_MIB):
            fh.write(os.urandom(1024 * 1024))
    browser.get(cloud["dash"].url + "/images")
    browser.find_element(By.ID, "image-name").send_keys("uploaded")
    Select(browser.find_element(By.ID, "image-format")).select_by_value("raw")
    browser.find_element(By.ID, "image-file").send_keys(str(path))
    browser.find_element(By.ID, "upload").click()
    values: list[int] = []

    def uploaded() -> bool:
        try:
            bar = browser.find_elements(By.ID, "upload-progress")
            if bar:
                values.append(int(bar[0].get_attribute("value") or 0))
        except Exception:
            pass  # the page moved on to the list
        return bool(browser.find_elements(By.CSS_SELECTOR, 'tr[data-name="uploaded"]'))

    wait_until(uploaded, what="the upload to finish", base=120, step=0.05)
    assert any(0 < v < 100 for v in values), f"the bar never showed a step between 0 and 100: {values[-20:]}"
    assert "ACTIVE" in row_state(browser, 'tr[data-name="uploaded"]')
    image = next(
        i for i in cloud["alice"].images.ListImages(ipb.ListImagesRequest()).images if i.name == "uploaded"
    )
    assert image.size_bytes == UPLOAD_MIB * 1024 * 1024 and image.status == ipb.IMAGE_STATUS_ACTIVE


def test_make_a_volume_and_attach_it(browser: Any, cloud: dict) -> None:
    browser.get(cloud["dash"].url + "/volumes")
    browser.find_element(By.ID, "volume-name").send_keys("data1")
    browser.find_element(By.ID, "volume-create").click()
    wait_until(
        lambda: (
            browser.current_url.rstrip("/").endswith("/volumes")
            and browser.execute_script("return document.readyState") == "complete"
            and row_state(browser, 'tr[data-name="data1"]')
        ),
        what="the volume list after the create",
        base=30,
    )
    watch_without_reload(browser, 'tr[data-name="data1"]', "AVAILABLE", "data1's badge to turn AVAILABLE")
    server = cloud["server"]
    browser.get(f"{cloud['dash'].url}/servers/{server.id}")
    assert not one_line_error(browser.page_source), one_line_error(browser.page_source)
    Select(browser.find_element(By.ID, "attach-volume")).select_by_visible_text("data1 (1 GiB)")
    submit(browser, "#attach", "the attach")

    def in_use() -> bool:
        browser.get(f"{cloud['dash'].url}/servers/{server.id}")
        return "IN_USE" in text_of(browser, "#attached")

    wait_until(in_use, what="data1 attached", base=30)
    vol = next(
        v for v in cloud["alice"].volumes.ListVolumes(vpb.ListVolumesRequest()).volumes if v.name == "data1"
    )
    assert vol.instance_id == server.id


def test_type_into_the_serial_console_in_the_browser(browser: Any, cloud: dict) -> None:
    server = cloud["server"]
    browser.get(f"{cloud['dash'].url}/servers/{server.id}/console")
    wait_until(
        lambda: text_of(browser, "#console-status") == "connected",
        what="console connected",
        base=30,
    )
    screen = "return window.kumoTerminal ? [...Array(window.kumoTerminal.buffer.active.length).keys()].map(i => window.kumoTerminal.buffer.active.getLine(i).translateToString(true)).join('\\n') : ''"
    box = browser.find_element(By.CSS_SELECTOR, "#terminal .xterm-helper-textarea")
    box.send_keys("hello-from-the-browser")
    wait_until(
        lambda: "hello-from-the-browser" in browser.execute_script(screen),
        what="the typed text echoed on the console",
        base=30,
        step=0.2,
    )


def test_another_projects_server_is_the_same_page_as_a_missing_one(cloud: dict) -> None:
    client, _ = login(cloud["dash"], cloud["ctl"], "br-bob", "password-123")
    theirs = client.get(f"/servers/{cloud['server'].id}")
    missing = client.get(f"/servers/{UNKNOWN}")
    assert theirs.status_code == missing.status_code == 404
    assert one_line_error(theirs.text).replace(cloud["server"].id, UNKNOWN) == one_line_error(missing.text)
    assert theirs.text.replace(cloud["server"].id, UNKNOWN) == missing.text


def test_a_reader_sees_no_write_buttons_and_a_forged_post_is_refused(browser: Any, cloud: dict) -> None:
    sign_in(browser, cloud, "br-reader")
    server = cloud["server"]
    browser.get(cloud["dash"].url + "/servers")
    assert browser.find_elements(By.CSS_SELECTOR, 'tr[data-name="web1"]')
    assert not browser.find_elements(By.ID, "launch")
    browser.get(f"{cloud['dash'].url}/servers/{server.id}")
    assert not browser.find_elements(By.ID, "actions") and not browser.find_elements(By.ID, "attach")
    for page in ("/images", "/volumes", "/networks", "/keypairs", "/security-groups"):
        browser.get(cloud["dash"].url + page)
        buttons = [b.text for b in browser.find_elements(By.CSS_SELECTOR, "main button")]
        assert buttons == [], (page, buttons)
    answer = browser.execute_async_script(
        "const done = arguments[0];"
        "const token = document.querySelector('meta[name=\"csrf-token\"]').content;"
        f"fetch('/servers/{server.id}/delete', {{method: 'POST', headers: {{'X-CSRF-Token': token}}}})"
        ".then(r => r.text().then(t => done([r.status, t])));"
    )
    assert answer[0] == 403 and one_line_error(answer[1]).endswith("[PERMISSION_DENIED]"), answer
    assert (
        cloud["alice"].compute.GetInstance(cpb.GetInstanceRequest(id=server.id)).state
        == cpb.INSTANCE_STATE_ACTIVE
    )


def test_node_states_and_overcommitted_capacity_update_without_reloading(browser: Any, cloud: dict) -> None:
    """The bars are the scheduler's view: web1's flavor claimed against inventory
    times the allocation ratio (vCPU 4, the controller's default)."""
    admin = cloud["admin"]
    (node,) = admin.nodes.ListNodes(npb.ListNodesRequest()).nodes
    a = node.allocation
    assert a.cpu_allocation_ratio == 4 and a.allocatable_vcpus == 4 * node.inventory.vcpus
    assert a.allocatable_memory_mb == node.inventory.memory_mb and a.allocated_vcpus == 1
    assert a.allocated_memory_mb == 512
    sign_in(browser, cloud, "admin", ADMIN_PASSWORD)
    browser.get(cloud["dash"].url + "/admin/nodes")
    row = f'tr[data-id="{node.id}"]'
    bar = browser.execute_script(
        "const g = document.querySelector(arguments[0] + ' g.bar[data-label=\\'vCPU x4\\']');"
        "return g ? [g.dataset.fraction, g.textContent] : null;",
        row,
    )
    assert bar and bar[1].endswith(f"1 / {a.allocatable_vcpus}"), bar
    assert float(bar[0]) == round(1 / a.allocatable_vcpus, 3)
    browser.execute_script("window.kumoMarker = 'not reloaded';")
    admin.nodes.DisableNode(npb.DisableNodeRequest(id=node.id, reason="by the test"))
    try:
        wait_until(
            lambda: row_state(browser, row) == "DISABLED", what="the node's badge to turn DISABLED", base=30
        )
    finally:
        admin.nodes.EnableNode(npb.EnableNodeRequest(id=node.id))
    wait_until(lambda: row_state(browser, row) == "READY", what="the node's badge back to READY", base=30)
    assert browser.execute_script("return window.kumoMarker") == "not reloaded", "the page was reloaded"


def test_delete_everything(browser: Any, cloud: dict) -> None:
    sign_in(browser, cloud, "br-alice")
    server = cloud["server"]
    browser.get(f"{cloud['dash'].url}/servers/{server.id}")
    submit(browser, "#attached button", "the detach")
    browser.get(cloud["dash"].url + "/volumes")
    watch_without_reload(browser, 'tr[data-name="data1"]', "AVAILABLE", "data1 detached")
    browser.get(f"{cloud['dash'].url}/servers/{server.id}")
    browser.find_element(By.CSS_SELECTOR, "#actions button.danger").click()  # Delete
    # The form's POST navigates to the list; mark that page, not the one left behind.
    wait_until(
        lambda: (
            browser.current_url.rstrip("/").endswith("/servers")
            and browser.execute_script("return document.readyState") == "complete"
        ),
        what="the server list after the delete",
        base=30,
    )
    browser.execute_script("window.kumoMarker = 'not reloaded';")
    wait_until(
        lambda: not browser.find_elements(By.CSS_SELECTOR, 'tr[data-name="web1"]'),
        what="web1 gone from the list by itself",
        base=60,
        step=0.3,
    )
    assert browser.execute_script("return window.kumoMarker") == "not reloaded"
    for page, row in (("/volumes", 'tr[data-name="data1"]'), ("/images", 'tr[data-name="uploaded"]')):
        browser.get(cloud["dash"].url + page)
        submit(browser, f"{row} button.danger", f"deleting {row}")

        def gone(page: str = page, row: str = row) -> bool:
            browser.get(cloud["dash"].url + page)
            return not browser.find_elements(By.CSS_SELECTOR, row)

        wait_until(gone, what=f"{row} gone", base=30)
    alice = cloud["alice"]
    assert not alice.compute.ListInstances(cpb.ListInstancesRequest()).instances
    assert not alice.volumes.ListVolumes(vpb.ListVolumesRequest()).volumes
    assert not [
        i for i in alice.images.ListImages(ipb.ListImagesRequest()).images if i.project_id == cloud["a"].id
    ]
    _ = time


def test_build_a_network_with_a_router_and_a_port_in_the_browser(browser: Any, cloud: dict) -> None:
    """Subnet, router and its interface, a port with a security group, a server
    group: each form in the page, each result in the page that follows and at the API."""
    sign_in(browser, cloud, "br-alice")
    url = cloud["dash"].url
    browser.get(url + "/networks")
    form = browser.find_element(By.ID, "network-form")
    form.find_element(By.NAME, "name").send_keys("br-net")
    submit(browser, "#network-form button", "the network create")
    wait_until(lambda: text_of(browser, 'tr[data-name="br-net"]'), what="br-net listed", base=30)
    Select(browser.find_element(By.ID, "subnet-network")).select_by_visible_text("br-net")
    browser.find_element(By.ID, "subnet-name").send_keys("br-sub")
    browser.find_element(By.ID, "subnet-cidr").send_keys("10.61.0.0/24")
    submit(browser, "#subnet-create", "the subnet create")
    wait_until(lambda: "10.61.0.0/24" in text_of(browser, "#subnets"), what="br-sub listed", base=30)
    browser.find_element(By.ID, "router-name").send_keys("br-router")
    submit(browser, "#router-create", "the router create")
    wait_until(lambda: text_of(browser, 'tr[data-name="br-router"]'), what="br-router listed", base=30)
    submit(browser, 'tr[data-name="br-router"] button.add-interface', "adding the interface")
    wait_until(
        lambda: "10.61.0.1" in text_of(browser, 'tr[data-name="br-router"] .interfaces'),
        what="the router's interface on br-sub",
        base=30,
    )
    assert "br-router" in text_of(browser, "#topology")
    Select(browser.find_element(By.ID, "port-network")).select_by_visible_text("br-net")
    browser.find_element(By.ID, "port-name").send_keys("br-port")
    browser.find_element(By.CSS_SELECTOR, '#port-form input[name="security_group"]').click()
    submit(browser, "#port-create", "the port create")
    wait_until(lambda: "10.61.0." in text_of(browser, 'tr[data-name="br-port"]'), what="br-port", base=30)
    assert not one_line_error(browser.page_source)
    net = cloud["alice"].networks
    (port,) = [p for p in net.ListPorts(netpb.ListPortsRequest()).ports if p.name == "br-port"]
    assert len(port.security_group_ids) == 1
    (router,) = [r for r in net.ListRouters(netpb.ListRoutersRequest()).routers if r.name == "br-router"]
    assert [i.ip_address for i in router.interfaces] == ["10.61.0.1"]

    browser.get(url + "/server-groups")
    browser.find_element(By.ID, "server-group-name").send_keys("br-spread")
    submit(browser, "#server-group-create", "the server group create")
    wait_until(lambda: text_of(browser, 'tr[data-name="br-spread"]'), what="br-spread listed", base=30)
    assert "anti-affinity" in text_of(browser, 'tr[data-name="br-spread"]')
    browser.get(url + "/servers/new")
    Select(browser.find_element(By.ID, "server_group")).select_by_visible_text("br-spread")

    # Taken down again through the page: the port, the interface, the router.
    browser.get(url + "/networks")
    submit(browser, 'tr[data-name="br-port"] button.danger', "deleting br-port")
    wait_until(lambda: not text_of(browser, 'tr[data-name="br-port"]'), what="br-port gone", base=30)
    submit(browser, 'tr[data-name="br-router"] button.remove-interface', "removing the interface")
    wait_until(
        lambda: "10.61.0.1" not in text_of(browser, 'tr[data-name="br-router"] .interfaces'),
        what="the interface removed",
        base=30,
    )
    submit(browser, 'tr[data-name="br-router"] button.danger', "deleting br-router")
    wait_until(lambda: not text_of(browser, 'tr[data-name="br-router"]'), what="br-router gone", base=30)
