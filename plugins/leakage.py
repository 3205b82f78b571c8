"""``leakage``: validation samples that copy training samples, the same split twice, duplicates inside a split,
and duplicates whose labels disagree.

Reads the shared representation (``sanitycheck.probing.embedding``: exact content hashes and a compact embedding, both
from the one data pass) and the shared neighbour search (``sanitycheck.probing.neighbors``). Exact copies are a hash
join. Near copies use a rule that adapts to the data: a pair is a near duplicate when its distance is small
compared with the neighbourhoods of *both* its samples (their distance to their k-th nearest neighbour), so a
plain-background image that sits close to hundreds of others is not a duplicate of any of them, while a
re-encoded or shifted copy of a distinctive image is. Each split is searched for its own duplicates the same way
(cutoffs fitted to its own scores); the training split's groups then count once in every neighbourhood, so a
picture the training split holds several times does not hide its validation copy. ``--export`` gets every pair and
the drop list (``Finding.export``). How the rule was chosen and measured on real photographs:
docs/near-duplicates.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from sanitycheck import Check, CheckSettings, CodeDoc, hookimpl
from sanitycheck.probing.neardup import (ALIGN_CANDIDATES, ALIGN_CALIBRATION, MIN_FIT, ZOOM_CANDIDATES, aligned_scores, drop_list,
                                         duplicate_groups, group_kth, kth, pair_score, score_histogram, tail_cutoff)


class Settings(CheckSettings):
    k: int = Field(9, ge=2, le=9, description="Neighbourhood size: a sample's scale is its distance to its k-th nearest neighbour.")
    alpha: float = Field(0.001, gt=0, lt=0.5, description="False-alarm rate of each look on clean data: the cutoff is where the power-law tail fitted to the training split's own pair scores reaches it.")
    ratio: float = Field(0.7, gt=0, lt=1, description="No look's cutoff exceeds this score (distance / neighbourhood scale), "
                         "whatever its calibration says (real photographs calibrate to about 0.55-0.6).")
    p_value: float = Field(0.001, gt=0, lt=1, description="Near-only overlap is reported as info unless it exceeds the chance count at this significance.")
    error_fraction: float = Field(0.01, gt=0, le=1, description="Validation overlap from this fraction up is an error (else a warning).")
    near_warn_fraction: float = Field(0.005, ge=0, le=1, description="Near-only overlap (no exact copies) beyond the "
                                      "chance count is info below this fraction of the validation split, significant "
                                      "or not: it can move a validation score by at most that much.")
    near: bool = Field(True, description="Look for near duplicates too (false: exact copies only).")
    align: bool = Field(True, description="Images: the aligned look (shifts of up to 2 pixels, crops of up to 15% of a side resized back) and the colour look (colour casts, under the same shifts).")
    in_split_looks: int = Field(20000, ge=0, description="Duplicates inside a split get the aligned and colour looks too "
                                "when the split has at most this many distinct samples, scaled by the profile (fast x0.25, "
                                "thorough x4); a larger split gets the exact and plain looks only (the looks cost about "
                                "0.5 ms per sample on 2 CPU cores).")
    thumbnails: int = Field(6, ge=0, le=12, description="Pairs drawn as thumbnails in the evidence.")
    window_fraction: float = Field(0.05, gt=0, le=1, description="Sequences: validation windows that lie between "
                                   "overlapping training windows of the same series are an error (SC105) from this "
                                   "fraction of the validation split up (and at least 5).")
    text_error_fraction: float = Field(0.5, gt=0, le=1, description="Token windows (text): validation windows that "
                                       "are exact or shifted copies of training windows are an error from this "
                                       "fraction up (below: info, a corpus repeats itself); duplicates inside a split "
                                       "a warning from it up.")


RULE = ("score(a, b) = d(a, b) / min(r_k(a), r_k(b)), d the Euclidean distance between embeddings, r_k(x) the "
        "distance from x to its k-th ({k}) nearest distinct training sample (a cluster of copies inside the training "
        "split, found by its own duplicate search, counts as one); near duplicate when score <= {cutoff:.3g} "
        "= min({ratio}, the score that a fraction {alpha:.3g} of clean samples falls under: the power law "
        "P(score <= s) = C s^m fitted to the 5%-20% quantiles of the scores of training samples with their own nearest "
        "neighbour, extended down to {alpha:.3g})")


IN_SPLIT_RULE = ("each of the {n} distinct samples of the split is scored with its nearest other one as across splits "
                 "(score = d / min(r_k(a), r_k(b)), k = {k}; the aligned and colour looks when they run: best / {k}-th "
                 "best distance among its candidates); a pair is a near duplicate when a look's score is at most that "
                 "look's cutoff, fitted to this split's own scores (the power-law tail extended to alpha = {alpha:.3g}, "
                 "capped at {ratio}; the training split's cutoffs when the split has under 200 samples)")

LOOK_RULES = {
    "aligned": ("images: a validation sample not matched so far is compared with its {c} nearest training "
                "samples and the 12 nearest of the sample shifted by (+-1.5, +-1.5) pixels, shifted by every (dy, dx) "
                "in [-2, 2]^2 pixels (edges replicated); 3 x {z} of them (the best "
                "after shifts, the nearest by 4x4 thumbnail, the nearest by the central 4x4 cells) are also searched for a "
                "crop resized back, both ways: a window of one (85%-100% of each side, moved by up to 1 pixel, found axis "
                "by axis) against the other; "
                "with d* the smallest distance found, near duplicate when d*(v, best) / (the {k}-th smallest d*, the "
                "training split's clusters of copies counted once) <= {cutoff:.3g} = min(ratio, the same power-law tail "
                "at {alpha:.3g}, fitted to the same score for {n} random training samples)"),
    "colour": ("colour images: a validation sample not matched so far is compared with the same candidates under "
               "the same shifts, each colour channel centred and scaled on its own (a colour cast leaves that "
               "unchanged); near duplicate when d(v, best) / (the {k}-th smallest d) <= {cutoff:.3g} = min(ratio, the "
               "same power-law tail at {alpha:.3g}, fitted to the same score for {n} random training samples)"),
}


CODES = (
    CodeDoc(
        code="SC101", title="Validation samples duplicated in train", severity="error",
        what="Finds validation samples that are exact copies (same content hash, whatever the dtype) or near copies "
        "of training samples. Near copies are judged against each sample's own neighbourhood, not one global distance: "
        "with d the Euclidean distance between the shared embeddings (8x8 per-channel thumbnails, centred and scaled "
        "to unit length, for images; standardized features otherwise; the model's penultimate features with "
        "embedding: {source: model}) and r_k(x) the distance from x to its 9th "
        "nearest distinct training sample, a validation sample v and its nearest training sample t score "
        "d(v, t) / min(r_k(v), r_k(t)). Plain backgrounds and centred digits, close to many others, have a small r_k "
        "and score high; a re-encoded, shifted, brightened or resized copy of an image scores near 0. Decision rule: "
        "a near duplicate scores at most the cutoff, the score that a fraction alpha = 0.1% of clean samples falls "
        "under (so about alpha of clean validation samples pass it by chance). It is estimated from the same score "
        "computed for every training sample with its own nearest training neighbour: these ratios have a power-law "
        "lower tail, P(score <= s) = C s^m, which is fitted between the 5% and 20% quantiles and extended down to "
        "alpha, so that the training split's own near copies (real datasets have some) cannot drag the cutoff down; "
        "on splits under 200 samples it is the empirical quantile at max(alpha, 10 / n_train). The cutoff is capped "
        "at ratio = 0.7. Clusters of copies inside the training split (the groups SC103 finds there) count as one "
        "sample in every r_k and in the calibration (one sample per cluster, scored with its nearest neighbour "
        "outside it): otherwise a validation copy of a picture the training split holds five times would only be as "
        "close to it as to its other copies, and be missed. Severity: error when the copies are at least 1% of the "
        "validation split (enough to inflate validation metrics materially) and more than the sampling noise of an "
        "accuracy measured on it, 0.5 / sqrt(n_val) (9 points on 30 samples: one record shared by iris's two "
        "splits is a warning), else warning; info when there are only near matches and their "
        "count is not above the chance count alpha x n_val (binomial test, p >= 0.001), or is above it by less than "
        "near_warn_fraction = 0.5% of the validation split (within the sampling noise of a validation accuracy on "
        "10000 samples, a standard error of 0.3-0.5 points; exact copies are never info; measured: the real "
        "Fashion-MNIST train/test split has 44 near matches of 10000 where chance predicts 20, p = 2e-6, a handful "
        "of them pixel-level copies: 0.24% beyond chance, real but unable to move a validation score); the severity fraction counts exact copies plus the "
        "near matches beyond that chance count. Images get two more looks at the validation "
        "samples not matched so far, because a copy shifted by two pixels, cropped by a pixel or two and resized back, "
        "or colour-cast moves an 8x8 thumbnail as much as another picture would. Aligned look: the candidates are the "
        "sample's 10 nearest training samples plus the 12 nearest of the sample shifted by (+-1.5, +-1.5) pixels; "
        "each is compared with the sample shifted by every (dy, dx) in [-2, 2]^2; 6 of them (the 2 best after shifts, "
        "the 2 nearest by 4x4 thumbnail, the 2 nearest by the central 4x4 cells) are also searched for a crop resized "
        "back, both ways (a window of 85%-100% "
        "of each side of one, moved by up to a pixel and found axis by axis from row and column profiles, against the "
        "other); score = best distance found / 9th best. Colour look: the same candidates under the same shifts, "
        "each colour channel centred and scaled on its own; score = best / 9th best. Each look's cutoff is fitted the "
        "same way on 2000 random training samples scored like validation ones; alpha then adds up over the three "
        "looks. Every pair, with its distance, score and look, the cutoffs and the distribution of every validation "
        "sample's best score over its cutoff (score_histogram: how close the next candidates came) are in the "
        "evidence; --export writes every pair (leakage/SC101.csv) and what to remove (leakage/drop.csv: every "
        "validation copy; the training sample is kept). "
        "A text classifier's token ids (task: classification; an nn.Embedding or EmbeddingBag reads them) are "
        "judged by exact copies only, with the rules above: its texts are samples like any other. "
        "Token windows of task: sequence are judged as "
        "text: the near-duplicate search is skipped (ids are categorical; the distance between id vectors means "
        "nothing), and a validation window counts as a copy when it equals a training window or is one shifted by 1 "
        "to T/4 tokens (its last T-s ids are a training window's first T-s, or its first T-s the last T-s; hashed). "
        "Decision rule for text: error when the copies are at least 50% of the validation windows "
        "(text_error_fraction: the same text on both sides, e.g. overlapping windows split at random), else info "
        "(any corpus repeats lines and boilerplate: 14% of 32-character windows of standard-library source recur "
        "exactly).",
        why="A model scores well on validation samples it has memorized: the validation metric overstates how it "
        "will do on new data, and model selection rewards memorization.",
        example="Augmented copies of the same photo saved as separate files and split at random; a dataset scraped "
        "twice and concatenated before the train/validation split.",
        fix="Deduplicate before splitting (drop the validation samples listed), and split by group or source "
        "(sklearn GroupShuffleSplit) so copies of one original stay on one side.",
    ),
    CodeDoc(
        code="SC102", title="Validation split is the training split", severity="error",
        what="Reported when data.train and data.val are the same object (dataset or loader), Subsets of one dataset "
        "with the same indices, or hold exactly the same inputs.",
        why="Validation then measures memorization of the training data: every number it reports is meaningless.",
        example="val = train left over from debugging; DataLoader(train_ds) passed for both splits.",
        fix="Pass a held-out split as data.val (e.g. torch.utils.data.random_split before building the loaders).",
    ),
    CodeDoc(
        code="SC103", title="Duplicates inside a split", severity="warning",
        what="Groups samples of the same split that are exact copies (content hash) or near copies, found exactly as "
        "across splits: each distinct sample is scored with its nearest other one (the SC101 score) and, for image "
        "splits of at most in_split_looks distinct samples (20000, scaled by the profile), by the aligned and colour "
        "looks against the split's own samples. Decision rule: a pair is a near copy when a look's score is at most "
        "that look's cutoff fitted to this split's own scores (the power-law tail of SC101 extended to alpha = 0.1%, "
        "capped at 0.7; the training split's cutoffs for splits under 200 samples), so about alpha of a clean split's "
        "samples per look pass by chance; the evidence gives that chance count and a binomial p-value. Pairs are joined "
        "transitively into groups. Severity: warning when there are exact copies or the duplicated samples are at "
        "least 1% of the split; info for a few near copies, and for near copies only that are no more than the chance "
        "count (binomial test, p >= 0.001, at the rate the cutoffs were fitted to: a training split under 200 samples "
        "uses its empirical quantile at 10 / n), and for near copies only in a split under 200 distinct samples "
        "(too few to fit its own cutoffs: the training split's, applied to its sparser neighbourhoods, flag about "
        "a quarter of a 30-sample split of iris or wine). The evidence shows the largest groups, thumbnails of the "
        "best pairs and the score distribution with the cutoff (score_histogram); --export writes every member with "
        "its partner, look and score (leakage/SC103-<split>.csv), and leakage/drop.csv keeps the first of each group. "
        "Token windows (text): exact copies only, info unless they are at least 50% of the "
        "split (repeated lines recur in any text, and overlapping windows share text by construction).",
        why="Duplicated training samples are seen several times per epoch (an unintended weighting); duplicated "
        "validation samples count twice in the metric.",
        example="The same image stored under two file names; a CSV concatenated with itself.",
        fix="Drop the listed duplicates (keep one per group), or weight them on purpose.",
    ),
    CodeDoc(
        code="SC104", title="Duplicates with conflicting labels", severity="warning",
        what="Among the duplicate groups of SC101 and SC103 (classification), reports those whose samples carry "
        "different labels. Decision rule: warning; error when the samples involved are at least 1% of a split; info "
        "when no conflicting group holds exact copies and SC101 found near matches no more often than chance.",
        why="The same input with two labels is label noise the model cannot fit; across splits it is a validation "
        "error no model can avoid.",
        example="One image annotated twice by different people; a sample copied into two class folders.",
        fix="Review the listed groups and keep one correct label per input.",
    ),
    CodeDoc(
        code="SC105", title="Validation windows lie between training windows of the same series", severity="error",
        what="For inputs that are sequences (one shape for every sample: (T,), (T, F) or (C, T), at least 8 steps, "
        "cached by the data pass): for each validation sample, a training sample shifted by k = 1 to 8 steps (up "
        "to T/2 while the keys sorted, one per training sample and shift, stay under 500,000: 50% overlap on "
        "data of human-activity size) whose T - k shared values are exactly equal, starting before it, and one "
        "starting after it; the "
        "shared part must hold at least 4 distinct values (not padding, not a shifted one-hot block). Decision "
        "rule: error when at least 5% of the validation samples (and at least 5) have both. Overlap on one side "
        "only, as at the boundary of a chronological split, is not reported: the validation targets then still "
        "come after every training window.",
        why="Sliding windows split at random put each validation window between training windows that share all "
        "but a step of it: its target is surrounded by training examples in time, and the validation score "
        "measures interpolation, not the forecasting the model will be asked to do.",
        example="`windows = [series[i:i + 30] for i in range(len(series) - 30)]` followed by "
        "`random_split(windows, [0.8, 0.2])` or `train_test_split(..., shuffle=True)`.",
        fix="Split the series in time (every validation window after the last training one, with a gap of one "
        "window), or split by recording or subject so that no series is cut into both splits.",
    ),
)


class Leakage(Check):
    name = "leakage"
    summary = ("validation samples that are exact or near duplicates of training samples; the same split twice; "
               "duplicates inside a split; duplicates with conflicting labels; sliding windows of one series split "
               "at random")
    cost = ("seconds: hashes and embeddings from the one data pass, chunked k-NN searches, the aligned and colour "
            "looks across splits and inside splits of at most 20000 samples (about 15 s for 50k + 10k 3x32x32 images "
            "on 2 CPU cores)")
    trains = False
    codes = CODES
    Settings = Settings

    def run(self, ctx: Any, settings: Settings):
        from sanitycheck.probing.embedding import EmbeddingUnavailable

        train, val = ctx.train, ctx.val
        labels = {s.name: ctx.class_labels(s) for s in ctx.splits()}
        groups: list[tuple[str, list[int], list[int], bool]] = []  # (kind, train, val, exact copies?) for SC104
        links: list[tuple[tuple[str, int], tuple[str, int]]] = []  # every duplicate pair, for the drop list
        findings = []
        cross_significant = False  # near matches across splits beyond what chance explains
        same = _same_split(train, val) if val is not None else None
        if same:
            findings.append(self.finding(
                "SC102", f"data.val is data.train: {same}. Validation measures memorization.",
                samples={"val": list(range(len(val)))}, evidence={"reason": same, "val_samples": len(val)},
            ))
        tokens = ctx.inputs_are_token_ids()
        if tokens and ctx.task == "sequence":  # windows of one running text: repeats are the text's own
            yield from findings
            yield from self._text(ctx, settings, same)
            return
        calib, note = None, None
        if tokens:  # a text classifier's texts: a copy across splits is leakage, as for any sample
            note = "near duplicates not searched: the inputs are token ids (indices, with no distance between them)"
        elif settings.near:
            try:
                # the looks' calibration waits for the training split's own groups (below), unless the split is too
                # small for its own cutoffs and needs them for its in-split search
                calib = _calibrate(ctx, settings, looks=len(ctx.train) < MIN_FIT)
            except EmbeddingUnavailable as exc:
                note = f"near duplicates not searched: {exc}"
        for split in ctx.splits():
            if same and split is val:
                continue  # the same samples again: SC102 says it all
            found = _in_split(ctx, split, calib, settings)
            if split is train and calib is not None:
                group = _train_groups(calib["neighbors"], found)
                if group is not None or calib["pending"]:
                    # judge validation samples against the training split's distinct pictures
                    calib = _calibrate(ctx, settings, group)
            if found is not None:
                findings.append(self._in_split_finding(ctx, split, found, calib, settings))
                h = split.data_pass().hashes
                groups += [("in-split", g, [], _has_copies(h, g)) if split.name == "train"
                           else ("in-split", [], g, _has_copies(h, g)) for g in found["groups"]]
                links += [((split.name, r["index"]), (split.name, r["partner"])) for r in found["rows"]]
        if val is not None and not same:
            try:
                cross = _cross(ctx, settings, calib)
            except EmbeddingUnavailable as exc:
                cross, note = _cross(ctx, settings, None), f"near duplicates not searched: {exc}"
            if cross["pairs"]:
                finding = self._cross_finding(ctx, cross, calib, settings, note)
                cross_significant = finding.severity != "info"
                findings.insert(1 if same else 0, finding)
                groups += [("cross", [p["train"]], [p["val"]], p["kind"] == "exact") for p in cross["pairs"]]
                links += [(("val", p["val"]), ("train", p["train"])) for p in cross["pairs"]]
        if val is not None and not same:
            between = self._between_windows(ctx, settings)
            if between is not None:
                findings.insert(0, between)
        if labels.get("train") is not None and groups:
            conflict = self._conflicts(ctx, groups, labels, settings, cross_significant)
            if conflict is not None:
                findings.append(conflict)
        duplicates = [f for f in findings if f.code in ("SC101", "SC103")]
        if duplicates and links:
            # one answer to "what do I remove?" for all of them: leakage/drop.csv in the export
            duplicates[0].export["drop"] = drop_list(links)
            duplicates[0].evidence["drop"] = len(duplicates[0].export["drop"])
        yield from findings

    def _between_windows(self, ctx: Any, settings: Settings):
        """SC105: validation windows with overlapping training windows of the same series on both sides."""
        from sanitycheck.probing.windows import interleaved, time_axis

        train, val = ctx.train.data_pass(), ctx.val.data_pass()
        if train.inputs is None or val.inputs is None or train.inputs.shape[1:] != val.inputs.shape[1:]:
            return None
        axis = time_axis(tuple(train.inputs.shape[1:]))
        if axis is None:
            return None
        before, after, lag = interleaved(train.inputs, val.inputs, axis)
        both = np.flatnonzero((before >= 0) & (after >= 0))
        if len(both) < max(5, settings.window_fraction * len(val.inputs)):
            return None
        steps = train.inputs.shape[axis + 1]
        stride = int(np.median(lag[both]))
        pairs = [{"val": int(i), "train_before": int(before[i]), "train_after": int(after[i]), "lag": int(lag[i])}
                 for i in both[:20]]
        return self.finding(
            "SC105", f"{len(both)} of {len(val.inputs)} validation samples ({len(both) / len(val.inputs):.0%}) lie "
            f"between training samples of the same series: each has a training window that starts before it "
            f"({stride} step{'s' if stride > 1 else ''} before, typically) and one that starts after it, sharing all "
            f"but those steps of its {steps}. The windows were split at random: the validation score measures "
            "interpolation between training examples, not forecasting.",
            samples={"val": [int(i) for i in both[:100]],
                     "train": sorted({int(before[i]) for i in both[:50]} | {int(after[i]) for i in both[:50]})},
            evidence={"between": len(both), "val_samples": len(val.inputs), "steps": steps, "typical_lag": stride,
                      "earlier_only": int(((before >= 0) & (after < 0)).sum()),
                      "later_only": int(((after >= 0) & (before < 0)).sum()), "pairs": pairs,
                      "threshold": settings.window_fraction},
        )

    # ----------------------------------------------------------------------------------------- text

    def _text(self, ctx: Any, settings: Settings, same: str | None):
        """Windows of token ids, judged as text: exact copies inside a split, exact or shifted copies across."""
        from sanitycheck.probing.textdup import shifted_copies

        note = ("near duplicates not searched: the inputs are token ids (categorical; the distance between id "
                "vectors means nothing); windows are compared as text, exact and shifted copies")
        for split in ctx.splits():
            found = _in_split(ctx, split, None, settings)
            if found is None:
                continue
            flagged = sorted({i for g in found["groups"] for i in g[1:]})
            fraction = len(flagged) / len(split)
            yield self.finding(
                "SC103", f"{len(flagged)} {split.name} windows ({fraction:.1%}) repeat another {split.name} window "
                f"exactly ({len(found['groups'])} group(s))" + (": the text is largely duplicated." if
                fraction >= settings.text_error_fraction else ": text repeats itself (repeated lines, boilerplate), "
                "which is not a problem for a language model."),
                severity="warning" if fraction >= settings.text_error_fraction else "info",
                samples={split.name: [i for g in found["groups"] for i in g]},
                fix=None if fraction >= settings.text_error_fraction else "Nothing to fix for repeated lines.",
                evidence={"groups": len(found["groups"]), "duplicates": len(flagged), "split_samples": len(split),
                          "fraction": round(fraction, 5), "warn_fraction": settings.text_error_fraction,
                          "largest_groups": [g[:20] for g in found["groups"][:10]], "note": note},
            )
        if ctx.val is None or same:
            return
        cross = _cross(ctx, settings, None)
        pairs = cross["pairs"]
        xt, xv = ctx.train.data_pass().inputs, ctx.val.data_pass().inputs
        length = xt.shape[1] if xt is not None and xt.ndim == 2 else 0
        max_shift = max(1, length // 4)
        if xt is not None and xv is not None and xt.ndim == 2 and xv.shape[1:] == xt.shape[1:]:
            rest = np.setdiff1d(np.arange(len(ctx.val)), [p["val"] for p in pairs])
            rows, train_rows, shifts = shifted_copies(xt.astype(np.int64), xv[rest].astype(np.int64), max_shift)
            pairs = pairs + [{"val": int(rest[r]), "train": int(t), "kind": "shifted", "shift": int(s)}
                             for r, t, s in zip(rows, train_rows, shifts)]
        if not pairs:
            return
        n_val = len(ctx.val)
        exact = sum(p["kind"] == "exact" for p in pairs)
        fraction = len(pairs) / n_val
        leaked = fraction >= settings.text_error_fraction
        yield self.finding(
            "SC101", f"{len(pairs)} of {n_val} validation windows ({fraction:.1%}) are copies of training text "
            f"({exact} exact, {len(pairs) - exact} shifted by 1 to {max_shift} tokens)"
            + (": the same text is on both sides of the split (overlapping windows split at random?)." if leaked else
               f": below {settings.text_error_fraction:.0%}, the repeated lines and boilerplate any corpus has, not "
               "leakage."),
            severity="error" if leaked else "info",
            samples={"val": [p["val"] for p in pairs], "train": _dedupe(p["train"] for p in pairs)},
            evidence={"exact": exact, "shifted": len(pairs) - exact, "val_samples": n_val,
                      "fraction": round(fraction, 5), "error_fraction": settings.text_error_fraction,
                      "max_shift": max_shift, "note": note, "pairs": pairs[:1000]},
            fix="Split the text first and cut windows inside each part (e.g. the first 90% of the tokens for "
            "training, the rest for validation), and deduplicate documents before splitting." if leaked else
            "Nothing to fix for repeated lines; if whole documents recur, deduplicate them before splitting.",
        )

    # ----------------------------------------------------------------------------------------- findings

    def _cross_finding(self, ctx: Any, cross: dict, calib: dict | None, settings: Settings, note: str | None):
        pairs, n_val = cross["pairs"], len(ctx.val)
        exact = sum(p["kind"] == "exact" for p in pairs)
        near = len(pairs) - exact
        fraction = len(pairs) / n_val
        chance = settings.alpha * cross["searched"] if calib is None else calib["alpha"] * cross["searched"]
        # near matches alone, no more than the training split's own rate (alpha) predicts: chance, not leakage
        p = _at_least(near, cross["searched"], calib["alpha"]) if calib is not None and near else 1.0
        significant = calib is None or p < settings.p_value
        # severity counts what is beyond chance: the near matches clean data would show anyway are not leakage
        excess = (exact + (max(0.0, near - chance) if significant else 0.0)) / n_val
        severity = "error" if excess >= _error_fraction(n_val, settings) else "warning"
        evidence: dict[str, Any] = {"exact": exact, "near": near, "val_samples": n_val, "fraction": round(fraction, 5),
                                    "fraction_beyond_chance": round(excess, 5),
                                    "error_fraction": round(_error_fraction(n_val, settings), 5)}
        message = (f"{len(pairs)} of {n_val} validation samples ({fraction:.1%}) are exact or near duplicates of "
                   f"training samples ({exact} exact, {near} near).")
        if calib is not None:
            evidence.update({"threshold": _r(calib["cutoff"]), **_rule(calib), "expected_by_chance": round(chance, 2),
                             "p_value": float(f"{p:.3g}")})
            if exact == 0 and p >= settings.p_value:
                severity = "info"
                message += (f" That is no more than the {chance:.1f} pairs this close expected by chance at the "
                            f"training split's own rate (p = {p:.2g}); look at the pairs, but it need not be leakage.")
            elif exact == 0 and excess < settings.near_warn_fraction:
                severity = "info"
                message += (f" That is more than the {chance:.1f} pairs this close expected by chance at the training "
                            f"split's own rate (p = {p:.2g}), but by {excess:.2%} of the validation split only "
                            f"(under near_warn_fraction {settings.near_warn_fraction:.1%}): too few to move a "
                            "validation score. The closest pairs are likely real copies; look at them.")
            elif near and not significant:
                message += (f" The {near} near ones are no more than the {chance:.1f} expected by chance at the "
                            f"training split's own rate (p = {p:.2g}): the exact copies are what counts.")
        if note:
            evidence["note"] = note
        evidence["pairs"] = pairs[:MAX_PAIRS]
        if len(pairs) > MAX_PAIRS:
            evidence.update({"pairs_total": len(pairs), "truncated": True})
        if cross.get("relative") is not None:
            evidence["score_histogram"] = score_histogram(
                cross["relative"], "validation samples by their best score over its cutoff (at most 1: flagged)")
        evidence["seconds"] = round(cross["seconds"], 3)
        thumbs = _pair_thumbnails(ctx, [(p["val"], p["train"], p["kind"]) for p in pairs], settings.thumbnails,
                                  ("val", "train"))
        if thumbs:
            evidence["thumbnails"] = thumbs
        rows = [{"split": "val", "index": p["val"], "partner_split": "train", "partner": p["train"], "kind": p["kind"],
                 "distance": p["distance"], "score": p["score"], "relative_score": p.get("relative", 0.0)} for p in pairs]
        return self.finding(
            "SC101", message, severity=severity, evidence=evidence,
            samples={"val": [p["val"] for p in pairs], "train": _dedupe(p["train"] for p in pairs)},
            export={"SC101": rows},
        )

    def _in_split_finding(self, ctx: Any, split: Any, found: dict, calib: dict | None, settings: Settings):
        n = len(split)
        flagged = sorted({i for g in found["groups"] for i in g[1:]})  # every copy beyond the first of a group
        members = [i for g in found["groups"] for i in g]
        fraction = len(flagged) / n
        severity = "warning" if found["exact"] or fraction >= settings.error_fraction else "info"
        evidence: dict[str, Any] = {
            "groups": len(found["groups"]), "duplicates": len(flagged), "exact_groups": found["exact"],
            "near_pairs": found["near"], "split_samples": n, "fraction": round(fraction, 5),
            "largest_groups": [g[:20] for g in found["groups"][:10]],
        }
        message = (f"{len(flagged)} {split.name} samples ({fraction:.1%}) duplicate another {split.name} sample: "
                   f"{len(found['groups'])} group(s), {found['exact']} of exact copies, {found['near']} near pair(s).")
        if calib is not None and found["cutoffs"]:
            # each look that ran adds its false-alarm rate (alpha, or the training split's when its cutoff is used)
            alpha = min(1.0, sum(found["rates"].values()))
            chance = alpha * found["searched"]
            near = found["near_samples"]
            p = _at_least(near, found["searched"], alpha) if near else 1.0
            evidence["looks"] = ", ".join(found["cutoffs"]) + (
                "" if found["looks"] or not calib["looks"] else
                f" (the aligned and colour looks run on splits of at most "
                f"{ctx.budget(settings.in_split_looks, minimum=0)} distinct samples: checks.leakage.in_split_looks, "
                "scaled by the profile)")
            evidence.update({"near_threshold": _r(found["cutoffs"]["plain"]),
                             **{f"{look}_threshold": _r(c) for look, c in found["cutoffs"].items() if look != "plain"},
                             "rule": IN_SPLIT_RULE.format(k=calib["k"], alpha=settings.alpha, ratio=settings.ratio,
                                                          n=found["searched"]),
                             "expected_by_chance": round(chance, 2), "p_value": float(f"{p:.3g}")})
            if found["relative"] is not None:
                evidence["score_histogram"] = score_histogram(
                    found["relative"], f"distinct {split.name} samples by their best score with another {split.name} "
                    "sample over its cutoff (at most 1: flagged)")
            if not found["exact"] and p >= settings.p_value:
                severity = "info"  # as across splits: near matches no more often than chance are not copies
                message += (f" That is no more near matches than the {chance:.1f} expected by chance at the rate its "
                            f"cutoffs are fitted to (p = {p:.2g}); look at the pairs, but they need not be copies.")
            elif not found["exact"] and found["searched"] < MIN_FIT:
                severity = "info"  # its cutoffs were borrowed: neighbourhoods of a few dozen samples are not comparable
                message += (f" The split has {found['searched']} distinct samples, too few to fit its own cutoffs "
                            f"(at least {MIN_FIT}): judged by the training split's, its sparse neighbourhoods make "
                            "near pairs look closer than they are; look at the pairs, but they need not be copies.")
        thumbs = _pair_thumbnails(ctx, [(r["index"], r["partner"], r["kind"]) for r in found["best"]],
                                  settings.thumbnails, (split.name, split.name))
        if thumbs:
            evidence["thumbnails"] = thumbs
        return self.finding(
            "SC103", message, severity=severity, samples={split.name: members}, evidence=evidence,
            export={f"SC103-{split.name}": found["rows"]},
        )

    def _conflicts(self, ctx: Any, groups: list, labels: dict, settings: Settings, cross_significant: bool):
        bad = []
        for kind, t_idx, v_idx, exact in groups:
            tags = {int(labels["train"][i]) for i in t_idx}
            if v_idx and labels.get("val") is not None:
                tags |= {int(labels["val"][i]) for i in v_idx}
            tags.discard(-1)  # an unreadable label is data-integrity's finding, not a conflict
            if len(tags) > 1:
                bad.append({"kind": kind, "exact": exact, "train": t_idx[:50], "val": v_idx[:50], "labels": sorted(tags)})
        if not bad:
            return None
        per_split = {"train": _dedupe(i for b in bad for i in b["train"]), "val": _dedupe(i for b in bad for i in b["val"])}
        worst = max(len(per_split[s.name]) / len(s) for s in ctx.splits())
        severity = "error" if worst >= settings.error_fraction else "warning"
        exact = sum(b["exact"] for b in bad)
        if not exact and not cross_significant:
            severity = "info"  # only near matches, no more of them than chance explains: their labels may differ too
        return self.finding(
            "SC104", f"{len(bad)} duplicate group(s) carry conflicting labels ({exact} with exact copies; "
            f"{len(per_split['train'])} train and {len(per_split['val'])} validation samples).",
            severity=severity, samples=per_split,
            evidence={"groups": bad[:200], "conflicting_groups": len(bad), "exact_groups": exact,
                      "error_fraction": settings.error_fraction},
        )


# --------------------------------------------------------------------------------------------- the probes

#: Pairs listed in the evidence (every one is in the export).
MAX_PAIRS = 1000


def _error_fraction(n_val: int, settings: Settings) -> float:
    """The share of the validation split that copies must reach to be an error: error_fraction, and more than the
    sampling noise of an accuracy measured on the split (0.5 / sqrt(n): 9 points on 30 samples, 0.5 on 10000), so
    that one shared record in a split of a few dozen does not fail a run."""
    return max(settings.error_fraction, 0.5 / max(n_val, 1) ** 0.5)


def _same_split(train: Any, val: Any) -> str | None:
    """Why val is train (same object, same Subset indices, identical content), or None."""
    from torch.utils.data import Subset

    if val.source is train.source or val.dataset is train.dataset:
        return "both name the same dataset object"
    if isinstance(train.dataset, Subset) and isinstance(val.dataset, Subset) \
            and train.dataset.dataset is val.dataset.dataset \
            and set(map(int, train.dataset.indices)) == set(map(int, val.dataset.indices)):
        return "both are Subsets of one dataset with the same indices"
    th, vh = train.data_pass().hashes, val.data_pass().hashes
    if len(th) == len(vh) and np.array_equal(np.sort(th), np.sort(vh)):
        return "both hold exactly the same inputs"
    return None


def _calibrate(ctx: Any, settings: Settings, group: np.ndarray | None = None, looks: bool = True) -> dict:
    """The near-duplicate cutoff for this data: the power-law tail of the training samples' own pair scores at alpha.

    Each distinct training sample is scored with its nearest training neighbour exactly as a validation sample
    is scored with its nearest training sample, so on clean data about a fraction alpha of validation samples
    scores below the cutoff; planted copies score far below it. It is capped at ``ratio``.

    ``group``: the training split's own near-duplicate groups (one id per distinct input, found by its in-split
    search): every scale then counts a group once, and only one sample per group is scored (with its nearest
    neighbour outside the group), so a cluster of copies in train neither hides a validation copy of it nor
    drags the cutoff down. ``looks=False``: the plain look only (``pending``: the looks are possible but not yet
    calibrated; a split searching itself then fits its own cutoffs).
    """
    from sanitycheck.probing.neighbors import split_neighbors

    nb = split_neighbors(ctx, ctx.train)
    k = settings.k
    if group is None:
        radius = nb.radius(k)
        _, _, scores = _nearest_scores(nb, k)
        pool = np.arange(len(nb.unique))
    else:
        every = np.arange(len(nb.unique))
        radius = _scale(ctx, nb, every, k, group, (group,))
        pool = np.flatnonzero(group == every)  # one sample per group
        partner, d1 = _outside_partner(ctx, nb, pool, group)
        ok = partner >= 0
        pool, partner, d1 = pool[ok], partner[ok], d1[ok]
        scale = np.minimum(radius[pool], _scale(ctx, nb, partner, k, group, (group[partner], group[pool])))
        scores = pair_score(d1, scale)
    cutoff, exponent, alpha = tail_cutoff(scores, settings.alpha)
    calib = {"cutoff": min(settings.ratio, cutoff), "exponent": exponent, "alpha": alpha,
             "ratio": settings.ratio, "k": settings.k, "radius": radius, "neighbors": nb, "looks": {}, "group": group,
             "samples": len(scores), "pending": False}
    if settings.align and _alignable(ctx) and len(pool) > 2 * ALIGN_CANDIDATES and not looks:
        calib["pending"] = True
        calib["looks"] = {look: {"cutoff": settings.ratio, "exponent": None, "alpha": settings.alpha, "samples": 0}
                          for look in (("aligned", "colour") if _channels(ctx) > 1 else ("aligned",))}
    elif settings.align and _alignable(ctx) and len(pool) > 2 * ALIGN_CANDIDATES:
        # the same calibration for the aligned and colour looks, on a seeded subset of training samples
        sub = np.sort(ctx.rng("leakage-align").choice(pool, min(ALIGN_CALIBRATION, len(pool)), replace=False))
        looks = {}
        for look, (_, _, look_scores) in aligned_scores(ctx, ctx.train, nb.unique[sub], nb, settings.k,
                                                         self_ids=sub, group=group).items():
            cut, exp, look_alpha = tail_cutoff(look_scores, settings.alpha)
            looks[look] = {"cutoff": min(settings.ratio, cut), "exponent": exp, "alpha": look_alpha, "samples": len(sub)}
            calib["alpha"] += look_alpha
        calib["looks"] = looks
    return calib


#: A neighbour list too short to hold k groups (a sample in a cluster of copies) is searched again this much wider
#: (times the largest group), up to WIDEST neighbours.
WIDEN = 3
WIDEST = 256


def _wider(ctx: Any, nb: Any, queries: np.ndarray, group: np.ndarray, self_ids: np.ndarray | None = None):
    """Neighbour lists of ``queries`` (embeddings) in the training split wide enough to hold k groups besides the
    largest cluster of copies: ``(dist, idx)``, a query's own row left out when ``self_ids`` names it."""
    from sanitycheck.probing.neighbors import knn, knn_device

    largest = int(np.bincount(group).max()) if len(group) else 1
    width = int(min(len(nb.unique), WIDEST, ALIGN_CANDIDATES + WIDEN * largest + 1))
    dist, idx = knn(queries, nb.base, width, seed=ctx.derived_seed("leakage-wide"), device=knn_device(ctx),
                    index=nb.index, label="leakage: around clusters of copies")
    if self_ids is not None:
        own = idx == np.asarray(self_ids)[:, None]
        dist, idx = np.where(own, np.inf, dist), np.where(own, -1, idx)
    return dist, idx


def _scale(ctx: Any, nb: Any, rows: np.ndarray, k: int, group: np.ndarray, exclude: tuple) -> np.ndarray:
    """For training samples ``rows`` (distinct ids): the distance to their k-th nearest group, leaving out the
    groups in ``exclude`` (arrays aligned with ``rows``); rows whose 10 shared neighbours hold too few groups are
    searched wider."""
    scale, found = group_kth(nb.dist[rows], nb.idx[rows], k, group, exclude)
    short = np.flatnonzero(~found)
    if len(short):
        dist, idx = _wider(ctx, nb, nb.base[rows[short]], group, self_ids=rows[short])
        scale[short] = group_kth(dist, idx, k, group, tuple(np.asarray(e)[short] for e in exclude))[0]
    return scale


def _outside_partner(ctx: Any, nb: Any, rows: np.ndarray, group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each training sample's nearest neighbour outside its own group: ``(partner ids (-1: none), distances)``."""
    idx, dist = nb.idx[rows], nb.dist[rows]
    outside = (idx >= 0) & (group[np.clip(idx, 0, None)] != group[rows][:, None])
    first = np.argmax(outside, 1)
    partner = np.where(outside.any(1), idx[np.arange(len(rows)), first], -1)
    d1 = np.where(outside.any(1), dist[np.arange(len(rows)), first], np.inf)
    short = np.flatnonzero(partner < 0)
    if len(short):
        dist, idx = _wider(ctx, nb, nb.base[rows[short]], group, self_ids=rows[short])
        outside = (idx >= 0) & (group[np.clip(idx, 0, None)] != group[rows[short]][:, None])
        first = np.argmax(outside, 1)
        partner[short] = np.where(outside.any(1), idx[np.arange(len(short)), first], -1)
        d1[short] = np.where(outside.any(1), dist[np.arange(len(short)), first], np.inf)
    return partner, d1


def _train_groups(nb: Any, found: dict | None) -> np.ndarray | None:
    """The training split's near-duplicate groups as one id per distinct input (the group's first), or None."""
    if not found or not found["near"]:
        return None
    group = np.arange(len(nb.unique))
    for members in found["groups"]:
        ids = np.unique(nb.inverse[members])
        if len(ids) > 1:
            group[ids] = ids.min()
    return group


def _at_least(count: int, n: int, rate: float) -> float:
    """The binomial test's p-value: P(X >= count) for X ~ Binomial(n, rate). From scipy.special, whose import
    takes a quarter of scipy.stats' (0.16 s against 0.56 s, measured): a run of the data checks alone pays it."""
    from scipy.special import bdtrc

    return float(bdtrc(count - 1, n, rate))


def _channels(ctx: Any) -> int:
    """Colour channels of the training split's images (the colour look needs more than one)."""
    from sanitycheck.pipeline.features import GRID
    from sanitycheck.probing.embedding import embedding

    return embedding(ctx, ctx.train).shape[1] // (GRID * GRID)


def _alignable(ctx: Any) -> bool:
    """The aligned look needs image inputs compared as pixel thumbnails (not the model's features), all of one
    shape: it shifts and crops them side by side (variable-length sequences, padded by a collate_fn, are not)."""
    from sanitycheck.probing.embedding import source

    shapes = {s for split in ctx.splits() for s in split.data_pass().input_shapes}
    return source(ctx) == "pixels" and ctx.train.data_pass().features_kind == "image" and len(shapes) == 1


def _rule(calib: dict) -> dict:
    looks = calib["looks"]
    plain_alpha = calib["alpha"] - sum(look["alpha"] for look in looks.values())
    out = {"k": calib["k"], "alpha": calib["alpha"], "tail_exponent": _r(calib["exponent"] or 0),
           "rule": RULE.format(k=calib["k"], cutoff=calib["cutoff"], ratio=calib["ratio"], alpha=plain_alpha)}
    for name, look in looks.items():
        out.update({f"{name}_threshold": _r(look["cutoff"]), f"{name}_alpha": look["alpha"],
                    f"{name}_rule": LOOK_RULES[name].format(cutoff=look["cutoff"], alpha=look["alpha"],
                                                            n=look["samples"], c=ALIGN_CANDIDATES, k=calib["k"],
                                                            z=ZOOM_CANDIDATES)})
    if calib.get("group") is not None:
        out["training_clusters"] = int(len(calib["group"]) - len(np.unique(calib["group"])))
    return out


def _cross(ctx: Any, settings: Settings, calib: dict | None) -> dict:
    """Validation samples that copy training samples: exact (hash join), then near (neighbourhood rule)."""
    import time

    from sanitycheck.probing.embedding import embedding
    from sanitycheck.probing.neighbors import knn, knn_device

    start = time.perf_counter()
    th, vh = ctx.train.data_pass().hashes, ctx.val.data_pass().hashes
    # hash join, vectorized: the first training index of each distinct hash, looked up for every val hash
    uniq, first = np.unique(th, return_index=True)
    pos = np.clip(np.searchsorted(uniq, vh), 0, len(uniq) - 1)
    matched = np.flatnonzero(uniq[pos] == vh)
    pairs = [{"val": int(i), "train": int(first[pos[i]]), "kind": "exact", "distance": 0.0, "score": 0.0, "relative": 0.0}
             for i in matched]
    rest = np.setdiff1d(np.arange(len(ctx.val)), matched)
    relative = None
    if calib is not None and len(rest):
        nb = calib["neighbors"]
        val_emb = embedding(ctx, ctx.val)
        aligned = bool(calib["looks"])
        # one search serves both looks: the aligned look's candidates are the nearest ALIGN_CANDIDATES
        dist, idx = knn(val_emb[rest], nb.base, max(settings.k, ALIGN_CANDIDATES if aligned else 0),
                        seed=ctx.derived_seed("leakage"), device=knn_device(ctx), index=nb.index,
                        label="leakage: val against train")
        d1, u1 = dist[:, 0], idx[:, 0]
        group = calib["group"]
        if group is None:
            own_scale = kth(dist, settings.k)
        else:  # the training split's clusters of copies count once
            own_scale, found = group_kth(dist, idx, settings.k, group)
            short = np.flatnonzero(~found)
            if len(short):
                wd, wi = _wider(ctx, nb, val_emb[rest[short]], group)
                own_scale[short] = group_kth(wd, wi, settings.k, group)[0]
        score = pair_score(d1, np.minimum(own_scale, calib["radius"][u1]))
        with np.errstate(divide="ignore", invalid="ignore"):  # a split too small to calibrate has cutoff 0
            relative = score / calib["cutoff"]
        hit = np.flatnonzero(relative <= 1)
        pairs += [{"val": int(rest[j]), "train": int(nb.unique[u1[j]]), "kind": "near", "distance": _r(d1[j]),
                   "score": _r(score[j]), "relative": _r(relative[j])} for j in hit[np.argsort(score[hit], kind="stable")]]
        if aligned:
            left = np.setdiff1d(np.arange(len(rest)), hit)
            taken = np.zeros(len(left), dtype=bool)
            for look, (d_s, u_s, score_s) in aligned_scores(ctx, ctx.val, rest[left], nb, settings.k,
                                                             cand=idx[left], group=calib["group"]).items():
                rel = score_s / calib["looks"][look]["cutoff"]
                relative[left] = np.minimum(relative[left], rel)
                more = np.flatnonzero((rel <= 1) & ~taken)
                taken[more] = True
                pairs += [{"val": int(rest[left[j]]), "train": int(nb.unique[u_s[j]]), "kind": f"near ({look})",
                           "distance": _r(d_s[j]), "score": _r(score_s[j]), "relative": _r(rel[j])}
                          for j in more[np.argsort(score_s[more], kind="stable")]]
    return {"pairs": pairs, "searched": len(rest), "seconds": time.perf_counter() - start, "relative": relative}


def _in_split(ctx: Any, split: Any, calib: dict | None, settings: Settings) -> dict | None:
    """Duplicate groups inside one split: exact copies by hash, near pairs by the same scores and looks as across
    splits (each distinct input against the split's other distinct inputs), each look's cutoff fitted to the
    split's own scores (the power-law tail at alpha, as in the calibration; the training split's cutoffs for splits
    too small to fit)."""
    from sanitycheck.probing.neighbors import split_neighbors, unique_inputs

    unique, inverse = unique_inputs(split.data_pass().hashes)
    links: list[tuple[int, int, str, float, float, float]] = []  # (u, v, kind, distance, score, relative), distinct ids
    relative, cutoffs, rates, looked = None, {}, {}, False
    if calib is not None and len(unique) > 2:
        nb = calib["neighbors"] if split is ctx.train else split_neighbors(ctx, split)
        k = calib["k"]
        ok, partner, score = _nearest_scores(nb, k)
        plain_rate = calib["alpha"] - sum(look["alpha"] for look in calib["looks"].values())
        cutoffs["plain"], rates["plain"] = _own_cutoff(score, calib["cutoff"], plain_rate, settings)
        relative = np.full(len(unique), np.inf)
        with np.errstate(divide="ignore", invalid="ignore"):  # a split too small to calibrate has cutoff 0
            relative[ok] = score / cutoffs["plain"]
        taken = np.zeros(len(unique), dtype=bool)
        hit = ok[relative[ok] <= 1]
        taken[hit] = True
        links += [(int(u), int(nb.idx[u, 0]), "near", float(nb.dist[u, 0]), float(relative[u] * cutoffs["plain"]),
                   float(relative[u])) for u in hit]
        looked = bool(calib["looks"]) and 2 * ALIGN_CANDIDATES < len(unique) <= ctx.budget(settings.in_split_looks,
                                                                                             minimum=0)
        if looked:
            # every distinct input (their scores are the looks' calibration here); the candidates are the split's
            # own neighbours, already searched (ALIGN_CANDIDATES of them, as everywhere)
            ids = np.arange(len(unique))
            for look, (d_s, u_s, score_s) in aligned_scores(ctx, split, nb.unique, nb, k, base_split=split, self_ids=ids,
                                                             cand=nb.idx[:, :ALIGN_CANDIDATES]).items():
                cutoffs[look], rates[look] = _own_cutoff(score_s, calib["looks"][look]["cutoff"],
                                                         calib["looks"][look]["alpha"], settings)
                rel = score_s / cutoffs[look]
                relative = np.minimum(relative, rel)
                more = np.flatnonzero((rel <= 1) & ~taken)
                taken[more] = True
                links += [(int(j), int(u_s[j]), f"near ({look})", float(d_s[j]), float(score_s[j]), float(rel[j]))
                          for j in more]
    near = np.array([(a, b) for a, b, *_ in links], dtype=np.int64).reshape(-1, 2)
    groups, near_pairs = duplicate_groups(inverse, len(unique), near)
    if not groups:
        return None
    exact = int((np.bincount(inverse, minlength=len(unique)) > 1).sum())
    rows, best = _group_rows(split.name, unique, inverse, groups, links)
    return {"groups": groups, "exact": exact, "near": near_pairs, "rows": rows, "best": best, "relative": relative,
            "searched": len(unique), "near_samples": len({a for a, *_ in links}), "looks": looked,
            "cutoffs": cutoffs, "rates": rates}


def _own_cutoff(scores: np.ndarray, fallback: float, fallback_rate: float, settings: Settings) -> tuple[float, float]:
    """A look's cutoff inside a split, fitted to that split's own scores (so a small or sparse split is judged by
    its own neighbourhoods), and the share of clean samples expected under it: ``(cutoff, rate)``. The training
    split's cutoff, and the rate it was fitted at, when there are too few scores to fit a tail (a training split
    under 200 samples uses its empirical quantile at 10 / n, far above alpha)."""

    if np.isfinite(scores).sum() < MIN_FIT:
        return fallback, fallback_rate
    cut, exponent, _ = tail_cutoff(scores, settings.alpha)
    if exponent is None or cut <= 0:
        return fallback, fallback_rate
    return min(settings.ratio, cut), settings.alpha


def _nearest_scores(nb: Any, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every distinct input of a split scored with its nearest other one: ``(ids, partner ids, scores)``.

    The partner's scale leaves the sample itself out, as a validation sample is not among the partner's training
    neighbours: when the sample is one of the partner's k nearest, the partner's (k+1)-th is taken. The
    calibration and the duplicates inside a split use exactly these scores."""
    radius = nb.radius(k)
    ok = np.flatnonzero(nb.idx[:, 0] >= 0)
    partner = nb.idx[ok, 0]
    inside = (nb.idx[partner, :k] == ok[:, None]).any(1)
    partner_radius = np.where(inside, nb.radius(k + 1)[partner], radius[partner])
    return ok, partner, pair_score(nb.dist[ok, 0], np.minimum(radius[ok], partner_radius))


def _group_rows(split: str, unique: np.ndarray, inverse: np.ndarray, groups: list[list[int]],
                links: list[tuple]) -> tuple[list[dict], list[dict]]:
    """One export row per member of every duplicate group (its partner: the first copy for an exact copy, else the
    sample its near link joins it to), and the near links best first (for thumbnails)."""
    out_link: dict[int, tuple] = {}
    in_link: dict[int, tuple] = {}
    for a, b, kind, d, sc, rel in links:
        out_link.setdefault(a, (b, kind, d, sc, rel))
        in_link.setdefault(b, (a, kind, d, sc, rel))
    rows = []
    for g, members in enumerate(groups):
        first_copy: dict[int, int] = {}
        for i in members:
            u = int(inverse[i])
            if u in first_copy:
                rows.append({"split": split, "index": int(i), "group": g, "partner": first_copy[u], "kind": "exact",
                             "distance": 0.0, "score": 0.0, "relative_score": 0.0})
                continue
            first_copy[u] = int(i)
            link = out_link.get(u) or in_link.get(u)
            if link is None:  # a distinct input whose only copies are exact: its partner is its next copy
                twin = next(j for j in members if int(inverse[j]) == u and j != i)
                rows.append({"split": split, "index": int(i), "group": g, "partner": int(twin), "kind": "exact",
                             "distance": 0.0, "score": 0.0, "relative_score": 0.0})
                continue
            v, kind, d, sc, rel = link
            rows.append({"split": split, "index": int(i), "group": g, "partner": int(unique[v]), "kind": kind,
                         "distance": _r(d), "score": _r(sc), "relative_score": _r(rel)})
    best = sorted((r for r in rows if r["kind"] != "exact"), key=lambda r: r["relative_score"])
    seen: set[frozenset] = set()
    pairs = []
    for r in [r for r in rows if r["kind"] == "exact"] + best:
        key = frozenset((r["index"], r["partner"]))
        if key not in seen:
            seen.add(key)
            pairs.append(r)
    return rows, pairs


def _has_copies(h: np.ndarray, group: list[int]) -> bool:
    """Whether a duplicate group holds exact copies (two members with the same content hash)."""
    return len(set(h[group].tolist())) < len(group)


def _dedupe(values: Any) -> list[int]:
    seen: dict[int, None] = {}
    for v in values:
        seen.setdefault(int(v), None)
    return list(seen)


def _r(v: float) -> float:
    return float(f"{float(v):.4g}")


def _pair_thumbnails(ctx: Any, pairs: list[tuple[int, int, str]], limit: int, splits: tuple[str, str]) -> list[dict]:
    from sanitycheck.probing.thumbnails import thumbnail

    out = []
    for g, (a, b, kind) in enumerate(pairs[:limit]):
        for split, index in zip(splits, (a, b)):
            item = thumbnail(ctx, split, index, caption=f"{split} {index}" + (f" ({kind})" if kind else ""), group=g)
            if item is None:
                return []
            out.append(item)
    return out


@hookimpl
def sanitycheck_checks():
    return [Leakage()]
