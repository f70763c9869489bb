"""The review page (pcc.outputs.review): self-contained, escaped, within its size; and, in headless
Chromium with the network off, it renders the implant over the skull without logging an error.

The browser tests drive Debian's `chromium` through the DevTools protocol (tools.benchmarks.browser) and are
skipped, saying so, where chromium is not installed (`make test` installs it). Times are measured by
tools.benchmarks.bench_review, not asserted here.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest

from pcc.outputs.review import write_review_index, write_review_page
from pcc.volume import Volume
from tools.benchmarks.browser import CHROMIUM, HERO, DevTools, colour_counts

EXAMPLES = Path(__file__).resolve().parents[2] / "pcc" / "examples"
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install chromium)")

REPORT = {
    "case": "s01",
    "status": "done",
    "implant": {"volume_mm3": 12345.0, "thickness_min_mm": 1.5, "thickness_p05_mm": 2.5, "thickness_mean_mm": 4.5,
                "thickness_max_mm": 6.0, "area_mm2": 5000.0},
    "quality": {"expected_dsc": 0.87, "review": True, "reasons": ["unsure over 1.2 cm³ <img src=x onerror=alert(1)>"]},
    "warnings": ["thin & <b>bold</b> \"quoted\" </script><script>alert(2)</script>"],
}


def synthetic_case(size: int = 96, confidence: int | None = 95) -> dict:
    """A 1 mm grid with a spherical skull shell (radii 36..42 mm) missing a cap on its right side
    (+x in RAS, -x in LPS), the cap as the implant, and a uniform confidence map (percent)."""
    index = np.indices((size,) * 3, dtype=np.float32) - (size - 1) / 2
    radius = np.sqrt((index**2).sum(axis=0))
    shell = (radius >= 36) & (radius <= 42)
    cap = shell & (index[0] < -24)  # LPS x < 0: the patient's right
    directions = np.eye(3)
    origin = np.array([-(size - 1) / 2, -(size - 1) / 2, 0.0])
    skull = Volume((shell & ~cap).astype(np.uint8), directions, origin)
    implant = skull.with_array(cap.astype(np.uint8))
    conf = None if confidence is None else skull.with_array(np.where(cap, confidence, 0).astype(np.uint8))
    return {"defective": skull, "implant": implant, "confidence": conf}


def page_resources(text: str) -> list[str]:
    """Every external resource the page's markup or scripts would load: src/href attributes, CSS url(),
    import/fetch/XMLHttpRequest/WebSocket/Worker targets that name http(s) or protocol-relative URLs."""
    patterns = [
        r"""(?:src|href|action|poster|data)\s*=\s*["']?\s*((?:https?:)?//[^"'\s>]+)""",
        r"""url\(\s*["']?((?:https?:)?//[^"')]+)""",
        r"""\bimport\s*(?:\(|[^;'"]*from\s*)\s*["']((?:https?:)?//[^"']+)""",
        r"""\b(?:fetch|open|WebSocket|Worker|EventSource|importScripts)\s*\(\s*(?:["']GET["']\s*,\s*)?["']((?:https?:|wss?:)?//[^"']+)""",
    ]
    return [m for p in patterns for m in re.findall(p, text, flags=re.IGNORECASE)]


# ---------------------------------------------------------------------------------------- unit tests


def test_the_resource_check_finds_what_a_page_would_load():
    page = ('<script src="https://cdn.example/niivue.js"></script><link href="//fonts.example/a.css">'
            "<style>body{background:url(http://x.example/b.png)}</style><script>fetch('https://api.example/v')</script>")
    assert len(page_resources(page)) == 4
    assert page_resources('<a title="see https://niivue.com">x</a><script>/* https://x.example */</script>') == []


def test_page_is_self_contained_and_escaped(tmp_path):
    case = synthetic_case()
    path = write_review_page(tmp_path / "s01.html", case_name="s01 <x>", report=REPORT, version="9.9.9", **case)
    text = path.read_text(encoding="utf-8")
    assert path.name == "s01.html" and not list(tmp_path.glob(".*tmp*"))  # written atomically, no leftovers
    assert page_resources(text) == []
    assert "<title>s01 &lt;x&gt; — pcc 9.9.9 implant review</title>" in text
    # the report's text appears escaped, never as markup
    assert "<img src=x" not in text and "<b>bold</b>" not in text and "alert(2)</script>" not in text
    assert html.escape("<img src=x onerror=alert(1)>") in text
    assert "thin &amp; &lt;b&gt;bold&lt;/b&gt;" in text
    data = json.loads(re.search(r'<script id="pcc-data" type="application/json">(.*?)</script>', text, re.S).group(1))
    assert data["legend"]["what"] == "confidence" and data["mesh"] is not None and data["ct"] is None
    assert path.stat().st_size < 3_000_000  # the viewer (~0.9 MB) and a small case


def test_page_without_confidence_colours_by_thickness_and_shows_ct(tmp_path):
    case = synthetic_case(confidence=None)
    skull = case["defective"]
    ct = skull.with_array(np.where(skull.array > 0, 1200, -1000).astype(np.int16))
    path = write_review_page(tmp_path / "s02.html", case_name="s02", ct=ct, report={"case": "s02"}, version="1", **case)
    text = path.read_text(encoding="utf-8")
    data = json.loads(re.search(r'<script id="pcc-data" type="application/json">(.*?)</script>', text, re.S).group(1))
    assert data["legend"]["what"] == "thickness" and data["ct"] is not None
    # the thickness values of the 6 mm shell lie near 6 mm on the 0..8 mm scale
    values = np.frombuffer(__import__("gzip").decompress(base64.b64decode(data["mesh"]["values"])), np.uint8)
    assert abs(np.median(values) / 255 * 8 - 6) < 1.5


def test_empty_implant_still_writes_a_page(tmp_path):
    case = synthetic_case()
    empty = case["implant"].with_array(np.zeros(case["implant"].shape, np.uint8))
    path = write_review_page(tmp_path / "e.html", case_name="e", defective=case["defective"], implant=empty,
                             report={"case": "e", "warnings": ["no implant"]}, version="1")
    data = json.loads(re.search(r'<script id="pcc-data" type="application/json">(.*?)</script>', path.read_text(), re.S).group(1))
    assert data["implant"] is None and data["mesh"] is None


def test_background_is_pooled_to_its_budget_and_implant_kept(tmp_path, monkeypatch):
    import pcc.outputs.review as review

    monkeypatch.setattr(review, "BACKGROUND_VOXELS", 100_000)
    case = synthetic_case()
    text = write_review_page(tmp_path / "p.html", case_name="p", report={}, version="1", **case).read_text()
    data = json.loads(re.search(r'<script id="pcc-data" type="application/json">(.*?)</script>', text, re.S).group(1))
    import gzip

    import nibabel

    def dims(entry):
        image = nibabel.Nifti1Image.from_bytes(gzip.decompress(base64.b64decode(entry["b64"])))
        return image.shape, image.header.get_zooms()

    skull_shape, skull_zooms = dims(data["skull"])
    implant_shape, implant_zooms = dims(data["implant"])
    assert np.prod(skull_shape) <= 100_000 and skull_zooms[0] >= 2  # pooled
    assert implant_zooms == (1.0, 1.0, 1.0)  # full resolution


def test_index_lists_every_case(tmp_path):
    rows = [
        {**REPORT, "case": "a<1>", "page": "a<1>.html"},
        {"case": "b", "status": "done", "implant": {"volume_mm3": 2000.0}, "quality": {"review": False}, "warnings": []},
        {"case": "c", "status": "failed", "error": "unreadable & broken"},
    ]
    path = write_review_index(tmp_path, rows)
    text = path.read_text(encoding="utf-8")
    assert path == tmp_path / "index.html" and page_resources(text) == []
    assert 'href="a%3C1%3E.html"' in text and ">a&lt;1&gt;</a>" in text  # URL-quoted, then escaped
    assert 'href="b.html"' in text and 'href="c.html"' not in text  # a failed case has no page to link
    assert "12.3" in text and "2.0" in text  # volumes in cm³
    assert "1 flagged for review" in text and "3 cases" in text
    assert "unreadable &amp; broken" in text and "<img src=x" not in text


# ------------------------------------------------------------------------------- in a real browser


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium)")
    devtools = DevTools()
    yield devtools
    devtools.close()


@pytest.mark.slow
@needs_chromium
def test_page_renders_implant_over_skull_offline(browser, tmp_path):
    path = write_review_page(tmp_path / "s01.html", case_name="s01", report=REPORT, version="1", **synthetic_case())
    browser.events.clear()
    browser.open(path)  # waits until the page says it is ready (at most a minute: a hang fails, a slow page does not)
    shot = browser.screenshot("#canvas", HERO)
    Path(os.environ.get("PCC_REVIEW_SHOT_DIR", tmp_path), "review_synthetic.png").parent.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    Image.fromarray(shot).save(Path(os.environ.get("PCC_REVIEW_SHOT_DIR", tmp_path)) / "review_synthetic.png")
    counts = colour_counts(shot)
    assert browser.errors() == []
    assert [u for u in browser.requests() if not u.startswith(("file:", "data:", "blob:"))] == []
    assert counts["implant"] > 2000 and counts["bone"] > 2000, counts
    # the toggle hides the implant: its colour leaves the 3-D view, the bone stays
    browser.evaluate("document.getElementById('show-implant').click(); new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    hidden = colour_counts(browser.screenshot("#canvas", HERO))
    assert hidden["implant"] < counts["implant"] / 20 and hidden["bone"] > 2000, (counts, hidden)
    assert browser.errors() == []


@pytest.mark.slow
@needs_chromium
def test_example_case_page_size_time_and_render(browser, tmp_path):
    """The bundled 512×512×211 SkullFix case (no confidence: coloured by thickness): the page's size and
    writing time, and in the browser its time to render, no error, implant colours over bone."""
    from pcc.io import read_volume

    defective = read_volume(EXAMPLES / "defective_skull_005.nrrd")
    implant = read_volume(EXAMPLES / "implant_005.nrrd")
    start = time.perf_counter()
    path = write_review_page(tmp_path / "005.html", case_name="005", defective=defective, implant=implant,
                             report={"case": "005"}, version="1")
    written = time.perf_counter() - start
    size = path.stat().st_size
    assert size < 30e6, size
    browser.events.clear()
    seconds = browser.open(path)
    shot = browser.screenshot("#canvas", HERO)
    from PIL import Image

    Image.fromarray(shot).save(Path(os.environ.get("PCC_REVIEW_SHOT_DIR", tmp_path)) / "review_005.png")
    counts = colour_counts(shot)
    print(f"example page: {size / 1e6:.2f} MB, written in {written:.2f} s, ready in {seconds:.2f} s in chromium; {counts}")
    assert browser.errors() == []
    assert counts["implant"] + counts["warm"] > 2000 and counts["bone"] > 2000, counts
