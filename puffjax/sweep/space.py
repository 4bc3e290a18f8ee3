"""A sweep's search space: which config fields :mod:`puffjax.sweep` samples, and over what.

A config file declares its space in a ``[sweep]`` section, one entry per field, keyed by the
field's dotted name (an environment option is ``env.<option>``)::

    [sweep]
    defaults = true                                   # start from default_space (false: only these)
    "train.learning_rate" = { low = 1e-4, high = 1e-2, log = true }
    "train.update_epochs" = { low = 1, high = 8 }     # an int field is sampled as an int
    "train.minibatch_size" = { values = [1024, 2048, 4096] }   # categorical
    "train.prio_alpha" = false                        # leave a default parameter out

Each entry is a :class:`Param`: ``low``/``high`` (with ``log = true`` for a log scale) or
``values`` (categorical). Whether a range is sampled as int or float follows the field's type
in :mod:`puffjax.config` (for an environment option: whether ``low`` and ``high`` are ints).
:func:`validate_space` checks every parameter up front against the config's own checks
(:func:`puffjax.config.validate`, and the environment for its options), so a range outside a
field's legal values is an error naming the field.
"""
from __future__ import annotations

import copy
import dataclasses
import typing
from dataclasses import dataclass
from typing import Any

from ..config import SECTIONS, Config, apply_overrides, validate
from ..geometry import fit_geometry

_SPEC_KEYS = {"low", "high", "log", "values"}


@dataclass(frozen=True)
class Param:
    """One swept field: ``name`` ("train.learning_rate", "env.max_steps"), a range
    ``low``..``high`` (``log``: log scale; ``int``: sampled as an int) or categorical ``values``."""
    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    int: bool = False
    values: tuple | None = None

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["values"] = None if self.values is None else list(self.values)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Param":
        return cls(**{**d, "values": None if d.get("values") is None else tuple(d["values"])})

    def suggest(self, trial):
        """Sample this parameter for an Optuna trial."""
        if self.values is not None:
            return trial.suggest_categorical(self.name, list(self.values))
        if self.int:
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, float(self.low), float(self.high), log=self.log)

    def contains(self, value) -> bool:
        if self.values is not None:
            return value in self.values
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return self.low <= value <= self.high and (not self.int or float(value).is_integer())

    def describe(self) -> str:
        if self.values is not None:
            return f"one of {list(self.values)}"
        return f"{'int' if self.int else 'float'} in [{self.low:g}, {self.high:g}]{', log' if self.log else ''}"


def _pow2_values(center: int, below: int, above: int, minimum: int = 1) -> tuple:
    """Powers of two from ``center / 2**below`` to ``center * 2**above`` (center rounded to one)."""
    c = 1 << max(0, round(center).bit_length() - 1)
    return tuple(sorted({max(minimum, c >> k) for k in range(below + 1)} | {c << k for k in range(1, above + 1)}))


def default_space(cfg: Config) -> dict[str, Param]:
    """The parameters that matter most for PPO, some ranges absolute and the sizes and learning
    rate around ``cfg``'s own values (as PufferLib's Protein centres its search on the config).
    ``cfg.train.total_timesteps`` is the budget: trials train between a quarter of it and all."""
    t, e = cfg.train, cfg.env
    budget = t.total_timesteps
    params = [
        Param("train.learning_rate", t.learning_rate / 10, t.learning_rate * 10, log=True),
        Param("train.gamma", 0.9, 0.999),
        Param("train.gae_lambda", 0.7, 0.99),
        Param("train.clip_coef", 0.05, 0.5),
        Param("train.vf_coef", 0.1, 5.0, log=True),
        Param("train.ent_coef", 1e-5, 0.05, log=True),
        Param("train.update_epochs", 1, 8, int=True),
        Param("train.prio_alpha", 0.0, 1.0),
        Param("train.prio_beta0", 0.0, 1.0),
        Param("train.vtrace_rho_clip", 0.3, 5.0, log=True),
        Param("train.vtrace_c_clip", 0.3, 5.0, log=True),
        Param("env.num_envs", values=_pow2_values(e.num_envs, 2, 2)),
        Param("train.bptt_horizon", values=_pow2_values(t.bptt_horizon, 2, 1, minimum=4)),
        Param("train.minibatch_size", values=_pow2_values(t.minibatch_size, 2, 2, minimum=64)),
        Param("train.total_timesteps", max(1, budget // 4), budget, log=True, int=True),
    ]
    return {p.name: p for p in params}


def _field_type(name: str):
    """The dataclass type of config field ``name`` ("train.gamma"); None for an environment
    option; a ValueError for anything else."""
    section, _, field = name.partition(".")
    if section not in SECTIONS or not field:
        raise ValueError(f"sweep parameter {name!r}: expected section.field with a section of "
                         f"{', '.join(SECTIONS)} (e.g. train.learning_rate)")
    types = typing.get_type_hints(SECTIONS[section])
    if section == "env" and field in ("name", "options", "threads"):
        raise ValueError(f"sweep parameter {name!r} cannot be swept (env.name, env.options and env.threads are fixed "
                         f"by the sweep; sweep an environment option as env.<option>)")
    if field in types:
        return types[field]
    if section == "env":
        return None
    raise ValueError(f"sweep parameter {name!r}: no such field; {section} fields: {', '.join(sorted(types))}")


def parse_param(name: str, spec: Any) -> Param:
    """A :class:`Param` from one ``[sweep]`` entry (a TOML inline table)."""
    if not isinstance(spec, dict):
        raise ValueError(f"sweep parameter {name}: expected {{ low = .., high = .. }} or {{ values = [..] }}, "
                         f"got {spec!r}")
    unknown = set(spec) - _SPEC_KEYS
    if unknown:
        raise ValueError(f"sweep parameter {name}: unknown key(s) {', '.join(sorted(unknown))}; "
                         f"expected low, high, log or values")
    kind = _field_type(name)
    if "values" in spec:
        if set(spec) - {"values"}:
            raise ValueError(f"sweep parameter {name}: give either values (categorical) or low/high, not both")
        values = spec["values"]
        if not isinstance(values, list) or not values:
            raise ValueError(f"sweep parameter {name}: values must be a non-empty list, got {values!r}")
        if any(not isinstance(v, (bool, int, float, str)) for v in values):
            raise ValueError(f"sweep parameter {name}: values must be numbers, booleans or strings, got {values!r}")
        return Param(name, values=tuple(values))
    if "low" not in spec or "high" not in spec:
        raise ValueError(f"sweep parameter {name}: a range needs both low and high")
    low, high, log = spec["low"], spec["high"], spec.get("log", False)
    if not isinstance(log, bool):
        raise ValueError(f"sweep parameter {name}: log must be true or false, got {log!r}")
    for what, v in (("low", low), ("high", high)):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError(f"sweep parameter {name}: {what} must be a number, got {v!r}")
    if kind in (bool, str):
        raise ValueError(f"sweep parameter {name}: a {kind.__name__} field takes values = [..], not a range")
    as_int = kind in (int, int | str) or (kind is None and isinstance(low, int) and isinstance(high, int))
    if as_int and not (float(low).is_integer() and float(high).is_integer()):
        raise ValueError(f"sweep parameter {name}: an int field needs integer low and high, got {low}, {high}")
    if not low < high:
        raise ValueError(f"sweep parameter {name}: low ({low}) must be below high ({high})")
    if log and low <= 0:
        raise ValueError(f"sweep parameter {name}: a log range needs low > 0, got {low}")
    if as_int:
        return Param(name, int(low), int(high), log=log, int=True)
    return Param(name, float(low), float(high), log=log)


def space_from_section(section: dict | None, cfg: Config, only: tuple | None = None) -> dict[str, Param]:
    """The search space a ``[sweep]`` section declares: :func:`default_space` (unless
    ``defaults = false``) with the section's entries replacing, adding or (``= false``)
    removing parameters. ``None`` or an empty section: the default space. ``only``: the
    names the default space is restricted to (the section's own entries are kept as given)."""
    section = dict(section or {})
    defaults = section.pop("defaults", True)
    if not isinstance(defaults, bool):
        raise ValueError(f"[sweep] defaults must be true or false, got {defaults!r}")
    base = default_space(cfg) if defaults else {}
    space = {n: p for n, p in base.items() if only is None or n in only}
    for name, spec in _flatten(section):
        if spec is False:
            if name not in space and name not in base:
                raise ValueError(f"sweep parameter {name} = false: it is not in the space, so it cannot be left out")
            space.pop(name, None)
        else:
            space[name] = parse_param(name, spec)
    return space


def _flatten(section: dict, prefix: str = ""):
    """``{"train": {"gamma": {...}}}`` and ``{"train.gamma": {...}}`` alike -> ("train.gamma", {...})."""
    for key, value in section.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and not (set(value) & _SPEC_KEYS) and value:
            yield from _flatten(value, name + ".")
        else:
            yield name.replace("-", "_"), value


def apply(cfg: Config, params: dict) -> Config:
    """A copy of ``cfg`` with the sampled ``params`` (dotted names) set."""
    out = copy.deepcopy(cfg)
    apply_overrides(out, params)
    return out


def trial_config(base: Config, params: dict, budget: int) -> tuple[Config, list[str]]:
    """A trial's config: ``base`` with the sampled ``params`` set, checked
    (:func:`puffjax.config.validate`) and its batch geometry fitted to ``budget`` agent steps
    (:func:`puffjax.geometry.fit_geometry`); returns it and the geometry's repairs. A
    ValueError names an illegal value or an impossible batch geometry."""
    cfg = apply(base, params)
    validate(cfg)
    try:
        repaired = fit_geometry(cfg.train, cfg.env.num_envs, budget)
    except ValueError as e:
        raise ValueError(f"impossible batch geometry: {e}") from None
    return cfg, repaired


def field_value(cfg: Config, name: str):
    """The value of the swept field ``name`` ("train.gamma", or an environment option
    "env.frameskip": None where ``cfg`` does not set it) in ``cfg``."""
    section, _, fld = name.partition(".")
    obj = getattr(cfg, section)
    return getattr(obj, fld) if hasattr(obj, fld) and fld != "options" else obj.options.get(fld)


def validate_space(space: dict[str, Param], cfg: Config) -> None:
    """Check every parameter of ``space`` against ``cfg``: each end of a range and each
    categorical value must be a legal value of its field (:func:`puffjax.config.validate`; an
    environment option is checked by making one environment with it). A ValueError names the
    first parameter and value that is not; ``train.total_timesteps`` may not exceed the budget
    (``cfg.train.total_timesteps``)."""
    budget = cfg.train.total_timesteps
    for p in space.values():
        _field_type(p.name)
        probes = list(p.values) if p.values is not None else [p.low, p.high]
        for value in probes:
            what = "value" if p.values is not None else ("low" if value == p.low else "high")
            try:
                probe = apply(cfg, {p.name: value})
                validate(probe)
                if p.name.startswith("env.") and p.name[4:] not in ("num_envs",):
                    from .. import envs
                    envs.make(probe.env.name, num_envs=1, **probe.env.options).close()
            except (ValueError, TypeError) as e:
                raise ValueError(f"sweep parameter {p.name}: {what} {value!r} is not a legal value ({e})") from None
        if p.name == "train.total_timesteps" and max(probes) > budget:
            raise ValueError(f"sweep parameter train.total_timesteps: {max(probes)} is above the budget "
                             f"({budget} steps, train.total_timesteps or --budget)")
