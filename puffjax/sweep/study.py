"""A sweep's Optuna study: its database, its sampler, the settings stored in it, its trials' states.

A sweep is an Optuna study in an RDB storage (SQLite by default, or any SQLAlchemy URL, so
workers on several machines can share one study). The :class:`Settings` a study was created
with are stored in it (user attribute :data:`ATTR`), so every worker and every later call uses
them. By default the study has two objectives, the score (maximized) and its cost (training
seconds or agent steps, minimized); ``objective="score"`` makes it single-objective. Only
Optuna's public API is used; Optuna is imported when a study is opened (``puffjax[sweep]``).
"""
from __future__ import annotations

import dataclasses
import re
import time
import warnings
from dataclasses import dataclass

from ..config import Config
from .space import Param, field_value

METRIC = "environment/perf"
COSTS = ("time", "steps")  # a trial's cost: training seconds (Trainer.uptime) or agent steps
OBJECTIVES = ("pareto", "score")  # maximize the score and minimize the cost, or the score alone
STARTUP_TRIALS = 8  # random trials before the TPE sampler models the results
FINAL_EPOCHS = 3  # the score: mean of the metric over the last epochs that logged it
ATTR = "puffjax_sweep"  # the study's user attribute holding the sweep's settings
INTERRUPTED = "interrupted"  # the fail_reason of a trial stopped by Ctrl-C (not counted towards the total)
STORAGE_ENV = "PUFFJAX_SWEEP_STORAGE"  # the environment variable that hands workers the storage URL

# scheme://USER:PASSWORD@HOST...: the user part holds no ':', '/', '@', '?' or '#'; the password runs
# to the URL's last '@', so one holding a raw '@', '/' or '?' is hidden whole
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@?#]*:)(?P<password>.*)(?P<tail>@[^@]*)",
                       re.DOTALL)
# a query parameter whose name says it holds a secret: password=, passwd=, pwd=, sslpassword=, token=, ...
_SECRET_PARAM = re.compile(r"(?P<key>[?&;][^=&;#]*(?:pass|pwd|secret|token)[^=&;#]*=)(?P<value>[^&;#]*)",
                           re.IGNORECASE)


def final_score(scores: list) -> float:
    """A trial's score: the mean of its last :data:`FINAL_EPOCHS` logged values (``scores``, not empty)."""
    last = scores[-FINAL_EPOCHS:]
    return sum(last) / len(last)


def redact_url(url: str) -> str:
    """``url`` with its password hidden, for showing: ``postgresql://user:***@host/db``; query
    parameters that hold secrets (``?password=``, ``passwd``, ``pwd``, ``token``, ...) too. A URL
    without a password is returned as it is."""
    m = _USERINFO.fullmatch(url)
    if m:
        url = m["head"] + "***" + m["tail"]
    return _SECRET_PARAM.sub(lambda p: p["key"] + "***", url)


def optuna():
    """The ``optuna`` module, or an ImportError saying how to install it."""
    try:
        import optuna
    except ImportError:
        raise ImportError("puffjax sweep needs Optuna: pip install 'puffjax[sweep]'") from None
    return optuna


@dataclass
class Settings:
    """What a study was created with; stored in it, so every worker and every resume uses it."""
    config: dict  # the base config (Config.to_dict()); its train.total_timesteps is the budget
    space: list  # Param.to_dict() of each swept parameter
    metric: str = METRIC
    cost: str = "time"
    objective: str = "pareto"

    @property
    def budget(self) -> int:
        return self.config["train"]["total_timesteps"]

    def params(self) -> dict[str, Param]:
        return {d["name"]: Param.from_dict(d) for d in self.space}

    def base(self) -> Config:
        return Config.from_dict(self.config)


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _differences(stored: dict, new: dict) -> list[str]:
    a, b = _flat(stored), _flat(new)
    return [f"{k}: {a.get(k)!r} in the study, {b.get(k)!r} here" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def open_storage(url: str):
    """The RDB storage at ``url``; SQLite waits for its lock instead of failing at once. Processes
    creating the same new database at once collide on its tables ("already exists", a unique
    constraint): the losers try again and find the schema there."""
    import sqlalchemy.exc
    kwargs = {"connect_args": {"timeout": 120}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    for attempt in range(3):
        try:
            return optuna().storages.RDBStorage(url, engine_kwargs=kwargs)
        except sqlalchemy.exc.ArgumentError as e:  # its message may quote the URL: shown redacted instead
            raise ValueError(f"the storage {redact_url(url)!r} is not a database URL SQLAlchemy can open "
                             f"({type(e).__name__}); e.g. sqlite:///study.db or postgresql://user:PASSWORD@host/db"
                             ) from None
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError):
            if attempt == 2:
                raise
            time.sleep(0.5)


def _sampler(seed: int | None = None):
    """Multivariate TPE with a constant liar (so parallel workers do not sample the same point),
    after :data:`STARTUP_TRIALS` random trials."""
    opt = optuna()
    with warnings.catch_warnings():  # multivariate and constant_liar are experimental in Optuna 4
        warnings.simplefilter("ignore", opt.exceptions.ExperimentalWarning)
        return opt.samplers.TPESampler(multivariate=True, constant_liar=True, n_startup_trials=STARTUP_TRIALS,
                                       seed=seed)


def _directions(objective: str) -> list[str]:
    return ["maximize", "minimize"] if objective == "pareto" else ["maximize"]


def open_study(storage: str, study: str, settings: Settings | None = None, *, given: set = frozenset()):
    """Load study ``study`` from the storage at URL ``storage`` or, when it does not exist and ``settings``
    are given, create it (and queue the base config as its first trial). An existing study keeps
    its stored settings; those of ``given`` (names of Settings fields the caller chose explicitly)
    must match them. Returns (optuna study, its storage, Settings)."""
    opt = optuna()
    opt.logging.set_verbosity(opt.logging.WARNING)
    store = open_storage(storage)
    names = opt.get_all_study_names(store)
    if study in names:
        s = opt.load_study(study_name=study, storage=store, sampler=_sampler())
        if ATTR not in s.user_attrs:
            raise ValueError(f"study {study!r} in {redact_url(storage)} was not made by puffjax sweep")
        stored = Settings(**s.user_attrs[ATTR])
        if settings is not None:
            diffs = []
            for name in sorted(given):
                a, b = getattr(stored, name), getattr(settings, name)
                if name == "space":
                    a, b = ({d["name"]: Param.from_dict(d).describe() for d in x} for x in (a, b))
                if a != b:
                    diffs += (_differences({name: a}, {name: b}) if isinstance(a, dict)
                              else [f"{name}: {a!r} in the study, {b!r} here"])
            if diffs:
                raise ValueError(f"study {study!r} in {redact_url(storage)} was made with other settings, so it "
                                 f"cannot be continued with these: {'; '.join(diffs)}. Use the study's settings, or "
                                 f"another --study name.")
        return s, store, stored
    if settings is None:
        raise ValueError(f"no study {study!r} in {redact_url(storage)}"
                         + (f"; it holds {', '.join(names)}" if names else ""))
    s = opt.create_study(storage=store, study_name=study, directions=_directions(settings.objective),
                         sampler=_sampler())
    s.set_user_attr(ATTR, dataclasses.asdict(settings))
    base = settings.base()
    start = {}
    for p in settings.params().values():  # the config's own values, where the space holds them
        value = field_value(base, p.name)
        if p.contains(value):
            start[p.name] = value
    s.enqueue_trial(start, user_attrs={"baseline": True})
    return s, store, settings


def stored_settings(storage: str, study: str) -> Settings | None:
    """The settings of study ``study`` at URL ``storage``; None if there is no such sweep study."""
    try:
        return open_study(storage, study)[2]
    except ValueError:
        return None


def counted(study) -> int:
    """Trials that count towards the sweep's total: running or finished, except interrupted ones."""
    TrialState = optuna().trial.TrialState
    n = 0
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.WAITING:
            continue
        if t.state == TrialState.FAIL and t.user_attrs.get("fail_reason") == INTERRUPTED:
            continue
        n += 1
    return n


def running(study) -> list:
    """The study's running trials (FrozenTrial), whichever process runs them."""
    return study.get_trials(deepcopy=False, states=(optuna().trial.TrialState.RUNNING,))


def completed_curves(study) -> list[list]:
    """The recorded curve (user attribute ``curve``, ``[[step, value], ...]``) of each completed
    trial of ``study``; an empty list for a trial that recorded none."""
    complete = optuna().trial.TrialState.COMPLETE
    return [t.user_attrs.get("curve", []) for t in study.get_trials(deepcopy=False, states=(complete,))]


def fail(study, store, number: int, reason: str) -> None:
    """Mark running trial ``number`` (of any process) failed, with user attribute ``fail_reason``
    = ``reason``; a no-op if it has finished. ``store``: the study's storage (:func:`open_study`)."""
    opt = optuna()
    try:
        trial_id = store.get_trial_id_from_study_id_trial_number(store.get_study_id_from_name(study.study_name),
                                                                 number)
        store.set_trial_user_attr(trial_id, "fail_reason", reason)
        study.tell(number, state=opt.trial.TrialState.FAIL)
    except (RuntimeError, ValueError):  # finished meanwhile (UpdateFinishedTrialError is a RuntimeError)
        pass
