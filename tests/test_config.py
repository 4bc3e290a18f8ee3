"""Config loading, overrides, CLI parsing and batch-geometry validation."""
import dataclasses

import pytest

import puffjax
from puffjax.config import available, load_config, load_config_file, parse_overrides, write_config
from puffjax.geometry import geometry


def test_shipped_configs_load():
    assert {"breakout", "pong", "squared", "cartpole", "memory"} <= set(available())
    for name in available():
        cfg = load_config(name)
        assert cfg.env.name == name or name.startswith(cfg.env.name + "_")  # a variant: breakout_lstm


def test_breakout_lstm_has_pufferlib_values_and_geometry():
    cfg = load_config("breakout_lstm")
    assert cfg.env.name == "breakout" and cfg.policy.kind == "lstm" and cfg.policy.hidden_size == 128
    assert cfg.train.learning_rate == pytest.approx(0.044482546441415506)
    assert cfg.env.num_envs == 8192 and cfg.env.options["frameskip"] == 4
    g = geometry(cfg.train, cfg.env.num_envs)
    assert g.batch_size == 524288 and g.minibatches_per_epoch == 16 and g.total_epochs == 172
    assert g.minibatch_segments == 512 and g.accumulation_steps == 1


def test_breakout_keeps_pufferlib_hyperparameters_with_its_own_geometry():
    cfg, lstm = load_config("breakout"), load_config("breakout_lstm")
    assert (cfg.policy.kind, cfg.policy.hidden_size, cfg.policy.layers) == ("default", 256, 2)
    geometry_fields = {"total_timesteps", "bptt_horizon", "minibatch_size", "update_epochs"}
    for field in dataclasses.fields(cfg.train):
        if field.name not in geometry_fields:
            assert getattr(cfg.train, field.name) == getattr(lstm.train, field.name), field.name
    g = geometry(cfg.train, cfg.env.num_envs)
    assert g.batch_size == 131072 and g.minibatches_per_epoch == 32 and g.total_epochs == 229  # one pass, rounded up to whole epochs


def test_overrides_all_forms():
    cfg = load_config("squared", learning_rate=0.02, env={"num_envs": 64},
                      **{"train.bptt_horizon": "8", "policy.value_head": "hl_gauss"})
    assert cfg.train.learning_rate == 0.02 and cfg.env.num_envs == 64
    assert cfg.train.bptt_horizon == 8 and cfg.policy.value_head == "hl_gauss"
    cfg = load_config("breakout", **parse_overrides(["--train.learning-rate", "0.02", "--env.frameskip=2",
                                                     "--train.anneal-lr", "false"]))
    assert cfg.train.learning_rate == 0.02 and cfg.env.options["frameskip"] == 2
    assert cfg.train.anneal_lr is False


@pytest.mark.parametrize("override, message", [
    ({"train.learning_rate": "abc"}, "learning_rate"),
    ({"train.nope": 1}, "unknown option train.nope"),
    ({"policy.kind": "transformer"}, "policy.kind"),
    ({"bogus": 1}, "bogus"),
    ({"train.bptt_horizon": 0}, "bptt_horizon"),
])
def test_bad_overrides(override, message):
    with pytest.raises(ValueError, match=message):
        load_config("squared", **override)
    with pytest.raises(ValueError, match="no config"):
        load_config("nosuchenv")


@pytest.mark.parametrize("agents, fields, message", [
    (16, dict(batch_size=100, bptt_horizon=8), "not divisible by train.bptt_horizon"),
    (16, dict(minibatch_size=100, bptt_horizon=8), "not a multiple of train.bptt_horizon"),
    (64, dict(batch_size=256, bptt_horizon=8), "64 agents need at least 64 segments"),
    (16, dict(batch_size=8 * 24, bptt_horizon=8, minibatch_size=64), "multiple of the number of agents"),
    (16, dict(minibatch_size=256, bptt_horizon=8), "larger than the batch"),
    (16, dict(minibatch_size=64, max_minibatch_size=48, bptt_horizon=8), "gradient accumulation"),
    (16, dict(total_timesteps=10, bptt_horizon=8, minibatch_size=64), "no epoch would run"),
])
def test_geometry_errors(agents, fields, message):
    cfg = load_config("squared", **{f"train.{k}": v for k, v in fields.items()})
    with pytest.raises(ValueError, match=message):
        geometry(cfg.train, agents)


@pytest.mark.parametrize("agents, devices, fields, message", [
    (12, 8, dict(bptt_horizon=8), "12 agents do not split evenly over 8 devices"),
    (16, 4, dict(bptt_horizon=8, minibatch_size=8 * 6, batch_size=8 * 48), "does not split evenly over 4 devices"),
    (16, 2, dict(bptt_horizon=8, minibatch_size=64, max_minibatch_size=24), "each device's share of minibatch_size"),
])
def test_geometry_errors_with_devices(agents, devices, fields, message):
    cfg = load_config("squared", **{f"train.{k}": v for k, v in fields.items()})
    with pytest.raises(ValueError, match=message):
        geometry(cfg.train, agents, devices)


def test_geometry_accumulation_and_multiple_rows():
    cfg = load_config("squared", **{"train.bptt_horizon": 8, "train.batch_size": 512,
                                    "train.minibatch_size": 256, "train.max_minibatch_size": 64,
                                    "train.update_epochs": 2})
    g = geometry(cfg.train, 16)
    assert g.segments == 64 and g.rows_per_agent == 4 and g.accumulation_steps == 4
    assert g.minibatches_per_epoch == 4 and g.minibatch_segments == 32


def test_config_file_round_trip(tmp_path):
    cfg = load_config("breakout", **{"train.learning_rate": 0.01, "env.frameskip": 2, "policy.symlog": True,
                                     "train.batch_size": 1 << 20, "train.anneal_lr": False})
    path = str(tmp_path / "c.toml")
    write_config(cfg, path, ["a header"])
    text = open(path).read()
    assert text.startswith("# a header") and "frameskip = 2" in text and "seed" not in text
    assert load_config_file(path).to_dict() == cfg.to_dict()
    assert load_config_file(path, **{"train.gamma": 0.9}).train.gamma == 0.9
    with open(path, "a") as f:  # a [sweep] section is the sweep's, not the config's
        f.write('\n[sweep]\n"train.gamma" = { low = 0.9, high = 0.99 }\n')
    assert load_config_file(path).to_dict() == cfg.to_dict()
    (tmp_path / "noname.toml").write_text("[train]\ngamma = 0.9\n")
    with pytest.raises(ValueError, match="must name the environment"):
        load_config_file(str(tmp_path / "noname.toml"))
    (tmp_path / "typo.toml").write_text('[env]\nname = "cartpole"\n[trian]\ngamma = 0.9\n')
    with pytest.raises(ValueError, match="unknown config section 'trian'"):
        load_config_file(str(tmp_path / "typo.toml"))


@pytest.mark.parametrize("name", available())
def test_write_config_round_trips_every_shipped_config(tmp_path, name):
    cfg = load_config(name)
    path = str(tmp_path / "sub" / f"{name}.toml")  # missing folders are made
    write_config(cfg, path)
    assert load_config_file(path).to_dict() == cfg.to_dict()
