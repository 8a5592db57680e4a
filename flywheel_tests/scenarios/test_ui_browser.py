"""The Dagster UI in a real browser: the webserver on a demo home, headless Chromium (Debian's
package) driven by Playwright. It opens the asset graph, the model, the A/B result and the
flywheel's health, fails on page errors or missing elements, and saves screenshots
(``FLYWHEEL_SCREENSHOT_DIR`` to keep them, e.g. ``docs/screenshots``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from flywheel_assets.platform.dev_broker import free_port
from flywheel_tests.support.homes import SMALL_SHOP_GROUP, DemoHome

# Both tests share the webserver on the small shop's home, which the serving tests read too
# (conftest.small_shop_home): one worker runs them all, so it is built once.
pytestmark = pytest.mark.xdist_group(SMALL_SHOP_GROUP)


def chromium() -> str:
    path = os.environ.get("FLYWHEEL_CHROMIUM") or shutil.which("chromium")
    if path:
        return path
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("Debian's chromium is not installed (.ci/run installs it)")
    pytest.skip("no chromium: apt-get install chromium")


@pytest.fixture(scope="module")
def webserver(small_shop_home: DemoHome):
    browser = chromium()
    home = small_shop_home.path
    # As the README opens the UI: the settings are the demo home's flywheel.env, sourced.
    sourced = subprocess.run(
        ["bash", "-c", f"source {home / 'flywheel.env'} && env -0"],
        capture_output=True, check=True, text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("FLYWHEEL_")},
    ).stdout  # fmt: skip
    env = dict(line.split("=", 1) for line in sourced.split("\0") if "=" in line)
    env["GX_ANALYTICS_ENABLED"] = "false"
    port = free_port()
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-webserver"), "-m", "flywheel_assets.definitions",
         "-h", "127.0.0.1", "-p", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/server_info", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, "dagster-webserver exited"
            assert time.monotonic() < deadline, "dagster-webserver did not start"
            time.sleep(1)
        yield url, browser
    finally:
        proc.terminate()
        proc.wait(30)


def test_a_demo_homes_partitions_are_its_days(webserver) -> None:
    """Over the UI's own GraphQL: every daily asset has exactly the demo's three days as
    partitions, all of them materialized (not "1,071 partitions: 3 materialized")."""
    url, _ = webserver
    query = """{ assetNodes(assetKeys: [{path: ["accepted_events"]}, {path: ["challenger_model"]}])
                 { assetKey { path } partitionKeys
                   partitionStats { numMaterialized numPartitions numFailed } } }"""
    answer = httpx.post(f"{url}/graphql", json={"query": query}, timeout=60).json()
    nodes = answer["data"]["assetNodes"]
    assert len(nodes) == 2, answer
    for node in nodes:
        assert node["partitionKeys"] == ["2026-02-01", "2026-02-02", "2026-02-03"], node
        stats = node["partitionStats"]
        assert (stats["numPartitions"], stats["numMaterialized"]) == (3, 3), node


@pytest.mark.slow
def test_the_ui_tells_the_story_in_a_real_browser(webserver, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, browser_path = webserver
    shots = Path(os.environ.get("FLYWHEEL_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=browser_path, headless=True, args=["--no-sandbox"]
        )
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.set_default_timeout(60_000)

        # The first-visit newsletter dialog can appear at any moment: dismiss it whenever it
        # stands in the way of an action.
        page.add_locator_handler(page.get_by_role("button", name="Skip"), lambda skip: skip.click())

        def open_page(path: str) -> None:
            page.goto(url + path, wait_until="networkidle")

        def show_metadata(key: str, prefix: bool = False) -> None:
            page.keyboard.press("Escape")  # an open markdown dialog
            page.get_by_placeholder("Filter metadata keys").fill(key)
            if not prefix:
                expect(page.get_by_text(key, exact=True).first).to_be_visible()

        def open_markdown(key: str) -> object:
            """A markdown metadata value opens in a dialog: the dialog."""
            show_metadata(key)
            page.get_by_text("[Show Markdown]").first.click()
            dialog = page.get_by_role("dialog").first
            expect(dialog).to_be_visible()
            page.wait_for_timeout(600)  # the dialog fades in: screenshot it opaque
            return dialog

        # the asset graph: every stage of the cycle is a group in it
        open_page("/asset-groups")
        for group in ("ingestion", "quality", "features", "training", "evaluation", "promotion",
                      "serving", "reporting"):  # fmt: skip
            expect(page.get_by_text(group, exact=True).first).to_be_visible()
        page.screenshot(path=shots / "asset-graph.png")

        # the partitions: the demo's days, all materialized
        open_page("/assets/accepted_events?view=partitions")
        expect(page.get_by_text("2026-02-03").first).to_be_visible()
        page.screenshot(path=shots / "partitions.png")

        # the model: its metrics as numbers, and what it learned
        open_page("/assets/challenger_model")
        show_metadata("valid_", prefix=True)
        for metric in ("valid_auc", "valid_log_loss", "valid_ndcg_at_10"):
            expect(page.get_by_text(metric, exact=True).first).to_be_visible()
        page.screenshot(path=shots / "model-metrics.png")
        dialog = open_markdown("feature_importance")
        expect(dialog.locator("img").first).to_be_visible()
        page.screenshot(path=shots / "model-importance.png")

        # the A/B result: every metric with its interval, and the effect over the days
        open_page("/assets/online_evaluation")
        # six narrow columns: short enough for the UI to show the table in place
        show_metadata("results")
        for metric in ("sample_ratio", "purchase_rate", "guardrail:ctr"):
            cell = page.get_by_text(metric, exact=True).first
            expect(cell).to_be_visible()
        page.get_by_text("effect [always-valid 95% CI]").first.scroll_into_view_if_needed()
        page.screenshot(path=shots / "ab-result.png")
        dialog = open_markdown("effect_over_days")
        expect(dialog.locator("img").first).to_be_visible()
        page.screenshot(path=shots / "ab-effect.png")

        # is the flywheel getting better
        open_page("/assets/flywheel_health")
        dialog = open_markdown("plot")
        expect(dialog.locator("img").first).to_be_visible()
        page.screenshot(path=shots / "flywheel-health.png")
        browser.close()
    assert not errors, errors
    assert {f.name for f in shots.glob("*.png")} >= {
        "asset-graph.png",
        "model-metrics.png",
        "ab-result.png",
        "flywheel-health.png",
    }
