"""Open every page of the built book in headless Chromium and check it.

The book in ``_build/html`` (``make book``) is served on 127.0.0.1 and each page
is loaded in Debian's ``/usr/bin/chromium``, driven through the Chrome DevTools
protocol over ``--remote-debugging-pipe`` (standard library only, no driver).
For every page:

* no console errors, uncaught exceptions or failed loads;
* no request leaves 127.0.0.1 (the book must work offline: no CDN);
* every math element of the source was typeset by MathJax (SVG output);
* every ``<img>`` loaded (``naturalWidth > 0``), and the pages of ``FIGURES``
  show exactly that many figures (images at least 200 px wide in cell outputs);
* a screenshot is saved to ``_build/screenshots/``.

Skipped when Chromium or the built book is missing; fails instead when
``LMMLITE_REQUIRE_BROWSER=1`` (set by ``.ci/run``, which builds the book first).
"""

from __future__ import annotations

import base64
import functools
import http.server
import json
import os
import queue
import shutil
import tempfile
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HTML = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
TIMEOUT = 60.0
# pages whose figures must all be there: the number of matplotlib figures they draw
FIGURES = {"chapters/05b-checking.html": 12}


def _pages() -> list[str]:
    if not HTML.is_dir():
        return []
    return sorted(p.relative_to(HTML).as_posix() for p in HTML.rglob("*.html")
                  if not p.relative_to(HTML).parts[0].startswith("_"))


def _missing() -> str | None:
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return f"{CHROMIUM} not found (apt-get install chromium)"
    if not (HTML / "index.html").exists():
        return "the book is not built (run `make book`)"
    return None


@pytest.fixture(scope="module", autouse=True)
def _require_browser():
    reason = _missing()
    if reason:
        if os.environ.get("LMMLITE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"LMMLITE_REQUIRE_BROWSER=1 but {reason}", pytrace=False)
        pytest.skip(reason)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    handler = functools.partial(_Quiet, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class Chromium:
    """Headless Chromium driven by CDP messages over fds 3 (in) and 4 (out)."""

    def __init__(self):
        self.profile = tempfile.mkdtemp(prefix="lmmlite-chromium-")
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        devnull = os.open(os.devnull, os.O_RDWR)
        args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--no-default-browser-check",
                "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
                f"--user-data-dir={self.profile}", "--remote-debugging-pipe",
                "about:blank"]
        actions = [(os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, devnull, 1),
                   (os.POSIX_SPAWN_DUP2, devnull, 2),
                   (os.POSIX_SPAWN_DUP2, to_chrome_r, 3),
                   (os.POSIX_SPAWN_DUP2, from_chrome_w, 4)]
        self.pid = os.posix_spawn(CHROMIUM, args, os.environ, file_actions=actions)
        for fd in (to_chrome_r, from_chrome_w, devnull):
            os.close(fd)
        self._id = 0
        self._replies: dict[int, queue.Queue] = {}
        self.events: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        buf = b""
        while True:
            chunk = os.read(self._from_chrome, 1 << 16)
            if not chunk:
                break
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "id" in msg:
                    with self._lock:
                        q = self._replies.get(msg["id"])
                    if q is not None:
                        q.put(msg)
                else:
                    self.events.put(msg)

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = TIMEOUT) -> dict:
        with self._lock:
            self._id += 1
            mid = self._id
            q = self._replies[mid] = queue.Queue()
        msg = {"id": mid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        reply = q.get(timeout=timeout)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def close(self):
        try:
            self.send("Browser.close", timeout=10)
        except Exception:
            pass
        try:
            for _ in range(50):
                if os.waitpid(self.pid, os.WNOHANG)[0]:
                    break
                time.sleep(0.1)
            else:
                os.kill(self.pid, 9)
                os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass
        os.close(self._to_chrome)
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture(scope="module")
def browser():
    chrome = Chromium()
    yield chrome
    chrome.close()


_CHECKS = """
(async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  await Promise.all(Array.from(document.images).map(img => img.complete ? null :
      new Promise(r => { img.onload = img.onerror = r; })));
  const math = document.querySelectorAll('span.math, div.math');
  return {
    math: math.length,
    typeset: document.querySelectorAll('mjx-container').length,
    merror: document.querySelectorAll('mjx-merror').length,
    raw_tex: Array.from(math).filter(m => !m.querySelector('mjx-container'))
                  .map(m => m.textContent.slice(0, 60)),
    mathjax: !!(window.MathJax && MathJax.version),
    images: document.images.length,
    figures: Array.from(document.images).filter(i => i.naturalWidth >= 200 &&
        i.closest('.cell_output')).length,
    broken: Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))
                 .map(i => i.src),
  };
})()
"""


def _drain(q: queue.Queue) -> list[dict]:
    out = []
    while True:
        try:
            out.append(q.get_nowait())
        except queue.Empty:
            return out


@pytest.mark.parametrize("page", _pages() or ["index.html"])
def test_page_renders(page, server, browser):
    target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.send("Target.attachToTarget",
                           {"targetId": target, "flatten": True})["sessionId"]
    try:
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.send(f"{domain}.enable", session=session)
        browser.send("Emulation.setDeviceMetricsOverride",
                     {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False},
                     session=session)
        _drain(browser.events)
        url = f"{server}/{page}"
        browser.send("Page.navigate", {"url": url}, session=session)
        deadline = time.monotonic() + TIMEOUT
        events = []
        while time.monotonic() < deadline:
            try:
                ev = browser.events.get(timeout=1)
            except queue.Empty:
                continue
            events.append(ev)
            if ev.get("method") == "Page.loadEventFired" and ev.get("sessionId") == session:
                break
        else:
            pytest.fail(f"{page}: load event not fired within {TIMEOUT} s")
        result = browser.send("Runtime.evaluate",
                              {"expression": _CHECKS, "awaitPromise": True,
                               "returnByValue": True}, session=session)
        if "exceptionDetails" in result:
            pytest.fail(f"{page}: check script failed: {result['exceptionDetails']}")
        info = result["result"]["value"]
        time.sleep(0.3)  # let late console messages arrive
        SHOTS.mkdir(parents=True, exist_ok=True)
        shot = browser.send("Page.captureScreenshot", {"format": "png"}, session=session)
        (SHOTS / (page.replace("/", "__").removesuffix(".html") + ".png")).write_bytes(
            base64.b64decode(shot["data"]))
        events += _drain(browser.events)
    finally:
        browser.send("Target.closeTarget", {"targetId": target})

    mine = [e for e in events if e.get("sessionId") == session]
    problems = []
    for e in mine:
        m, p = e.get("method"), e.get("params", {})
        if m == "Runtime.exceptionThrown":
            d = p["exceptionDetails"]
            problems.append(f"uncaught: {d.get('exception', {}).get('description') or d.get('text')}")
        elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            problems.append("console.error: " + " ".join(
                str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
        elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
            problems.append(f"log: {p['entry'].get('text')} {p['entry'].get('url', '')}")
        elif m == "Network.requestWillBeSent":
            req = p["request"]["url"]
            if not req.startswith((server, "data:", "blob:", "about:")):
                problems.append(f"off-site request: {req}")
        elif m == "Network.loadingFailed" and not p.get("canceled"):
            problems.append(f"failed to load: {p.get('errorText')}")
    assert not problems, f"{page}:\n  " + "\n  ".join(problems)
    if info["math"]:
        assert info["mathjax"], f"{page}: has math but MathJax did not load"
        assert not info["raw_tex"], f"{page}: math not typeset: {info['raw_tex'][:5]}"
        assert info["typeset"] >= info["math"], info
        assert info["merror"] == 0, f"{page}: MathJax errors in {info['merror']} formulas"
    assert not info["broken"], f"{page}: images not loaded: {info['broken']}"
    if page in FIGURES:
        assert info["figures"] == FIGURES[page], \
            f"{page}: {info['figures']} figures in cell outputs, expected {FIGURES[page]}"
