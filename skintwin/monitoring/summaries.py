"""Markdown summaries of monitoring runs, for Prefect artifacts (the UI shows them)."""

from __future__ import annotations

from skintwin.monitoring.performance import estimate_markdown


def moved_line(result: dict) -> str:
    """What moved, e.g. "acquisition (brightness, contrast); tone mix (ita)"."""
    moved = result.get("moved") or {}
    return "; ".join(f"{kind} ({', '.join(cols)})" for kind, cols in moved.items()) or "nothing"


def alert_line(result: dict, raised: dict[str, dict | None]) -> str:
    """What each alert task did: raised (severity, id), ongoing (found again within
    `monitor.dedup_hours`, so not raised again), or nothing to raise."""
    due = {"drift": result.get("drift_detected"),
           "performance": bool((result.get("performance") or {}).get("falls"))}  # fmt: skip
    parts = []
    for kind, alert in raised.items():
        if alert:
            parts.append(f"{kind} {alert['severity']} ({alert['id']})")
        elif due.get(kind):
            parts.append(f"{kind} ongoing (alerted within `monitor.dedup_hours`)")
    return "Alerts: " + ("; ".join(parts) or "none")


def drift_markdown(
    result: dict, subject: str, raised: dict[str, dict | None], out_dir: str
) -> str:
    if not result["enough_data"]:
        return f"# Drift check: {subject}\n\n**Not enough data**: {result.get('reason')}\n"
    verdict = "**DRIFT DETECTED**" if result["drift_detected"] else "no drift"
    rows = "\n".join(
        f"| {c} | {s:.4g} | {'yes' if c in result['drifted_columns'] else ''} |"
        for c, s in sorted(result["scores"].items())
    )
    return f"""# Drift check: {subject}

{verdict} — {result["drift_share"]:.0%} of columns drifted. {alert_line(result, raised)}

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
