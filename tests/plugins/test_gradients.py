"""gradients: plant each way gradients fail (cut, frozen, NaN, vanishing, exploding, dead units, no update)
and find it, naming the parameter or module; clean pipelines stay quiet."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import casekit
import probekit
from conftest import codes, loud

CHECK = ["gradients"]


def run_kind(run_pipeline, kind="mlp", seed=0, **changes):
    return probekit.run_clean(run_pipeline, CHECK, kind, seed, **changes)




def test_train_step_without_optimizer_step(run_pipeline):
    report = run_kind(run_pipeline, train_step=probekit.step_without_optimizer_step)
    finding = probekit.finding(report, "SC1007")
    assert finding.severity == "error" and len(finding.evidence["unchanged"]) == 4


def test_train_step_without_zero_grad_accumulates(run_pipeline):
    report = run_kind(run_pipeline, train_step=probekit.step_without_zero_grad)
    finding = probekit.finding(report, "SC1008")
    assert finding.severity == "error" and "zero_grad" in finding.message
    assert finding.evidence["distance_to_sum"] < 0.05 < finding.evidence["distance_to_fresh"]


def test_a_slow_step_takes_fewer_training_steps_and_still_finds_the_missing_zero_grad(run_pipeline):
    """A step of 0.3 s on 200 samples (0.6 s at the check's batch of 64): 10 steps between the diagnostic passes
    would be 6 s against a 2 s cap, so it takes the 3 its verdicts need; the missing zero_grad is found all the
    same."""
    import time

    (xt, yt), (xv, yv) = casekit.digits()

    def slow(model, batch, loss_fn, optimizer):
        time.sleep(0.3)
        return probekit.step_without_zero_grad(model, batch, loss_fn, optimizer)

    report = run_pipeline(only=CHECK, train=casekit.dataset(xt[:200], yt[:200]), val=casekit.dataset(xv, yv),
                          model=lambda: casekit.mlp(64, 10), loss=probekit.CE, train_step=slow)
    finding = probekit.finding(report, "SC1008")
    assert finding.severity == "error" and finding.evidence["steps"] == 3


class RandomlyShifted(torch.utils.data.Dataset):
    """A training transform as users write one: a random shift drawn with numpy at every read."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return torch.roll(self.x[i], int(np.random.randint(-3, 4))), self.y[i]


@pytest.mark.parametrize("step", [probekit.step_without_zero_grad, casekit.default_step])
def test_accumulation_is_judged_on_the_batch_the_step_saw_under_random_augmentation(run_pipeline, step):
    """The second batch is read once for both of its steps: read again, a random transform would make another."""
    (xt, yt), _ = casekit.digits()
    report = run_kind(run_pipeline, train=RandomlyShifted(xt, yt), train_step=step)
    assert ("SC1008" in codes(report, at_least="error")) == (step is probekit.step_without_zero_grad)


def dropout_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Dropout(0.5), nn.Linear(64, 10))


def step_clipping_without_zero_grad(model, batch, loss_fn, optimizer):
    inputs, targets = batch
    model.train()
    loss = loss_fn(model(inputs), targets)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # rescales the accumulated sum in place
    optimizer.step()
    return loss


@pytest.mark.parametrize("step", [probekit.step_without_zero_grad, step_clipping_without_zero_grad])
def test_accumulation_found_through_dropout_and_clipping(run_pipeline, step):
    report = run_kind(run_pipeline, model=dropout_mlp, train_step=step)
    assert "SC1008" in codes(report, at_least="error")


def mixup_step(zero_grad: bool):
    """Mixup as users write it in their step: the mixing weight from NumPy's global stream, the partner order from
    torch's. Without zero_grad on a CIFAR-sized conv net it was not found: the fresh step re-drew the weight."""
    def step(model, batch, loss_fn, optimizer):
        inputs, targets = batch
        model.train()
        lam, perm = float(np.random.beta(0.2, 0.2)), torch.randperm(len(inputs))
        outputs = model(lam * inputs + (1 - lam) * inputs[perm])
        loss = lam * loss_fn(outputs, targets) + (1 - lam) * loss_fn(outputs, targets[perm])
        if zero_grad:
            optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss

    return step


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("zero_grad", [False, True])
def test_accumulation_found_through_a_mixup_step(run_pipeline, zero_grad, seed):
    report = run_kind(run_pipeline, "cnn", seed, train_step=mixup_step(zero_grad),
                      optimizer={"target": "torch.optim:SGD", "lr": 0.05, "momentum": 0.9})
    assert ("SC1008" in codes(report, at_least="error")) == (not zero_grad)


def step_zeroing_after(model, batch, loss_fn, optimizer):
    inputs, targets = batch
    model.train()
    loss = loss_fn(model(inputs), targets)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 0.05)
    optimizer.step()
    model.zero_grad()  # after the step: as correct as before the backward
    return loss


@pytest.mark.parametrize("step", [casekit.default_step, step_zeroing_after])
def test_steps_that_clear_gradients_are_quiet(run_pipeline, step):
    report = run_kind(run_pipeline, model=dropout_mlp, train_step=step)
    assert "SC1008" not in codes(report)


class AccumulateTwo:
    """Gradient accumulation on purpose: the optimizer steps and clears every second call."""

    def __init__(self):
        self.calls = 0

    def __call__(self, model, batch, loss_fn, optimizer):
        inputs, targets = batch
        model.train()
        loss = loss_fn(model(inputs), targets) / 2
        loss.backward()
        self.calls += 1
        if self.calls % 2 == 0:
            optimizer.step()
            optimizer.zero_grad()
        return loss


def test_declared_gradient_accumulation_is_not_reported(run_pipeline):
    declared = run_kind(run_pipeline, train_step=probekit.step_without_zero_grad,
                        checks={"gradients": {"accumulation_steps": 4}})
    assert "SC1008" not in codes(declared)
    on_purpose = run_kind(run_pipeline, train_step=AccumulateTwo(), checks={"gradients": {"accumulation_steps": 2}})
    assert not on_purpose.crashed and "SC1008" not in codes(on_purpose)


def test_every_parameter_frozen(run_pipeline):
    report = run_kind(run_pipeline, model=probekit.frozen_mlp)
    assert codes(report, at_least="error") == {"SC1002"}


def test_partly_frozen_is_only_info(run_pipeline):
    def backbone_frozen():
        model = casekit.mlp(64, 10)
        model[0].requires_grad_(False)
        return model

    report = run_kind(run_pipeline, model=backbone_frozen)
    assert probekit.finding(report, "SC1002").severity == "info" and not loud(report, "gradients")


def test_detached_layer_gets_no_gradient(run_pipeline):
    class Detached(nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.head = nn.Linear(64, 32), nn.Linear(32, 10)

        def forward(self, x):
            return self.head(torch.relu(self.body(x)).detach())  # BUG: cuts the graph

    finding = probekit.finding(run_kind(run_pipeline, model=Detached), "SC1001")
    assert finding.severity == "warning" and set(finding.evidence["no_gradient"]) == {"body.weight", "body.bias"}
    assert "body.weight (Linear)" in finding.message


def test_nan_gradient_is_named(run_pipeline):
    class SqrtAtZero(nn.Module):
        def __init__(self):
            super().__init__()
            self.net, self.gain = casekit.mlp(64, 10), nn.Parameter(torch.zeros(()))

        def forward(self, x):
            return self.net(x) * (1 + torch.sqrt(self.gain))  # d sqrt(g)/dg is infinite at 0

    finding = probekit.finding(run_kind(run_pipeline, model=SqrtAtZero), "SC1003")
    assert "gain" in finding.evidence["nonfinite"]


def test_vanishing_gradients_in_a_deep_sigmoid_stack(run_pipeline):
    def deep():
        layers = [nn.Linear(64, 32), nn.Sigmoid()]
        for _ in range(12):
            layers += [nn.Linear(32, 32), nn.Sigmoid()]
        return nn.Sequential(*layers, nn.Linear(32, 10))

    finding = probekit.finding(run_kind(run_pipeline, model=deep), "SC1004")
    assert "0.weight" in finding.evidence["vanishing"]  # the first layer is furthest from the loss


def test_exploding_gradients_at_a_diverging_learning_rate(run_pipeline):
    # A linear regression model with SGD far above 2/L: every step overshoots and the gradient grows.
    report = run_kind(run_pipeline, "regression", model=lambda: nn.Linear(10, 1),
                      optimizer={"target": "torch.optim:SGD", "lr": 3.0})
    finding = probekit.finding(report, "SC1005")
    assert finding.evidence["norm_after"] > 100 * finding.evidence["norm_initial"]


def test_dead_relus_after_a_diverging_learning_rate(run_pipeline):
    report = run_kind(run_pipeline, optimizer={"target": "torch.optim:SGD", "lr": 10.0})
    finding = probekit.finding(report, "SC1006")
    assert "1" in finding.evidence["dead_units"]  # the module name of the ReLU in the Sequential
    assert finding.evidence["dead_units"]["1"]["samples"] > 64  # confirmed on more samples than the batch


def rare_units(seed):
    """A ReLU layer of 16 units, each on for one kind of input only: 15 kinds are rare (0.4% of samples each),
    so most units are off on a batch of 64 samples, yet none is dead (each is on for its own inputs)."""
    rng = np.random.default_rng(seed)
    kinds = np.where(rng.random(2000) < 0.06, rng.integers(0, 15, 2000), 15)
    x = torch.nn.functional.one_hot(torch.as_tensor(kinds), 16).float()
    y = torch.as_tensor(kinds % 2)

    def model():
        layer = nn.Linear(16, 16)
        with torch.no_grad():  # unit j's input is x_j - 0.5: above 0 for inputs of kind j only
            layer.weight.copy_(torch.eye(16))
            layer.bias.fill_(-0.5)
        layer.requires_grad_(False)  # training leaves the units as they are
        return nn.Sequential(layer, nn.ReLU(), nn.Linear(16, 2))

    return {"train": casekit.dataset(x, y), "model": model, "loss": "torch.nn:CrossEntropyLoss"}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_units_off_on_the_batch_but_on_for_other_samples_are_not_dead(run_pipeline, monkeypatch, seed):
    from sanitycheck_plugins import gradients

    quiet = run_pipeline(only=CHECK, seed=seed, **rare_units(seed))
    assert "SC1006" not in codes(quiet), [f.message for f in quiet.findings if f.code == "SC1006"]
    monkeypatch.setattr(gradients, "CONFIRM_SAMPLES", 0)  # the batch alone: most units are off on it
    assert "SC1006" in codes(run_pipeline(only=CHECK, seed=seed, **rare_units(seed)))


@pytest.mark.parametrize("kind", probekit.KINDS)
def test_clean_pipelines_stay_quiet_over_seeds(run_pipeline, kind):
    for seed in range(5):
        report = run_kind(run_pipeline, kind, seed=seed)
        assert not report.crashed
        assert not loud(report, "gradients"), (kind, seed, [(f.code, f.message) for f in loud(report, "gradients")])
