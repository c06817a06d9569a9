"""Who moved, the patients or the photos? Reading a drift result for what it means.

The tone estimate (ITA, from skin pixels) moves with lighting and white balance as much as
with skin: a light-skinned patient photographed in dim light has the pixels of a tan-skinned
patient in good light, so no single photo can tell the two apart. A window can. If only the
patient mix changed, each tone group's photos look as the reference's photos of that group
did: the image features *within* every group keep their distributions (a prior shift). If
the light or the camera changed, they do not. So a tone-mix move is confirmed only when the
within-group features held; otherwise it is reported as an apparent one, caused by the
photos, and the photos' change is what the alert is about.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
from scipy.stats import chi2, ks_2samp

from skintwin.names import TONE_GROUPS
from skintwin.params import MonitorParams

WITHIN_COLUMNS = ("brightness", "contrast", "saturation", "sharpness", "ita")


def not_compared() -> dict:
    """`within_groups`' result where nothing could be compared (a window too small)."""
    return {"tests": 0, "groups": [], "threshold": None, "p_values": {}, "changed": []}


def within_groups(reference: pd.DataFrame, current: pd.DataFrame, params: MonitorParams) -> dict:
    """Does each image feature keep its distribution within the tone groups?

    Per feature: a Kolmogorov–Smirnov test within each tone group that both sides populate
    with `monitor.within_min_images` rows, the groups' p-values combined by Fisher's method
    (a change of light moves every group the same way, so the evidence adds up), and a
    Bonferroni correction over the features at `monitor.within_threshold`: a p-value of
    its own, whatever test `monitor.num_method` runs on the columns (a distance's
    threshold is no p-value).

    Returns:
        {"tests": features tested, "groups": groups compared, "threshold": per feature,
         "p_values": each tested feature's combined p-value (how near a call was),
         "changed": [{"column", "p_value", "groups": those with p < 0.05 on their own}]}.
    """
    columns = [c for c in WITHIN_COLUMNS if c in reference and c in current]
    groups = []
    if "tone_group" in reference and "tone_group" in current:
        for group in TONE_GROUPS:
            a = reference[reference["tone_group"] == group]
            b = current[current["tone_group"] == group]
            if min(len(a), len(b)) >= params.within_min_images:
                groups.append((group, a, b))
    tested = [c for c in columns if groups]
    threshold = params.within_threshold / max(1, len(tested))
    changed, combined_p = [], {}
    for column in tested:
        p_values = {
            g: max(float(ks_2samp(a[column].dropna(), b[column].dropna()).pvalue), 1e-300)
            for g, a, b in groups
            if a[column].notna().any() and b[column].notna().any()
        }
        if not p_values:
            continue
        combined = float(chi2.sf(-2.0 * np.log(list(p_values.values())).sum(), 2 * len(p_values)))
        combined_p[column] = combined
        if combined < threshold:
            alone = [g for g, p in p_values.items() if p < 0.05]
            changed.append({"column": column, "p_value": combined, "groups": alone})
    return {"tests": len(tested), "groups": [g for g, _, _ in groups], "threshold": threshold,
            "p_values": combined_p, "changed": changed}  # fmt: skip


def attribute(moved: dict[str, list[str]], within: dict, embedding: dict) -> dict[str, list]:
    """`moved` (kind → evidence) read with the within-group tests and embedding drift.

    Within-group changes are changes of the photos ("acquisition"), and a tone-mix move
    beside them is an "apparent tone mix": the tone estimate moved with the photos. Without
    them a tone-mix move is confirmed, and the image features that moved with it (darker
    skin makes darker photos) are reported under it. Embedding drift is "appearance".
    """
    out = {kind: list(items) for kind, items in moved.items()}
    changed = [
        f"{c['column']} within tone groups ({', '.join(c['groups']) or 'combined'})"
        for c in within.get("changed", [])
    ]
    if changed:
        out["acquisition"] = [*out.get("acquisition", []), *changed]
        if "tone mix" in out:
            out["apparent tone mix"] = out.pop("tone mix")
    elif "tone mix" in out and within.get("tests"):
        follows = [f"{c} (follows the mix)" for c in out.pop("acquisition", [])]
        out["tone mix"] = [*out["tone mix"], *follows]
    if embedding.get("drifted"):
        out["appearance"] = [f"embedding ({s})" for s in embedding["drifted_slices"]]
    return out


def panel(result: dict) -> str:
    """The embedding and within-group tests as an HTML section for the drift report."""
    emb = result.get("embedding") or {}
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{t['images'][0]} / {t['images'][1]}</td>"
        f"<td>{t['mmd2']:.4f}</td><td>{t['p_value']:.4f}</td>"
        f"<td>{'drifted' if t['drifted'] else '-'}</td></tr>"
        for name, t in (emb.get("tests") or {}).items()
    )
    if emb.get("available"):
        body = (
            f"<p>Maximum mean discrepancy of the champion's {emb['dims']}-dimensional backbone "
            f"embeddings, permutation p-values (drift below {emb['threshold']:.4f} each).</p>"
            "<table><tr><th>slice</th><th>images (reference / current)</th><th>MMD²</th>"
            f"<th>p-value</th><th></th></tr>{rows}</table>"
        )
    else:
        body = f"<p>Embedding drift: not available ({html.escape(emb.get('reason', '-'))}).</p>"
    within = result.get("within_groups") or not_compared()
    changes = ", ".join(f"{c['column']} (p = {c['p_value']:.2g})" for c in within["changed"])
    verdict = (
        f"changed: {html.escape(changes)} (the photos changed, not only who is in them)"
        if changes
        else "none changed (a moved tone mix is a change of patients)"
    )
    return (
        '<section id="embedding-drift" style="font-family:sans-serif;margin:1em 2em">'
        f"<h2>Embedding drift</h2>{body}<h3>Image features within tone groups</h3>"
        f"<p>{within['tests']} features compared within {len(within.get('groups', []))} tone "
        f"groups: {verdict}.</p></section>"
    )
