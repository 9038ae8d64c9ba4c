"""`timeline serve` in headless Chromium: type a query (completion offered as one types),
move the known-on slider, read the changed answer; no Content-Security-Policy violation.

Chromium is driven over the DevTools protocol on a pipe (--remote-debugging-pipe: JSON
messages ending in NUL on fds 3 and 4), so no WebSocket client is needed. Skipped, with the
reason, where no Chromium is installed (the discovery of tests/test_report_browser.py).
With TIMELINE_WRITE_DOCS_IMG=1 the screenshots go to docs/img/serve-*.png for docs/serve.md.
"""
from __future__ import annotations

import base64
import datetime as dt
import json
import os
import select
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from .test_report_browser import CHROMIUM, DOCS_ENV, FLAGS

uvicorn = pytest.importorskip("uvicorn")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: "
                                "apt-get install chromium; or set TIMELINE_CHROMIUM)")
DOCS_IMG = Path(__file__).resolve().parent.parent / "docs" / "img"
QUERY = "state of us.tariff.ieepa-reciprocal.cn as of 2025-08-13"
WAIT_S = 60  # generous: only so that a wedged browser cannot hang the suite


class Cdp:
    """A DevTools-protocol client over Chromium's debugging pipe."""

    def __init__(self, tmp_path: Path):
        to_child, self._w = os.pipe()
        self._r, from_child = os.pipe()
        profile = tmp_path / "profile"
        profile.mkdir()

        def fds():  # the protocol's fixed descriptors in the child (close_fds=False keeps
            # them: the pipes are close-on-exec, only these two copies are inherited)
            os.dup2(to_child, 3)
            os.dup2(from_child, 4)
        self.proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, "--remote-debugging-pipe", f"--user-data-dir={profile}",
             "--window-size=1200,900", "about:blank"], preexec_fn=fds, close_fds=False,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "HOME": str(tmp_path)})
        os.close(to_child)
        os.close(from_child)
        self.n, self.buf, self.events, self.session = 0, b"", [], None

    def call(self, method: str, **params):
        """Send one command (to the page's session once attached) and wait for its reply."""
        self.n += 1
        msg = {"id": self.n, "method": method, "params": params}
        if self.session and not method.startswith("Target."):
            msg["sessionId"] = self.session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + WAIT_S
        while True:
            reply = self._next(deadline)
            if reply.get("id") == self.n:
                assert "error" not in reply, (method, reply["error"])
                return reply["result"]
            self.events.append(reply)

    def _next(self, deadline: float) -> dict:
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            assert left > 0 and select.select([self._r], [], [], left)[0], "no reply"
            chunk = os.read(self._r, 1 << 20)
            assert chunk, "Chromium closed the pipe"
            self.buf += chunk
        raw, _, self.buf = self.buf.partition(b"\0")
        return json.loads(raw)

    def open_page(self) -> None:
        """A new tab, attached: commands then go to it."""
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target,
                                 flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable")

    def js(self, expression: str):
        """The value of a JavaScript expression in the page (awaited if a promise)."""
        res = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                        awaitPromise=True)
        assert "exceptionDetails" not in res, res
        return res["result"].get("value")

    def wait_for(self, expression: str):
        """Poll until the expression is truthy; its value."""
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            value = self.js(expression)
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"never true: {expression}")

    def go(self, url: str) -> None:
        """Load a page and wait until it is complete."""
        self.call("Page.navigate", url=url)
        self.wait_for(f"location.href === {json.dumps(url)} && "
                      f"document.readyState === 'complete'")

    def screenshot(self, path: Path, whole: bool = True) -> None:
        """The page as a PNG: all of it, or what the window shows."""
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=whole)
        path.write_bytes(base64.b64decode(data["data"]))

    def close(self) -> None:
        """Stop the browser."""
        self.proc.kill()
        self.proc.wait()
        os.close(self._w)
        os.close(self._r)


@pytest.fixture
def server(seeded_db):
    import socket

    import timeline
    from timeline.surfaces.serve.app import make_app

    tl = timeline.open(seeded_db, readonly=True, timeout=30)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    srv = uvicorn.Server(uvicorn.Config(make_app(tl), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not srv.started:
        time.sleep(0.01)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    srv.should_exit = True
    thread.join(timeout=30)
    sock.close()
    tl.close()


@pytest.fixture
def browser(tmp_path):
    cdp = Cdp(tmp_path)
    cdp.open_page()
    yield cdp
    cdp.close()


def _cell(cdp: Cdp, column: str) -> str:
    return cdp.js(f"""(() => {{
        const t = document.getElementById('answer-table');
        const i = [...t.tHead.rows[0].cells].findIndex(c => c.textContent === '{column}');
        return t.tBodies[0].rows[0].cells[i].textContent; }})()""")


def test_type_a_query_move_known_on_and_read_the_new_answer(server, browser, tmp_path):
    cdp = browser
    cdp.go(server + "/ask")
    cdp.js("document.getElementById('q').focus()")
    cdp.call("Input.insertText", text="state of us.tariff.ieepa-r")
    # the completion arrives in the box's datalist, from the REPL's engine
    offered = cdp.wait_for("[...document.querySelectorAll('#q-suggestions option')]"
                           ".map(o => o.value).join('\\n')")
    assert "state of us.tariff.ieepa-reciprocal.cn" in offered.split("\n")
    cdp.call("Input.insertText", text=QUERY.removeprefix("state of us.tariff.ieepa-r"))
    cdp.js("document.querySelector('#ask-form button[type=submit]').click()")
    cdp.wait_for("location.search.includes('q=') && document.readyState === 'complete' && "
                 "!!document.getElementById('answer-table')")
    assert _cell(cdp, "rate") == "10"  # what was in force on 2025-08-13
    shots = {"serve-ask.png": tmp_path / "ask-before.png"}
    # move the known-on slider to 2025-06-10: the page asks again, as known that day
    day = (dt.date(2025, 6, 10) - dt.date(1970, 1, 1)).days
    cdp.js(f"""(() => {{ const s = document.querySelector('input.slider[data-for=known]');
        s.value = '{day}'; s.dispatchEvent(new Event('input'));
        s.dispatchEvent(new Event('change')); }})()""")
    cdp.wait_for("location.search.includes('known=2025-06-10') && "
                 "document.readyState === 'complete' && "
                 "!!document.getElementById('answer-table')")
    assert _cell(cdp, "rate") == "34"  # the Geneva suspension then due to lapse on 12 Aug
    assert cdp.js("document.getElementById('known').value") == "2025-06-10"
    cdp.screenshot(shots["serve-ask.png"])
    cdp.go(server + "/product?p=smartphones&on=2025-04-15&known=2025-04-10")
    assert cdp.js("document.getElementById('total').textContent") == "145"
    day = (dt.date(2025, 4, 12) - dt.date(1970, 1, 1)).days
    cdp.js(f"""(() => {{ const s = document.querySelector('input.slider[data-for=known]');
        s.value = '{day}'; s.dispatchEvent(new Event('change')); }})()""")
    cdp.wait_for("location.search.includes('known=2025-04-12') && "
                 "document.readyState === 'complete'")
    assert cdp.js("document.getElementById('total').textContent") == "20"
    shots["serve-product.png"] = tmp_path / "product.png"
    cdp.screenshot(shots["serve-product.png"])
    cdp.go(server + "/?date=2025-06-12")
    shots["serve-home.png"] = tmp_path / "home.png"
    cdp.screenshot(shots["serve-home.png"], whole=False)
    blocked = [e for e in cdp.events if e.get("method") == "Log.entryAdded"
               and e["params"]["entry"].get("source") == "security"]
    assert not blocked, blocked  # the policy let the page's own script and styles run
    for name, shot in shots.items():
        assert shot.stat().st_size > 20_000, name  # a real picture, not a blank page
        if os.environ.get(DOCS_ENV):
            shutil.copyfile(shot, DOCS_IMG / name)
