"""Charts of an evaluation, for people: the PR curve per class and the primary metric per
skin-tone group with its 95% interval and image count."""

from __future__ import annotations

from pathlib import Path

from skintwin.training.evaluation import Evaluation


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def pr_curve(result: Evaluation, path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    for name, curve in result.pr_curves.items():
        ax.plot([i / 100 for i in range(101)], curve, label=name)
    ax.set(xlabel="recall", ylabel="precision", title="PR curve (test, IoU 0.5)", ylim=(0, 1.05))
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def per_group(result: Evaluation, metric: str, path: Path) -> None:
    """Bars per tone group with the interval as error bars; the overall value dashed."""
    plt = _pyplot()
    groups = result.per_group
    values = [v[metric] for v in groups.values()]
    lows = [max(0.0, v[metric] - v.get(f"{metric}_lo", v[metric])) for v in groups.values()]
    highs = [max(0.0, v.get(f"{metric}_hi", v[metric]) - v[metric]) for v in groups.values()]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    labels = [f"{g}\n(n={v['images']})" for g, v in groups.items()]
    ax.bar(labels, values, yerr=[lows, highs], capsize=4, color="#c97b63", ecolor="#333")
    ax.axhline(result.overall[metric], color="k", ls="--", label="overall")
    ax.set(ylabel=metric, ylim=(0, 1.05), title=f"Test {metric} per skin-tone group (95% CI)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
