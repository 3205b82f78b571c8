"""A clean training pipeline on scikit-learn's bundled digits (1797 real 8x8 images, no download).

`sanitycheck run sanitycheck.yaml` should pass with no warnings.
"""

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def _splits():
    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)  # pixel values 0..16 scaled to [0, 1]
    y = torch.tensor(digits.target, dtype=torch.long)
    idx_train, idx_val = train_test_split(range(len(y)), test_size=0.2, stratify=digits.target, random_state=0)
    return (x[idx_train], y[idx_train]), (x[idx_val], y[idx_val])


(_x_train, _y_train), (_x_val, _y_val) = _splits()


def train():
    """The training loader, shuffled."""
    return DataLoader(TensorDataset(_x_train, _y_train), batch_size=32, shuffle=True)


val = TensorDataset(_x_val, _y_val)


def make_model():
    """A fresh MLP: 64 pixels -> 10 logits (no softmax: CrossEntropyLoss applies it)."""
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))


def train_step(model, batch, loss_fn, optimizer):
    """The step the real training loop uses."""
    inputs, targets = batch
    model.train()
    optimizer.zero_grad()
    loss = loss_fn(model(inputs), targets)
    loss.backward()
    optimizer.step()
    return loss
