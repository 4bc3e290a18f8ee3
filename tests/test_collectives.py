"""What crosses devices in the compiled update, read from its optimized HLO: exactly one
all-reduce of one flat buffer per minibatch (and one per epoch for the first minibatch's
moments); and the batch geometry per device (``max_minibatch_size`` bounds each device's share)."""
import os
import re
import subprocess
import sys
import textwrap

import pytest

from puffjax import load_config
from puffjax.geometry import geometry
from forced_devices import forced_devices_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _python(code: str, devices: int = 2, timeout: int = 600) -> str:
    env = forced_devices_env(devices)
    p = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                       timeout=timeout, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-4000:]
    return p.stdout


def _computations(hlo: str) -> dict[str, str]:
    """The HLO module's computations by name (the entry one as "ENTRY"), each its text."""
    out, name, lines = {}, None, []
    for line in hlo.splitlines():
        head = re.match(r"^(ENTRY )?%?([\w.\-]+) .*\{\s*$", line)
        if head and not line.startswith(" "):
            name, lines = ("ENTRY" if head.group(1) else head.group(2)), []
        elif line.startswith("}") and name is not None:
            out[name] = "\n".join(lines)
            name = None
        elif name is not None:
            lines.append(line)
    return out


def test_computations_parser():
    hlo = "HloModule m\n\n%body.1 (p: f32[]) -> f32[] {\n  %a = f32[] all-reduce(%p)\n}\n\n" \
          "ENTRY %main.2 (x: f32[]) -> f32[] {\n  %w = f32[] while(%x), body=%body.1\n}\n"
    assert _computations(hlo) == {"body.1": "  %a = f32[] all-reduce(%p)",
                                  "ENTRY": "  %w = f32[] while(%x), body=%body.1"}


ALL_REDUCE = re.compile(r"^\s*%?[\w.\-]+ = (\S+) all-reduce(-start)?\(", re.M)


@pytest.mark.parametrize("accumulate", [False, True])
def test_one_flat_all_reduce_per_minibatch(tmp_path, accumulate):
    """On 2 devices, CartPole's update with prioritized replay and masks (and gradient
    accumulation): the minibatch loop's body holds one all-reduce of one f32 vector, the
    epoch one more (the first minibatch's moments), and nothing else crosses devices."""
    overrides = {"train.max_minibatch_size": 128} if accumulate else {}
    out = _python(f"""
        import jax, puffjax
        cfg = puffjax.load_config("cartpole", **{{"train.data_dir": {str(tmp_path)!r}, "train.video_frames": 0,
                                                 "env.num_envs": 64, **{overrides!r}}})
        trainer = puffjax.Trainer(cfg, dashboard="none")
        assert trainer.mesh.size == 2 and trainer.geom.accumulation_steps == {2 if accumulate else 1}
        key = puffjax.parallel.replicate(trainer.mesh, jax.random.PRNGKey(0))
        print(trainer.geom.minibatches_per_epoch)
        print(trainer.train_epoch.lower(trainer.state, trainer.buf, key, 0).compile().as_text())
    """)
    minibatches, hlo = out.split("\n", 1)
    assert int(minibatches) == 7
    assert not re.search(r"all-gather|all-to-all|collective-permute|reduce-scatter", hlo)
    found = {name: ALL_REDUCE.findall(text) for name, text in _computations(hlo).items()}
    found = {name: ops for name, ops in found.items() if ops}
    assert sorted(len(ops) for ops in found.values()) == [1, 1], found
    for (shape, _), in found.values():
        assert re.fullmatch(r"f32\[\d+\](\{0\})?", shape), f"not one flat f32 buffer: {shape}"
    (loop_body,) = [name for name in found if name != "ENTRY"]
    # The computation holding the loop's all-reduce runs once per minibatch: it is the body of
    # a while loop that runs minibatches_per_epoch times, itself run once per epoch.
    whiles = re.findall(r"while\(.*body=%?([\w.\-]+).*", hlo)
    assert loop_body in whiles, (loop_body, whiles)
    line = next(l for l in hlo.splitlines() if re.search(rf"body=%?{re.escape(loop_body)}\b", l))
    trips = re.search(r'"known_trip_count":\{"n":"(\d+)"', line)
    assert trips and int(trips.group(1)) == int(minibatches), line
    caller = next(name for name, text in _computations(hlo).items() if line.strip() in text)
    assert caller == "ENTRY" and "ENTRY" in found  # the loop and the first minibatch's all-reduce run once


def _train(**fields):
    return load_config("squared", **{f"train.{k}": v for k, v in fields.items()}).train


def test_max_minibatch_size_is_per_device():
    """Each device's share of a minibatch is what max_minibatch_size bounds: more devices, the
    same chunk of work per device, fewer chunks."""
    t = _train(bptt_horizon=8, batch_size=1024, minibatch_size=512, max_minibatch_size=64)
    chunks = {d: geometry(t, 16, d).accumulation_steps for d in (1, 2, 4, 8)}
    assert chunks == {1: 8, 2: 4, 4: 2, 8: 1}
    for d, n in chunks.items():  # steps of one chunk on one device
        assert geometry(t, 16, d).minibatch_segments // d // n * 8 == 64
    big = _train(bptt_horizon=8, batch_size=1024, minibatch_size=512, max_minibatch_size=512)
    assert [geometry(big, 16, d).accumulation_steps for d in (1, 2)] == [1, 1]


def test_max_minibatch_size_must_divide_each_devices_share():
    t = _train(bptt_horizon=8, batch_size=1024, minibatch_size=512, max_minibatch_size=96)
    with pytest.raises(ValueError, match=r"each device's share of minibatch_size \(512 / 2 devices = 256 steps\)"):
        geometry(t, 16, 2)


def test_total_timesteps_rounds_up_to_whole_epochs_and_says_so():
    """A budget that is not a whole number of epochs is never cut: the run plays the next whole
    epoch, and the one-line note says how many steps that is."""
    from puffjax.geometry import rounding_note
    exact = _train(bptt_horizon=8, batch_size=1024, minibatch_size=512, total_timesteps=4096)
    assert geometry(exact, 16).total_epochs == 4 and rounding_note(4096, geometry(exact, 16)) is None
    over = _train(bptt_horizon=8, batch_size=1024, minibatch_size=512, total_timesteps=4097)
    assert geometry(over, 16).total_epochs == 5
    assert rounding_note(4097, geometry(over, 16)) == ("train.total_timesteps 4,097 is not a whole number of "
                                                       "epochs of 1,024 steps: training 5 epochs (5,120 steps)")
    short = _train(bptt_horizon=8, batch_size=1024, minibatch_size=512, total_timesteps=1000)
    with pytest.raises(ValueError, match="less than one batch"):
        geometry(short, 16)
