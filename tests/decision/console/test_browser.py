"""The console in a real browser: headless Chromium (Debian's chromium and chromium-driver, driven by Selenium)
against ``decision console`` run as a command, a real decision server and Redis holding the retail example.

Every page renders with real data; the why-not answer is right for a profile built to miss by one condition;
scripts in a profile's attributes and id are shown as text and never run; a token without the console scope is
refused. ``CONSOLE_SCREENSHOTS=docs/console ./dev test tests/decision/console/test_browser.py`` also writes the
screenshots of docs/console.md (PNG, one per page).
"""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from decision.store.embedded import free_port
from tests.conftest import StartServer, decision_stub
from tests.decision.console.world import (
    CONSOLE_TOKEN,
    DECIDE_TOKEN,
    ONE_MISS,
    SCRIPT_ATTRIBUTES,
    SCRIPT_ID,
    SCRIPTED,
    World,
    candidate,
    retail_world,
)
from tests.decision.helpers import decide_request
from tests.test_readme_tour import Service
from tests.waiting import eventually_sync

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
SCREENSHOTS = os.environ.get("CONSOLE_SCREENSHOTS", "")
WIDTH, MAX_HEIGHT = 1280, 2200

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="no headless browser: install Debian's chromium and chromium-driver (apt-get install -y chromium "
    "chromium-driver; .ci/run does) to run the console's browser tests",
)


class Console(Service):
    """``decision console`` as a user starts it (tests/test_readme_tour.py's ``Service``: until ``listening on``)."""

    def __init__(self, world: World, directory: Path) -> None:
        tokens = directory / "tokens"
        tokens.write_text(f"{CONSOLE_TOKEN} console\n{DECIDE_TOKEN} decide\n")
        self.port = free_port()
        command = [
            sys.executable, "-m", "decision.cli", "console", "--redis-url", world.redis_url,
            "--port", str(self.port), "--auth-tokens-file", str(tokens), "--target", world.target,
            "--metrics-url", world.metrics_url, "--scrape-interval", "1", "--sample", "200",
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("DECISION_")}
        super().__init__(f"exec {shlex.join(command)}", env)
        self.url = f"http://127.0.0.1:{self.port}"


@pytest.fixture
async def world(start_server: StartServer, redis_url: str) -> World:
    return await retail_world(start_server, redis_url)


@pytest.fixture
async def console(world: World, tmp_path: Path) -> AsyncIterator[Console]:
    running = Console(world, tmp_path)
    try:
        await asyncio.to_thread(running.wait_ready)
        yield running
    finally:
        running.stop()
    assert "Traceback" not in "".join(running.output), "".join(running.output)


@pytest.fixture
def browser() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = tempfile.mkdtemp(prefix="console-chromium-")
    for argument in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", f"--user-data-dir={profile}", f"--window-size={WIDTH},900",
        "--hide-scrollbars", "--force-device-scale-factor=1",
    ):  # fmt: skip
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def snap(driver: object, name: str) -> None:
    """The page as a PNG in $CONSOLE_SCREENSHOTS (the whole page, up to MAX_HEIGHT pixels)."""
    if not SCREENSHOTS:
        return
    height = min(int(driver.execute_script("return document.documentElement.scrollHeight")), MAX_HEIGHT)  # type: ignore[attr-defined]
    driver.set_window_size(WIDTH, max(height, 400))  # type: ignore[attr-defined]
    Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(Path(SCREENSHOTS) / f"{name}.png"))  # type: ignore[attr-defined]
    driver.set_window_size(WIDTH, 900)  # type: ignore[attr-defined]


def the_tour(driver: object, console: Console, candidate_file: Path) -> None:
    """What a marketer does, page by page (blocking: Selenium; the test's event loop serves the decisions)."""
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support.ui import Select

    assert isinstance(driver, WebDriver)

    def text() -> str:
        return str(driver.find_element(By.TAG_NAME, "body").text)

    def never_ran() -> None:
        with pytest.raises(NoAlertPresentException):
            driver.switch_to.alert.text  # noqa: B018 (an alert open would be a script that ran)
        assert driver.execute_script("return typeof window.__pwned") == "undefined"

    def titled(prefix: str) -> None:  # a form's answer is another page: until it is the one shown
        eventually_sync(lambda: driver.title.startswith(prefix), f"the page {prefix!r}")

    def sign_in(token: str) -> None:
        box = driver.find_element(By.NAME, "token")
        box.clear()
        box.send_keys(token)
        driver.find_element(By.CSS_SELECTOR, "form[action='/login'] button").click()

    # Not signed in: the sign-in page, then a token without the console scope is refused.
    driver.get(f"{console.url}/profile?id=p-1001")
    assert driver.title.startswith("Sign in")
    sign_in(DECIDE_TOKEN)
    titled("Forbidden (403)")
    assert "lacks the 'console' scope" in text()
    driver.get(f"{console.url}/login?next=/profile%3Fid%3Dp-1001")
    sign_in(CONSOLE_TOKEN)
    # The profile: audiences, attributes, counters.
    titled("Profile")
    assert "vip-customers" in text() and "web_banners_weekly" in text()
    assert "tier" in text() and "gold" in text()
    snap(driver, "profile")
    # Script in a profile's attributes and in a profile id: text, never run.
    driver.get(f"{console.url}/profile?id={SCRIPTED}")
    values = [cell.text for cell in driver.find_elements(By.CSS_SELECTOR, "span.value")]
    for _, value in SCRIPT_ATTRIBUTES.values():
        assert value in values
    never_ran()
    box = driver.find_element(By.NAME, "id")
    box.clear()
    box.send_keys(SCRIPT_ID)
    box.submit()
    eventually_sync(lambda: SCRIPT_ID in text(), "the profile with a script in its id")
    never_ran()
    # Decide as the profile that misses the VIP banner by one condition, then ask why not.
    driver.get(f"{console.url}/profile?id={ONE_MISS}")
    Select(driver.find_element(By.NAME, "channel")).select_by_visible_text("web")
    for box in driver.find_elements(By.NAME, "placement"):
        if box.is_selected() != (box.get_attribute("value") == "home_banner"):
            box.click()
    driver.find_element(By.NAME, "context").send_keys("page_path=/")
    driver.find_element(By.CSS_SELECTOR, "form[action='/decide'] button").click()
    titled("Decide as this profile")
    row = driver.find_element(By.XPATH, "//tr[td[1][text()='vip_early_access']]")
    assert "in_excluded_audience" in row.text
    snap(driver, "decide")
    row.find_element(By.LINK_TEXT, "why not?").click()
    titled("Why not this offer?")
    assert "the profile leaves audience 'email-unsubscribed'" in text()
    assert "Outcome: in_excluded_audience" in text()
    snap(driver, "why-not")
    # Offers and experiments: the report, its verdict, the allocation.
    driver.get(f"{console.url}/offers")
    said = text()
    assert "can we stop?" in said and "Thompson allocation now" in said and "Sample ratio" in said
    assert len(driver.find_elements(By.TAG_NAME, "svg")) >= 3
    snap(driver, "offers")
    # Changes: the versions, a diff, a candidate compared on a sample of profiles.
    driver.get(f"{console.url}/changes")
    assert "campaign-manager" in text() and "(active)" in text()
    snap(driver, "changes")
    driver.find_element(By.CSS_SELECTOR, "form[action='/changes/diff'] button").click()
    titled("Changes: diff")
    assert "~ placement cart_upsell: ranking" in text()
    snap(driver, "diff")
    driver.get(f"{console.url}/changes")
    driver.find_element(By.NAME, "file").send_keys(str(candidate_file))
    context = driver.find_element(By.CSS_SELECTOR, "form[action='/changes/compare'] textarea[name='context']")
    context.send_keys("page_path=/")
    driver.find_element(By.CSS_SELECTOR, "form[action='/changes/compare'] button").click()
    titled("Changes: a candidate compared")
    assert "vip_early_access → welcome_generic" in text() and "changed:" in text()
    snap(driver, "compare")
    # Live: the replica's figures.
    driver.get(f"{console.url}/live")
    eventually_sync(lambda: driver.refresh() or " up " in f" {text()} ", "the replica scraped")
    snap(driver, "live")
    # Signing out ends the session.
    driver.find_element(By.CSS_SELECTOR, "form[action='/logout'] button").click()
    titled("Sign in")
    driver.get(f"{console.url}/offers")
    assert driver.title.startswith("Sign in")


async def test_a_marketer_tours_the_console(console: Console, world: World, browser: object, tmp_path: Path) -> None:
    candidate_file = tmp_path / "candidate.yaml"
    candidate_file.write_text(candidate())
    stop = asyncio.Event()

    async def traffic() -> None:  # visitors meanwhile: the Live page has decisions to count
        async with decision_stub(world.server.port) as stub:
            for n in range(20_000):
                if stop.is_set():
                    return
                request = decide_request(f"v-{n % 100:03d}", ("home_banner",), context={"page_path": "/"})
                await stub.Decide(request, timeout=10)
                await asyncio.sleep(0.02)

    visitors = asyncio.create_task(traffic())
    try:
        await asyncio.to_thread(the_tour, browser, console, candidate_file)
    finally:
        stop.set()
        await visitors
