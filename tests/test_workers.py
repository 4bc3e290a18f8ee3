"""Python envs in worker processes: the same trajectories as the serial loop, errors that name
the environment, dead workers detected, and no process left behind (close, error, Ctrl-C, kill)."""
import os
import pickle
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


class Hangs(gym.Env):
    """Steps normally until its step ``at`` (counted from 1), where it hangs: asleep, or busy in
    Python code."""

    observation_space = gym.spaces.Box(-1, 1, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, at=1, how="sleep", pause=0.0):
        self.at, self.how, self.pause, self.t = at, how, pause, 0

    def reset(self, seed=None, options=None):
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.t += 1
        if self.t == self.at:
            if self.how == "sleep":
                time.sleep(3600)
            while True:
                pass
        time.sleep(self.pause)
        return np.zeros(1, np.float32), 0.0, False, False, {}


def test_a_hanging_worker_is_a_clear_error_within_the_timeout():
    env = envs.from_gymnasium(Hangs, num_envs=4, workers=2, step_timeout=1.0)
    pids = [p.pid for p in env._runner.processes]
    start = time.time()
    with pytest.raises(envs.StepTimeoutError, match=r"worker 0 \(environments 0..1\) did not finish step within "
                                                    r"1 s \(env.step_timeout\)"):
        env.step(np.zeros(4, np.int32))
    assert 1.0 <= time.time() - start < 8
    assert _alive(pids) == []


@pytest.mark.parametrize("how", ["sleep", "busy"])
def test_a_hanging_env_in_this_process_is_a_clear_error_within_the_timeout(how):
    env = envs.from_gymnasium(lambda: Hangs(2, how), num_envs=3, step_timeout=0.5)
    env.step(np.zeros(3, np.int32))
    start = time.time()
    with pytest.raises(envs.StepTimeoutError, match=r"environments 0..2 \(stepping in this process\) did not finish "
                                                    r"step within 0.5 s"):
        env.step(np.zeros(3, np.int32))
    assert 0.5 <= time.time() - start < 3
    assert signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, None)  # the handler before is back


def test_a_hanging_env_stepped_in_another_thread_is_stopped_too():
    import threading

    env = envs.from_gymnasium(lambda: Hangs(1, "busy"), num_envs=2, step_timeout=0.5)
    errors = []

    def run():
        try:
            env.step(np.zeros(2, np.int32))
        except envs.StepTimeoutError as e:
            errors.append(e)

    t = threading.Thread(target=run)
    t.start()
    t.join(timeout=10)
    assert not t.is_alive() and len(errors) == 1


def test_no_timeout_when_it_is_off():
    env = envs.from_gymnasium(Hangs, num_envs=1, step_timeout=0)
    assert env._runner.watchdog is None
    for bad in (-1, float("inf"), "5"):
        with pytest.raises(ValueError, match="step_timeout must be a finite number of seconds >= 0"):
            envs.from_gymnasium(Hangs, num_envs=1, step_timeout=bad)


def test_ctrl_c_while_workers_step_leaves_the_pool_usable():
    import threading

    env = envs.from_gymnasium(lambda: Hangs(at=0, pause=0.05), num_envs=4, workers=2)  # slow, never hangs
    pids = [p.pid for p in env._runner.processes]
    timer = threading.Timer(0.3, signal.raise_signal, (signal.SIGINT,))
    try:
        with pytest.raises(KeyboardInterrupt):
            timer.start()
            for _ in range(200):  # Ctrl-C arrives while the workers step
                env.step(np.zeros(4, np.int32))
        assert env._runner._pending == set() and len(_alive(pids)) == 2
        state = env.get_state()  # the interrupt checkpoint can still read the envs
        assert len(pickle.loads(state["pickle"].tobytes())[0]) == 4
        env.step(np.zeros(4, np.int32))
    finally:
        timer.cancel()
        env.close()


def _readline(p, timeout=TIMEOUT) -> str:
    """The next line of ``p``'s stdout, or a failure after ``timeout`` seconds."""
    import select

    ready, _, _ = select.select([p.stdout], [], [], timeout)
    assert ready, f"no output within {timeout} s"
    return p.stdout.readline()


def _shm_files():
    return set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()


def _no_new_shm_files(before):
    """No file this test's processes made is left in /dev/shm (a file that goes away within a few
    seconds belonged to another process starting its workers)."""
    new = {f for f in _shm_files() - before if f.startswith("puffjax-envs")}
    if new:
        time.sleep(5)
        new &= _shm_files()
    assert new == set()


HANG_SCRIPT = textwrap.dedent("""
    import multiprocessing, os, sys, time
    import numpy as np
    import gymnasium as gym
    from puffjax import envs

    class Env(gym.Env):
        observation_space = gym.spaces.Box(-1, 1, (1,), np.float32)
        action_space = gym.spaces.Discrete(2)
        def __init__(self):
            if sys.argv[1] == "startup" and multiprocessing.parent_process() is not None:  # in a worker
                print("building", os.getpid(), flush=True)
                time.sleep(3600)
        def reset(self, seed=None, options=None):
            return np.zeros(1, np.float32), {}
        def step(self, action):
            time.sleep(3600)

    if __name__ == "__main__":
        env = envs.from_gymnasium(Env, num_envs=2, workers=2, step_timeout=0)
        print(" ".join(str(p.pid) for p in env._runner.processes), flush=True)
        env.step(np.zeros(2, np.int32))
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("when", ["startup", "step"])
def test_kill_9_leaves_no_worker_and_nothing_in_dev_shm(tmp_path, when):
    """Killed while its workers build their envs, or while they hang in a step (so they never
    notice the closed pipe): the workers die with it and no shared-memory file is left."""
    script = tmp_path / "hang.py"
    script.write_text(HANG_SCRIPT)
    before = _shm_files()
    p = subprocess.Popen([sys.executable, str(script), when], stdout=subprocess.PIPE, text=True)
    pids = []
    try:
        if when == "startup":
            pids = [int(_readline(p).split()[1]) for _ in range(2)]
        else:
            pids = [int(x) for x in _readline(p).split()]
            time.sleep(0.5)
        with open(f"/proc/{p.pid}/maps") as f:
            maps = f.read()
        assert "memfd:puffjax-envs" in maps and "/dev/shm/" not in maps  # the buffers have no name
        assert len(_alive(pids)) == 2
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=TIMEOUT)
        deadline = time.time() + 10
        while _alive(pids) and time.time() < deadline:
            time.sleep(0.1)
        assert _alive(pids) == []
        _no_new_shm_files(before)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        for pid in _alive(pids):
            os.kill(pid, signal.SIGKILL)


LIFELINE = textwrap.dedent("""
    import subprocess, sys
    child = subprocess.Popen([sys.executable, "-c", '''
    import os, sys, time
    from puffjax.lifeline import die_with_parent, watch_parent
    (watch_parent if sys.argv[1] == "watch" else die_with_parent)(int(sys.argv[2]), interval=0.2)
    print(os.getpid(), flush=True)
    time.sleep(3600)
    ''', sys.argv[1], str(__import__("os").getpid())])
    child.wait()
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("how", ["prctl", "watch"])
def test_a_child_dies_with_its_parent(tmp_path, how):
    script = tmp_path / "parent.py"
    script.write_text(LIFELINE)
    parent = subprocess.Popen([sys.executable, str(script), how], stdout=subprocess.PIPE, text=True)
    try:
        child = int(_readline(parent))
        assert _alive([child]) == [child]
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=TIMEOUT)
        deadline = time.time() + 10
        while _alive([child]) and time.time() < deadline:
            time.sleep(0.1)
        assert _alive([child]) == []
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


SLOW_ENV = textwrap.dedent("""
    import time
    import numpy as np
    import gymnasium as gym

    class Slow(gym.Env):
        observation_space = gym.spaces.Box(-1, 1, (2,), np.float32)
        action_space = gym.spaces.Discrete(2)
        def reset(self, seed=None, options=None):
            return np.zeros(2, np.float32), {}
        def step(self, action):
            open("stepped", "a").close()  # the rollout has begun
            time.sleep(0.2)
            return np.zeros(2, np.float32), 1.0, False, False, {}

    def make():
        return Slow()
""")


def test_ctrl_c_of_a_training_run_with_workers_saves_the_checkpoint(tmp_path):
    (tmp_path / "slowenv.py").write_text(SLOW_ENV)
    cmd = [sys.executable, "-m", "puffjax", "train", "slowenv:make", "--env.num-envs", "4", "--env.workers", "2",
           "--train.bptt-horizon", "8", "--train.minibatch-size", "32", "--train.total-timesteps", "10000000",
           "--train.checkpoint-interval", "100000", "--run-dir", str(tmp_path / "run"), "--dashboard", "none"]
    p = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "puffjax: training slowenv:make" in _readline(p)
        deadline = time.time() + TIMEOUT
        while not (tmp_path / "stepped").exists() and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # the workers step nearly all the time now
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=TIMEOUT)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    assert "interrupted; saving a checkpoint" in err and "closed" not in err
    assert os.listdir(tmp_path / "run" / "checkpoints"), out
