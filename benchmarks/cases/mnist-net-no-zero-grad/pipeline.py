"""BUG planted: the train loop never clears the gradients (optimizer.zero_grad() forgotten), so every step applies the
sum of all gradients so far. Otherwise PyTorch's MNIST example (benchmarks/cases/mnistkit.py) on 10,000 + 2,000
real digits."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import torch.nn.functional as F  # noqa: E402

from mnistkit import Net, load_mnist, loaders  # noqa: E402,F401


def train_step(model, batch, loss_fn, optimizer):
    """The body of main.py's train() loop, one batch."""
    data, target = batch
    model.train()
    output = model(data)  # BUG: optimizer.zero_grad() is missing
    loss = F.nll_loss(output, target)
    loss.backward()
    optimizer.step()
    return loss


train_loader, test_loader = loaders(*load_mnist())
