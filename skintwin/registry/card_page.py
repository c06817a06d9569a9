"""The model card as people read it: Markdown, and a standalone HTML page with the charts
inline (it opens without a network). Rendered from the validated JSON document only."""

from __future__ import annotations

import base64
from pathlib import Path

from skintwin.registry.summary import gate_table

CHARTS = ("per_group.png", "pr_curve.png")
UNKNOWN = "unknown"
TEXT_KEYS = ("intended_use", "out_of_scope", "limitations")  # from model_card.yaml


def _cell(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _rows(figures: dict[str, dict]) -> str:
    return "\n".join(
        f"| {k} | {v['images']} | {v['value']:.3f} | [{_cell(v['lo'])}, {_cell(v['hi'])}] |"
        for k, v in figures.items()
    )


def _data_paragraph(data: dict | str) -> str:
    if data == UNKNOWN:
        return UNKNOWN
    splits = data["splits"]
    return (
        f"Dataset `{data['dataset']}`. Images per split: "
        + ", ".join(f"{s} {v['images']}" for s, v in splits.items())
        + ". Tone groups per split: "
        + "; ".join(f"{s}: {v['tone_groups']}" for s, v in splits.items())
        + f". ITA (degrees) per split, 5th / 50th / 95th percentile: {data['ita']}."
        + f" Near-duplicates: {data['near_duplicates']}."
    )


def markdown(card: dict) -> str:
    m, e, d = card["model"], card["evaluation"], card["decision"]
    bullets = {k: "\n".join(f"- {t}" for t in card[k]) for k in TEXT_KEYS}
    head = f"| | images | {e['metric']} | 95% CI |\n|---|---|---|---|"
    data_md = _data_paragraph(card["training_data"])
    lineage = "\n".join(f"- {k}: `{v}`" for k, v in card["lineage"].items() if k != "params")
    return f"""# Model card: {m["name"]} v{m["version"]}

Architecture `{m["architecture"]}`, input {m["input_size"]} px, classes {m["classes"]}.

## Intended use
{bullets["intended_use"]}

## Out of scope
{bullets["out_of_scope"]}

## Training data
{data_md}

## Evaluation (test split)
{head}
{_rows({"overall": e["overall"]})}

### By class

{head}
{_rows(e["classes"])}

### By skin-tone group

{head}
{_rows(e["tone_groups"])}

## Promotion decision
{"Promoted" if d["promoted"] else "Not promoted"} (rule: {d["rule"]}).{_approval(d)}

{chr(10).join(f"- {r}" for r in d["reasons"])}
{gate_table(d)}

## Known limitations
{bullets["limitations"]}

## Lineage
{lineage}
- params: `{card["lineage"]["params"]}`
"""


def _approval(decision: dict) -> str:
    a = decision.get("approval")
    if not a:
        return ""
    over = f" over v{a['over']}" if a["over"] else ""
    return (
        f"\n\n**Approved as champion by a human**: {a['by']} at {a['time']}{over}: "
        f"{a['reason']}. The gate's decision below is as it was recorded."
    )


def html(card: dict, charts: Path | None) -> str:
    """A standalone page: the Markdown rendered, the charts inline (no network needed)."""
    import html as text

    import markdown as md

    # raw HTML in the Markdown is shown as text, never run: a reason, an approver's name
    # or a class name comes from a person, and a <script> in it ran in the page
    page = md.Markdown(extensions=["tables"])
    page.preprocessors.deregister("html_block")
    page.inlinePatterns.deregister("html")
    body = page.convert(markdown(card))
    for chart in CHARTS if charts else ():
        path = charts / chart
        if path.is_file():
            data = base64.b64encode(path.read_bytes()).decode()
            body += f'<p><img alt="{chart}" src="data:image/png;base64,{data}"></p>\n'
    title = text.escape(f"Model card: {card['model']['name']} v{card['model']['version']}")
    style = "body{font-family:sans-serif;max-width:60em;margin:2em auto}td,th{padding:2px 8px}"
    return f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>" \
        f"<style>{style}</style></head><body>{body}</body></html>\n"  # fmt: skip
