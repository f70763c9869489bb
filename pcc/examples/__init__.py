"""The bundled example case (SkullFix 005, CC BY-NC-SA 4.0; see ATTRIBUTION.md)."""

from pathlib import Path

HERE = Path(__file__).parent
EXAMPLE_DEFECTIVE = HERE / "defective_skull_005.nrrd"
EXAMPLE_IMPLANT = HERE / "implant_005.nrrd"
