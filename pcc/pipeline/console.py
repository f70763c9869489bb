"""The lines a run prints: one per case, and a folder run's summary."""

from __future__ import annotations

from typing import Any


def case_line(record: dict[str, Any]) -> str:
    """A designed case's line: volume, thickness, STL check, seconds, output; its review flag or expected DSC."""
    implant = record["implant"]
    timings = record["timings_s"]
    parts = [f"{record['case']}: {implant['volume_mm3'] / 1000:.1f} cm³"]
    if "thickness_mean_mm" in implant:
        parts.append(f"thickness {implant['thickness_mean_mm']:.1f} mm")
    if "mesh" in record:
        parts.append("STL ok" if record["mesh"]["ok"] else "STL CHECK FAILED")
    design = f"design {timings['design']:.1f} s, " if "design" in timings else "volume reused, "
    parts.append(f"{design}total {timings['total']:.1f} s → {record['outputs']['volume']}")
    line = "  ".join(parts)
    quality = record.get("quality")
    if quality is not None:
        if quality["review"]:
            reason = quality["reasons"][0] if quality["reasons"] else "check the design"
            line += f"\n{record['case']}: review: {reason}"
        else:
            line += f"  expected DSC {quality['expected_dsc']:.2f}"
    return line


def summary_lines(report, report_path) -> list[str]:
    """A folder run's last lines: counts and mean time, then the designs flagged for review (if any)."""
    summary = report.summary()
    mean = f", {summary['mean_time_s']:.1f} s per case" if summary["mean_time_s"] is not None else ""
    lines = [f"done: {summary['done']} designed, {summary['skipped']} skipped (outputs existed), "
             f"{summary['failed']} failed, {count(summary['warnings'], 'warning')}{mean}"
             + (f"; report {report_path}" if report_path else "")]
    flagged = [case["case"] for case in report.cases if case.get("quality", {}).get("review")]
    if flagged:
        lines.append(f"review {count(len(flagged), 'design')} before use: {', '.join(flagged)}")
    return lines


def count(number: int, noun: str) -> str:
    """'1 warning', '2 warnings'."""
    return f"{number} {noun}" + ("" if number == 1 else "s")
