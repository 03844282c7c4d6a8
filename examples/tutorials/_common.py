"""What the tutorials share: the digits data, the smoke switch, outputs.

Every tutorial runs at full size by default and writes its figures to
``docs/img/tutorials/`` and its measured numbers to
``docs/tutorials/results/<name>.json``; the docs pages quote them.
With ``KERAS_NORMS_SMOKE=1`` (what CI sets) it runs at a tiny size and
writes into a temporary directory, so the committed figures stay the
full-size ones.
"""

import json
import os
import pathlib
import tempfile
import time

import keras
import numpy as np
from sklearn.datasets import load_digits

SMOKE = os.environ.get("KERAS_NORMS_SMOKE", "") not in ("", "0")
ROOT = pathlib.Path(__file__).resolve().parents[2]
if SMOKE:
    _OUT = pathlib.Path(tempfile.mkdtemp(prefix="keras_norms_tutorial_"))
    FIGURE_DIR = _OUT / "img"
    RESULT_DIR = _OUT / "results"
else:
    FIGURE_DIR = ROOT / "docs" / "img" / "tutorials"
    RESULT_DIR = ROOT / "docs" / "tutorials" / "results"


def size(full, smoke):
    """``full`` normally, ``smoke`` under ``KERAS_NORMS_SMOKE=1``."""
    return smoke if SMOKE else full


def digits(shape="flat", test_size=0.25, seed=0):
    """scikit-learn's 8x8 digits (1797 images, shipped with the package).

    Pixels are scaled to [0, 1]. ``shape`` is ``"flat"`` (n, 64),
    ``"image"`` (n, 8, 8, 1) or ``"sequence"`` (n, 64, 1): one pixel per
    step, row by row. Returns ``(x_train, y_train, x_test, y_test)``; the
    split is stratified and fixed by ``seed``.
    """
    data = load_digits()
    x = (data.images / 16.0).astype("float32")
    y = data.target.astype("int32")
    shapes = {"flat": (-1, 64), "image": (-1, 8, 8, 1), "sequence": (-1, 64, 1)}
    if shape not in shapes:
        raise ValueError(f"shape must be one of {sorted(shapes)}: {shape!r}")
    x = x.reshape(shapes[shape])
    rng = np.random.default_rng(seed)
    test = np.zeros(len(y), bool)
    for label in range(10):
        members = rng.permutation(np.flatnonzero(y == label))
        test[members[: round(test_size * len(members))]] = True
    return x[~test], y[~test], x[test], y[test]


def save_figure(figure, name):
    """Write ``figure`` as ``<name>.png`` and return the path."""
    FIGURE_DIR.mkdir(parents=True, exist_ok=True)
    path = FIGURE_DIR / f"{name}.png"
    figure.savefig(path, dpi=110, bbox_inches="tight")
    print(f"figure: {path}")
    return path


def save_text(name, text):
    """Write ``text`` (e.g. a page's tables, made from the measured
    numbers) next to the JSON results."""
    RESULT_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULT_DIR / name
    path.write_text(text)
    print(f"text: {path}")
    return path


def save_results(name, results):
    """Write the measured numbers (plus backend and date) as JSON."""
    RESULT_DIR.mkdir(parents=True, exist_ok=True)
    results = {
        "backend": keras.backend.backend(),
        "keras": keras.version(),
        "smoke": SMOKE,
        "date": time.strftime("%Y-%m-%d"),
        **results,
    }
    path = RESULT_DIR / f"{name}.json"
    path.write_text(json.dumps(results, indent=2, default=float) + "\n")
    print(f"results: {path}")
    return path


def spread(values):
    """Mean, min and max over the seeds."""
    return {
        "mean": float(np.mean(values)),
        "min": float(np.min(values)),
        "max": float(np.max(values)),
    }


def finding(claim, holds):
    """One of a tutorial's findings: a claim of the paper, in words, and
    whether this run's numbers support it."""
    return {"claim": claim, "holds": bool(holds)}


def findings_table(findings):
    """The findings as Markdown table lines."""
    lines = ["| claim | holds in this run |", "|---|---|"]
    for item in findings.values():
        holds = "yes" if item["holds"] else "**no**"
        lines.append(f"| {item['claim']} | {holds} |")
    return lines


def save_sections(name, sections):
    """Write ``sections`` ({section: Markdown lines}) as one file with
    snippet markers, so that a page includes each section where it
    discusses it: ``--8<-- "docs/tutorials/results/<name>:<section>"``."""
    text = []
    for section, lines in sections.items():
        text += [
            f"--8<-- [start:{section}]",
            *lines,
            f"--8<-- [end:{section}]",
            "",
        ]
    return save_text(name, "\n".join(text))


def run_time_text(seconds):
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"
