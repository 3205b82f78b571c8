"""The config schema (contract §1), loading from YAML, and import of ``module:attr`` references.

Every key is a pydantic field with a description; a wrong key or value becomes one :class:`ConfigError`
that names it (with the closest valid key for a typo).
"""

from __future__ import annotations

import difflib
import importlib
import re
import sys
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sanitycheck.engine.errors import ConfigError
from sanitycheck.engine.faults import called_argparse, clean_argv, exit_reason, hold_stderr, where

Ref = Any
"""A ``"module:attr"`` string (``attr`` may be dotted) or, from Python, the object itself."""

#: ``loss: model``: the model computes its loss itself (see :class:`~sanitycheck.pipeline.adapter.ModelLoss`).
MODEL_LOSS = "model"

PROFILES: dict[str, float] = {"fast": 0.25, "default": 1.0, "thorough": 4.0}
"""Each profile scales every check's budget (steps, samples, seconds) by this factor."""


def _check_ref(value: Any) -> Any:
    if isinstance(value, str) and not re.fullmatch(r"[\w.]+:[\w.]+", value):
        raise ValueError(f"expected 'module:attr' (e.g. 'pipeline:make_model'), got {value!r}")
    return value


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)


class DataConfig(StrictModel):
    train: Ref = Field(description="The training split: a Dataset, a DataLoader, or a zero-arg callable returning one.")
    val: Ref | None = Field(None, description="The held-out split, same forms as `train`.")
    augment: Ref | None = Field(None, description="callable(input) -> input: the training-time augmentation of ONE input.")
    input_key: str | int | list[int] | list[str] | None = Field(
        None, description="For dict samples: the key of the input, or a list of keys given to the model as keyword "
        "arguments ([input_ids, attention_mask]). For tuple samples: its position, or a list of positions given to "
        "the model as separate arguments (TensorDataset(input_ids, attention_mask, labels): [0, 1]).")
    target_key: str | int | None = Field(
        None, description="For dict samples: the key of the target. For tuple samples: its position (default 1).")
    max_samples: int | None = Field(
        None, ge=1, description="Read at most this many samples per split (an IterableDataset defaults to 10000)."
    )
    memory_mb: int = Field(1024, ge=1, description="Budget (MiB) for caching the inputs during the data pass (uint8 and "
                           "other narrow dtypes kept as they are, others as float32; an in-memory TensorDataset is not copied).")

    _refs = field_validator("train", "val", "augment")(classmethod(lambda cls, v: _check_ref(v)))


class OptimizerConfig(BaseModel):
    """``target`` and ``lr``; every other key is passed to the optimizer."""

    model_config = ConfigDict(extra="allow", arbitrary_types_allowed=True)

    target: Ref = Field("torch.optim:Adam", description="The optimizer class.")
    lr: float = Field(1e-3, gt=0, description="The learning rate.")

    _refs = field_validator("target")(classmethod(lambda cls, v: _check_ref(v)))

    @property
    def kwargs(self) -> dict[str, Any]:
        """The keyword arguments for the optimizer: ``lr`` and every extra key."""
        return {"lr": self.lr, **(self.model_extra or {})}


class EmbeddingConfig(StrictModel):
    """How the shared embedding (leakage, outliers, influence, augmentation realism) represents a sample."""

    source: Literal["pixels", "model"] = Field(
        "pixels", description="pixels: the inputs themselves (8x8 normalized thumbnails for images, standardized "
        "features otherwise); model: the model's penultimate features (the input of `layer`).",
    )
    layer: str | None = Field(
        None, description="source: model only: the dotted name of the submodule whose input is taken "
        "(default: the last nn.Linear the forward pass calls, i.e. the classifier head's input).",
    )

    @field_validator("layer")
    @classmethod
    def _layer(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[\w.]+", value):
            raise ValueError(f"expected a dotted submodule name such as 'backbone.fc', got {value!r}")
        return value

    @model_validator(mode="after")
    def _layer_needs_model(self) -> EmbeddingConfig:
        if self.layer is not None and self.source != "model":
            raise ValueError(f"embedding.layer {self.layer!r} is only used with source: model (source is {self.source!r})")
        return self


class EngineConfig(StrictModel):
    """Where the data scans run: ``local`` (this process) or ``ray`` (a Ray cluster; ``pip install 'sanitycheck[ray]'``)."""

    name: Literal["local", "ray"] = Field("local", description="local: this process; ray: the data pass (hashes, "
                                          "statistics, embedding features) runs on a Ray cluster's workers.")
    address: str = Field("auto", description="ray: the cluster: auto (RAY_ADDRESS, else the one `ray start` started "
                         "here), HOST:PORT of a head node, ray://HOST:10001 (Ray Client), or local (a private Ray here).")
    shard_size: int | None = Field(None, ge=1, description="ray: samples per shard, rounded up to a multiple of 1024 "
                                   "(default: about 4 shards per worker CPU, 1024 to 65536).")
    runtime_env: dict[str, Any] | None = Field(None, description="ray: the workers' runtime environment, e.g. "
                                               "{working_dir: ., pip: [sanitycheck]} for a cluster without this code.")


class Config(StrictModel):
    """A `sanitycheck.yaml`, validated."""

    task: Literal["classification", "regression", "sequence"] = Field(
        "classification", description="What the model predicts. sequence: a class per position (next-token prediction, "
        "tagging): targets (B, T) of class ids, negative ids (ignore_index -100, nanoGPT's -1) ignored; outputs (B, T, C). "
        "Unset with an MSE, L1 or Huber loss: regression.",
    )
    num_classes: int | None = Field(None, ge=2, description="Classification only; inferred from the labels when absent.")
    data: DataConfig
    model: Ref = Field(description="An nn.Module, or a zero-arg callable returning a fresh one (preferred).")
    loss: Ref = Field(description="callable(outputs, targets) -> scalar tensor; a class is instantiated with no arguments. "
                      "`model`: the model computes its own loss, called as model(inputs, targets) (dict batches: "
                      "model(**batch)) and returning a loss, (outputs, loss), or an object with .loss and .logits.")
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    train_step: Ref | None = Field(None, description="callable(model, batch, loss_fn, optimizer) -> loss.")
    batch_size: int = Field(32, ge=1, description="Used when data entries are Datasets.")
    device: str = Field("cpu", description="cpu | cuda | cuda:N | auto.")
    seed: int = Field(0, description="Seeds every probe, so results are reproducible.")
    fail_on: Literal["error", "warning", "never"] = Field("error", description="What makes `run` exit 1.")
    profile: Literal["fast", "default", "thorough"] = Field("default", description="Scales every check's budget.")
    checks: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Per-check settings by check name; every check accepts `enabled: false`."
    )
    embedding: EmbeddingConfig = Field(
        default_factory=EmbeddingConfig, description="The shared embedding: `{source: pixels | model, layer: NAME}`."
    )
    engine: EngineConfig = Field(
        default_factory=EngineConfig, description="Where the data scans run: `local` or `{name: ray, address: auto}`."
    )

    #: The folder `module:attr` references are imported from (the config file's folder); not a YAML key.
    base_dir: Path | None = Field(None, exclude=True)
    #: Where the config came from, for messages and the report; not a YAML key.
    source: str | None = Field(None, exclude=True)

    _refs = field_validator("model", "train_step")(classmethod(lambda cls, v: _check_ref(v)))

    @field_validator("loss")
    @classmethod
    def _loss(cls, value: Any) -> Any:
        return value if value == MODEL_LOSS else _check_ref(value)

    @property
    def model_loss(self) -> bool:
        """``loss: model``: the model computes its own loss."""
        return self.loss == MODEL_LOSS

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not re.fullmatch(r"cpu|auto|cuda(:\d+)?|mps", value):
            raise ValueError(f"expected cpu, cuda, cuda:N or auto, got {value!r}")
        return value

    @field_validator("embedding", mode="before")
    @classmethod
    def _embedding(cls, value: Any) -> Any:
        return {} if value is None else value  # `embedding:` left empty means the defaults

    @field_validator("engine", mode="before")
    @classmethod
    def _engine(cls, value: Any) -> Any:
        if value is None:
            return {}
        return {"name": value} if isinstance(value, str) else value  # `engine: ray` means {name: ray, address: auto}

    @field_validator("checks", mode="before")
    @classmethod
    def _checks(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for name, settings in value.items():
                if settings is None:
                    value[name] = {}
                elif not isinstance(settings, dict):
                    raise ValueError(f"checks.{name} must be a mapping of settings, got {settings!r}")
        return value


# --------------------------------------------------------------------------------------------- loading


def load_config(source: str | Path | dict[str, Any] | Config, **overrides: Any) -> Config:
    """Load and validate a config from a YAML path, a dict or a :class:`Config`; apply top-level overrides."""
    if isinstance(source, Config):
        if not overrides:
            return source
        data = {**source.model_dump(exclude={"base_dir", "source"}), **overrides}
        return validate_config(data, source.base_dir, source.source)
    if isinstance(source, dict):
        return validate_config({**source, **overrides}, Path.cwd(), "<dict>")
    path = Path(source)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}" + (" (it is a folder)" if path.is_dir() else ""))
    text = read_text_file(path, "config")
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        raise ConfigError(f"{path}: YAML syntax error at {where}: {exc.problem}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: YAML error: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level, got {type(data).__name__}")
    return validate_config({**data, **overrides}, path.resolve().parent, str(path))


def read_text_file(path: str | Path, what: str) -> str:
    """The text of a file the tool reads (config, baseline, saved report): UTF-8 (a BOM is allowed), else a
    :class:`ConfigError` naming the file and the first bad byte, never a ``UnicodeDecodeError`` traceback."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except IsADirectoryError as exc:
        raise ConfigError(f"{path}: is a folder, not a {what} file") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what} file: {exc.strerror or exc}") from exc
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: the {what} file is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset "
                          f"{exc.start}); save it as UTF-8") from None


def validate_config(data: dict[str, Any], base_dir: Path | None, source: str | None, raw: Any = None) -> Config:
    """Validate a mapping as a :class:`Config`, turning pydantic's errors into one readable message."""
    try:
        return Config.model_validate({**data, "base_dir": base_dir, "source": source})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source or "config")) from exc


def _describe(exc: ValidationError, source: str) -> str:
    """Name the first offending key; suggest the closest valid key for an unknown one."""
    messages = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        key = ".".join(loc)
        if error["type"] == "extra_forbidden":
            valid = _fields_at(loc[:-1])
            close = difflib.get_close_matches(loc[-1], valid, n=1)
            hint = f" (did you mean '{'.'.join(loc[:-1] + close)}'?)" if close else f" (valid keys: {', '.join(valid)})"
            messages.append(f"unknown key '{key}'{hint}")
        elif error["type"] == "missing":
            messages.append(f"missing required key '{key}'")
        elif error["type"] == "value_error":  # our own validators already quote the value
            messages.append(f"key '{key}': {error['msg'].removeprefix('Value error, ')}")
        else:
            messages.append(f"key '{key}': {error['msg']} (got {error.get('input')!r})")
    shown = "; ".join(messages[:3]) + (f"; and {len(messages) - 3} more" if len(messages) > 3 else "")
    return f"{source}: {shown}"


def _fields_at(loc: list[str]) -> list[str]:
    model: type[BaseModel] = Config
    for part in loc:
        annotation = model.model_fields[part].annotation if part in model.model_fields else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    hidden = ("base_dir", "source") if model is Config else ()  # Config's own non-YAML fields
    return [name for name in model.model_fields if name not in hidden]


# --------------------------------------------------------------------------------------------- imports


def _forget_shadowed(module_name: str, base_dir: Path) -> None:
    """Drop a cached module of the same name imported from elsewhere, so this config's own file is used.

    Two configs in one process (tests, the Python API) often both name a local ``pipeline.py``.
    """
    top = module_name.split(".")[0]
    local = base_dir / f"{top}.py"
    if not local.is_file():
        local = base_dir / top / "__init__.py"
    cached = sys.modules.get(top)
    if cached is None or not local.is_file():
        return
    cached_file = getattr(cached, "__file__", None)
    if cached_file is None or Path(cached_file).resolve() != local.resolve():
        for name in [n for n in sys.modules if n == top or n.startswith(top + ".")]:
            del sys.modules[name]


def _module_file(module_name: str, base_dir: Path | None) -> str:
    """The file a module would be imported from, as the ``sys.argv[0]`` it sees (its name when not local)."""
    if base_dir is not None:
        parts = module_name.split(".")
        for candidate in (Path(base_dir).joinpath(*parts).with_suffix(".py"), Path(base_dir).joinpath(*parts, "__init__.py")):
            if candidate.is_file():
                return str(candidate)
    return module_name


def resolve(ref: Any, key: str, base_dir: Path | None) -> Any:
    """Import a ``"module:attr"`` reference (the config's folder first on ``sys.path``); objects pass through.

    Raises :class:`ConfigError` naming ``key`` when the module does not import or has no such attribute.
    """
    if not isinstance(ref, str):
        return ref
    module_name, _, attr_path = ref.partition(":")
    if base_dir is not None:
        if str(base_dir) not in sys.path[:1]:
            sys.path.insert(0, str(base_dir))
        _forget_shadowed(module_name, Path(base_dir))
    program = _module_file(module_name, base_dir)
    try:
        with clean_argv(program), hold_stderr() as held:  # argparse at import sees no arguments, not ours
            obj: Any = importlib.import_module(module_name)
    except SystemExit as exc:  # an exit at import would end the run with the user's exit code and no report
        if called_argparse(exc):
            said = held.last_line()
            raise ConfigError(
                f"{key}: importing '{module_name}' exited: it parses the command line at import ({where(exc)})"
                + (f"; argparse said: {said}" if said else "")
                + ". Move parse_args() under `if __name__ == '__main__':`, or use parse_known_args()") from exc
        raise ConfigError(f"{key}: importing '{module_name}' {exit_reason(exc)}; code at module level must not exit "
                          "the process") from exc
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ConfigError(f"{key}: cannot import module '{module_name}' (from '{ref}'; looked in {base_dir})") from exc
        raise ConfigError(f"{key}: importing '{module_name}' failed: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:  # the user's module raised while importing
        raise ConfigError(f"{key}: importing '{module_name}' failed: {type(exc).__name__}: {exc}") from exc
    for part in attr_path.split("."):
        if not hasattr(obj, part):
            names = [n for n in dir(obj) if not n.startswith("_")]
            close = difflib.get_close_matches(part, names, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"{key}: '{module_name}' has no attribute '{attr_path}'{hint}")
        obj = getattr(obj, part)
    return obj
