"""The review page's size and speed: the example case (512×512×211) designed with `--review`, the page's
size, the seconds writing it adds to the command (the report's timings), and the seconds until it is drawn
in headless Chromium with the network off (and whether it logged an error).

    python -m tools.benchmarks.bench_review [--repeats 3] [--out docs/results/review/bench_review_cpu.txt] [--screenshot PNG]

Measure on a quiet machine: the figures are wall seconds.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from pathlib import Path

import numpy as np

from pcc.examples import EXAMPLE_DEFECTIVE
from pcc.pipeline import Job, run_jobs
from tools.benchmarks.browser import CHROMIUM, HERO, DevTools, colour_counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="page loads timed in the browser")
    parser.add_argument("--out", type=Path, help="also write the table to this text file")
    parser.add_argument("--screenshot", type=Path, help="also save the whole page as drawn (PNG), e.g. docs/images/review_page.png")
    args = parser.parse_args()
    if CHROMIUM is None:
        parser.error("chromium is not installed (Debian: apt-get install chromium)")
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        job = Job(EXAMPLE_DEFECTIVE, folder / "implant.nrrd", review=folder / "005.html")
        report = run_jobs([job], resume=False, report_path=folder / "report.json")
        record = report.cases[0]
        size_mb = job.review.stat().st_size / 1e6
        browser = DevTools()
        try:
            loads, errors, counts = [], [], {}
            for _ in range(args.repeats):
                browser.events.clear()
                loads.append(browser.open(job.review))
                errors += browser.errors()
                counts = colour_counts(browser.screenshot("#canvas", HERO))
            if args.screenshot:
                from PIL import Image

                args.screenshot.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(browser.screenshot("body")).save(args.screenshot)
        finally:
            browser.close()
    lines = [f"review page of the example case ({EXAMPLE_DEFECTIVE.name}, 512×512×211), {platform.machine()}, "
             f"chromium {CHROMIUM}",
             f"page size               {size_mb:.2f} MB",
             f"writing it (report)     {record['timings_s']['review']:.2f} s of a {record['timings_s']['total']:.1f} s command",
             f"ready in chromium       median {np.median(loads):.2f} s (each: {', '.join(f'{s:.2f}' for s in loads)})",
             f"console errors          {len(errors)}" + (f": {errors[:3]}" if errors else ""),
             f"3-D view pixels         {json.dumps(counts)}"]
    print("\n".join(lines))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
