"""Headless Chromium with the network off, driven over the DevTools protocol (a minimal websocket client,
standard library only): opens a review page (pcc.outputs.review), times it until the page says it is ready,
collects console errors and requests, and takes screenshots. Used by tools.benchmarks.bench_review and by
tests/outputs/test_review.py.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
HERO = 0.62  # the 3-D view: the left 62 % of the viewer's canvas (page.html: heroImageFraction)


class DevTools:
    """Headless Chromium driven over the DevTools protocol (a minimal websocket client), the network off:
    every request goes to a dead proxy and no host name resolves."""

    FLAGS = ["--headless=new", "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
             "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>", "--host-resolver-rules=MAP * ~NOTFOUND",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--metrics-recording-only", "--mute-audio",
             "--remote-debugging-port=0"]

    def __init__(self, width: int = 1400, height: int = 900):
        self.profile = tempfile.mkdtemp(prefix="pcc-chromium-")
        self.process = subprocess.Popen([CHROMIUM, *self.FLAGS, f"--user-data-dir={self.profile}",
                                         f"--window-size={width},{height}", "about:blank"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.events: list[dict] = []
        self.next_id = 0
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and len(port_file.read_text().split()) >= 2):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("chromium did not start its DevTools endpoint")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        target = self._http(port, "/json/new?about:blank", method="PUT")
        self._connect(port, target["webSocketDebuggerUrl"].split(str(port), 1)[1])
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")

    # -- websocket (RFC 6455), text frames only
    def _http(self, port: int, path: str, method: str = "GET") -> dict:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while b"\r\n\r\n" not in data:
                data += s.recv(65536)
            head, body = data.split(b"\r\n\r\n", 1)
            length = int(re.search(rb"content-length:\s*(\d+)", head, re.IGNORECASE).group(1))
            while len(body) < length:
                body += s.recv(65536)
        return json.loads(body)

    def _connect(self, port: int, path: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=120)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        response = b""
        while b"\r\n\r\n" not in response:
            response += self.sock.recv(1)
        assert b" 101 " in response.split(b"\r\n", 1)[0], response

    def _send(self, text: str) -> None:
        payload = text.encode()
        mask = os.urandom(4)
        n = len(payload)
        header = struct.pack("!B", 0x81) + (struct.pack("!B", 0x80 | n) if n < 126 else
                                             struct.pack("!BH", 0x80 | 126, n) if n < 65536 else struct.pack("!BQ", 0x80 | 127, n))
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def _exact(self, n: int) -> bytes:
        data = bytearray()
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("DevTools closed the connection")
            data += chunk
        return bytes(data)

    def _receive(self) -> dict:
        message = b""
        while True:
            first, second = self._exact(2)
            n = second & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._exact(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._exact(8))[0]
            message += self._exact(n)
            if first & 0x80:
                return json.loads(message)

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self._send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = self._receive()
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return result.get("result", {}).get("value")

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and error log entries (e.g. a blocked or failed request)."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in params.get("args", [])))
            elif method == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                found.append("exception: " + str(details.get("exception", {}).get("description", details.get("text"))))
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                found.append("log: " + params["entry"].get("text", ""))
        return found

    def requests(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"]

    def open(self, path: Path, timeout: float = 60.0) -> float:
        """Load a page and wait until it sets window.pccReady; returns the seconds that took."""
        start = time.monotonic()
        self.call("Page.navigate", url=path.resolve().as_uri())
        while not self.evaluate("window.pccReady === true"):
            if time.monotonic() - start > timeout:
                raise TimeoutError(f"the page was not ready within {timeout} s; errors: {self.errors()}")
            time.sleep(0.05)
        return time.monotonic() - start

    def screenshot(self, selector: str, left_fraction: float = 1.0) -> np.ndarray:
        """(H, W, 3) uint8 RGB of the element's box (of its left `left_fraction`)."""
        from PIL import Image

        box = self.evaluate(f"JSON.stringify(document.querySelector('{selector}').getBoundingClientRect())")
        rect = json.loads(box)
        clip = {"x": rect["x"], "y": rect["y"], "width": rect["width"] * left_fraction, "height": rect["height"], "scale": 1}
        data = self.call("Page.captureScreenshot", format="png", clip=clip)["data"]
        return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))

    def close(self) -> None:
        try:
            self.sock.close()
        except AttributeError:
            pass
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


def colour_counts(image: np.ndarray) -> dict[str, int]:
    """Pixels of each colour class in an RGB screenshot: the implant's blue (confidence ≥ 90 %, or the plain
    implant), its red/yellow (unsure or thin), and the skull's bone (warm, unsaturated, lit)."""
    r, g, b = (image[..., c].astype(int) for c in range(3))
    bright = np.maximum(np.maximum(r, g), b)
    blue = (b > r + 60) & (b > 90)
    warm = (r > 120) & (r > b + 90)  # red or yellow
    bone = (bright > 70) & (r >= g - 6) & (g >= b - 6) & (r - b >= 8) & (r - b <= 70) & ~warm
    return {"implant": int(blue.sum()), "warm": int(warm.sum()), "bone": int(bone.sum())}
