"""Scripts around pcc, run from the repository root as modules (see tools/README.md):

    python -m tools.benchmarks.bench_implant --help

benchmarks/ measure accuracy and speed, analysis/ look into results and data, release/ make what ships
(weights, the trust fit, the viewer's bundle, the example DICOM series). Data sets are found through
pcc.shared_data (the --root/--data options' defaults: $PCC_DATA or ../shared/data).
"""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]  # the repository's root
