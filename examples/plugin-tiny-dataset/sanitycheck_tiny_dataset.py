"""An example third-party sanitycheck plugin: one check, ``tiny-dataset``, with two codes.

Registered in ``pyproject.toml`` under the entry-point group ``sanitycheck``; sanitycheck finds it when the
package is installed. It imports only the public plugin API (``from sanitycheck import ...``).
"""

from __future__ import annotations

from collections import Counter

from pydantic import Field

from sanitycheck import Check, CheckSettings, CodeDoc, hookimpl


class TinyDataset(Check):
    """Warns when the training split, or one of its classes, has too few samples to learn from."""

    name = "tiny-dataset"
    summary = "a training split, or a class in it, too small to learn from"
    cost = "instant: counts the training samples and their labels"
    trains = False
    codes = (
        CodeDoc(
            code="TINY001", title="Training split is tiny", severity="warning",
            what="Counts the training samples; warns below `min_samples` (default 1000).",
            why="A network fit on a few hundred samples memorizes them: validation scores are noise.",
            example="A DataLoader over a debugging subset left in the config: `Subset(train, range(200))`.",
            fix="Train on the full split, or collect more data; for small data, prefer a pretrained model.",
        ),
        CodeDoc(
            code="TINY002", title="A class has very few training samples", severity="warning",
            what="Counts the training labels per class (classification); warns when a class present in the split "
            "has fewer than `min_per_class` (default 20) samples.",
            why="The model cannot learn a class from a handful of examples; its validation accuracy on it is noise.",
            example="A new class added to the label set with 6 annotated images.",
            fix="Collect more samples of the listed classes, or merge them into a broader class.",
        ),
    )

    class Settings(CheckSettings):
        """``checks: {tiny-dataset: {min_samples: 1000, min_per_class: 20}}``"""

        min_samples: int = Field(1000, ge=1, description="Warn below this many training samples.")
        min_per_class: int = Field(20, ge=1, description="Warn when a class has fewer training samples than this.")

    def run(self, ctx, settings):
        samples = len(ctx.train)
        if samples < settings.min_samples:
            yield self.finding("TINY001", f"The training split has {samples} samples (fewer than "
                               f"{settings.min_samples}).", evidence={"samples": samples, "min_samples": settings.min_samples})
        labels = ctx.class_labels(ctx.train)  # None for regression and for non-integer targets
        if labels is None:
            return
        counts = Counter(int(label) for label in labels)
        rare = sorted(label for label, count in counts.items() if count < settings.min_per_class)
        if rare:
            yield self.finding(
                "TINY002", f"{len(rare)} class(es) have fewer than {settings.min_per_class} training samples: "
                + ", ".join(f"{label} ({counts[label]})" for label in rare) + ".",
                samples={"train": [i for i, label in enumerate(labels) if int(label) in set(rare)]},
                evidence={"counts": {str(label): counts[label] for label in rare}},
            )


@hookimpl
def sanitycheck_checks():
    """The checks this plugin provides."""
    return [TinyDataset()]
