"""A tabular MLP as users write one: a table of named columns, a Dataset that returns dict samples, DataLoaders with
worker processes, standardization fit on the training rows. Shared by the tabular-mlp-* cases, which differ only in
the feature list they choose.

Data: scikit-learn's breast cancer table (569 tumours, 30 measurements, malignant or benign; no download).
"""

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, Dataset


def load_table():
    data = load_breast_cancer()
    table = {name: data.data[:, i] for i, name in enumerate(data.feature_names)}
    table["id"] = np.arange(len(data.target))
    table["target"] = data.target
    return table


TABLE = load_table()
TARGET = "target"


class TabularDataset(Dataset):
    def __init__(self, table, rows, features, mean=None, std=None):
        x = np.stack([table[c][rows] for c in features], axis=1).astype(np.float32)
        self.mean = x.mean(0) if mean is None else mean
        self.std = x.std(0) if std is None else std
        self.x = (x - self.mean) / self.std
        self.y = table[TARGET][rows].astype(np.int64)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"features": torch.from_numpy(self.x[i]), "label": torch.tensor(self.y[i])}


def loaders(features):
    """Train and validation loaders (a stratified 80/20 split, standardized with the training rows' statistics)."""
    train_rows, val_rows = train_test_split(np.arange(len(TABLE[TARGET])), test_size=0.2, random_state=0,
                                            stratify=TABLE[TARGET])
    train_set = TabularDataset(TABLE, train_rows, features)
    val_set = TabularDataset(TABLE, val_rows, features, train_set.mean, train_set.std)
    return (DataLoader(train_set, batch_size=64, shuffle=True, num_workers=2),
            DataLoader(val_set, batch_size=256, num_workers=2))


class MLP(nn.Module):
    def __init__(self, inputs, hidden=64, classes=2):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(inputs, hidden), nn.ReLU(), nn.Dropout(0.1),
            nn.Linear(hidden, hidden // 2), nn.ReLU(),
            nn.Linear(hidden // 2, classes),
        )

    def forward(self, features):
        return self.net(features)


def train_step(model, batch, loss_fn, optimizer):
    model.train()
    optimizer.zero_grad()
    loss = loss_fn(model(batch["features"]), batch["label"])
    loss.backward()
    optimizer.step()
    return loss.item()
