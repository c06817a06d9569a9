"""What a dataset's layout reads, in which order, and what it leaves out.

Two copies of one photo in two splits keep the one in the split that measures the model
(test, then val), the order validate reports and preprocess keeps them in. Photos under
the dataset's folder that no split names are not read at all, so validate names them.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from skintwin.data.dataset import Layout, Problem, list_images

KEEP_ORDER = ("test", "val", "train", "all")  # of two identical photos, the first stays


def kept_first(splits: dict[str, Path]) -> list[tuple[str, Path]]:
    """The splits in the order their photos are kept: a copy in test outranks train's."""
    return sorted(splits.items(), key=lambda item: KEEP_ORDER.index(item[0]))


def stray_images(layout: Layout) -> list[Problem]:
    """A warning for each folder under the dataset holding images no split reads: a
    `test/images` that `data.yaml` does not declare, a new batch beside the splits."""
    read = {form for folder in layout.splits.values() for form in _forms(folder)}
    strays = Counter(
        image.parent
        for image in list_images(layout.root)
        if not any(f in path.parents for path in _forms(image) for f in read)
    )
    return [
        Problem(
            "warning",
            "unused_images",
            str(folder),
            f"{n} image(s) in no split that {layout.data_yaml.name} names: "
            "neither checked, trained nor tested on",
        )
        for folder, n in sorted(strays.items())
    ]


def _forms(path: Path) -> set[Path]:
    """A path as written (absolute) and as resolved: a split may be named through a link,
    and a photo reached through a linked sub-folder of a split is in that split."""
    return {Path(os.path.normpath(path.absolute())), path.resolve()}
