"""The commented config `sanitycheck init` writes (every key of contract §1; tests load it)."""

TEMPLATE = """\
# sanitycheck.yaml: describes your training pipeline to sanitycheck.
# Run it with: sanitycheck run sanitycheck.yaml     (sanitycheck explain CODE explains a finding)
# "module:attr" paths are imported with this file's folder first on sys.path.

# task: classification          # classification | regression | sequence (a class per position: targets (B, T),
                                # outputs (B, T, C); negative targets such as ignore_index -100 are ignored).
                                # Unset: classification, or regression with an MSE, L1 or Huber loss
# num_classes: 10               # optional for classification: inferred from the labels when absent

data:
  train: pipeline:train         # a torch Dataset, a DataLoader, or a zero-arg callable returning one
  val: pipeline:val             # same; the held-out split
  # augment: pipeline:augment   # optional: callable(input) -> input, the augmentation of ONE training input
  # input_key: image            # for dict samples: the key(s) of the input (tuple samples: position(s), e.g. [0, 1])
  # target_key: label           # ... and of the target (tuple samples: its position, e.g. 2)
  # max_samples: 50000          # read at most this many samples per split
  # memory_mb: 1024             # budget (MiB) for caching inputs during the one data pass

model: pipeline:make_model      # an nn.Module, or a zero-arg callable returning a fresh one (preferred)
loss: torch.nn:CrossEntropyLoss # callable(outputs, targets) -> scalar tensor; a class is instantiated with no arguments
                                # model: the model computes its loss: model(inputs, targets) (dict batches:
                                # model(**batch)) returns a loss, (outputs, loss), or an object with .loss and .logits

optimizer:                      # optional; default Adam, lr 1e-3
  target: torch.optim:Adam
  lr: 0.001                     # every other key is passed to the optimizer, e.g. weight_decay: 0.0001

# train_step: pipeline:train_step  # optional: your own step, callable(model, batch, loss_fn, optimizer) -> loss
batch_size: 32                  # used when data entries are Datasets
device: cpu                     # cpu | cuda | cuda:N | auto
seed: 0                         # every probe is seeded from this
fail_on: error                  # error | warning | never: what makes `sanitycheck run` exit 1
profile: default                # fast | default | thorough: scales every probe's budget
# embedding: {source: model}    # what leakage/outliers compare: pixels (default: the inputs) | model (the model's
                                # penultimate features; layer: NAME takes the input of another submodule)
# engine: {name: ray, address: auto}  # where the data scans run: local (default) | ray (a Ray cluster; needs
                                # pip install 'sanitycheck[ray]'; address: auto | HOST:PORT | ray://HOST:10001 | local)

checks:                         # optional per-check settings; every check accepts `enabled: false`
  overfit-batch: {steps: 200}
"""
