"""A lab's server under load: N signed-in users clicking through the pages at once.

Run: .venv/bin/python benchmarks/bench_load.py [--users 20] [--seconds 120]   (needs chromium)

One app server in GEX_AUTH=password mode with N built-in accounts; one Chromium with N browser
contexts (one per user, so N separate sessions and cookies). Each user signs in, then for the
given time opens a random page from the sidebar and waits until the page has its heading and
the script has finished. Latency = click to settled page. Errors = a page showing Streamlit's
error box or exception, a lost session (the sign-in form again), or a page that did not settle
within 120 s. The server is measured as users see it: a browser, not a protocol mock.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from playwright.async_api import Error as PlaywrightError

from gexcore.workspace.accounts import Accounts
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, streamlit_server

PAGES = ["Overview", "Data", "Train", "Embeddings", "Predictions", "Gene importance", "Survival"]
SETTLED = "[data-testid=stApp][data-test-script-state=notRunning]"
ERROR_BOX = "This app has encountered an error"
PAGE_TIMEOUT_MS = 120_000


async def _settle(page, heading: str) -> None:
    await page.get_by_role("heading", name=heading, exact=True).first.wait_for(
        timeout=PAGE_TIMEOUT_MS)
    await page.locator(SETTLED).wait_for(state="attached", timeout=PAGE_TIMEOUT_MS)


async def _user(browser, url: str, name: str, password: str, until: float,
                rng: random.Random, log: list[tuple[str, str, float, str]],
                delay: float = 0.0) -> None:
    """One user's session: after `delay` s, sign in, then click pages until `until`; appends
    (user, page, seconds, error) rows."""
    await asyncio.sleep(delay)
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    page = await context.new_page()
    try:
        t0 = time.perf_counter()
        try:
            await page.goto(url)
            await page.get_by_role("textbox", name="User name").fill(name)
            await page.get_by_role("textbox", name="Password").fill(password)
            await page.get_by_role("button", name="Sign in").click()
            await _settle(page, "Overview")
        except PlaywrightError as err:               # counted, and this user stops
            log.append((name, "sign-in", time.perf_counter() - t0, _why(err)))
            return
        log.append((name, "sign-in", time.perf_counter() - t0, ""))
        while time.perf_counter() < until:
            target = rng.choice(PAGES)
            t0 = time.perf_counter()
            error = ""
            try:
                await page.get_by_test_id("stSidebar").get_by_role("link", name=target).click(
                    timeout=PAGE_TIMEOUT_MS)
                await _settle(page, target)
                if (await page.get_by_test_id("stException").count()
                        or await page.get_by_text(ERROR_BOX).count()):
                    error = "error box"
                elif await page.get_by_role("textbox", name="Password").count():
                    error = "signed out"
            except PlaywrightError as err:           # a timeout: the page never settled
                error = _why(err)
            log.append((name, target, time.perf_counter() - t0, error))
            await asyncio.sleep(rng.uniform(0.5, 2.0))          # a user reading the page
    finally:
        await context.close()


def _why(err: Exception) -> str:
    return f"{type(err).__name__}: {str(err).splitlines()[0][:80]}"


async def _run(url: str, users: dict[str, str], seconds: float, ramp: float) -> list:
    from playwright.async_api import async_playwright

    log: list[tuple[str, str, float, str]] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        until = time.perf_counter() + ramp + seconds
        step = ramp / max(1, len(users) - 1)
        await asyncio.gather(*(
            _user(browser, url, name, password, until, random.Random(i), log, i * step)
            for i, (name, password) in enumerate(users.items())), return_exceptions=False)
        await browser.close()
    return log


def _quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1] \
        if len(values) > 1 else values[0]


def _table(log: list[tuple[str, str, float, str]], users: int, seconds: float,
           ramp: float) -> str:
    rows = ["| page | loads | errors | p50 s | p95 s | max s |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name in ["sign-in", *PAGES, "all pages"]:
        hits = [r for r in log if (r[1] == name if name != "all pages" else r[1] != "sign-in")]
        if not hits:
            continue
        ok = [r[2] for r in hits if not r[3]]
        errors = len(hits) - len(ok)
        stats = (f"{statistics.median(ok):.2f} | {_quantile(ok, 0.95):.2f} | {max(ok):.2f}"
                 if ok else "- | - | -")
        rows.append(f"| {name} | {len(hits)} | {errors} | {stats} |")
    kinds = sorted({r[3] for r in log if r[3]})
    return (f"{users} signed-in users for {seconds:.0f} s (started over {ramp:.0f} s)\n\n"
            + "\n".join(rows)
            + (f"\n\nerrors: {', '.join(kinds)}" if kinds else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--ramp", type=float, default=0.0,
                        help="start the users evenly over this many seconds (0: all at once)")
    args = parser.parse_args()
    assert Path(CHROMIUM).exists(), "Debian chromium missing: apt-get install -y chromium"
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "workspaces"
        accounts = Accounts(base)
        users = {f"user{i:02d}": f"password-{i:02d}-load" for i in range(args.users)}
        for name, password in users.items():
            accounts.add(name, password)
        with streamlit_server(base, Path(tmp) / "streamlit.log",
                              env={"GEX_AUTH": "password"}) as url:
            log = asyncio.run(_run(url, users, args.seconds, args.ramp))
    print(_table(log, args.users, args.seconds, args.ramp))


if __name__ == "__main__":
    main()
