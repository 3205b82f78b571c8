"""The digits pipeline with four planted bugs, each of which sanitycheck must find.

1. The inputs are not scaled: raw pixel values 0..16                (data-integrity SC809)
2. Five training images were corrupted to NaN by a bad read         (data-integrity SC801)
3. Nine in ten training images of the digit 3 were dropped          (class-balance SC503, SC504)
4. The model ends with a softmax and feeds it to CrossEntropyLoss   (init-loss SC902, overfit-batch SC301)
"""

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def _splits():
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32)  # BUG 1: raw 0..16, never scaled
    y = torch.tensor(digits.target, dtype=torch.long)
    idx_train, idx_val = train_test_split(np.arange(len(y)), test_size=0.2, stratify=digits.target, random_state=0)
    threes = idx_train[digits.target[idx_train] == 3]
    idx_train = np.setdiff1d(idx_train, threes[len(threes) // 10:])  # BUG 3: most 3s lost from train
    x_train = x[idx_train].clone()
    x_train[[100, 200, 300, 400, 500]] = float("nan")  # BUG 2: corrupted reads
    return (x_train, y[idx_train]), (x[idx_val], y[idx_val])


(_x_train, _y_train), (_x_val, _y_val) = _splits()


def train():
    return DataLoader(TensorDataset(_x_train, _y_train), batch_size=32, shuffle=True)


val = TensorDataset(_x_val, _y_val)


def make_model():
    # BUG 4: softmax output fed to CrossEntropyLoss, which applies log_softmax itself
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10), nn.Softmax(dim=1))


def train_step(model, batch, loss_fn, optimizer):
    inputs, targets = batch
    model.train()
    optimizer.zero_grad()
    loss = loss_fn(model(inputs), targets)
    loss.backward()
    optimizer.step()
    return loss
