"""Python envs in worker processes: the same trajectories as the serial loop, errors that name
the environment, dead workers detected, and no process left behind (close, error, Ctrl-C, kill)."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import gymnasium as gym
import numpy as np
import pytest

from puffjax import envs
from test_spaces import Target

TIMEOUT = 120


class Faulty(gym.Env):
    """Environment 5 (it learns its index from its reset seed, seed 0 + i) fails at its third
    step: raises, or ends its process."""

    observation_space = gym.spaces.Box(-1, 1, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, how):
        self.how, self.index, self.t = how, -1, 0

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        if seed is not None:
            self.index = seed
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        if self.t == 3 and self.index == 5:
            if self.how == "raise":
                compute_something_wrong()
            os._exit(7)
        return np.zeros(2, np.float32), 1.0, False, False, {}


def compute_something_wrong():
    return 1 / 0


def make_faulty(how):
    return lambda: Faulty(how)


def _alive(pids):
    out = []
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        with open(f"/proc/{pid}/stat") as f:  # a zombie is not alive
            if f.read().split()[2] != "Z":
                out.append(pid)
    return out


def test_workers_give_the_serial_trajectories():
    rng = np.random.default_rng(0)
    for make, n in (("CartPole-v1", 7), (lambda: Target(), 5)):
        serial = envs.from_gymnasium(make, num_envs=n, seed=3)
        parallel = envs.from_gymnasium(make, num_envs=n, seed=3, workers=2)
        pids = [p.pid for p in parallel._runner.processes]
        try:
            assert parallel.observations.shape == serial.observations.shape
            np.testing.assert_array_equal(parallel.observations, serial.observations)
            low = 0 if isinstance(serial.action_space, gym.spaces.Discrete) and serial.action_space.start == 0 else 1
            for t in range(120):
                a = rng.integers(low, low + 2, n).astype(np.int32)
                if t == 60:
                    for env in (serial, parallel):
                        env.reset(seed=9)
                out_s, out_p = serial.step(a), parallel.step(a)
                for x, y in zip(out_s, out_p):
                    np.testing.assert_array_equal(x, y)
            assert parallel.log() == serial.log()
        finally:
            serial.close()
            parallel.close()
        assert _alive(pids) == []  # close() stops every worker


def test_an_env_error_names_the_environment_and_stops_every_worker():
    env = envs.from_gymnasium(make_faulty("raise"), num_envs=8, workers=2)
    pids = [p.pid for p in env._runner.processes]
    assert len(_alive(pids)) == 2
    env.step(np.zeros(8, np.int32))
    with pytest.raises(envs.EnvError, match="environment 5") as info:
        for _ in range(3):
            env.step(np.zeros(8, np.int32))
    assert info.value.env_index == 5
    text = str(info.value)
    assert "ZeroDivisionError" in text and "compute_something_wrong" in text and "Traceback" in text
    time.sleep(0.2)
    assert _alive(pids) == []
    with pytest.raises(RuntimeError, match="closed"):
        env.step(np.zeros(8, np.int32))
    env.close()  # again: fine


def test_serial_env_error_names_the_environment_too():
    env = envs.from_gymnasium(make_faulty("raise"), num_envs=8)
    with pytest.raises(envs.EnvError, match="environment 5 raised ZeroDivisionError") as info:
        for _ in range(3):
            env.step(np.zeros(8, np.int32))
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_an_observation_that_does_not_fit_is_refused_from_a_worker_too():
    bad = lambda o: {**o, "noise": np.zeros(3, np.float32)}  # noqa: E731
    env = envs.from_gymnasium(lambda: Target(bad), num_envs=4, workers=2)
    with pytest.raises(envs.SpaceError, match=r"environment 0: observation\['noise'\] has shape \(3,\)"):
        env.step(np.ones(4, np.int32))
    assert env.closed or not env._runner._closer.alive


def test_a_dead_worker_is_detected_not_waited_for():
    env = envs.from_gymnasium(make_faulty("exit"), num_envs=8, workers=2)
    pids = [p.pid for p in env._runner.processes]
    start = time.time()
    with pytest.raises(envs.WorkerDiedError, match=r"worker 1 \(environments 4..7\) exited with code 7"):
        for _ in range(3):
            env.step(np.zeros(8, np.int32))
    assert time.time() - start < 10
    assert _alive(pids) == []


SCRIPT = textwrap.dedent("""
    import sys, time
    import numpy as np
    import gymnasium as gym
    from puffjax import envs

    class Slow(gym.Env):
        observation_space = gym.spaces.Box(-1, 1, (1,), np.float32)
        action_space = gym.spaces.Discrete(2)
        def reset(self, seed=None, options=None):
            return np.zeros(1, np.float32), {}
        def step(self, action):
            time.sleep(0.05)
            return np.zeros(1, np.float32), 0.0, False, False, {}

    if __name__ == "__main__":
        env = envs.from_gymnasium(Slow, num_envs=4, workers=2)
        print(" ".join(str(p.pid) for p in env._runner.processes), flush=True)
        try:
            while True:
                env.step(np.zeros(4, np.int32))
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            raise
""")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl_c", "kill_9"])
def test_no_orphans_after_ctrl_c_or_kill(tmp_path, sig):
    script = tmp_path / "run_workers.py"
    script.write_text(SCRIPT)
    p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                         cwd=os.path.dirname(__file__))
    try:
        pids = [int(x) for x in p.stdout.readline().split()]
        assert len(pids) == 2 and len(_alive(pids)) == 2
        time.sleep(0.5)
        os.kill(p.pid, sig)
        p.wait(timeout=TIMEOUT)
        deadline = time.time() + 10
        while _alive(pids) and time.time() < deadline:
            time.sleep(0.1)
        assert _alive(pids) == []
        if sig == signal.SIGINT:
            assert "interrupted" in p.stdout.read()
    finally:
        if p.poll() is None:
            p.kill()
