"""``label-shuffle``: randomization tests (Zhang et al. 2017, "Understanding deep learning requires rethinking
generalization"; Karpathy's input-independent baseline).

A model trained on the real labels must score clearly better on held-out data than the same model trained
on the same inputs with the labels randomly permuted, and clearly better than one trained with every input
zeroed. If it does not, the labels are not attached to the right inputs, or the inputs carry no signal.
A shuffled-label model that beats chance on held-out data means label information reaches the model by
another path. How fast random labels are memorized, compared with real ones, says how easily the model
can overfit.

All three long runs share one subset, one budget, one initialization and one batch order (the shared
trainer's reference plan); only the labels or the inputs differ, so the comparisons are paired.
"""

from __future__ import annotations

import functools
import math
from types import SimpleNamespace
from typing import Any

import numpy as np
from pydantic import Field

from sanitycheck import Check, CheckSettings, CodeDoc, hookimpl
from sanitycheck.probing.trainer import rounded, thin_curve

#: Findings of other checks that explain "not learned" (the pipeline cannot train): the report names them in
#: SC201/SC204 and lists them first.
CANNOT_TRAIN = ("SC902", "SC903", "SC904", "SC305", "SC302", "SC303", "SC304", "SC1001", "SC1002", "SC1003", "SC1007", "SC1008", "SC801", "SC803", "SC804", "SC807", "SC808")

REMEDIES = ("more training data, data augmentation, weight decay, dropout, early stopping on a validation "
            "split, or a smaller model")


class Settings(CheckSettings):
    alpha: float = Field(0.01, gt=0, lt=0.5, description="Significance level of the real-vs-shuffled and "
                         "real-vs-zeroed tests (one-sided; 0.01 = 99% confidence).")
    leak_alpha: float = Field(0.001, gt=0, lt=0.5, description="Significance level of the shuffled-above-chance test.")
    leak_margin: float = Field(0.05, ge=0, description="... and the shuffled model must beat chance by at least "
                               "this much (accuracy, or R² for regression) to be reported.")
    memorize_samples: int = Field(128, ge=8, description="Training samples of the memorization test.")
    memorize_steps: int = Field(600, ge=20, description="Most steps of each memorization run (scaled by the profile).")
    memorize_seconds: float = Field(5.0, gt=0, description="Time cap of each memorization run (scaled by the profile); "
                                    "a random-label run cut short gives a lower bound on the ratio.")
    fit_accuracy: float = Field(0.95, gt=0, le=1, description="A subset counts as fit at a training accuracy this "
                                "share of the way from its most common class's share to 1 (classification) ...")
    fit_r2: float = Field(0.9, gt=0, le=1, description="... or this training R² (regression).")
    memorize_warn_ratio: float = Field(1.25, gt=0, description="Warn when random labels are fit in fewer than this "
                                       "many times the steps real labels take.")
    min_loss_gain: float = Field(0.01, ge=0, lt=1, description="Compared by their losses (no per-sample "
                                 "correctness: sequences, regression), the real-label (real-input) model counts as "
                                 "better only when it also lowers the mean held-out loss by at least this fraction of "
                                 "the other model's (with thousands of token positions, a 0.1% gain is significant and "
                                 "is the label prior learned two ways).")
    permutations: int = Field(9999, ge=99, description="Resamples of the sign-flip permutation test (regression, "
                              "or outputs that are not class scores).")


CODES = (
    CodeDoc(
        code="SC201", title="Real labels are not learned better than shuffled labels", severity="error",
        what="Trains the model three times on the same training subset (1024 samples, 300 steps at the default "
        "profile, the same initialization and batch order): with the real labels, and with the labels randomly "
        "permuted among the subset. Both are scored on the same held-out samples (512 of the validation split, "
        "or a disjoint part of train without one). Decision rule: error unless the real-label model is better "
        "at the 99% level (alpha 0.01, one-sided) in two tests: (1) against the shuffled-label model, an exact "
        "McNemar (binomial) test on the samples one model gets right and the other wrong (classification), or a "
        "paired sign-flip permutation test on per-sample losses (regression, or outputs that are not class "
        "scores); (2) against chance, a class-relabeling permutation test (7 or more classes: the model's "
        "accuracy vs that of its own predictions with the class ids randomly permuted, 9999 relabelings; it "
        "must then also beat every constant predictor: more right answers than the hardest 'always class c' "
        "(exact McNemar), or, with a plain cross-entropy / NLL loss, a lower mean loss than the held-out class "
        "frequencies (sign-flip test, at least 1% lower), the better of the two with a Bonferroni factor 2), an "
        "exact binomial test against chance (fewer classes) or a sign-flip test against predicting the mean "
        "(regression). Test (2) is needed because a random-label model's mistakes are clustered, so "
        "sample-level tests alone call it better than another random-label model far too often. Compared by "
        "losses (sequences, regression), test (1) also needs a gain of at least min_loss_gain = 1% of the other "
        "model's mean loss: with thousands of token positions a 0.1% gain is significant and means nothing. Budget: when a "
        "quick timing of your step says the default budget would take more than 60% of the time cap (10 s at the "
        "default profile; for an epoch estimated under 33 s, 30% of it, at least 5 s), the budget follows the "
        "measured step cost instead: smaller batches (down to 8), as many steps as fit, a training subset small "
        "enough to be seen about 6 times (at least 128 samples) and a "
        "held-out subset whose evaluation takes at most 15% of the time (at least 128). On such a fitted budget "
        "the error needs two more things, else it is SC205: (a) proof that the model trained: it fits its own "
        "training samples significantly better than the held-out ones (one-sided Mann-Whitney test at alpha, on "
        "per-sample correctness or losses) and by at least 0.05 (accuracy or R²), as a model memorizing labels it "
        "cannot generalize does; (b) classification: the inputs themselves do not predict "
        "the labels: the leave-one-out vote of each training sample's 10 nearest inputs on the shared embedding "
        "(token ids: on their bags of tokens, TF-IDF, the shared embedding of texts: distances between id vectors "
        "mean nothing) is not significantly above chance (sum_k p_k q_k, p the labels' and q the votes' class "
        "shares; binomial test at alpha/10, or less than 5 points above it). (b) also "
        "applies on the default budget to a model that does not pass (a): PyTorch's 60-minute-blitz CIFAR net at "
        "lr 0.001 learned nothing in 300 steps (0.125 on its training samples, 0.094 held out) while the vote "
        "gets 39% against a chance of 10%, so that is SC205, not an error. On a fitted budget (a) may fail, and the "
        "error stand, when the inputs do not predict the labels at all: classification, the "
        "vote is not above chance even at alpha (the CIFAR-sized conv net with permuted labels fit none of its "
        "696 training images in 261 steps in one run); targets that are not one class id per sample "
        "(segmentation masks, multi-label rows, regression values), a sample's target is no closer to its nearest "
        "input neighbour's than to a random sample's (up to 4000 training samples, paired sign-flip test at alpha "
        "on the fraction of equal elements, or for real values the squared difference of the targets' ranks; "
        "measured on MNIST masks: 0.93 with the neighbour against 0.79 at random when aligned, p = 0.0001; "
        "masks of other images p = 0.93); task: sequence, no table of target "
        "token given input token (offsets -1, 0 and 1 from the target's position; counted on the lower half of up "
        "to 4000 training sequences by index, smoothed towards the targets' frequencies) lowers the upper half's "
        "mean loss below the frequencies' at alpha (paired sign-flip test per sequence, Bonferroni x3): the "
        "targets then belong to other inputs, trained or not (measured on blocks of the standard library's "
        "source: the aligned blocks' tables gain 9% (offset -1), 20% (offset 0, the bigrams) and 99.9% (offset 1: "
        "the target is the next input); targets taken from other blocks lose 1.5-1.6% at every offset). Targets "
        "scored by R² or loss (not one class id per sample), held out on the validation split, a model that did not "
        "fit its own training samples (a): an error too, whatever the held-out scores, when the neighbour test "
        "above finds no relation in the training split (p >= alpha) and a clear one in the validation split on its "
        "own (p < alpha / 10): the same kind of data paired in one split and not in the other (PyTorch's "
        "super-resolution example on CIFAR-10 with its training targets shuffled scored R² 0.02-0.03 held out, "
        "beating every comparison in 3 runs of 4, while the neighbours gave p = 0.86 in train, 0.0001 in val). The check "
        "needs at "
        "least 32 usable training samples and 10 held-out samples; below that it is skipped (SC201-SC206). It is "
        "skipped too when the runs are scored by their loss and the loss of a single held-out sample cannot be "
        "computed (a loss that needs the whole batch): a verdict on NaN scores would say \"not learned\" whatever "
        "the labels. For task: sequence the targets (whole sequences of next tokens) are permuted across sequences, each sequence's score is its mean loss over the positions that count, and test (1) is the sign-flip test on those losses (no chance level is defined for a loss, so test (2) does not apply).",
        why="A model can fit shuffled labels too (it memorizes them), so a training loss that falls proves "
        "nothing. If the real labels do not generalize better than random ones, what the model learns from "
        "them is not a relation between inputs and labels: the labels are misaligned with their inputs, the "
        "inputs carry no signal, or the wrong column is the target.",
        example="A dataset that sorts its images but not its labels; `return image, self.labels[i + 1]`; "
        "inputs overwritten by a constant during preprocessing; the target column set to a row id.",
        fix="Check that each input is paired with its own label (plot a few with their labels), that the inputs "
        "vary, and that the target is the right column. If the model just needs longer to learn, run with "
        "--profile thorough.",
        explained_by=CANNOT_TRAIN + ("SC301", "SC811"),  # SC811: the held-out inputs, scaled unlike the training ones
    ),
    CodeDoc(
        code="SC202", title="A model trained on shuffled labels scores above chance", severity="warning",
        what="Scores the shuffled-label model (see SC201) on the held-out samples against chance: for "
        "classification the accuracy a predictor independent of the labels reaches, sum_k q_k p_k (q: the "
        "model's predicted class frequencies, p: the held-out label frequencies), with the class-relabeling "
        "permutation test (7 or more classes) or a one-sided exact binomial test; for regression the per-sample squared error of the training-label mean, with a paired "
        "sign-flip permutation test. Decision rule: warning when p < 0.001 and the score beats chance by at "
        "least 0.05 (accuracy or R²). Not judged for regression targets shaped like their inputs (an "
        "autoencoder's, a denoiser's) or like them resized (the same channels, the other dimensions scaled by one "
        "factor: super-resolution): a model predicts those from its inputs without aligned training (a "
        "convolutional autoencoder on MNIST trained on permuted targets still scored R² 0.12, its layers passing "
        "some of the input through; PyTorch's super-resolution example on CIFAR-10 images got SC202 in some runs).",
        why="With shuffled training labels nothing about the real labels can be learned, so any held-out "
        "score above chance comes from label information that reaches the model another way: a train_step that "
        "reads labels from somewhere else than the batch, labels encoded in the validation inputs, or "
        "evaluation samples that are not held out.",
        example="A train_step that looks labels up in a global table by sample id instead of using the batch's "
        "targets; a validation set built from the same files with the label baked into the input.",
        fix="Make train_step use the targets of the batch it is given, and make sure nothing about the labels "
        "(ids, file names, ordering) is encoded in the inputs.",
    ),
    CodeDoc(
        code="SC203", title="Memorization ratio: how fast random labels are fit vs real ones", severity="info",
        what="Not run for task: sequence (a text's next tokens cannot be fit to 95% accuracy: the same context has "
        "several continuations). Trains on a small subset (128 samples) with the real labels and with randomly permuted labels, "
        "each until the subset is fit (training accuracy 95% of the way from the subset's most common class share "
        "to 1, so that always predicting that class does not count, or R² 0.9 for regression; checked every 5 steps, "
        "at most 600 steps or 5 s per run at the default profile; not run when that time affords fewer than 50 steps "
        "at your measured step cost, and random labels not tried when it affords fewer than `memorize_warn_ratio` "
        "times the steps the real labels took: the warning could not be decided; stopped at its first check for "
        "targets with neither an accuracy nor an R², such as multi-hot ones), and reports the ratio of the "
        "steps each needed. Decision rule: info with the ratio; warning when random labels are fit in less than "
        "1.25x the steps real ones "
        "take, except when fewer than 10 subset samples are outside its most common class (as many with random "
        "labels: fitting either is memorizing those few; breast cancer cut to 3% malignant: ratio 0.81, clean) and "
        "for targets that are mostly noise to the model, where fitting the real ones is memorization too: "
        "regression with the shared reference run's held-out R² below half the R² 0.9 fitted here, classification "
        "with its held-out accuracy less than 10% of the way from always predicting the most common class to 1 "
        "(labels permuted: SC201 says so; or a model that learned nothing general in that run).",
        why="A model that memorizes noise as fast as signal has the capacity to fit your training set "
        "without learning anything general; its validation score will depend on regularization. A ratio near "
        "1 with real labels also means the real labels look like noise to the model.",
        example="A large MLP on a few hundred samples: it fits random labels almost as fast as real ones.",
        fix="Use what limits memorization: " + REMEDIES + ". If the ratio is near 1, check the labels too "
        "(SC201).",
        explained_by=("SC201",),
    ),
    CodeDoc(
        code="SC204", title="Zeroed inputs are learned as well as real inputs", severity="error",
        what="Karpathy's input-independent baseline: the same training as the real-label model (same subset, "
        "budget, initialization and batch order) with every input set to zero (token ids with task: sequence: "
        "every id set to 0; other integer inputs are not zeroed). Decision rule: error unless "
        "the real-input model is better on the held-out samples at the 99% level, with the same tests as "
        "SC201 (and the same minimum gain). The zeroed model is not trained when it can only be a constant "
        "predictor: the real model, given a batch of 32 held-out samples with zeroed inputs, gives each of them "
        "the same outputs (per position for sequences; relative tolerance 1e-4). It is then compared with the best "
        "constant predictor instead, which no zeroed model can beat: classification, the exact McNemar test against "
        "always predicting class c, for the c with the largest p-value; task: sequence with a cross-entropy loss, "
        "the sign-flip test and the minimum gain against each sequence's loss under the per-position frequencies "
        "of the held-out targets themselves. When the real model does not beat it, or the outputs differ (masks or "
        "other inputs in the batch, dropout at evaluation), or the loss is another one, the zeroed model is trained "
        "and compared as above. Targets scored by a loss with no chance level (multi-hot rows) hold the real-label "
        "model to the shuffled run only; when it beats that one (two random-label models' losses often differ "
        "significantly) but not the zeroed model, the message names labels shuffled apart from their samples too.",
        why="If the model does as well without its inputs, it learns only the label prior (or reads labels "
        "from somewhere else): the inputs reach the model empty, constant or disconnected.",
        example="A transform that returns a blank tensor; a forward() that uses a buffer instead of its input; "
        "inputs all equal because of a normalization with the wrong statistics.",
        fix="Look at the inputs the model actually receives (print a batch inside train_step), and make sure "
        "forward() uses its argument.",
        explained_by=CANNOT_TRAIN + ("SC301", "SC811"),
    ),
    CodeDoc(
        code="SC205", title="Randomization test inconclusive: not enough training to tell", severity="info",
        what="Reported instead of SC201/SC204 when the real-label model is not clearly better but no verdict can "
        "be drawn from its training. Decision rule: the SC201/SC204 condition holds and (a) even the smallest "
        "budget that can decide (50 steps of batch 8) does not fit the time cap at the measured step cost, or (b) "
        "the run was cut by the time cap before its planned steps (the machine slowed down), or (c) on a budget "
        "fitted to the step cost (see SC201), the model did not fit its own training samples better than the "
        "held-out ones, i.e. it learned nothing measurable, or (d) classification with fewer than 7 classes, the "
        "held-out samples cannot show learning: a model wrong on only one in ten of the held-out samples outside "
        "their most common class (at least one) and right on every other one would not beat chance (about sum_k "
        "p_k^2, p the held-out class shares) at alpha by the exact binomial test (breast cancer cut to 3% "
        "malignant, 2 of 68 held out: such a model is at p = 0.094; SC201 and SC204 errors on a clean pipeline "
        "before). The message says what a verdict would need.",
        why="An error must mean the pipeline is broken, not that the probe's own budget ran out.",
        example="A large CNN on a busy CPU where one step of 8 samples takes a second: 50 steps do not fit in the "
        "10 s cap.",
        fix="Give the check the time it needs: --profile thorough (4x the time cap) when the message says that "
        "suffices, or a GPU (device: cuda).",
        explained_by=CANNOT_TRAIN + ("SC301",),
    ),
    CodeDoc(
        code="SC206", title="Validation labels do not belong to their inputs", severity="error",
        what="Reported instead of SC201/SC205 when the held-out samples are the validation split and the fault is "
        "in its labels. Decision rule: the SC201 condition holds (the real-label model is not clearly better than "
        "shuffled labels, or than chance, on the held-out samples) although the model fits its own training "
        "samples (one-sided test, see SC201); the training labels are predictable from their inputs without any "
        "training (the leave-one-out vote of each training sample's 10 nearest distinct training inputs on the "
        "shared embedding: one-sided binomial test against sum_k p_k q_k, p the labels' and q the votes' class "
        "shares, at alpha / 10, and 5 points above it); and "
        "the validation labels are not (the vote of each held-out sample's 10 nearest training inputs, by bags of "
        "tokens for token ids, against "
        "chance sum_k p_k q_k, p the held-out label frequencies and q the votes', one-sided binomial test, p >= "
        "alpha), the validation inputs being on the training inputs' scale (SC811's rule at its defaults: std "
        "ratio within 1.5x, means at most 2 training stds apart; else their neighbours say nothing). Targets "
        "scored by R² or loss (regression values, masks): the SC201 condition holds, and the neighbour test of SC201 "
        "run on each split on its own finds a clear relation in the training split (p < alpha / 10) and none in the "
        "validation split (p >= alpha), on the same scale, on a budget that decides SC201 (not SC205) (diabetes with "
        "its validation targets permuted: SC201 and SC204 before, this now).",
        why="A model that learns its training labels, on inputs whose neighbours agree with those labels, and is at "
        "chance on validation samples that its training neighbours disagree with, is scored against labels that "
        "belong to other inputs: every validation number (loss, accuracy, early stopping) measures nothing.",
        example="Validation images and labels loaded from two files in different orders; a label list shuffled on "
        "its own; a validation Dataset that indexes its labels with a different index than its images.",
        fix="Check how the validation split pairs each input with its label (the same order, the same file, the "
        "same index), and plot a few validation inputs with their labels.",
        explained_by=CANNOT_TRAIN,
    ),
)


#: Below these sample counts the randomization tests have no power (a clean pipeline was flagged at 20 training
#: samples on digits and diabetes): the check skips and says so.
MIN_TRAIN_SAMPLES = 32
MIN_EVAL_SAMPLES = 10


class LabelShuffle(Check):
    name = "label-shuffle"
    summary = ("randomization tests: real labels must be learned clearly better than shuffled labels and than "
               "zeroed inputs; shuffled labels scoring above chance; how fast random labels are memorized; "
               "validation labels that do not belong to their inputs")
    cost = ("a few seconds for a small model: two or three trainings of 300 steps on 1024 samples (one shared with "
            "other checks; the zeroed-input one only when the real model does not beat every constant predictor) and "
            "two of at most 600 steps on 128 samples; for a slow model, budgets fitted to the measured step time: "
            "about 2 x 6 s + 2 x 5 s at the default profile")
    codes = CODES
    Settings = Settings

    def run(self, ctx: Any, settings: Settings):
        import torch

        from sanitycheck.pipeline.data import same_scale
        from sanitycheck.probing.trainer import eval_split_of, reference_draw, reference_model, reference_plan, train

        targets = ctx.train.data_pass().targets
        if targets is None:
            self.skip(f"the training targets are not one array to permute ({ctx.train.data_pass().targets_note})")
        drawn = reference_draw(ctx)  # known before the step is timed: fitting keeps at least 128 of each
        if len(drawn.train_indices) < MIN_TRAIN_SAMPLES:
            self.skip(f"needs at least {MIN_TRAIN_SAMPLES} usable training samples to train on (has "
                      f"{len(drawn.train_indices)}): below that, real and shuffled labels are both memorized and the "
                      "tests cannot tell them apart")
        if len(drawn.eval_indices) < MIN_EVAL_SAMPLES:
            self.skip(f"needs at least {MIN_EVAL_SAMPLES} held-out samples to compare scores on (has "
                      f"{len(drawn.eval_indices)})")
        plan = reference_plan(ctx)
        real = reference_model(ctx)
        if real.stopped == "nonfinite":
            self.skip(f"the loss became non-finite at step {real.steps} of training (see overfit-batch and gradients)")
        evaluation_split = eval_split_of(ctx, plan)
        common = dict(steps=real.steps, tag="trainer:reference", batch_size=plan.batch_size,
                      eval_split=evaluation_split, eval_indices=plan.eval_indices, evaluate_train=False)
        labels = targets[plan.train_indices]
        shuffled = train(ctx, ctx.train, plan.train_indices, labels=ctx.rng("label-shuffle:permute").permutation(labels),
                         **common)
        first = ctx.train.unpack(ctx.batch(ctx.train, plan.train_indices[:1]))[0]
        # token ids (task: sequence) are "zeroed" to id 0, a valid id of every vocabulary
        zeroable = isinstance(first, torch.Tensor) and (first.dtype.is_floating_point or ctx.task == "sequence")
        rng = ctx.rng("label-shuffle:test")
        # a model of zeroed inputs that is a constant predictor need not be trained: the best constant is known
        without_inputs = _against_constants(ctx, real, evaluation_split, settings, rng) if zeroable else None
        zeroed = train(ctx, ctx.train, plan.train_indices, inputs_transform=torch.zeros_like, **common) \
            if zeroable and (without_inputs is None or without_inputs[0] >= settings.alpha) else None

        r, s = real.eval, shuffled.eval
        if r.metric == "loss" and np.isfinite(r.losses).sum() < MIN_EVAL_SAMPLES:
            # nothing to compare: a verdict on NaN scores would be "not learned" whatever the labels
            self.skip("the loss of a held-out sample could not be computed (the loss fails on a batch of one "
                      "sample, or gives NaN), so the runs' scores cannot be compared")
        chance = _chance(s)
        scores = {"real": rounded(r.score), "shuffled": rounded(s.score), "chance": rounded(chance),
                  "zeroed_inputs": rounded(zeroed.eval.score) if zeroed else None}
        base = {
            "metric": r.metric, "scores": scores, "train_samples": len(plan.train_indices), "steps": real.steps,
            "eval_split": plan.eval_split, "eval_samples": r.n, "alpha": settings.alpha, "budget": plan.describe(),
            "loss_curve_real": thin_curve(real.losses, 50), "loss_curve_shuffled": thin_curve(shuffled.losses, 50),
        }
        if zeroable and zeroed is None:
            base["zeroed_inputs"] = {"trained": False, "p_value": rounded(without_inputs[0]), "test": without_inputs[1]}
        trained, fit_evidence = fits_training_samples(real, settings.alpha)
        if plan.fitted or not trained:
            base["fits_training_samples"] = fit_evidence
        p_shuffled, test = _practical(*better(r, s, rng, settings.permutations), r, s, "labels", settings)
        p_real, real_test = beats_chance(r, _chance(r), labels, rng, settings.permutations)
        if p_real < settings.alpha and r.metric == "accuracy" and _class_count(r) >= RELABEL_MIN_CLASSES:
            p_real, real_test = beats_constants(ctx, r, p_real, real_test, rng, settings)
        p_leak, leak_test = beats_chance(s, chance, labels, rng, settings.permutations)
        leaks = p_leak < settings.leak_alpha and s.score - chance >= settings.leak_margin
        if leaks and s.metric == "r2" and _targets_like_inputs(ctx):
            leaks = False
            base["leak_not_judged"] = ("the targets are shaped like the inputs (or resized): a model predicts them "
                                       "from its inputs without aligned training")
        if zeroed is not None:
            p_zero, ztest = _practical(*better(r, zeroed.eval, rng, settings.permutations), r, zeroed.eval, "inputs",
                                       settings)
        else:
            p_zero, ztest = without_inputs if zeroable else (0.0, "")
        # Can "not learned" be a verdict? Not when the budget could not decide (see SC205).
        undecided = _undecided(real, plan, trained)
        if undecided is None and powerless(r, settings.alpha):
            # a held-out set with one or two samples of a rare class cannot show learning: not a verdict
            undecided = "powerless"
        not_learned = max(p_shuffled, p_real, p_zero) >= settings.alpha
        # do the training inputs predict their labels without training? (the neighbours' vote, read by up to three
        # questions below, computed once)
        train_signal = functools.cache(lambda: input_label_signal(ctx, targets, settings.alpha))
        misaligned = None
        if not_learned and trained and plan.eval_split == "val" and r.metric == "accuracy" and undecided != "powerless":
            # the model learns its training labels but not the held-out ones: do the held-out labels belong to
            # their inputs at all? (a validation label list shuffled on its own: SC205 "needs more training" before)
            signal = train_signal()
            held = held_out_label_signal(ctx, evaluation_split, plan.eval_indices, settings.alpha) \
                if signal is not None and signal["predictable"] and same_scale(ctx.train, ctx.val) else None
            if held is not None and held["absent"]:
                misaligned = held
                base.update(input_label_signal=signal, held_out_label_signal=held, fits_training_samples=fit_evidence)
        # real-valued or dense targets: a model whose training targets belong to other inputs still scores a little
        # above chance on held-out pairs (its layers pass some of the input through: PyTorch's super-resolution
        # example with its training targets shuffled, R² 0.02-0.03 held-out and below 0 on its own training samples,
        # beat every comparison in 3 runs of 4). The splits' own neighbours tell without training, either way round
        swapped = val_swapped = sides = None
        if plan.eval_split == "val" and r.metric != "accuracy" and ctx.task != "sequence" and misaligned is None \
                and not ctx.inputs_are_token_ids() and (not trained or not_learned):
            sides = split_target_signals(ctx, targets, settings, ctx.rng("label-shuffle:splits"))
            if sides is not None and not trained and sides["train"]["absent"] \
                    and sides["val"]["p_value"] < settings.alpha / 10:
                swapped = sides
            elif sides is not None and not_learned and undecided is None and sides["val"]["absent"] \
                    and sides["train"]["p_value"] < settings.alpha / 10 and same_scale(ctx.train, ctx.val):
                # only what is SC201 already (a decisive budget): a small validation split's test may lack the power
                val_swapped = sides
            if swapped or val_swapped:
                base.update(input_label_signal=sides["train"], val_input_label_signal=sides["val"],
                            fits_training_samples=fit_evidence)
        # classification on a short budget, or a model that did not even fit its training samples: do the inputs
        # predict the labels without training? Then the model needs more training, not other labels (SC205;
        # PyTorch's 60-minute-blitz CIFAR net at lr 0.001 learns nothing in 300 steps, and kNN on its pixels gets
        # 3x chance). Not for a model whose outputs do not change with its inputs at all: that one is broken
        if not_learned and ctx.task != "sequence" and undecided is None and misaligned is None \
                and (plan.fitted or (not trained and _reads_inputs(ctx, real, evaluation_split))):
            signal = train_signal()
            if signal is not None:
                base["input_label_signal"] = signal
                if signal["predictable"]:
                    undecided = "predictable"
        if not_learned and plan.fitted and undecided == "untrained":
            # a fitted budget in which the model fit nothing can still be judged when the inputs do not predict the
            # labels at all, without training: the labels belong to other inputs (SC201). Sequences: a table of
            # target given input token; classification: the nearest-neighbour vote (texts of token ids by their bags
            # of tokens: the shared embedding's)
            if ctx.task == "sequence":
                signal = token_label_signal(ctx, settings, rng)
            else:  # one class id per sample: the vote; other targets: neighbours'
                # the training side of the split-against-split test, when it ran, is this very test
                signal = train_signal() or (sides["train"] if sides is not None else
                                            neighbour_target_signal(ctx, targets, settings, rng))
            if signal is not None:
                base["input_label_signal"] = signal
                if signal["absent"]:
                    undecided = None
        fitted_note = ""
        if plan.fitted and not undecided:
            fit, signal = base["fits_training_samples"], base.get("input_label_signal")
            learned = (f"did learn its own training samples ({_fmt(fit['train_score'])} on them against "
                       f"{_fmt(fit['heldout_score'])} held-out)" if trained else
                       f"did not fit its own training samples either ({_fmt(fit['train_score'])} on them against "
                       f"{_fmt(fit['heldout_score'])} held-out)")
            fitted_note = (f" On this budget (fitted to the measured step time) the model {learned}"
                           + (f", and the inputs alone do not predict the labels ({signal['summary']})" if signal
                              else "") + (": what it learns does not carry over to held-out samples." if trained
                                          else ": the targets are not those of these inputs."))
        what = "accuracy" if r.metric == "accuracy" else ("R²" if r.metric == "r2" else "negative loss")

        if leaks:
            yield self.finding(
                "SC202", f"Trained on randomly permuted labels for {real.steps} steps, the model still scores "
                f"{what} {s.score:.3g} on {r.n} held-out samples, above the chance level {chance:.3g} "
                f"(p = {p_leak:.2g}, {leak_test}); the real-label model scores {r.score:.3g}. Label information "
                "reaches the model by a path the shuffle does not touch.",
                evidence={**base, "p_value": rounded(p_leak), "test": leak_test, "leak_alpha": settings.leak_alpha},
            )
        elif misaligned is not None:
            fit, signal = base["fits_training_samples"], base["input_label_signal"]
            yield self.finding(
                "SC206", f"The model learns its training labels ({what} {_fmt(fit['train_score'])} on its own "
                f"training samples), and the training inputs predict them without training ({signal['summary']}), "
                f"but it scores {r.score:.3g} on {r.n} validation samples (with shuffled labels: {s.score:.3g}), and "
                f"their labels are not what their nearest training inputs carry either ({misaligned['summary']}). "
                "The validation labels do not belong to their inputs.",
                evidence={**base, "p_value": rounded(p_shuffled), "test": test, "p_value_vs_chance": rounded(p_real),
                          "test_vs_chance": real_test},
                samples={"val": [int(i) for i in plan.eval_indices[:100]]},
            )
        elif swapped is not None:
            fit = base["fits_training_samples"]
            yield self.finding(
                "SC201", f"The model scores {what} {r.score:.3g} on {r.n} held-out samples and "
                f"{_fmt(fit['train_score'])} on its own training samples: it did not fit them. Without any training, "
                f"the validation inputs predict their targets ({swapped['val']['summary']}) and the training inputs "
                f"do not predict theirs ({swapped['train']['summary']}): the training targets belong to other "
                "inputs (image and target lists out of step, a shuffle applied to one of them).",
                evidence={**base, "p_value": rounded(p_shuffled), "test": test, "p_value_vs_chance": rounded(p_real),
                          "test_vs_chance": real_test},
            )
        elif val_swapped is not None:
            yield self.finding(
                "SC206", f"The model scores {what} {r.score:.3g} on {r.n} validation samples (with shuffled labels: "
                f"{s.score:.3g}). Without any training, the training inputs predict their targets "
                f"({val_swapped['train']['summary']}) and the validation inputs do not predict theirs "
                f"({val_swapped['val']['summary']}): the validation targets belong to other inputs.",
                evidence={**base, "p_value": rounded(p_shuffled), "test": test, "p_value_vs_chance": rounded(p_real),
                          "test_vs_chance": real_test},
                samples={"val": [int(i) for i in plan.eval_indices[:100]]},
            )
        elif (p_shuffled >= settings.alpha or p_real >= settings.alpha) and undecided:
            yield self._inconclusive(ctx, real, plan, r, s, base, undecided)
        elif p_shuffled >= settings.alpha or p_real >= settings.alpha:
            weak = f"p = {p_shuffled:.2g}, {test}" if p_shuffled >= settings.alpha else \
                f"p = {p_real:.2g} against chance, {real_test}"
            yield self.finding(
                "SC201", f"With the real labels the model scores {what} {r.score:.3g} on {r.n} held-out samples; "
                f"with the same labels randomly permuted it scores {s.score:.3g}"
                + (f" (chance {chance:.3g})" if math.isfinite(chance) else "") + ". The real "
                f"labels are not learned significantly better ({weak}; alpha {settings.alpha:g}, {real.steps} "
                f"steps on {len(plan.train_indices)} samples): the labels are not related to the inputs the model "
                f"sees.{fitted_note}",
                evidence={**base, "p_value": rounded(p_shuffled), "test": test, "p_value_vs_chance": rounded(p_real),
                          "test_vs_chance": real_test},
            )
        if zeroed is not None and misaligned is None and swapped is None and val_swapped is None:  # targets of other
            # inputs: no comparison means a thing
            if p_zero >= settings.alpha and undecided:
                if p_shuffled < settings.alpha and p_real < settings.alpha:  # else already said above
                    yield self._inconclusive(ctx, real, plan, r, zeroed.eval, base, undecided)
            elif p_zero >= settings.alpha:
                yield self.finding(
                    "SC204", f"With every input zeroed the model scores {what} {zeroed.eval.score:.3g} on the "
                    f"held-out samples, against {r.score:.3g} with the real inputs: not significantly worse "
                    f"(p = {p_zero:.2g}, {ztest}, alpha {settings.alpha:g}). The model does not get usable "
                    f"information from its inputs.{fitted_note}"
                    # no chance level (losses of multi-hot targets): SC201 had only the shuffled run to go by
                    + (" These targets have no chance level to hold the real-label model to, so targets that do not "
                       "belong to their inputs (a label list shuffled apart from its samples) look the same: check "
                       "both." if math.isnan(p_real) and p_shuffled < settings.alpha else ""),
                    evidence={**base, "p_value": rounded(p_zero), "test": ztest},
                )
        yield from self._memorization(ctx, settings, targets)

    def _inconclusive(self, ctx: Any, real: Any, plan: Any, r: Any, other: Any, base: dict, why: str):
        """SC205: the comparison run is not clearly better, and the training cannot support a verdict."""
        scale = "" if plan.batch_size is None else f" of batch {plan.batch_size}"
        if why == "budget":
            step = plan.cost.step(plan.batch_size or 1)
            cap = _thorough_cap(ctx)
            thorough = plan.seconds < cap and plan.needs_seconds <= cap
            hint = ("--profile thorough (4x the time cap) would give it that" if thorough else
                    "that is more than even --profile thorough allows here: run on a GPU (device: cuda), or with a "
                    "smaller model or input size for this check")
            text = (f"One training step{scale} takes {step:.3g} s here, so the time cap ({plan.seconds:g} s per run) "
                    f"holds only {plan.steps} step(s); a verdict needs at least {_min_steps()} steps: about "
                    f"{plan.needs_seconds:.0f} s per run (three runs). {hint[0].upper() + hint[1:]}.")
        elif why == "seconds":
            text = (f"The real-label model trained for only {real.steps} of {plan.steps} planned steps before the time "
                    f"cap ({plan.seconds:g} s): the machine ran slower than when the budget was planned. Run again on "
                    "a quieter machine, or with --profile thorough (4x the time cap).")
        elif why == "powerless":
            p, misses = best_case_p(r.targets)
            shares = np.bincount(r.targets.astype(np.int64).reshape(-1).clip(0)) / r.targets.size
            needed = next((m for m in range(r.n, 100_000, max(1, r.n // 20))
                           if best_case_p(r.targets, m)[0] < base["alpha"]), None)
            base.update(best_case_p_value=rounded(p), best_case_misses=misses)
            text = (f"These {r.n} held-out samples cannot show it: their most common class makes up "
                    f"{shares.max():.1%} of them, so even a model wrong on only {misses} of them would beat chance "
                    f"({float((shares ** 2).sum()):.3g}) at p = {p:.2g} (exact binomial test, alpha "
                    f"{base['alpha']:g}). "
                    + (f"At these class shares a verdict needs about {needed} held-out samples: " if needed else "")
                    + "use a larger or stratified validation split (every score measured on this one is as noisy).")
        elif why == "predictable":
            sig = base["input_label_signal"]
            fit = base.get("fits_training_samples", {})
            text = (f"The model trained for {real.steps} steps{scale} on {len(plan.train_indices)} samples"
                    + (" (a budget fitted to the measured step time)" if plan.fitted else "")
                    + (f", scoring {_fmt(fit.get('train_score'))} on its own training samples and "
                       f"{_fmt(fit.get('heldout_score'))} on held-out ones" if fit else "")
                    + f", and the inputs alone do predict the labels: {sig['summary']}"
                    ". So the labels are related to the inputs, and the model needs more "
                    "training than this budget to show it on held-out samples: --profile thorough (4x the time cap), "
                    "a GPU (device: cuda), or a larger learning rate where learning-rate finds yours far below the "
                    "steepest descent.")
        else:
            fit = base.get("fits_training_samples", {})
            text = (f"In {real.steps} steps{scale} on {len(plan.train_indices)} samples (a budget fitted to the "
                    f"measured step time) the model did not learn anything measurable: it scores "
                    f"{_fmt(fit.get('train_score'))} on its own training samples and {_fmt(fit.get('heldout_score'))} on "
                    "held-out ones. A verdict needs a budget in which the model at least fits its training samples: "
                    "more steps than the time cap allows here (--profile thorough gives 4x the time; a GPU, "
                    "device: cuda, far more).")
        return self.finding(
            "SC205", f"The real-label model scores {r.score:.3g}, not clearly better than the comparison run "
            f"({other.score:.3g}), but that says nothing about the labels yet. {text}",
            evidence={**base, "reason": why, "planned_steps": plan.steps, "time_cap_s": plan.seconds},
        )

    def _memorization(self, ctx: Any, settings: Settings, targets: np.ndarray):
        from sanitycheck.probing.memorization import MIN_AFFORDABLE_STEPS, memorization, plan_from

        if ctx.task == "sequence":
            return  # a text's next tokens cannot be fit to 95% accuracy: one context has several continuations

        m = memorization(ctx, plan_from(settings))  # shared with `generalization`: trained once per run
        if "budget" in (m.stopped_real, m.stopped_random):  # a run its cap could not afford was not trained
            if m.stopped_real == "budget":
                text = (f"No memorization ratio: at your measured step cost, the probe's {m.cap_s:g} s cap affords "
                        f"{m.affordable_steps} steps, fewer than the {MIN_AFFORDABLE_STEPS} a ratio needs (random "
                        "labels take several times the steps real ones do), so it was not run.")
            else:
                text = (f"On {m.samples} training samples the model fits the real labels in {m.steps_real} steps. "
                        f"Random labels were not tried: at your measured step cost the probe's {m.cap_s:g} s cap "
                        f"affords {m.affordable_steps} steps, fewer than the "
                        f"{math.ceil(settings.memorize_warn_ratio * m.steps_real)} ({settings.memorize_warn_ratio:g}x) "
                        "that decide whether it memorizes noise as fast as signal.")
            yield self.finding(
                "SC203", text, evidence={"samples": m.samples, "steps_real": m.steps_real, "steps_random": None,
                                         "ratio": None, "stopped_by": "budget", "affordable_steps": m.affordable_steps,
                                         "time_cap_s": m.cap_s, "min_affordable_steps": MIN_AFFORDABLE_STEPS,
                                         "warn_ratio": settings.memorize_warn_ratio},
                fix="Raise checks.label-shuffle.memorize_seconds, run with --profile thorough, or on a GPU.",
            )
            return
        if m.stopped_real == "unscorable":
            yield self.finding(
                "SC203", f"No memorization ratio: fitting {m.samples} training samples is judged by accuracy (class "
                "ids) or R² (regression values), and these targets have neither (multi-hot, soft or dense "
                "targets), so the probe stopped at its first check.",
                evidence={"samples": m.samples, "steps_real": None, "steps_random": None, "ratio": None,
                          "stopped_by": "unscorable"},
                fix="Nothing to fix: this probe does not apply to these targets.",
            )
            return
        if m.steps_real is None:  # no ratio to give; overfit-batch says why a small set cannot be fit
            yield self.finding(
                "SC203", f"The model did not fit {m.samples} training samples with their real labels within "
                f"the budget ({m.max_steps} steps, stopped by {m.stopped_real}), so there is no memorization ratio.",
                evidence={"samples": m.samples, "steps_real": None, "steps_random": None, "max_steps": m.max_steps,
                          "ratio": None, "stopped_by": m.stopped_real, "fit_threshold": m.fit_threshold},
                fix="If overfit-batch passes, the model just needs more steps: raise checks.label-shuffle."
                "memorize_steps / memorize_seconds or use --profile thorough.",
            )
            return
        fitted = not m.ratio_is_lower_bound
        ratio = m.ratio
        bound = "" if fitted else "more than "
        evidence = {"samples": m.samples, "steps_real": m.steps_real, "steps_random": m.steps_random,
                    "max_steps": m.max_steps, "random_steps_done": m.random_steps_done, "stopped_by": m.stopped_random,
                    "ratio": rounded(ratio), "ratio_is_lower_bound": not fitted,
                    "fit_threshold": m.fit_threshold, "warn_ratio": settings.memorize_warn_ratio,
                    "held_out_r2": rounded(m.held_out_r2), "held_out_accuracy": rounded(m.held_out_accuracy),
                    "constant_accuracy": rounded(m.constant_accuracy), "other_class": m.other_class}
        fast = fitted and ratio < settings.memorize_warn_ratio and not m.noise_either_way \
            and not m.too_few_other_class
        signal = (f"the reference run's held-out R² is {m.held_out_r2:.2g}, the probe fits R² {m.fit_threshold:g}"
                  if m.held_out_r2 is not None else
                  f"the reference run's held-out accuracy is {m.held_out_accuracy:.3g}, always predicting the most "
                  f"common class scores {m.constant_accuracy:.3g}" if m.held_out_accuracy is not None else "")
        noise = (f" The targets are mostly noise to this model ({signal}), so fitting the real ones is "
                 "memorization too and the ratio says nothing about capacity (if SC201 is reported, the labels are "
                 "the cause)." if m.noise_either_way else
                 f" Only {m.other_class} of the {m.samples} samples are outside their most common class, as many with "
                 "random labels: fitting either is memorizing those few, and the ratio says nothing about capacity."
                 if m.too_few_other_class else "")
        yield self.finding(
            "SC203", f"On {m.samples} training samples the model fits the real labels in {m.steps_real} steps "
            f"and randomly permuted labels in {bound}{m.steps_random or m.random_steps_done} steps: a memorization "
            f"ratio of {bound}{ratio:.2g}." + (" It memorizes noise about as fast as signal." if fast else noise or (
                "" if fitted else " Random labels were not memorized within the budget.")),
            severity="warning" if fast else "info", evidence=evidence,
            fix=("The model can memorize its training set: use " + REMEDIES + ".") if fast else None,
        )


# ---------------------------------------------------------------------------------------- verdicts


def _against_constants(ctx: Any, real: Any, split: Any, settings: Settings,
                       rng: np.random.Generator) -> tuple[float, str] | None:
    """SC204's comparison without training the zeroed-input model, when that model can only be a constant
    predictor (:mod:`sanitycheck.probing.prior`): ``(p, test)`` of the real model against the best constant
    predictor of the held-out targets (per position for sequences); ``None`` when the premise does not hold or no
    best constant is known for this loss (the zeroed model is then trained)."""
    import torch

    from sanitycheck.probing.prior import worst_constant_mcnemar, zeroed_outputs_constant

    r = real.eval
    if r is None or r.targets is None or r.n < 2:
        return None
    classes = zeroed_outputs_constant(ctx, real.model, split, r.indices, torch.zeros_like)
    if classes is None:
        return None
    if r.correct is not None:
        worst = worst_constant_mcnemar(r.correct, r.targets, classes)
        if worst is None:
            return None
        return worst[0], (f"exact McNemar test against always predicting class {worst[1]}, the hardest of the "
                          "constant predictors a model of zeroed inputs can be (not trained)")
    if ctx.task != "sequence" or not _plain_cross_entropy(ctx.loss_fn) or r.targets.ndim < 2:
        return None
    p, test = _against_prior(ctx, r, classes, rng, settings)
    return p, (f"{test}, against the per-position frequencies of the held-out targets: the lowest loss a model of "
               "zeroed inputs can reach (not trained)")


def _against_prior(ctx: Any, e: Any, classes: int, rng: np.random.Generator, settings: Settings) -> tuple[float, str]:
    """``(p, test)`` of evaluation ``e``'s per-sample losses against those of the held-out targets' own frequencies
    (per position for sequences; :func:`sanitycheck.probing.prior.position_prior_losses`): the paired sign-flip test
    with the minimum gain. Only meaningful for a plain cross-entropy / NLL loss (:func:`_plain_cross_entropy`)."""
    from sanitycheck.probing.prior import position_prior_losses

    loss = ctx.loss_fn
    model = SimpleNamespace(losses=e.losses, correct=None)
    prior = SimpleNamespace(correct=None, losses=position_prior_losses(
        e.targets.reshape(len(e.targets), -1), classes, getattr(loss, "shift", 0), getattr(loss, "ignore_index", None)))
    return _practical(*better(model, prior, rng, settings.permutations), model, prior, "inputs", settings)



def _reads_inputs(ctx: Any, real: Any, split: Any) -> bool:
    """Whether the trained real-label model's outputs differ between held-out samples (a model that never looks
    at its inputs gives them all the same outputs)."""
    from sanitycheck.probing.prior import zeroed_outputs_constant

    r = real.eval
    return r is None or zeroed_outputs_constant(ctx, real.model, split, r.indices, None) is None


def _min_steps() -> int:
    from sanitycheck.probing import trainer

    return trainer.MIN_STEPS


#: A held-out set can show learning (see :func:`best_case_p`) when a model wrong on only this share of its samples
#: outside the most common class (at least one) would beat chance at alpha.
BEST_CASE_MISSES = 0.1


def best_case_p(targets: np.ndarray, n: int | None = None) -> tuple[float, int]:
    """``(p, misses)``: the p-value, by the exact binomial test of :func:`beats_chance` (fewer than
    RELABEL_MIN_CLASSES classes), of a model that misses only BEST_CASE_MISSES of the held-out samples outside their
    most common class (at least one) and gets every other one right; chance is then about sum_k p_k^2 (its
    predictions have the held-out label frequencies p). ``n``: the same class shares at another sample count.
    A p at or above alpha means no trained model could be told from chance on these samples: one or two held-out
    samples of a rare class (breast cancer cut to 3% malignant, 3 of 68 held out: a model right on 67 is at
    p = 0.018)."""
    from scipy.stats import binom

    counts = np.bincount(targets.astype(np.int64).reshape(-1).clip(0))
    shares = counts / counts.sum()
    n = int(counts.sum()) if n is None else n
    others = n * (1 - shares.max())
    misses = max(1, round(BEST_CASE_MISSES * others))
    return float(binom.sf(n - misses - 1, n, float((shares ** 2).sum()))), misses


def powerless(e: Any, alpha: float) -> bool:
    """Whether the held-out evaluation ``e`` cannot show learning at ``alpha`` (:func:`best_case_p`); never for
    many classes, regression or losses, whose tests have no such bound."""
    if e.metric != "accuracy" or e.n == 0 or _class_count(e) >= RELABEL_MIN_CLASSES:
        return False
    return best_case_p(e.targets)[0] >= alpha


def _undecided(real: Any, plan: Any, trained: bool) -> str | None:
    """Why a "not learned" result cannot be a verdict (the SC205 reasons), or ``None`` when it can."""
    if not plan.decisive:
        return "budget"
    if real.stopped == "seconds":
        return "seconds"
    if plan.fitted and not trained:
        return "untrained"
    return None


def input_label_signal(ctx: Any, targets: np.ndarray, alpha: float) -> dict | None:
    """Whether the training inputs predict their labels without any training: the leave-one-out vote of the 10
    nearest distinct inputs on the run's shared embedding (the neighbours leakage and influence use), against the
    chance of a vote that ignores the inputs (sum_k p_k q_k: p the labels', q the votes' class shares), one-sided
    binomial test at ``alpha / 10`` and at least 5 points above chance. ``None`` for regression or when the inputs
    cannot be embedded."""
    from scipy.stats import binom

    from sanitycheck.probing.neighbors import split_neighbors

    labels = ctx.class_labels(ctx.train)
    if labels is None:
        return None
    usable = ctx.usable_indices(ctx.train)
    usable = usable[labels[usable] >= 0]
    classes = int(labels[usable].max()) + 1 if len(usable) else 0
    if len(usable) < 20 or classes < 2:
        return None
    try:
        nb = split_neighbors(ctx, ctx.train)
    except Exception:  # no embedding for these inputs
        return None
    votes = nb.label_votes(labels, usable, classes)
    voted = votes.sum(1) > 0
    said, truth = votes[voted].argmax(1), labels[usable][voted]
    hits = int((said == truth).sum())
    n = int(voted.sum())
    # chance is what the votes score when they ignore the inputs: sum_k p_k q_k (p the labels', q the votes' class
    # shares). Not sum_k p_k^2: on imbalanced classes most votes say the majority class whatever the inputs (breast
    # cancer at 10% malignant with permuted labels: 88.6% against sum p^2 = 79.8%, "predictable" at p = 0.0005)
    freq = np.bincount(truth, minlength=classes) / max(n, 1)
    chance = float((freq * np.bincount(said, minlength=classes) / max(n, 1)).sum())
    p = float(binom.sf(hits - 1, n, chance)) if n else 1.0
    accuracy = hits / n if n else 0.0
    return {"knn_accuracy": rounded(accuracy), "chance": rounded(chance), "samples": n, "p_value": rounded(p),
            "summary": f"a 10-nearest-neighbour vote gets {accuracy:.1%}, chance {chance:.1%}, p = {p:.2g}",
            "predictable": bool(p < alpha / 10 and accuracy - chance >= 0.05), "absent": bool(p >= alpha)}


def held_out_label_signal(ctx: Any, split: Any, indices: np.ndarray, alpha: float) -> dict | None:
    """Whether held-out samples carry the labels their training neighbours vote for: each sample's 10 nearest
    distinct training inputs on the run's shared embedding vote with their labels; the votes' accuracy against the
    chance of a vote independent of the held-out labels (sum_k p_k q_k: p the held-out label frequencies, q the
    votes'), one-sided binomial test. ``absent`` when p >= ``alpha``. None without class labels or an embedding."""
    from scipy.stats import binom

    from sanitycheck.probing.embedding import embedding
    from sanitycheck.probing.neighbors import knn, knn_device, split_neighbors, vote_counts

    train_labels, labels = ctx.class_labels(ctx.train), ctx.class_labels(split)
    if train_labels is None or labels is None:
        return None
    rows = np.asarray(indices)[labels[np.asarray(indices)] >= 0]
    classes = int(max(train_labels.max(), labels[rows].max())) + 1 if len(rows) else 0
    if len(rows) < 20 or classes < 2:
        return None
    try:
        nb = split_neighbors(ctx, ctx.train)
        queries = embedding(ctx, split)
    except Exception:  # no embedding for these inputs
        return None
    _, idx = knn(queries[rows], nb.base, min(10, len(nb.unique)), seed=ctx.derived_seed("label-shuffle:held-out"),
                 device=knn_device(ctx), index=nb.index)
    votes = vote_counts(np.where(idx >= 0, train_labels[nb.unique[np.maximum(idx, 0)]], -1), classes)
    voted = votes.sum(1) > 0
    predicted, truth = votes[voted].argmax(1), labels[rows][voted]
    n, hits = int(voted.sum()), int((predicted == truth).sum())
    chance = float((np.bincount(truth, minlength=classes) / max(n, 1) * np.bincount(predicted, minlength=classes)
                    / max(n, 1)).sum())
    p = float(binom.sf(hits - 1, n, chance)) if n else 1.0
    accuracy = hits / n if n else 0.0
    return {"knn_accuracy": rounded(accuracy), "chance": rounded(chance), "samples": n, "p_value": rounded(p),
            "summary": f"a 10-nearest-training-neighbour vote gets {accuracy:.1%} of them, chance {chance:.1%}, "
                       f"p = {p:.2g}", "absent": bool(p >= alpha)}


#: Training samples the neighbour-target test pairs (a seeded subset of the usable ones).
TARGET_SIGNAL_SAMPLES = 4000
#: ... on at most this many target elements (a seeded subset of the positions of larger targets).
TARGET_SIGNAL_ELEMENTS = 1024


def neighbour_target_signal(ctx: Any, targets: np.ndarray, settings: Settings, rng: np.random.Generator,
                            split: Any = None) -> dict | None:
    """For targets that are not one class id per sample (segmentation masks, multi-label rows, regression values):
    whether the training inputs predict their targets without any training. Each of up to TARGET_SIGNAL_SAMPLES
    usable training samples is paired with its nearest distinct input on the run's shared embedding and with a
    random other sample; its target's agreement with the neighbour's (integer targets: the fraction of equal
    elements, positions of the loss's ignore_index left out; real-valued: minus the mean squared difference of the
    targets' ranks, each column ranked among the samples compared) is compared with its agreement with the random
    sample's, paired sign-flip test, one-sided. Absent when p >= alpha:
    the neighbour's target is no more like the sample's than a stranger's (the targets belong to other inputs).
    ``None`` when the inputs cannot be embedded or fewer than 20 samples can be paired. ``split``: the split whose
    samples, neighbours and ``targets`` these are (default the training split)."""
    from sanitycheck.probing.neighbors import split_neighbors

    split = ctx.train if split is None else split
    try:
        nb = split_neighbors(ctx, split)
    except Exception:  # no embedding for these inputs
        return None
    usable = ctx.usable_indices(split)
    member = np.zeros(len(targets), dtype=bool)
    member[usable] = True
    nearest = nb.idx[nb.inverse[usable], 0]
    partner = np.where(nearest >= 0, nb.unique[np.maximum(nearest, 0)], 0)
    ok = (nearest >= 0) & member[partner]
    samples, partner = usable[ok], partner[ok]
    if len(samples) < 20:
        return None
    if len(samples) > TARGET_SIGNAL_SAMPLES:
        keep = np.sort(rng.choice(len(samples), TARGET_SIGNAL_SAMPLES, replace=False))
        samples, partner = samples[keep], partner[keep]
    stranger = usable[rng.integers(0, len(usable), len(samples))]
    stranger = np.where(stranger == samples, usable[(np.searchsorted(usable, samples) + 1) % len(usable)], stranger)
    t = targets.reshape(len(targets), -1)
    if t.shape[1] > TARGET_SIGNAL_ELEMENTS:  # large masks: a seeded subset of positions bounds the memory
        t = t[:, np.sort(rng.choice(t.shape[1], TARGET_SIGNAL_ELEMENTS, replace=False))]
    if np.issubdtype(t.dtype, np.integer) or t.dtype == bool:
        ignore = getattr(ctx.loss_fn, "ignore_index", None)
        counted = np.ones((len(samples), t.shape[1]), dtype=bool) if ignore is None else t[samples] != ignore

        def agreement(other: np.ndarray) -> np.ndarray:
            with np.errstate(invalid="ignore", divide="ignore"):
                return ((t[samples] == t[other]) & counted).sum(1) / counted.sum(1)

        measure = "the fraction of target elements equal"
    else:
        # each target column as ranks in [0, 1] among the samples compared: a few far-off values (heavy-tailed
        # regression targets) would otherwise drown the test
        from scipy.stats import rankdata

        rows = np.unique(np.concatenate([samples, partner, stranger]))
        rank = rankdata(t[rows].astype(np.float64), axis=0) / len(rows)

        def agreement(other: np.ndarray) -> np.ndarray:
            return -((rank[np.searchsorted(rows, samples)] - rank[np.searchsorted(rows, other)]) ** 2).mean(1)

        measure = "minus the mean squared difference of the targets' ranks"
    near, far = agreement(partner), agreement(stranger)
    diff = near - far
    p = sign_flip(diff, rng, settings.permutations)
    n = int(np.isfinite(diff).sum())
    return {"neighbour_agreement": rounded(float(np.nanmean(near))),
            "random_agreement": rounded(float(np.nanmean(far))), "samples": n, "p_value": rounded(p),
            "measure": measure,
            "test": "paired sign-flip test per training sample, nearest distinct input vs a random sample",
            "summary": f"a sample's target agrees with its nearest input neighbour's {np.nanmean(near):.3g} and with a "
                       f"random sample's {np.nanmean(far):.3g} ({measure}), p = {p:.2g} on {n} samples",
            "absent": bool(p >= settings.alpha)}


def split_target_signals(ctx: Any, targets: np.ndarray, settings: Settings, rng: np.random.Generator) -> dict | None:
    """``{"train", "val"}``: :func:`neighbour_target_signal` of each split on its own (do its inputs predict its
    targets without training?), or None when either cannot be tested. The same kind of data should answer alike;
    one split absent (p >= alpha) and the other clearly present (p < alpha / 10) means the first one's targets
    belong to other inputs."""
    if ctx.val is None or ctx.val.data_pass().targets is None:
        return None
    train_side = neighbour_target_signal(ctx, targets, settings, rng)
    val_side = neighbour_target_signal(ctx, ctx.val.data_pass().targets, settings, rng, ctx.val)
    return None if train_side is None or val_side is None else {"train": train_side, "val": val_side}


def token_label_signal(ctx: Any, settings: Settings, rng: np.random.Generator) -> dict | None:
    """Whether the training sequences' input tokens predict their target tokens without any training
    (:mod:`sanitycheck.probing.token_signal`): absent when no offset's table of target given input token beats
    the targets' frequencies on held-out training sequences even at ``alpha`` (the targets were paired with other
    sequences' inputs). ``None`` when the inputs are not token ids kept by the data pass."""
    from sanitycheck.probing.token_signal import OFFSETS, token_signal

    if not ctx.inputs_are_token_ids():
        return None
    data = ctx.train.data_pass()
    signal = token_signal(data.inputs, data.targets, getattr(ctx.loss_fn, "ignore_index", None), rng,
                          lambda diff: sign_flip(diff, rng, settings.permutations))
    if signal is None:
        return None
    table = f"a table of each target token given the input token at offset {signal.offset}"
    return {"table_loss": rounded(signal.table_loss), "frequency_loss": rounded(signal.frequency_loss),
            "gain": rounded(signal.gain), "offset": signal.offset, "sequences": signal.sequences,
            "p_value": rounded(signal.p_value),
            "test": f"paired sign-flip test per held-out training sequence, best of offsets {list(OFFSETS)} "
                    f"(Bonferroni x{len(OFFSETS)})",
            "summary": f"{table}, counted on the lower half of {2 * signal.sequences} training sequences, scores "
                       f"mean loss {signal.table_loss:.3g} on the upper half against {signal.frequency_loss:.3g} for the "
                       f"targets' own frequencies, p = {signal.p_value:.2g}",
            "absent": bool(signal.p_value >= settings.alpha)}


def _thorough_cap(ctx: Any) -> float:
    """The reference run's time cap at the thorough profile."""
    from sanitycheck.engine.config import PROFILES
    from sanitycheck.probing.trainer import reference_seconds

    return reference_seconds(ctx, PROFILES["thorough"])


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, (int, float)) else "?"


def fits_training_samples(result: Any, alpha: float) -> tuple[bool, dict]:
    """Whether a trained model does significantly better on its own training samples than on held-out ones (a
    one-sided Mann-Whitney test on per-sample correctness, or on per-sample losses when outputs are not class scores,
    at ``alpha``) and by a margin (accuracy or R² at least 0.05 above held-out): evidence that it trained, whatever
    its labels."""
    from scipy.stats import mannwhitneyu

    train, held = result.final, result.eval
    if train is None or held is None or train.n == 0 or held.n == 0:
        return False, {"train_score": None, "heldout_score": None, "p_value": None}
    if train.correct is not None and held.correct is not None:
        a, b = train.correct.astype(float), held.correct.astype(float)
        margin = float(a.mean() - b.mean()) >= 0.05
    else:
        a, b = -train.losses[np.isfinite(train.losses)], -held.losses[np.isfinite(held.losses)]
        margin = train.metric != "r2" or train.score - held.score >= 0.05
    if len(a) == 0 or len(b) == 0 or (np.ptp(np.concatenate([a, b])) == 0):
        p = 1.0
    else:
        p = float(mannwhitneyu(a, b, alternative="greater").pvalue)
    return p < alpha and margin, {"train_score": rounded(train.score), "heldout_score": rounded(held.score),
                                  "p_value": rounded(p), "test": "one-sided Mann-Whitney, training vs held-out samples"}


# -------------------------------------------------------------------------------------- statistics


def better(a: Any, b: Any, rng: np.random.Generator, permutations: int) -> tuple[float, str]:
    """One-sided p-value that evaluation ``a`` is better than ``b`` on the same samples, and the test's name.

    Exact McNemar (binomial on the discordant pairs) when both have per-sample correctness; otherwise a
    paired sign-flip permutation test on per-sample losses (b's minus a's).
    """
    from scipy.stats import binom

    if a.correct is not None and b.correct is not None:
        only_a = int((a.correct & ~b.correct).sum())
        only_b = int((~a.correct & b.correct).sum())
        n = only_a + only_b
        p = float(binom.sf(only_a - 1, n, 0.5)) if n else 1.0
        return p, f"exact McNemar test, {only_a} held-out samples right only with the first model, {only_b} only with the second"
    return sign_flip(b.losses - a.losses, rng, permutations), "paired sign-flip permutation test on per-sample losses"


def _practical(p: float, test: str, real: Any, other: Any, what: str, settings: Settings) -> tuple[float, str]:
    """``(p, test)`` of a comparison of the real model with ``other``; compared by losses, a significant gain below
    ``min_loss_gain`` counts as none (p = 1, and the test's name says why)."""
    if p >= settings.alpha or (real.correct is not None and other.correct is not None):
        return p, test
    gain = _loss_gain(real, other)
    if gain >= settings.min_loss_gain:
        return p, test
    return 1.0, (f"{test}: significant (p = {p:.2g}), but the real {what} lower the mean loss by only {gain:.2%} "
                 f"(< min_loss_gain {settings.min_loss_gain:.0%})")


def _loss_gain(a: Any, b: Any) -> float:
    """How much lower ``a``'s mean per-sample loss is than ``b``'s, as a fraction of ``b``'s (0 when b's is 0)."""
    both = np.isfinite(a.losses) & np.isfinite(b.losses)
    base = float(np.abs(b.losses[both]).mean()) if both.any() else 0.0
    return float((b.losses[both] - a.losses[both]).mean()) / base if base > 0 else 0.0


def sign_flip(diff: np.ndarray, rng: np.random.Generator, permutations: int) -> float:
    """One-sided p-value that the mean of paired differences is above 0 (random sign flips as the null)."""
    diff = diff[np.isfinite(diff)]
    if len(diff) == 0 or not np.any(diff):
        return 1.0
    observed = diff.mean()
    hits = 0
    for start in range(0, permutations, 1000):  # chunks keep the (permutations x samples) array small
        # a sign of +1 where the bit is 1: sum(sign * diff) = 2 * (bits @ diff) - sum(diff), one matrix product
        # (rng.choice of the signs took 0.23 s for 9999 x 512, 15x this)
        bits = rng.integers(0, 2, size=(min(1000, permutations - start), len(diff)), dtype=np.int8)
        null = (2.0 * (bits @ diff) - diff.sum()) / len(diff)
        hits += int(np.sum(null >= observed - 1e-12))
    return float((1 + hits) / (permutations + 1))


def _targets_like_inputs(ctx: Any) -> bool:
    """Whether every training target has the shape of its input, more than one value (an autoencoder's targets, a
    denoiser's), or that shape resized (the same channels, every other dimension scaled by one factor: a
    super-resolution model's targets): a model trained on permuted targets still predicts them from its inputs (the
    identity, or an upsampling, its layers start near), so beating the mean with them is no sign of a leak (PyTorch's
    super-resolution example on CIFAR-10 images, clean: SC202 in some runs)."""
    data = ctx.train.data_pass()
    inputs, targets = set(data.input_shapes), set(data.target_shapes)
    if len(inputs) != 1 or len(targets) != 1 or math.prod(next(iter(inputs))) <= 1:
        return False
    a, b = next(iter(inputs)), next(iter(targets))
    if a == b:
        return True
    # resized: channels first and kept, the other dimensions all scaled by the same factor
    return len(a) == len(b) >= 2 and a[0] == b[0] and min(a[1:]) > 0 \
        and len({round(y / x, 6) for x, y in zip(a[1:], b[1:])}) == 1


def _class_count(e: Any) -> int:
    """Classes an accuracy evaluation involves: the largest class id predicted or true, plus one."""
    return int(max(e.predictions.max(), e.targets.max())) + 1


def _chance(evaluation: Any) -> float:
    """What a predictor independent of the held-out labels scores: sum_k q_k p_k (accuracy), 0 (R²).

    NaN when the score is a loss: no chance level is known, and nothing is reported against one.
    """
    if evaluation.metric == "accuracy":
        preds = evaluation.predictions.astype(np.int64).reshape(-1)
        truth = evaluation.targets.astype(np.int64).reshape(-1)
        classes = _class_count(evaluation)
        q = np.bincount(preds, minlength=classes) / len(preds)
        p = np.bincount(truth.clip(0), minlength=classes) / len(truth)
        return float((q * p).sum())
    return 0.0 if evaluation.metric == "r2" else math.nan


#: With at least this many classes, "beats chance" is a class-relabeling permutation test (enough distinct
#: relabelings to reach p < 0.001); with fewer, an exact binomial test.
RELABEL_MIN_CLASSES = 7


def beats_chance(e: Any, chance: float, train_targets: np.ndarray, rng: np.random.Generator,
                 permutations: int) -> tuple[float, str]:
    """One-sided p-value that evaluation ``e`` beats a predictor that knows nothing about the labels.

    Classification with many classes: a class-relabeling permutation test (the accuracy of the model's own
    predictions against that of the same predictions with the class ids randomly permuted). A model's
    mistakes are clustered (similar inputs get the same prediction), so sample-level tests understate how
    far a model trained on random labels can drift from chance; relabeling keeps the clusters intact.
    Measured on digits (8 seeds): a binomial test put random-label models at p down to 1e-17, the
    relabeling test at p >= 0.016. With few classes (binary: 2 relabelings) an exact binomial test against
    ``chance``. Regression: a sign-flip permutation test of squared errors against predicting the training
    targets' mean.
    """
    from scipy.stats import binom

    if e.metric == "accuracy":
        pred, truth = e.predictions.astype(np.int64).reshape(-1), e.targets.astype(np.int64).reshape(-1)
        classes = _class_count(e)
        if classes >= RELABEL_MIN_CLASSES:
            return relabel_test(pred, truth, classes, rng, permutations), \
                f"class-relabeling permutation test over {permutations} relabelings of {classes} classes"
        k = int(e.correct.sum())
        return float(binom.sf(k - 1, e.n, chance)), f"exact binomial test, {k} of {e.n} right vs chance {chance:.3g}"
    if e.metric == "r2":
        y = e.targets.astype(np.float64).reshape(e.n, -1)
        mean = train_targets.astype(np.float64).reshape(len(train_targets), -1).mean(0)
        baseline = ((y - mean) ** 2).mean(1)
        model = ((y - e.predictions.astype(np.float64).reshape(e.n, -1)) ** 2).mean(1)
        return sign_flip(baseline - model, rng, permutations), \
            "paired sign-flip permutation test on squared errors vs predicting the training mean"
    return math.nan, "no chance level for this loss"


def beats_constants(ctx: Any, e: Any, p: float, test: str, rng: np.random.Generator,
                    settings: Settings) -> tuple[float, str]:
    """``(p, test)`` of "beats chance" by the class-relabeling test, also required to beat every constant
    predictor of the held-out labels: relabeling a near-constant predictor of the most frequent held-out class
    beats most relabelings (measured: PyTorch's MNIST example with permuted images, 87 steps, p = 0.008 against
    chance) although it learned nothing from its inputs. Beating the constants means, one-sided at alpha with a
    Bonferroni factor 2: more right answers than the hardest "always class c" (exact McNemar), or, for a plain
    cross-entropy / NLL loss, a lower mean loss than the held-out class frequencies themselves (paired sign-flip
    test, at least min_loss_gain lower). Either suffices: an imbalanced split can make "always the majority class"
    hard to beat on accuracy while the loss shows what was learned, and an overfit model can have a loss above
    the frequencies' while its accuracy shows it. The returned p is the larger of the two requirements."""
    from sanitycheck.probing.prior import worst_constant_mcnemar

    classes = _class_count(e)
    worst = worst_constant_mcnemar(e.correct, e.targets, classes)
    if worst is None:
        return p, test
    p_constant, by = worst[0], f"exact McNemar test against always predicting class {worst[1]}"
    if _plain_cross_entropy(ctx.loss_fn) and e.losses is not None:
        p_loss, loss_test = _against_prior(ctx, e, classes, rng, settings)
        if p_loss < p_constant:
            p_constant, by = p_loss, f"{loss_test} against the held-out class frequencies"
        p_constant, by = min(1.0, 2 * p_constant), f"{by}, the better of two ways (Bonferroni x2)"
    if p_constant <= p:
        return p, test
    return p_constant, f"{test}; against the best constant predictor: {by}"


def _plain_cross_entropy(loss: Any) -> bool:
    """A cross-entropy / NLL loss without class weights or label smoothing: its lowest input-free mean loss is
    the entropy of the targets' frequencies."""
    from sanitycheck.pipeline.losses import ModelLoss, loss_kind

    if loss_kind(loss) not in ("cross_entropy", "nll"):
        return False
    return isinstance(loss, ModelLoss) or (getattr(loss, "weight", None) is None
                                           and getattr(loss, "label_smoothing", 0.0) == 0.0)


def relabel_test(pred: np.ndarray, truth: np.ndarray, classes: int, rng: np.random.Generator,
                 permutations: int) -> float:
    """P(accuracy of randomly relabeled predictions >= the observed accuracy), with the +1 correction."""
    observed = float((pred == truth).mean())
    hits = 0
    for start in range(0, permutations, 1000):  # chunks keep the (relabelings x samples) array small
        count = min(1000, permutations - start)
        relabel = np.argsort(rng.random((count, classes)), axis=1)
        hits += int(((relabel[:, pred] == truth).mean(1) >= observed - 1e-12).sum())
    return (1 + hits) / (permutations + 1)


@hookimpl
def sanitycheck_checks():
    return [LabelShuffle()]
