"""Configuration: three dataclass sections (env, policy, train) with PufferLib's names.

Per-environment values live in ``puffjax/configs/<env>.toml`` on top of ``default.toml``.
``load_config("breakout", learning_rate=0.02, env={"num_envs": 1024})`` returns an editable
:class:`Config`; the CLI maps ``--train.learning-rate 0.02`` onto the same fields.
"""
from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from dataclasses import dataclass, field
from typing import Any

CONFIG_DIR = os.path.join(os.path.dirname(__file__), "configs")


@dataclass
class EnvConfig:
    name: str = "breakout"
    num_envs: int = 4096
    threads: int = 1
    options: dict = field(default_factory=dict)  # passed to puffjax.envs.make (e.g. frameskip)


@dataclass
class PolicyConfig:
    kind: str = "default"  # default | recurrent | cnn
    hidden_size: int = 128
    value_head: str = "scalar"  # scalar | hl_gauss
    num_bins: int = 101
    v_min: float = -10.0
    v_max: float = 10.0


@dataclass
class TrainConfig:
    seed: int = 0
    total_timesteps: int = 10_000_000
    batch_size: int | str = "auto"  # "auto" = total agents * bptt_horizon
    bptt_horizon: int = 64
    minibatch_size: int = 8192
    max_minibatch_size: int = 32768
    update_epochs: int = 1
    optimizer: str = "muon"  # muon | adam
    learning_rate: float = 0.015
    anneal_lr: bool = True
    gamma: float = 0.995
    gae_lambda: float = 0.90
    clip_coef: float = 0.2
    vf_coef: float = 2.0
    vf_clip_coef: float = 0.2
    max_grad_norm: float = 1.5
    ent_coef: float = 0.001
    adam_beta1: float = 0.95
    adam_beta2: float = 0.999
    adam_eps: float = 1e-12
    vtrace_rho_clip: float = 1.0
    vtrace_c_clip: float = 1.0
    prio_alpha: float = 0.8
    prio_beta0: float = 0.2
    data_dir: str = "runs"
    checkpoint_interval: int = 200  # epochs; a checkpoint is also written at the end
    logger: str = "none"  # none | tensorboard | wandb (JSON-lines metrics are always written)
    video_frames: int = 200  # rollout video (run_dir/video.gif) at the end of a run; 0: none
    video_interval: int = 0  # also one every this many checkpoints (run_dir/videos/); 0: only at the end


@dataclass
class Config:
    env: EnvConfig = field(default_factory=EnvConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        cfg = cls()
        for section, values in d.items():
            _apply_section(cfg, section, values)
        return cfg

    def save(self, path: str) -> None:
        with open(path, "w") as f:
            json.dump(self.to_dict(), f, indent=2)


SECTIONS = {"env": EnvConfig, "policy": PolicyConfig, "train": TrainConfig}


def available() -> list[str]:
    """Names of the shipped environment configs."""
    return sorted(f[:-5] for f in os.listdir(CONFIG_DIR) if f.endswith(".toml") and f != "default.toml")


def _coerce(section: str, name: str, value: Any, default: Any) -> Any:
    """Convert ``value`` (possibly a CLI string) to the type of ``default``."""
    if isinstance(value, str) and not isinstance(default, str):
        text = value.strip()
        if isinstance(default, bool):
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"{section}.{name}: expected true/false, got {value!r}")
        if name == "batch_size" and text == "auto":
            return "auto"
        try:
            if isinstance(default, int) or name == "batch_size":
                return int(float(text)) if "e" in text.lower() else int(text.replace("_", ""))
            if isinstance(default, float):
                return float(text)
        except ValueError:
            raise ValueError(f"{section}.{name}: cannot parse {value!r} as {type(default).__name__}") from None
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _literal(value: Any) -> Any:
    """A CLI string as the number or boolean it spells ("4" -> 4, "true" -> True), else as is."""
    if not isinstance(value, str):
        return value
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    for parse in (int, float):
        try:
            return parse(value.replace("_", ""))
        except ValueError:
            pass
    return value


def _apply_section(cfg: Config, section: str, values: dict) -> None:
    if section not in SECTIONS:
        raise ValueError(f"unknown config section {section!r}; expected one of {sorted(SECTIONS)}")
    obj = getattr(cfg, section)
    names = {f.name for f in dataclasses.fields(obj)}
    for key, value in values.items():
        key = key.replace("-", "_")
        if section == "env" and key == "options":
            obj.options.update(value)
        elif key in names:
            setattr(obj, key, _coerce(section, key, value, getattr(obj, key)))
        elif section == "env":
            obj.options[key] = _literal(value)  # environment-specific, validated by the env itself
        else:
            raise ValueError(
                f"unknown option {section}.{key}; valid options: {', '.join(sorted(names))}")


def _read_toml(name: str) -> dict:
    path = os.path.join(CONFIG_DIR, f"{name}.toml")
    if not os.path.exists(path):
        raise ValueError(f"no config for environment {name!r}; shipped configs: {', '.join(available())}")
    with open(path, "rb") as f:
        return tomllib.load(f)


def load_config(name: str = "breakout", **overrides: Any) -> Config:
    """The shipped config for environment ``name`` with ``overrides`` applied.

    Overrides are either whole sections (``train={"learning_rate": 0.02}``), dotted
    paths as a dict key (``**{"train.learning_rate": 0.02}``), or a bare field name that
    is unique across sections (``learning_rate=0.02``, ``num_envs=1024``).
    """
    cfg = Config()
    cfg.env.name = name
    for layer in (_read_toml("default"), _read_toml(name)):
        for section, values in layer.items():
            _apply_section(cfg, section, values)
    apply_overrides(cfg, overrides)
    validate(cfg)
    return cfg


def apply_overrides(cfg: Config, overrides: dict) -> Config:
    for key, value in overrides.items():
        key = key.replace("-", "_")
        if key in SECTIONS:
            if not isinstance(value, dict):
                raise ValueError(f"override {key}= must be a dict of fields, got {value!r}")
            _apply_section(cfg, key, value)
        elif "." in key:
            section, _, fld = key.partition(".")
            if section == "env" and fld.startswith("options."):
                fld = fld[len("options."):]
            _apply_section(cfg, section, {fld: value})
        else:
            owners = [s for s, cls in SECTIONS.items() if key in {f.name for f in dataclasses.fields(cls)}]
            if len(owners) != 1:
                raise ValueError(
                    f"unknown or ambiguous config field {key!r}; use a section, e.g. train.{key}")
            _apply_section(cfg, owners[0], {key: value})
    return cfg


def validate(cfg: Config) -> None:
    """Checks that need no environment; batch geometry is checked by :func:`puffjax.trainer.geometry`."""
    p, t, e = cfg.policy, cfg.train, cfg.env
    if p.kind not in ("default", "recurrent", "cnn"):
        raise ValueError(f"policy.kind must be default, recurrent or cnn, got {p.kind!r}")
    if p.value_head not in ("scalar", "hl_gauss"):
        raise ValueError(f"policy.value_head must be scalar or hl_gauss, got {p.value_head!r}")
    if t.optimizer not in ("muon", "adam"):
        raise ValueError(f"train.optimizer must be muon or adam, got {t.optimizer!r}")
    if t.logger not in ("none", "tensorboard", "wandb"):
        raise ValueError(f"train.logger must be none, tensorboard or wandb, got {t.logger!r}")
    if e.num_envs <= 0:
        raise ValueError(f"env.num_envs must be positive, got {e.num_envs}")
    if e.threads <= 0:
        raise ValueError(f"env.threads must be positive, got {e.threads}")
    if t.video_frames < 0 or t.video_interval < 0:
        raise ValueError(f"train.video_frames and train.video_interval must be >= 0, "
                         f"got {t.video_frames}, {t.video_interval}")
    for name in ("bptt_horizon", "minibatch_size", "max_minibatch_size", "update_epochs",
                 "total_timesteps", "checkpoint_interval"):
        if getattr(t, name) <= 0:
            raise ValueError(f"train.{name} must be positive, got {getattr(t, name)}")
    if not 0.0 <= t.gamma <= 1.0 or not 0.0 <= t.gae_lambda <= 1.0:
        raise ValueError(f"train.gamma and train.gae_lambda must lie in [0, 1], got {t.gamma}, {t.gae_lambda}")
