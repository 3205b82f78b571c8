"""overfit-batch: a softmax before CrossEntropyLoss plateaus at its cap, a step without optimizer.step() and a
frozen model change nothing, a diverging learning rate diverges; dict batches and the user's step work;
clean pipelines stay quiet."""

from __future__ import annotations

import math

import pytest
import torch

import casekit
import probekit
from conftest import codes, loud

CHECK = ["overfit-batch"]


def run_kind(run_pipeline, kind="mlp", seed=0, **changes):
    return probekit.run_clean(run_pipeline, CHECK, kind, seed, **changes)




def test_a_slow_but_steady_fit_gets_more_steps_and_a_plateau_does_not(run_pipeline):
    """Logistic regression with Adam at lr 1e-3 on breast cancer: about 210 steps to 90% of the way to 0, still
    falling at 200, so it goes on and passes; the softmax cap plateaus and is judged at 200."""
    (xt, yt), (xv, yv) = casekit.breast_cancer()
    base = dict(only=CHECK, train=casekit.dataset(xt, yt), val=casekit.dataset(xv, yv), loss=probekit.CE,
                optimizer={"target": "torch.optim:Adam", "lr": 1e-3})
    slow = run_pipeline(model=lambda: torch.nn.Linear(30, 2), **base)
    assert slow.checks[0].status == "passed" and not loud(slow, "overfit-batch"), slow.findings
    capped = run_pipeline(model=lambda: torch.nn.Sequential(torch.nn.Linear(30, 2), torch.nn.Softmax(dim=1)), **base)
    finding = probekit.finding(capped, "SC301")
    assert finding.evidence["steps"] == 200 and finding.evidence["extended_to"] is None


def test_a_learning_rate_too_slow_for_the_budget_is_info_when_ten_times_it_fits(run_pipeline):
    """Plain SGD at lr 0.001: the conv net falls short in 800 steps; at lr 0.01 it fits the batch, so the model, loss
    and step work (info). The softmax cap never fits, at any rate (an error: the test below)."""
    finding = probekit.finding(probekit.slow_conv_net_on_digits(run_pipeline, CHECK), "SC301")
    assert finding.severity == "info" and finding.evidence["faster_lr_steps"] is not None
    assert "10x the learning rate" in finding.message


def test_softmax_before_cross_entropy_plateaus_at_its_cap(run_pipeline):
    finding = probekit.finding(run_kind(run_pipeline, model=probekit.softmax_mlp), "SC301")
    cap = math.log(1 + 9 / math.e)  # 1.46 for 10 classes
    assert finding.evidence["softmax_cap"] == pytest.approx(cap, rel=1e-4)
    assert finding.evidence["min_loss"] > cap  # the loss really cannot go below it
    assert finding.evidence["plateau"] is True and "softmax" in finding.message
    curve = finding.evidence["curve"]
    assert len(curve) <= 101 and curve[0] == finding.evidence["initial_loss"]


@pytest.mark.parametrize("targets", ["smoothed", "smoothed-weighted", "probabilities"])
def test_targets_that_keep_mass_on_every_class_lift_the_floor_the_fit_is_judged_against(run_pipeline, targets):
    """CrossEntropyLoss(label_smoothing=0.1), as torchvision's and timm's recipes train, or soft labels given as
    class probabilities: each target keeps 0.01 on every other class, so the loss cannot go below the targets'
    entropy (0.50 for 10 classes) and 90% of the way to 0 is out of reach. The softmax cap stays an error."""
    changes = {}
    if targets == "probabilities":
        (xt, yt), (xv, yv) = casekit.digits()
        soft = lambda y: torch.nn.functional.one_hot(y, 10).float() * 0.9 + 0.01  # noqa: E731
        changes = {"train": casekit.dataset(xt, soft(yt)), "val": casekit.dataset(xv, soft(yv))}
    else:
        weight = torch.linspace(0.5, 1.5, 10) if targets == "smoothed-weighted" else None
        changes = {"loss": torch.nn.CrossEntropyLoss(weight=weight, label_smoothing=0.1)}
    clean = run_kind(run_pipeline, **changes)
    assert not loud(clean, "overfit-batch"), [f.message for f in clean.findings]
    capped = probekit.finding(run_kind(run_pipeline, model=probekit.softmax_mlp, **changes), "SC301")
    assert capped.severity == "error" and capped.evidence["softmax_cap"] is not None
    if targets != "smoothed-weighted":
        entropy = -0.91 * math.log(0.91) - 9 * 0.01 * math.log(0.01)
        assert capped.evidence["floor"] == pytest.approx(entropy, rel=1e-4)


def test_nll_loss_on_raw_scores_is_unbounded_below(run_pipeline):
    report = run_kind(run_pipeline, loss="torch.nn:NLLLoss")  # the mlp has no log_softmax
    finding = probekit.finding(report, "SC305")
    assert finding.severity == "error" and "log_softmax" in finding.message
    assert finding.evidence["min_loss"] == "-inf" or finding.evidence["min_loss"] < -1
    assert "SC301" not in codes(report)  # a loss sliding to minus infinity never counts as fitting


def negated_cross_entropy(outputs, targets):
    return -torch.nn.functional.cross_entropy(outputs, targets)  # BUG: a sign error


def test_sign_error_runs_away(run_pipeline):
    report = run_kind(run_pipeline, loss=negated_cross_entropy)
    finding = probekit.finding(report, "SC305")
    assert finding.evidence["lower_bound"] is None and "sign" in finding.message


def test_sigmoid_before_bce_with_logits_names_its_cap(run_pipeline):
    spec = probekit.clean("binary")
    report = run_kind(run_pipeline, "binary", model=lambda: casekit.mlp(30, 1, last=torch.nn.Sigmoid()))
    finding = probekit.finding(report, "SC301")
    assert finding.evidence["sigmoid_cap"] is not None and "sigmoid" in finding.message
    assert finding.evidence["min_loss"] >= finding.evidence["sigmoid_cap"] - 1e-3
    assert spec["loss"] == "torch.nn:BCEWithLogitsLoss"


def test_train_step_without_optimizer_step(run_pipeline):
    report = run_kind(run_pipeline, train_step=probekit.step_without_optimizer_step)
    assert codes(report, at_least="error") == {"SC304"}
    assert probekit.finding(report, "SC304").evidence["user_train_step"] is True


def test_every_parameter_frozen(run_pipeline):
    finding = probekit.finding(run_kind(run_pipeline, model=probekit.frozen_mlp), "SC304")
    assert finding.evidence["trainable_parameters"] == 0


def test_diverging_learning_rate(run_pipeline):
    report = run_kind(run_pipeline, optimizer={"target": "torch.optim:SGD", "lr": 10.0})
    assert codes(report, at_least="error") & {"SC302", "SC303"}


def glitching_step():
    """The user's step, fed one batch 1000x too large at its third call (an unnormalized batch slipping through):
    the loss spikes far above its start, and the model recovers from it."""
    calls = {}

    def step(model, batch, loss_fn, optimizer):
        calls[id(optimizer)] = n = calls.get(id(optimizer), 0) + 1
        inputs, targets = batch
        optimizer.zero_grad()
        loss = loss_fn(model(inputs * 1000 if n == 3 else inputs), targets)
        loss.backward()
        optimizer.step()
        return loss

    return step


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_blow_up_the_fit_recovers_from_is_a_warning(run_pipeline, seed):
    report = run_kind(run_pipeline, seed=seed, train_step=glitching_step(),
                      optimizer={"target": "torch.optim:Adam", "lr": 0.01})
    finding = probekit.finding(report, "SC303")
    assert finding.severity == "warning" and "before reaching its target" in finding.message
    assert finding.evidence["final_loss"] <= finding.evidence["target_loss"]


def test_dict_batches_with_the_users_step(run_pipeline):
    (xt, yt), (xv, yv) = casekit.digits()

    class Dicts(torch.utils.data.Dataset):
        def __init__(self, x, y):
            self.x, self.y = x, y

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            return {"image": self.x[i], "label": self.y[i]}

    def step(model, batch, loss_fn, optimizer):
        optimizer.zero_grad()
        loss = loss_fn(model(batch["image"]), batch["label"])
        loss.backward()
        optimizer.step()
        return loss

    base = dict(only=CHECK, train=Dicts(xt, yt), val=Dicts(xv, yv), loss=probekit.CE,
                data={"input_key": "image", "target_key": "label"})
    clean = run_pipeline(model=lambda: casekit.mlp(64, 10), train_step=step, **base)
    assert not clean.crashed and not loud(clean, "overfit-batch")
    assert clean.checks[0].status == "passed"
    broken = run_pipeline(model=probekit.softmax_mlp, train_step=step, **base)
    assert "SC301" in codes(broken, at_least="error")


def test_a_step_too_slow_for_the_fit_is_no_verdict_unless_the_model_cannot_fit(run_pipeline):
    """A step of 50 ms on 200 samples (an epoch of 0.35 s): the fit stops at its 2 s cap, about 40 of 200 steps.
    A clean MLP still falling there gets no verdict (info, not SC301's error); a softmax before CrossEntropyLoss is
    an error all the same, since its cap does not depend on how long the fit ran."""
    import time

    (xt, yt), (xv, yv) = casekit.digits()

    def slow_step(model, batch, loss_fn, optimizer):
        time.sleep(0.05)
        return casekit.default_step(model, batch, loss_fn, optimizer)

    base = dict(only=CHECK, train=casekit.dataset(xt[:200], yt[:200]), val=casekit.dataset(xv, yv),
                loss=probekit.CE, train_step=slow_step)
    clean = probekit.finding(run_pipeline(model=lambda: casekit.mlp(64, 10), **base), "SC301")
    assert clean.severity == "info" and clean.evidence["stopped_by_time_cap"] and clean.evidence["steps"] < 100
    assert "no verdict" in clean.message
    capped = probekit.finding(run_pipeline(model=probekit.softmax_mlp, **base), "SC301")
    assert capped.severity == "error" and capped.evidence["softmax_cap"] is not None


@pytest.mark.parametrize("kind", probekit.KINDS)
def test_clean_pipelines_stay_quiet_over_seeds(run_pipeline, kind):
    for seed in range(5):
        report = run_kind(run_pipeline, kind, seed=seed)
        assert not report.crashed
        assert not loud(report, "overfit-batch"), (kind, seed, [(f.code, f.message) for f in loud(report, "overfit-batch")])


def test_softmax_cap_reads_half_precision_outputs():
    """A float16 model's probabilities (common on a GPU) are compared in float32, not refused by allclose."""
    from plugins.overfit_batch import _softmax_cap

    class Ctx:
        loss_fn = torch.nn.CrossEntropyLoss()

        @staticmethod
        def outputs(model, batch):
            return model(batch)

    probabilities = torch.randn(8, 5).softmax(1).half()
    assert _softmax_cap(Ctx(), torch.nn.Identity(), probabilities) == pytest.approx(math.log(1 + 4 / math.e))


class DigitsVAE(torch.nn.Module):
    """PyTorch's examples/vae model at the digits' size: forward returns (reconstruction, mu, logvar)."""

    def __init__(self):
        super().__init__()
        self.enc, self.mu, self.logvar = torch.nn.Linear(64, 64), torch.nn.Linear(64, 8), torch.nn.Linear(64, 8)
        self.dec = torch.nn.Sequential(torch.nn.Linear(8, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64),
                                       torch.nn.Sigmoid())

    def forward(self, x):
        h = torch.relu(self.enc(x))
        mu, logvar = self.mu(h), self.logvar(h)
        return self.dec(mu + torch.randn_like(mu) * (0.5 * logvar).exp()), mu, logvar


def vae_loss(out, x):
    """The example's loss_function: summed BCE of the reconstruction plus the KL term (which never reaches 0)."""
    recon, mu, logvar = out
    bce = torch.nn.functional.binary_cross_entropy(recon, x, reduction="sum")
    return bce - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


def test_a_custom_loss_over_several_outputs_has_no_known_floor(run_pipeline):
    """The VAE's loss plateaus far above 0 (the pixels' own entropy, the KL term): info that names the floor
    setting, not an error. A custom loss over one output tensor keeps the floor 0 (the softmax-cap test)."""
    (xt, _), (xv, _) = casekit.digits()
    xt, xv = xt / 16, xv / 16
    report = run_pipeline(only=CHECK, train=casekit.dataset(xt, xt), val=casekit.dataset(xv, xv), model=DigitsVAE,
                          loss=vae_loss, task="regression")
    assert not codes(report, at_least="warning"), [f.message for f in report.findings]
    finding = probekit.finding(report, "SC301")
    assert finding.evidence["floor_unknown"] and "checks.overfit-batch.floor" in finding.message
