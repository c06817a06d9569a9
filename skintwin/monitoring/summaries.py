"""Markdown summaries of monitoring runs, for Prefect artifacts (the UI shows them)."""

from __future__ import annotations

from skintwin.monitoring.performance import estimate_markdown


def moved_line(result: dict) -> str:
    """What moved, e.g. "acquisition (brightness, contrast); tone mix (ita)"."""
    moved = result.get("moved") or {}
    return "; ".join(f"{kind} ({', '.join(cols)})" for kind, cols in moved.items()) or "nothing"


def drift_markdown(result: dict, subject: str, alert: dict | None, out_dir: str) -> str:
    if not result["enough_data"]:
        return f"# Drift check: {subject}\n\n**Not enough data**: {result.get('reason')}\n"
    verdict = "**DRIFT DETECTED**" if result["drift_detected"] else "no drift"
    rows = "\n".join(
        f"| {c} | {s:.4g} | {'yes' if c in result['drifted_columns'] else ''} |"
        for c, s in sorted(result["scores"].items())
    )
    alert_line = f"Alert: {alert['severity']} ({alert['id']})" if alert else "Alert: none"
    return f"""# Drift check: {subject}

{verdict} — {result["drift_share"]:.0%} of columns drifted. {alert_line}

What moved: {moved_line(result)}

| column | score | drifted |
|---|---|---|
{rows}

## Performance, estimated without labels

{estimate_markdown(result["performance"]) if "performance" in result else "not estimated"}
Report: `{out_dir}/drift_report.html`
"""


def batch_markdown(summary: dict, model_name: str, version: str, origin: str, source: str) -> str:
    counts = ", ".join(f"{k}: {v}" for k, v in sorted(summary["class_counts"].items())) or "none"
    return (
        f"# Batch inference: {source}\n\nModel {model_name} v{version} "
        f"({origin})\n\n- images: {summary['images']} ({summary['failed']} unreadable)\n"
        f"- detections: {summary['detections']} ({counts})\n"
        f"- results: `{summary['out_dir']}/predictions.csv`\n"
    )
