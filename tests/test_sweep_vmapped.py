"""puffjax sweep with several trials per jitted call (``--trials-per-call``) on gymnax CartPole-v1.

The sweeps run through the CLI in their own session (``test_sweep.cli_sweep``: killed as a group
past their timeout), so no test can hang or leave a worker behind.
"""
import csv
import json

import pytest

optuna = pytest.importorskip("optuna")
pytest.importorskip("gymnax")

from puffjax.config import load_config, write_config
from puffjax.sweep import sweep
from puffjax.sweep.batched import TRACEABLE
from puffjax.sweep.prune import grid_step
from puffjax.sweep.space import space_from_section
from test_sweep import cli_sweep, jax_cache  # noqa: F401 (jax_cache: a fixture)

ENV = "gymnax:CartPole-v1"
TINY = {"env.num_envs": 16, "train.bptt_horizon": 16, "train.minibatch_size": 128, "policy.hidden_size": 16}
BUDGET = 2048  # 8 epochs of 256 steps
SPACE = {"defaults": False, "train.learning_rate": {"low": 1e-3, "high": 1e30, "log": True},
         "train.ent_coef": {"low": 1e-4, "high": 0.05, "log": True}}
QUEUED = [{"train.learning_rate": 0.02, "train.ent_coef": 0.01},
          {"train.learning_rate": 1e30, "train.ent_coef": 0.01},  # diverges in epoch 1
          {"train.learning_rate": 0.002, "train.ent_coef": 0.0002},
          {"train.learning_rate": 0.01, "train.ent_coef": 0.001}]  # the second call's, its other rows padding


def space_file(tmp_path):
    """The tiny CartPole as a config file, :data:`SPACE` its [sweep] section."""
    path = tmp_path / "cp.toml"
    write_config(load_config(ENV, **TINY, **{"train.total_timesteps": BUDGET}), str(path))
    lines = ["", "[sweep]"] + [f"{json.dumps(k)} = {json.dumps(v) if not isinstance(v, dict) else _inline(v)}"
                               for k, v in SPACE.items()]
    path.write_text(path.read_text() + "\n".join(lines) + "\n")
    return str(path)


def _inline(spec: dict) -> str:
    return "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in spec.items()) + " }"


def queued_study(tmp_path, name, queued):
    """A new study of :func:`space_file` in directory ``name`` (its baseline first), ``queued`` after it."""
    sweep(config_file=space_file(tmp_path), trials=0, directory=str(tmp_path / name), study="cp", progress=None)
    study = optuna.load_study(study_name="cp", storage=f"sqlite:///{tmp_path / name}/study.db")
    for params in queued:
        study.enqueue_trial(params)
    return study


def cli_args(name, trials, per_call):
    return ["--config", "cp.toml", "--trials", str(trials), "--dir", name, "--study", "cp",
            "--trials-per-call", str(per_call)]


def test_vmapped_trials_score_as_the_one_trial_path(tmp_path, jax_cache):
    """Four trials in one call (one of them diverging), then a fifth in a padded call of the same
    compiled size; the base config's trial scores as the one-trial path scores it."""
    batched = queued_study(tmp_path, "k4", QUEUED)
    rc, out = cli_sweep(tmp_path, jax_cache, *cli_args("k4", 5, 4), timeout=300)
    assert rc == 0, out
    trials = sorted(batched.get_trials(), key=lambda t: t.number)
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE", "FAIL", "COMPLETE", "COMPLETE"], out
    assert trials[2].user_attrs["fail_reason"].startswith("diverged: epoch 1: ")
    assert len({t.user_attrs["worker"] for t in trials}) == 1  # one worker process, two calls
    last_step = BUDGET // grid_step(BUDGET) * grid_step(BUDGET)
    for t in trials[:2] + trials[3:]:
        a = t.user_attrs
        assert a["steps"] == BUDGET and a["seconds"] > 0 and t.values == [a["score"], a["seconds"]]
        assert a["curve"] and a["curve"][-1][0] == last_step
        assert a["config"]["train"]["learning_rate"] == t.params["train.learning_rate"]
    assert trials[0].user_attrs["seconds"] == trials[1].user_attrs["seconds"] == trials[3].user_attrs["seconds"]
    rows = list(csv.DictReader(open(tmp_path / "k4" / "trials.csv")))
    assert [r["state"] for r in rows] == [t.state.name for t in trials] and "interrupted" not in out
    assert (tmp_path / "k4" / "pareto.png").stat().st_size > 0
    # the first (the base config's values) one at a time, with puffjax.Trainer
    single = queued_study(tmp_path, "k1", [])
    rc, out = cli_sweep(tmp_path, jax_cache, *cli_args("k1", 1, 1), timeout=300)
    assert rc == 0, out
    (alone,) = single.get_trials()
    assert alone.state.name == "COMPLETE" and alone.params == trials[0].params, alone.user_attrs
    assert trials[0].user_attrs["score"] == pytest.approx(alone.user_attrs["score"], rel=1e-5)
    curves = [trials[0].user_attrs["curve"], alone.user_attrs["curve"]]
    assert [s for s, _ in curves[0]] == [s for s, _ in curves[1]]
    assert [v for _, v in curves[0]] == pytest.approx([v for _, v in curves[1]], rel=1e-5)


def test_vmapped_trials_refuse_what_cannot_vary_in_a_call(tmp_path, monkeypatch, capsys):
    from puffjax.cli import main
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.toml").write_text(f'[env]\nname = "{ENV}"\n\n[sweep]\n'
                                     '"train.update_epochs" = { low = 1, high = 4 }\n'
                                     '"env.num_envs" = { values = [16, 32] }\n')
    for args, message in (
            (["cartpole", "--trials", "1"], "vmapped trials need a JAX environment (gymnax:ID"),
            (["--config", "s.toml", "--trials", "1"], "train.update_epochs, env.num_envs cannot differ between")):
        assert main(["sweep", *args, "--trials-per-call", "4", "--dir", "d"]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    with pytest.raises(ValueError, match="trials_per_call must be a positive integer"):
        sweep(ENV, 1, directory=str(tmp_path / "d"), trials_per_call=0)


def test_default_space_of_vmapped_trials_holds_the_hyperparameters_only():
    cfg = load_config(ENV)
    space = space_from_section(None, cfg, only=TRACEABLE)
    assert set(space) <= set(TRACEABLE) and "train.learning_rate" in space and "train.update_epochs" not in space
    # a section's own entries are kept (and then refused), a default one left out is gone
    space = space_from_section({"train.update_epochs": {"low": 1, "high": 3}, "train.gamma": False}, cfg,
                               only=TRACEABLE)
    assert "train.update_epochs" in space and "train.gamma" not in space
