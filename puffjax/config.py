"""Configuration: three dataclass sections (env, policy, train) with PufferLib's names.

The dataclasses below hold every default (the one place they live); the per-environment
files ``puffjax/configs/<env>.toml`` override some of them.
``load_config("breakout", learning_rate=0.02, env={"num_envs": 1024})`` returns an editable
:class:`Config`; the CLI maps ``--train.learning-rate 0.02`` onto the same fields.
``run_config(RUN_DIR)`` gives back the config a run was trained with (for resuming it).
``load_config_file("best.toml")`` reads a config file of the same format (the environment named
in its ``[env]`` section), e.g. one exported by ``puffjax sweep``. A ``[sweep]`` section in a
config file declares a hyperparameter search space (:mod:`puffjax.sweep.space`) and is not part
of the config itself.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import tomllib
import typing
import warnings
from dataclasses import dataclass, field
from typing import Any

from . import profiles

CONFIG_DIR = os.path.join(os.path.dirname(__file__), "configs")

POLICY_KINDS = ("default", "lstm", "mingru", "cnn", "cnn_lstm", "cnn_mingru")
VALUE_HEADS = ("scalar", "hl_gauss", "two_hot")
CRITICS = ("shared", "separate")
ACTIVATIONS = ("gelu", "relu", "tanh")
LR_DECAYS = ("cosine", "linear")
OPTIMIZERS = ("muon", "adam")
MUON_NON_MATRIX = ("nesterov", "adam")
LOGGERS = ("none", "tensorboard", "wandb")
MAX_SEED = 2**32 - 1  # environment i is seeded with seed + i: every seed stays a 64-bit integer
MAX_BINS = 65_536  # categorical value heads: the value layer is hidden_size x num_bins
MAX_UPDATE_EPOCHS = 10_000  # the optimizer's update count stays far from its int32 limit


@dataclass
class EnvConfig:
    name: str = "breakout"
    num_envs: int = 4096
    threads: int = 0  # C env stepping threads, 0: every core this process may use (results do not depend on it)
    workers: int = 0  # Python envs (gym:ID, module:factory): worker processes; 0 steps them in this process
    step_timeout: float = 60.0  # Python envs: seconds one reset or step may take before an error; 0: no limit
    check_bounds: bool = True  # Python envs: check the first observations after a reset against finite Box bounds
    options: dict = field(default_factory=dict)  # passed to puffjax.envs.make (e.g. frameskip)


@dataclass
class PolicyConfig:
    kind: str = "default"  # default | lstm | mingru | cnn | cnn_lstm | cnn_mingru (puffjax.models)
    hidden_size: int = 128
    layers: int = 1  # recurrent layers (recurrent kinds); dense layers, the encoder's included (others)
    value_head: str = "scalar"  # scalar | hl_gauss | two_hot (categorical heads: see puffjax.value_head)
    num_bins: int = 101  # categorical value heads: bins over [v_min, v_max]
    v_min: float = -10.0
    v_max: float = 10.0
    symlog: bool = False  # categorical value heads: bins spaced in symlog(return)
    critic: str = "shared"  # shared | separate: the value head's own encoder and layers (feed-forward kinds)
    activation: str = "gelu"  # gelu | relu | tanh: after the MLP encoder and each feed-forward dense layer


@dataclass
class TrainConfig:
    seed: int = 0
    total_timesteps: int = 10_000_000
    batch_size: int | str = "auto"  # "auto" = total agents * bptt_horizon
    bptt_horizon: int = 64
    minibatch_size: int = 8192
    max_minibatch_size: int = 32768  # per device: a device's larger share of a minibatch accumulates gradients in chunks of this
    update_epochs: int = 1
    minibatch_steps: bool = False  # feedforward policies: minibatches of single steps drawn over the batch, not segments
    devices: int = 0  # devices per process the batch is sharded over (0: every local device)
    optimizer: str = "muon"  # muon | adam
    muon_non_matrix: str = "nesterov"  # Muon's rule for biases and other non-matrix parameters: nesterov | adam
    learning_rate: float = 0.015
    anneal_lr: bool = True
    lr_decay: str = "cosine"  # with anneal_lr: cosine | linear, from learning_rate to 0 over the run
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
    recompute_advantage: bool = True  # before each minibatch from current values and ratios; false: GAE once per epoch
    shuffle: bool = False  # each pass takes every row (or step) once, in a fresh order; needs prio_alpha 0
    prio_alpha: float = 0.8
    prio_beta0: float = 0.2
    data_dir: str = "runs"
    checkpoint_interval: int = 200  # epochs; a checkpoint is also written at the end
    keep_checkpoints: int = 5  # newest checkpoints kept in run_dir/checkpoints (0: all); latest always kept
    save_python_env_state: bool = False  # checkpoints pickle Python envs' internals (exact resume; loading needs trust)
    logger: str = "none"  # none | tensorboard | wandb (JSON-lines metrics are always written)
    video_frames: int = 200  # rollout video (run_dir/video.gif) at the end of a run; 0: none
    video_interval: int = 0  # also one every this many checkpoints (run_dir/videos/); 0: only at the end
    check_finite: bool = True  # stop on NaN/inf from the env or the update (puffjax.finite); false skips the checks
    rollout_groups: int | str = "auto"  # agent groups the rollout overlaps with the env (puffjax.rollout): auto or a count
    normalize_obs: bool = False  # standardise float observations by running mean/variance (puffjax.normalize)
    normalize_reward: bool = False  # divide rewards by the running std of the discounted return
    obs_clip: float = 10.0  # normalised observations are clipped to [-obs_clip, obs_clip]
    reward_clip: float = 1.0  # rewards (after normalisation) are clipped to [-reward_clip, reward_clip]; inf: never
    overlap: bool = False  # play the next epoch's rollout while this epoch's update runs (one update behind)


SECTIONS = {"env": EnvConfig, "policy": PolicyConfig, "train": TrainConfig}
SWEEP_SECTION = "sweep"  # a config file's search space (puffjax.sweep.space), not a config section


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


def available() -> list[str]:
    """Names of the shipped configs: an environment's name, or a variant (``breakout_lstm``)."""
    return sorted(_config_name(f[:-5]) for f in os.listdir(CONFIG_DIR) if f.endswith(".toml"))


_PROFILED_SUITES = ("gymnax",)  # "gymnax:ID" reads configs/gymnax_ID.toml


def _config_name(stem: str) -> str:
    """The environment name a config file's stem is for: ``gymnax_CartPole-v1`` -> ``gymnax:CartPole-v1``."""
    suite, _, env_id = stem.partition("_")
    return f"{suite}:{env_id}" if suite in _PROFILED_SUITES and env_id else stem


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def parse_value(value: Any, kind: Any = None, what: str = "value") -> Any:
    """``value`` (often a string from the command line) as the type ``kind`` (a field's type:
    bool, int, float, str or ``int | str``). Without a type (environment options) a string
    becomes the boolean, int or float it spells, or stays a string."""
    if not isinstance(value, str):
        return _typed(value, kind, what)
    text = value.strip()
    if kind is str:
        return text
    if kind is bool or kind is None:
        if text.lower() in _TRUE + _FALSE:
            return text.lower() in _TRUE
        if kind is bool:
            raise ValueError(f"{what}: expected true/false, got {value!r}")
    number: int | float | None = None
    try:
        number = int(text.replace("_", ""))
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            pass
    if kind is None:
        return text if number is None else number
    if kind is float and number is not None:
        return float(number)
    if kind in (int, int | str) and number is not None and float(number).is_integer():
        return int(number)
    if kind == int | str:
        return text
    raise ValueError(f"{what}: cannot parse {value!r} as {getattr(kind, '__name__', kind)}")


def _typed(value: Any, kind: Any, what: str) -> Any:
    """A value that is already typed (from TOML, JSON or Python) checked against ``kind`` (as in
    :func:`parse_value`); an integral float is taken for an int, an int for a float."""
    if kind is None:
        return value
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"{what}: expected true/false, got {value!r}")
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is float and number:
        return float(value)
    if kind in (int, int | str) and number and (isinstance(value, int) or float(value).is_integer()):
        return int(value)
    if kind in (str, int | str) and isinstance(value, str):
        return value
    expected = {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(kind, "an integer or a string")
    raise ValueError(f"{what}: expected {expected}, got {value!r}")


def _apply_section(cfg: Config, section: str, values: dict) -> None:
    if section not in SECTIONS:
        raise ValueError(f"unknown config section {section!r}; expected one of {sorted(SECTIONS)}")
    if not isinstance(values, dict):
        raise ValueError(f"config section {section} must be a table of fields ([{section}] or {section}.field), "
                         f"got {values!r}")
    obj = getattr(cfg, section)
    types = typing.get_type_hints(type(obj))
    for key, value in values.items():
        key = key.replace("-", "_")
        if section == "env" and key == "options":
            if not isinstance(value, dict):
                raise ValueError(f"env.options must be a table of environment options, got {value!r}")
            obj.options.update({k: parse_value(v) for k, v in value.items()})
        elif key in types:
            setattr(obj, key, parse_value(value, types[key], f"{section}.{key}"))
        elif section == "env":
            obj.options[key] = parse_value(value)  # environment-specific, validated by the env itself
        else:
            raise ValueError(f"unknown option {section}.{key}; valid options: {', '.join(sorted(types))}")


def _read_toml(name: str) -> dict:
    """The tables of ``configs/<name>.toml`` (``configs/profiles/atari.toml`` for every
    ``atari:GAME``, ``configs/gymnax_ID.toml`` for ``gymnax:ID``); none (the defaults) for an
    environment that has no such file: ``gym:ID``, ``module:factory``, ``path/to/env.h`` or a
    registered C env."""
    suite = name.partition(":")[0]
    if name.startswith("atari:"):
        path = os.path.join(CONFIG_DIR, "profiles", "atari.toml")
    else:
        stem = name.replace(":", "_", 1) if suite in _PROFILED_SUITES else name
        path = os.path.join(CONFIG_DIR, f"{stem}.toml")
    if os.path.exists(path):
        return read_toml_file(path)
    if ":" in name or name.endswith((".h", ".c")):
        return {}
    from .envs import names

    registered = names()
    if name in registered:
        return {}
    raise ValueError(f"no config for environment {name!r} and no C environment of that name; shipped configs: "
                     f"{', '.join(available())}; C environments: {', '.join(registered)}")


def read_toml_file(path: str) -> dict:
    """A config file's TOML tables (``env``, ``policy``, ``train`` and maybe ``sweep``)."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path}: not a valid TOML file ({e})") from None


def _from_tables(name: str, tables: dict, overrides: dict, check: bool = True) -> Config:
    cfg = Config()
    cfg.env.name = name
    for section, values in tables.items():
        if section != SWEEP_SECTION:
            _apply_section(cfg, section, values)
    apply_overrides(cfg, overrides)
    if check:
        validate(cfg)
    return cfg


def load_config(name: str = "breakout", **overrides: Any) -> Config:
    """The shipped config for environment ``name`` with ``overrides`` applied. A Python
    environment (``gym:ID``, ``module:factory``) without a config of its own starts from a
    shipped profile (:mod:`puffjax.profiles`: ``continuous`` for Box actions, ``gym`` otherwise;
    the choice is printed on stderr); other names that are not shipped configs (a C file path,
    a registered C env) start from the defaults.

    Overrides are either whole sections (``train={"learning_rate": 0.02}``), dotted
    paths as a dict key (``**{"train.learning_rate": 0.02}``), or a bare field name that
    is unique across sections (``learning_rate=0.02``, ``num_envs=1024``).
    """
    tables = _read_toml(name)
    if not tables and profiles.is_python_env(name):
        # the env's options, to build it with; the whole config is checked once the profile is in
        options = _from_tables(name, {}, overrides, check=False).env.options
        profile, note = profiles.profile_for(name, options)
        print(f"puffjax: {note}", file=sys.stderr)
        tables = read_toml_file(profiles.profile_path(profile))
    return _from_tables(name, tables, overrides)


def sweep_section(name: str) -> dict | None:
    """The ``[sweep]`` section (a search space) of the config :func:`load_config` starts
    environment ``name`` from; None when it has none."""
    return _read_toml(name).get(SWEEP_SECTION)


def load_config_file(path: str, **overrides: Any) -> Config:
    """The config in the TOML file ``path`` (the format of ``puffjax/configs/*.toml``; the
    environment is its ``[env]`` section's ``name``), with ``overrides`` as in :func:`load_config`.
    Fields the file leaves out keep the dataclass defaults (not a shipped config's values)."""
    if os.path.isdir(path):
        raise ValueError(f"config file {path} is a directory; name a .toml file in it")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"config file {path} does not exist")
    tables = read_toml_file(path)
    name = tables.get("env", {}).get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"{path}: the [env] section must name the environment (name = \"cartpole\")")
    try:
        return _from_tables(name, tables, overrides)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    raise TypeError(f"cannot write {v!r} to a config file")


def write_config(cfg: Config, path: str, header: list[str] = ()) -> None:
    """Write ``cfg`` to ``path`` as a config file that :func:`load_config_file` reads back to an
    equal config: every field that differs from the dataclass defaults, the environment's name
    and options in ``[env]``, each line of ``header`` as a comment on top."""
    default = Config()
    lines = [f"# {h}" for h in header]
    for section in SECTIONS:
        obj, ref = getattr(cfg, section), getattr(default, section)
        entries = []
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if f.name == "options":
                entries += [f"{k} = {_toml_value(v)}" for k, v in sorted(value.items())]
            elif f.name == "name" or value != getattr(ref, f.name):
                entries.append(f"{f.name} = {_toml_value(value)}")
        if entries:
            lines += ["", f"[{section}]", *entries]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(lines).lstrip("\n") + "\n")


def run_config(run: str, **overrides: Any) -> Config:
    """The config a run was trained with (stored in its checkpoint), with ``overrides`` on top
    (same forms as :func:`load_config`). ``run``: a run directory, its ``checkpoints/`` folder
    or a checkpoint file. Used to resume a run: ``Trainer(run_config(RUN, ...), resume=RUN)``.
    An environment that building would load code for (:func:`puffjax.envs.runs_code`: a C
    file, ``module:factory``, ``gym:module:ID``) must be named again in ``overrides``
    (``**{"env.name": NAME}``), as the stored one: the checkpoint's word alone does not load it."""
    from .checkpoint import load_config_dict
    stored, path = load_config_dict(run)
    cfg = stored_config(stored, path)
    check_stored_env(cfg, path, _named_env(overrides))
    apply_overrides(cfg, overrides)
    validate(cfg)
    return cfg


def stored_config(stored: dict, path: str) -> Config:
    """A :class:`Config` from the dict a checkpoint stores (``path``: that file, for errors),
    checked by the same :func:`validate` as a config the user gives; a ValueError naming the
    file where it is not usable. Whether its environment may be built on the checkpoint's word
    is :func:`check_stored_env`'s question."""
    try:
        cfg = Config.from_dict(stored)
        validate(cfg)
    except (ValueError, TypeError, AttributeError, OverflowError) as e:
        raise ValueError(f"{path}: checkpoint config is not usable ({e})") from None
    return cfg


def check_stored_env(stored: Config, path: str, named: str | None) -> None:
    """Whether the environment of a checkpoint's config ``stored`` (from the file ``path``) may
    be built: ``named`` is the environment the user named again (None: none), which must be the
    stored one; without it, only one whose building loads no code from a file
    (:func:`puffjax.envs.runs_code`). A one-line ValueError otherwise."""
    name = stored.env.name
    if not isinstance(name, str) or not name:
        raise ValueError(f"{path}: checkpoint config is not usable (env.name {name!r} is not an environment name)")
    if named is not None:
        if named != name:
            raise ValueError(f"{path}: the checkpoint is a {name} run, not {named}")
        return
    from .envs import runs_code
    code = runs_code(name)
    if code:
        raise ValueError(f"{path}: the run's environment {name!r} is {code}, which resume does not do on the "
                         f"checkpoint's word alone: name it again (puffjax train {name} --resume RUN; in Python "
                         f"run_config(RUN, **{{'env.name': {name!r}}}))")


def _named_env(overrides: dict) -> str | None:
    """The environment name that ``overrides`` set (``env.name`` in any form), or None."""
    probe = Config()
    probe.env.name = None
    apply_overrides(probe, overrides)
    return probe.env.name


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


def parse_overrides(tokens: list[str]) -> dict:
    """Command-line overrides as a dict for :func:`load_config`:
    ``["--train.learning-rate", "0.02", "--env.frameskip=4"]`` ->
    ``{"train.learning_rate": "0.02", "env.frameskip": "4"}`` (values are parsed by field type
    when applied). Anything else is a ValueError naming the token."""
    overrides, i = {}, 0
    while i < len(tokens):
        tok = tokens[i]
        if not tok.startswith("--") or "." not in tok:
            raise ValueError(f"unexpected argument {tok!r}; config overrides look like --train.learning-rate 0.02")
        key, eq, value = tok[2:].partition("=")
        if not eq:
            if i + 1 >= len(tokens):
                raise ValueError(f"{tok} needs a value")
            value, i = tokens[i + 1], i + 1
        overrides[key.replace("-", "_")] = value
        i += 1
    return overrides


def _one_of(what: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{what} must be one of {', '.join(choices)}; got {value!r}")


def policy_kind(kind: str, what: str = "policy.kind") -> str:
    """``kind`` as one of :data:`POLICY_KINDS`: a renamed kind
    (:data:`puffjax.checkpoint.RENAMED_POLICY_KINDS`) becomes its new name, with a one-line
    FutureWarning; any other unknown kind is a ValueError (``what`` names the field in both)."""
    from .checkpoint import RENAMED_POLICY_KINDS
    if kind in RENAMED_POLICY_KINDS:
        new = RENAMED_POLICY_KINDS[kind]
        warnings.warn(f"{what} {kind!r} is deprecated; use {new!r}", FutureWarning, stacklevel=3)
        return new
    _one_of(what, kind, POLICY_KINDS)
    return kind


def validate(cfg: Config) -> None:
    """Checks that need no environment; batch geometry is checked by :func:`puffjax.geometry.geometry`.
    A renamed policy kind is replaced by its new name (:func:`policy_kind`)."""
    for section, cls in SECTIONS.items():  # fields set from Python are checked like parsed ones
        obj = getattr(cfg, section)
        for name, kind in typing.get_type_hints(cls).items():
            if kind in (bool, int, float, str, int | str):
                setattr(obj, name, _typed(getattr(obj, name), kind, f"{section}.{name}"))
    p, t, e = cfg.policy, cfg.train, cfg.env
    p.kind = policy_kind(p.kind)
    if not 0 <= t.seed <= MAX_SEED:
        raise ValueError(f"train.seed must lie in [0, {MAX_SEED:,}], got {t.seed:,}")
    if p.num_bins > MAX_BINS:
        raise ValueError(f"policy.num_bins must be at most {MAX_BINS:,}, got {p.num_bins:,}")
    if t.update_epochs > MAX_UPDATE_EPOCHS:
        raise ValueError(f"train.update_epochs must be at most {MAX_UPDATE_EPOCHS:,} (passes over each batch), "
                         f"got {t.update_epochs:,}")
    _one_of("policy.value_head", p.value_head, VALUE_HEADS)
    _one_of("policy.critic", p.critic, CRITICS)
    _one_of("policy.activation", p.activation, ACTIVATIONS)
    _one_of("train.lr_decay", t.lr_decay, LR_DECAYS)
    if t.shuffle and t.prio_alpha != 0:
        raise ValueError(f"train.shuffle takes every step once per pass, without priorities: set train.prio_alpha = 0 "
                         f"(got {t.prio_alpha})")
    if p.critic == "separate" and p.kind not in ("default", "cnn"):
        raise ValueError(f"policy.critic = separate needs a feed-forward policy.kind (default, cnn), got {p.kind!r}; "
                         f"with {p.kind} set policy.critic = shared")
    _one_of("train.optimizer", t.optimizer, OPTIMIZERS)
    _one_of("train.muon_non_matrix", t.muon_non_matrix, MUON_NON_MATRIX)
    _one_of("train.logger", t.logger, LOGGERS)
    if t.batch_size != "auto" and (not isinstance(t.batch_size, int) or t.batch_size <= 0):
        raise ValueError(f"train.batch_size must be a positive integer or 'auto', got {t.batch_size!r}")
    if e.num_envs <= 0:
        raise ValueError(f"env.num_envs must be positive, got {e.num_envs}")
    if e.threads < 0:
        raise ValueError(f"env.threads must be >= 0 (0: every available core), got {e.threads}")
    if e.workers < 0:
        raise ValueError(f"env.workers must be >= 0, got {e.workers}")
    if not 0 <= e.step_timeout < float("inf"):
        raise ValueError(f"env.step_timeout must be a finite number of seconds >= 0 (0: no limit), "
                         f"got {e.step_timeout}")
    for name in ("video_frames", "video_interval", "keep_checkpoints", "devices"):
        if getattr(t, name) < 0:
            raise ValueError(f"train.{name} must be >= 0, got {getattr(t, name)}")
    for name in ("bptt_horizon", "minibatch_size", "max_minibatch_size", "update_epochs",
                 "total_timesteps", "checkpoint_interval"):
        if getattr(t, name) <= 0:
            raise ValueError(f"train.{name} must be positive, got {getattr(t, name)}")
    if not 0.0 <= t.gamma <= 1.0 or not 0.0 <= t.gae_lambda <= 1.0:
        raise ValueError(f"train.gamma and train.gae_lambda must lie in [0, 1], got {t.gamma}, {t.gae_lambda}")
    for name in ("learning_rate", "vtrace_rho_clip", "vtrace_c_clip", "obs_clip", "reward_clip"):
        if not getattr(t, name) > 0:
            raise ValueError(f"train.{name} must be positive, got {getattr(t, name)}")
    for name in ("clip_coef", "vf_coef", "vf_clip_coef", "ent_coef", "max_grad_norm", "prio_alpha", "adam_eps"):
        if not getattr(t, name) >= 0:
            raise ValueError(f"train.{name} must be >= 0, got {getattr(t, name)}")
    for name, low, high in (("prio_beta0", 0.0, 1.0), ("adam_beta1", 0.0, 1.0), ("adam_beta2", 0.0, 1.0)):
        if not low <= getattr(t, name) <= high:
            raise ValueError(f"train.{name} must lie in [{low:g}, {high:g}], got {getattr(t, name)}")
    if p.value_head != "scalar" and (p.num_bins < 2 or not p.v_min < p.v_max):
        raise ValueError(f"policy.value_head {p.value_head} needs num_bins >= 2 and v_min < v_max, "
                         f"got {p.num_bins}, {p.v_min}, {p.v_max}")


# What a resumed run must share with its checkpoint: the environment (its state is restored)
# and everything that shapes the parameters or the optimizer state or what the policy reads.
_RESUME_FIXED = {"env": ("name", "num_envs", "options"), "policy": None,
                 "train": ("optimizer", "muon_non_matrix", "normalize_obs")}


def resume_conflicts(stored: Config, cfg: Config) -> list[str]:
    """The fields where ``cfg`` differs from a checkpoint's ``stored`` config in a way that makes
    the checkpoint's state unusable, as ``"section.field: stored -> new"`` lines."""
    out = []
    for section, names in _RESUME_FIXED.items():
        a, b = getattr(stored, section), getattr(cfg, section)
        for name in names or [f.name for f in dataclasses.fields(a)]:
            if getattr(a, name) != getattr(b, name):
                out.append(f"{section}.{name}: {getattr(a, name)!r} in the checkpoint, {getattr(b, name)!r} here")
    return out
