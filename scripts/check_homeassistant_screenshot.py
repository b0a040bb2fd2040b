"""A page of a local Home Assistant as a PNG, with headless Chromium driven over the
DevTools protocol (run by the Home Assistant venv's Python: it has aiohttp).

``--screenshot`` with ``--virtual-time-budget`` never settles on HA's frontend
(its websocket keeps the page busy), and without it the picture is taken while
the frontend still says "Loading data"; so the page is loaded for real, given
time, and captured. Used by scripts/check_homeassistant.py.

    python check_homeassistant_screenshot.py URL OUT.png [--wait 20] [--size 1400x2000]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import aiohttp

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


async def capture(url: str, out: Path, wait: float, width: int, height: int) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("no chromium (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.Popen([chromium, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
                                 f"--window-size={width},{height}", "about:blank"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + 60
            while not port_file.exists() or not port_file.read_text().strip():
                if time.monotonic() > deadline:
                    raise SystemExit("chromium did not start its DevTools endpoint")
                await asyncio.sleep(0.2)
            port = port_file.read_text().split()[0]
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{port}/json/list") as resp:
                    page = next(t for t in await resp.json() if t["type"] == "page")
                async with session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                    ids = itertools.count(1)

                    async def call(method: str, **params: object) -> dict:
                        n = next(ids)
                        await ws.send_json({"id": n, "method": method, "params": params})
                        while True:
                            message = await ws.receive_json()
                            if message.get("id") == n:
                                return message.get("result", {})

                    await call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                               mobile=False)
                    await call("Page.navigate", url=url)
                    await asyncio.sleep(wait)  # the frontend logs in, loads its panels and the device's entities
                    shot = await call("Page.captureScreenshot", format="png")
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(base64.b64decode(shot["data"]))
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("out", type=Path)
    parser.add_argument("--wait", type=float, default=20.0, help="seconds the page is given (default 20)")
    parser.add_argument("--size", default="1400x2000", help="width x height (default 1400x2000)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    asyncio.run(capture(args.url, args.out, args.wait, width, height))


if __name__ == "__main__":
    main()
