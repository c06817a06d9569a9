"""`dvc plots show` that renders without internet.

DVC's default page loads Vega, Vega-Lite and vega-embed from a CDN, so in a clinic with no
internet the PR curve, confusion matrix and training curves are blank. This writes an HTML
template with those libraries inlined, taken from the pinned `vl-convert-python` wheel (no
download at run time), and points the repository's DVC config at it, so a plain
`dvc plots show` uses it. The template leaves out DVC's `{scripts}` placeholder, which is
where the CDN tags would go.
"""

from __future__ import annotations

import functools
import html
import re
import subprocess
import sys
import time
from pathlib import Path

from skintwin.errors import SkinTwinError
from skintwin.io import atomic_write_bytes

TEMPLATE = "offline_plots.html"  # inside .dvc/, the path DVC's `plots.html_template` names
VEGA_LITE = "5.21"  # DVC's plot templates are Vega-Lite v5 specs
PAGE_DIR = "dvc_plots"  # DVC's default output folder

# vega-embed's default renderer is a canvas; SVG keeps titles and axes as text (searchable,
# crisp in print, readable by screen readers and by the headless-browser test).
_SVG_DEFAULT = """
(function () {
  var embed = window.vegaEmbed;
  window.vegaEmbed = function (el, spec, opts) {
    return embed(el, spec, Object.assign({renderer: "svg"}, opts || {}));
  };
})();"""


def versions() -> str:
    import vl_convert

    return (
        f"vega {vl_convert.get_vega_version()}, vega-lite {VEGA_LITE}, "
        f"vega-embed {vl_convert.get_vega_embed_version()} "
        f"(vl-convert-python {vl_convert.__version__})"
    )


@functools.cache
def render_template() -> str:
    """The page DVC fills in: `{refresh_tag}` and `{plot_divs}` are DVC's placeholders."""
    import vl_convert

    bundle = vl_convert.javascript_bundle(vl_version=VEGA_LITE)
    if "</script" in bundle:  # would end the inline <script> early
        raise SkinTwinError("vl-convert's JavaScript bundle cannot be inlined (</script)")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
{{refresh_tag}}
<title>Skin-Twin plots</title>
<!-- offline: {html.escape(versions())}, inlined -->
<script type="text/javascript">{bundle}</script>
<script type="text/javascript">{_SVG_DEFAULT}</script>
<style>
  body {{ font-family: system-ui, sans-serif; margin: 1.5em; }}
  table {{ border-spacing: 15px; }}
  footer {{ color: #666; font-size: 0.8em; margin-top: 2em; }}
</style>
</head>
<body>
<h1>Skin-Twin plots</h1>
{{plot_divs}}
<footer>Rendered offline with {html.escape(versions())}.</footer>
</body>
</html>
"""


def install_template(repo: Path) -> Path:
    """Write `.dvc/offline_plots.html` (when missing or from other versions) and set
    `plots.html_template` in the repository's `.dvc/config`. Returns the template path."""
    dvc_dir = Path(repo) / ".dvc"
    if not dvc_dir.is_dir():
        raise SkinTwinError(f"{repo}: not a DVC repository (no .dvc folder); run `dvc init`")
    path = dvc_dir / TEMPLATE
    stamp = f"<!-- offline: {html.escape(versions())}, inlined -->"
    if not path.is_file() or stamp not in path.read_text(encoding="utf-8", errors="replace"):
        atomic_write_bytes(path, render_template().encode("utf-8"))
    config = dvc_dir / "config"
    setting = rf"^\s*html_template\s*=\s*{re.escape(TEMPLATE)}\s*$"
    if not (config.is_file() and re.search(setting, config.read_text(), re.MULTILINE)):
        _dvc(repo, "config", "plots.html_template", TEMPLATE)
    return path


def show(repo: Path, out: str = PAGE_DIR) -> Path:
    """`dvc plots show` through the offline template; returns the written index.html."""
    install_template(repo)
    page, started = Path(repo) / out / "index.html", time.time()
    said = _dvc(repo, "plots", "show", "-o", out)
    # dvc exits 0 when it could load no plot (a fresh clone): the page is then not written
    if not page.is_file() or page.stat().st_mtime < started - 1:
        raise SkinTwinError(
            f"{page}: not written; the plots' files are not in the workspace yet "
            f"(run `dvc repro` first). dvc said: {said.strip()[:500]}"
        )
    return page


def _dvc(repo: Path, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=repo, capture_output=True, text=True
    )
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()
        raise SkinTwinError(f"dvc {' '.join(args)} failed in {repo}: {detail}")
    return proc.stdout + proc.stderr


if __name__ == "__main__":  # `make setup`: the template for the checkout it runs in
    print(f"offline plots template: {install_template(Path.cwd())}")
