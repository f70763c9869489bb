"""Rebuild the review page's viewer (NiiVue) from npm at pinned versions.

    python -m tools.release.build_viewer            # writes pcc/outputs/viewer/{niivue.js, LICENSE-niivue.txt, VERSION}

Fetches @niivue/niivue's tarball with `npm pack`, checks it against the registry's integrity hash
(and against the hash pinned here), installs its runtime dependencies at the pinned versions below,
and bundles it with esbuild into one minified IIFE script that defines the global `niivue` (no
imports: it is inlined in the page's <script> tag). zarrita (Zarr stores, with ~1.4 MB of
WebAssembly codecs) is replaced by a stub: the review page never opens a Zarr store. The licence
file holds NiiVue's BSD-2-Clause licence and the licences of the bundled dependencies.

Needs node and npm (npm's registry reachable); takes a few seconds.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import subprocess
import tempfile
from pathlib import Path

NIIVUE = "0.69.0"
# sha512 of niivue-niivue-0.69.0.tgz as the registry publishes it (dist.integrity)
NIIVUE_INTEGRITY = "sha512-YMjQvJgD1W2b7DuoxkwlC4VxbrgIePRJ5qyQzXKxi2v2MBVg285P/CIQyg46oDDGDIcaNlbd+MhtO/edMbXJkA=="
ESBUILD = "0.25.12"
# NiiVue's runtime dependencies, pinned at the versions its ranges resolved to when 0.69.0 was bundled.
DEPENDENCIES = {
    "@lukeed/uuid": "2.0.1",
    "@lukeed/csprng": "1.1.0",
    "@ungap/structured-clone": "1.4.0",
    "array-equal": "1.0.2",
    "fflate": "0.8.3",
    "gl-matrix": "3.4.4",
    "nifti-reader-js": "0.8.0",
}
# Bundled packages whose licence files go into LICENSE-niivue.txt (zarrita is stubbed out).
LICENSED = ["@lukeed/uuid", "@lukeed/csprng", "@ungap/structured-clone", "array-equal", "fflate", "gl-matrix", "nifti-reader-js"]
TARGET = Path(__file__).resolve().parents[2] / "pcc" / "outputs" / "viewer"

# NiiVue's LICENSE (github.com/niivue/niivue); the npm tarball does not carry it.
NIIVUE_LICENSE = """BSD 2-Clause License

Copyright (c) 2021, Niivue
All rights reserved.

Redistribution and use in source and binary forms, with or without
modification, are permitted provided that the following conditions are met:

1. Redistributions of source code must retain the above copyright notice, this
   list of conditions and the following disclaimer.

2. Redistributions in binary form must reproduce the above copyright notice,
   this list of conditions and the following disclaimer in the documentation
   and/or other materials provided with the distribution.

THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS"
AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE
IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE ARE
DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT HOLDER OR CONTRIBUTORS BE LIABLE
FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR CONSEQUENTIAL
DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR
SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER
CAUSED AND ON ANY THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY,
OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE
OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.
"""

ZARRITA_STUB = """// pcc's review page never opens a Zarr store: this stub stands in for zarrita and its codecs.
const unsupported = () => { throw new Error("Zarr stores are not supported by pcc's NiiVue bundle"); };
export const open = unsupported, root = unsupported, get = unsupported, set = unsupported, slice = unsupported;
export class FetchStore { constructor() { unsupported(); } }
"""


def _run(command: list[str], cwd: Path) -> str:
    return subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True).stdout


def _integrity(path: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def build(target: Path = TARGET) -> dict[str, str | int]:
    """Build the bundle into `target`; returns the VERSION record (versions, sizes, sha256)."""
    with tempfile.TemporaryDirectory(prefix="pcc-viewer-") as tmp:
        work = Path(tmp)
        published = json.loads(_run(["npm", "view", f"@niivue/niivue@{NIIVUE}", "dist.integrity", "--json"], work))
        if published != NIIVUE_INTEGRITY:
            raise SystemExit(f"the registry's integrity for niivue {NIIVUE} changed: {published}")
        name = json.loads(_run(["npm", "pack", f"@niivue/niivue@{NIIVUE}", "--json"], work))[0]["filename"]
        tarball = work / name
        if _integrity(tarball) != NIIVUE_INTEGRITY:
            raise SystemExit(f"{name} does not match its pinned sha512 integrity")
        (work / "package.json").write_text(json.dumps({"name": "pcc-viewer-build", "private": True}))
        # The tarball without its dependency tree (--no-package-lock, exact pins below), then the pins.
        _run(["npm", "install", "--no-audit", "--no-fund", "--no-package-lock", "--omit=dev", "--ignore-scripts",
              "--no-save", "--legacy-peer-deps", f"./{name}", f"esbuild@{ESBUILD}",
              *(f"{package}@{version}" for package, version in DEPENDENCIES.items())], work)
        (work / "entry.js").write_text('export * from "@niivue/niivue";\n')
        (work / "stub-zarrita.js").write_text(ZARRITA_STUB)
        esbuild = work / "node_modules" / ".bin" / "esbuild"
        _run([str(esbuild), "entry.js", "--bundle", "--minify", "--format=iife", "--global-name=niivue",
              "--alias:zarrita=./stub-zarrita.js", "--legal-comments=none", "--target=es2020",
              "--outfile=niivue.js"], work)
        bundle = (work / "niivue.js").read_bytes()
        notices = [f"NiiVue {NIIVUE} (@niivue/niivue, https://github.com/niivue/niivue)\n\n{NIIVUE_LICENSE}",
                   "NiiVue embeds the Roboto font atlas (Google, Apache License 2.0) and matcap textures.\n"]
        for package in LICENSED:
            folder = work / "node_modules" / package
            version = json.loads((folder / "package.json").read_text())["version"]
            files = sorted(p for p in folder.iterdir() if p.name.lower().startswith(("license", "licence", "copying")))
            text = files[0].read_text() if files else json.loads((folder / "package.json").read_text()).get("license", "")
            notices.append(f"{package} {version}\n\n{text.strip()}\n")
    target.mkdir(parents=True, exist_ok=True)
    (target / "niivue.js").write_bytes(bundle)
    (target / "LICENSE-niivue.txt").write_text(("\n" + "-" * 78 + "\n\n").join(notices))
    record: dict[str, str | int] = {"niivue": NIIVUE, "esbuild": ESBUILD, "bytes": len(bundle),
                                    "sha256": hashlib.sha256(bundle).hexdigest(), **{f"dep:{k}": v for k, v in DEPENDENCIES.items()}}
    (target / "VERSION").write_text("".join(f"{key} {value}\n" for key, value in record.items()))
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", type=Path, default=TARGET, help=f"output folder (default {TARGET})")
    record = build(parser.parse_args().target)
    print(f"niivue {record['niivue']}: {record['bytes'] / 1e6:.2f} MB, sha256 {record['sha256']}")


if __name__ == "__main__":
    main()
