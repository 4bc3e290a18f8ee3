"""Data parallel training: two host devices in one process (XLA's forced host devices) and two
processes on localhost (jax.distributed over gloo). Every run is a subprocess with a timeout,
killed with its whole process group if anything goes wrong."""
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

import puffjax
from forced_devices import forced_devices_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "tests", "parallel_worker.py")


def python(code: str, devices: int = 2, timeout: int = 300) -> str:
    """Run ``code`` in a fresh interpreter with ``devices`` forced host devices; its stdout."""
    env = forced_devices_env(devices)
    p = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                       env=env, timeout=timeout)
    assert p.returncode == 0, p.stderr[-4000:]
    return p.stdout


def test_two_devices_update_equals_one_device_and_never_gathers_the_buffer(tmp_path):
    """The same rollout, with every row in every minibatch (so both draw the same rows), through
    the one-device and the two-device update: the same parameters. The compiled two-device
    update moves data between devices only by all-reduce (no all-gather of the [S, H] buffers)."""
    out = python(f"""
        import re, jax, numpy as np, puffjax
        from puffjax import parallel
        base = {{"env.num_envs": 16, "train.bptt_horizon": 16, "train.minibatch_size": 512,
                "train.batch_size": 512, "train.total_timesteps": 4096, "train.update_epochs": 2,
                "train.optimizer": "adam", "train.learning_rate": 1e-3, "train.prio_alpha": 0.0,
                "train.video_frames": 0, "train.data_dir": {str(tmp_path)!r}}}
        one = puffjax.Trainer(puffjax.load_config("cartpole", **base, **{{"train.devices": 1}}), dashboard="none")
        two = puffjax.Trainer(puffjax.load_config("cartpole", **base, **{{"train.devices": 2}}), dashboard="none")
        assert one.mesh.size == 1 and two.mesh.size == 2 and two.geom.rows_per_agent == 2
        buf = one.collect()
        host = jax.tree.map(np.asarray, buf)
        key = jax.random.PRNGKey(3)
        a, ma, _ = one.train_epoch(one.state, buf, key, 0)
        args = (two.state, jax.device_put(host, parallel.rows(two.mesh)), parallel.replicate(two.mesh, key), 0)
        b, mb, _ = two.train_epoch(*args)
        for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-7)
        for k in ma:
            np.testing.assert_allclose(float(ma[k]), float(mb[k]), rtol=1e-4, atol=1e-5, err_msg=k)
        hlo = two.train_epoch.lower(*args).compile().as_text()
        ops = set(re.findall(r"(all-gather|all-reduce|all-to-all|collective-permute|reduce-scatter)", hlo))
        print("collectives", sorted(ops), "custom calls", sorted(set(re.findall(r'custom_call_target="(\\w+)"', hlo))))
    """)
    assert "collectives ['all-reduce']" in out
    assert "puffjax_puff_advantage" in out  # the custom call runs per shard, inside the sharded program


def test_per_shard_prioritized_sampling():
    """Each device draws its share from its own rows with its own probabilities, weights
    (S_d p_i)^-beta; device 0's draw (and a one-device draw) is exactly the unsharded formula."""
    out = python("""
        import jax, jax.numpy as jnp, numpy as np
        from jax.sharding import PartitionSpec as P
        from puffjax import parallel, prioritized
        mesh = parallel.make_mesh()
        adv = jax.random.normal(jax.random.PRNGKey(0), (12, 5)) * jnp.arange(1, 13)[:, None]
        key, alpha, beta = jax.random.PRNGKey(1), 0.7, 0.4
        local = lambda a, k: prioritized.draw(parallel.device_key(k), a, 3, alpha, beta)
        idx, w = jax.jit(jax.shard_map(local, mesh=mesh, in_specs=(P("data"), P()), out_specs=P("data"),
                                       check_vma=False))(adv, key)
        idx, w = np.asarray(idx).reshape(2, 3), np.asarray(w).reshape(2, 3)
        a = np.asarray(adv)
        for d in range(2):
            rows = a[6 * d: 6 * d + 6]
            wd = np.abs(rows).sum(1) ** alpha
            p = (wd + 1e-6) / (wd.sum() + 1e-6)
            assert len(set(idx[d])) == 3 and idx[d].max() < 6
            np.testing.assert_allclose(w[d], (6 * p[idx[d]]) ** -beta, rtol=1e-5)
        i0, w0 = prioritized.draw(key, adv[:6], 3, alpha, beta)  # the unsharded call on device 0's rows
        np.testing.assert_array_equal(idx[0], np.asarray(i0)); np.testing.assert_allclose(w[0], np.asarray(w0))
        one = parallel.make_mesh(1)
        i1, w1 = jax.jit(jax.shard_map(lambda a, k: prioritized.draw(parallel.device_key(k), a, 4, alpha, beta),
                                       mesh=one, in_specs=(P("data"), P()), out_specs=P("data"),
                                       check_vma=False))(adv, key)
        ig, wg = prioritized.draw(key, adv, 4, alpha, beta)  # PufferLib's global formula
        np.testing.assert_array_equal(np.asarray(i1), np.asarray(ig)); np.testing.assert_allclose(w1, wg)
        print("ok")
    """)
    assert out.strip().endswith("ok")


def test_sharded_prioritized_draws_follow_the_one_device_distribution():
    """Over many draws (fixed keys), each of two devices picks its rows with the frequencies the
    one-device formula gives its rows (a chi-square test), and a wrong distribution is rejected."""
    out = python("""
        import jax, jax.numpy as jnp, numpy as np
        from jax.sharding import PartitionSpec as P
        from scipy.stats import chisquare
        from puffjax import parallel, prioritized
        mesh = parallel.make_mesh()
        adv = jax.random.normal(jax.random.PRNGKey(0), (16, 5)) * jnp.arange(1, 17)[:, None]
        keys = jax.random.split(jax.random.PRNGKey(1), 40_000)
        alpha, beta = 0.6, 0.4

        def local(a, ks):  # each device's first drawn row, for every key
            return jax.vmap(lambda k: prioritized.draw(parallel.device_key(k), a, 2, alpha, beta)[0][0])(ks)[None]

        first = np.asarray(jax.jit(jax.shard_map(local, mesh=mesh, in_specs=(P("data"), P()), out_specs=P("data"),
                                                 check_vma=False))(adv, keys))
        for d in range(2):
            rows = adv[8 * d: 8 * d + 8]
            p = np.asarray(prioritized.row_probabilities(rows, alpha), np.float64)  # one device, these rows
            counts = np.bincount(first[d], minlength=8)
            right = chisquare(counts, p / p.sum() * counts.sum()).pvalue
            wrong = chisquare(counts, np.full(8, counts.sum() / 8)).pvalue
            print("device", d, "p", right, "uniform p", wrong)
            assert right > 1e-3 and wrong < 1e-6
        print("ok")
    """)
    assert out.strip().endswith("ok"), out


@pytest.mark.slow  # ~60 s; the two-device update is checked against one device's by the tests above
def test_cartpole_learns_on_two_devices(tmp_path):
    out = python(f"""
        import numpy as np, puffjax
        cfg = puffjax.load_config("cartpole", **{{"train.data_dir": {str(tmp_path)!r}, "train.video_frames": 0}})
        trainer = puffjax.Trainer(cfg, dashboard="none")
        assert trainer.mesh.size == 2
        history = trainer.train()
        # the last three epochs that ended an episode (once it balances, most epochs end none)
        returns = [h["environment/episode_return"] for h in history if "environment/episode_return" in h]
        print("return", np.mean(returns[-3:]))
    """, timeout=600)
    assert float(out.split()[-1]) >= 475  # as the one-device learning test; random play: ~22


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(tmp_path, name, run_dir, overrides, processes=2, resume=False):
    """Start the worker processes; returns (popens, out files)."""
    port = _free_port()
    procs, outs = [], []
    env = forced_devices_env(1)
    for i in range(processes):
        out = str(tmp_path / f"{name}-{i}.json")
        args = [sys.executable, WORKER, "--run-dir", run_dir, "--out", out, "--overrides", json.dumps(overrides)]
        if processes > 1:
            args += ["--coordinator", f"127.0.0.1:{port}", "--process-id", str(i), "--num-processes", str(processes)]
        if resume:
            args.append("--resume")
        log = open(tmp_path / f"{name}-{i}.log", "w")
        procs.append(subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True))
        outs.append(out)
    return procs, outs



def resume_from(tmp_path, run_dir, epoch: int, drop: int) -> dict:
    """Delete epoch ``drop``'s checkpoint, point ``latest`` at epoch ``epoch``'s, resume the run
    in two processes and return process 0's output."""
    os.remove(os.path.join(run_dir, "checkpoints", f"epoch_{drop:06d}.msgpack"))
    with open(os.path.join(run_dir, "checkpoints", "latest"), "w") as f:
        f.write(f"epoch_{epoch:06d}.msgpack")
    procs, outs = launch(tmp_path, "resumed", run_dir, {}, resume=True)
    assert wait_all(procs, 240) == [0, 0], open(tmp_path / "resumed-0.log").read()[-3000:]
    return json.load(open(outs[0]))

def wait_all(procs, timeout):
    """Exit codes of every process; kills them all (whole process groups) past ``timeout``."""
    deadline = time.monotonic() + timeout
    try:
        return [p.wait(timeout=max(1.0, deadline - time.monotonic())) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


SMALL = {"env.num_envs": 32, "train.bptt_horizon": 16, "train.minibatch_size": 256, "train.update_epochs": 1,
         "train.total_timesteps": 4 * 1024, "train.checkpoint_interval": 2, "train.video_frames": 0}


def _strip(history):
    return [{k: v for k, v in h.items() if not k.startswith("performance/") and k not in ("SPS", "uptime")}
            for h in history]


def test_two_processes_one_run_identical_parameters_exact_resume(tmp_path):
    run_dir = str(tmp_path / "run")
    procs, outs = launch(tmp_path, "full", run_dir, SMALL)
    assert wait_all(procs, 240) == [0, 0], open(tmp_path / "full-0.log").read()[-3000:]
    a, b = (json.load(open(o)) for o in outs)
    assert a["params"] == b["params"] and a["epoch"] == 4  # bitwise-identical replicated parameters
    # Outside the update the processes meet once per epoch, plus the barrier of each checkpoint.
    assert a["allgathers"] == b["allgathers"] == 4 + 2
    rows = [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"))]
    assert [r["agent_steps"] for r in rows] == [1024, 2048, 3072, 4096]  # 2 processes x 32 envs x 16 steps
    assert sorted(os.listdir(os.path.join(run_dir, "checkpoints"))) == [
        "epoch_000002.msgpack", "epoch_000002.process1.msgpack", "epoch_000004.msgpack",
        "epoch_000004.process1.msgpack", "latest"]
    # The logs count both processes' episodes.
    assert [r.get("environment/n", 0) for r in rows] == [x + y for x, y in zip(a["local_n"], b["local_n"])]
    assert all(b["local_n"][1:]) and all(a["local_n"][1:])
    # Resuming both processes from epoch 2 replays epochs 3-4 exactly.
    c = resume_from(tmp_path, run_dir, 2, drop=4)
    assert c["params"] == a["params"] and _strip(c["history"]) == _strip(a["history"][2:])
    # One process resumes the two-process run too: same parameters and counters, new episodes.
    procs, outs = launch(tmp_path, "single", run_dir, {"train.total_timesteps": 6 * 1024, "env.num_envs": 32},
                         processes=1, resume=True)
    assert wait_all(procs, 240) == [0], open(tmp_path / "single-0.log").read()[-3000:]
    assert "environments are re-seeded" in open(tmp_path / "single-0.log").read()
    # The budget is in agent steps: from 4,096 steps, epochs of 512 steps reach 6,144 exactly
    # (counted in epochs of the new batch, it would have run 8 epochs to 8,192).
    d = json.load(open(outs[0]))
    assert d["timesteps"] == 6144 and [h["agent_steps"] for h in d["history"]] == [4608, 5120, 5632, 6144]
    # Two processes again, to a budget that is not a whole epoch: one epoch of 1,024 past 6,144.
    procs, outs = launch(tmp_path, "double", run_dir, {"train.total_timesteps": 7000}, resume=True)
    assert wait_all(procs, 240) == [0, 0], open(tmp_path / "double-0.log").read()[-3000:]
    a, b = (json.load(open(o)) for o in outs)
    assert a["params"] == b["params"] and a["timesteps"] == b["timesteps"] == 7168 and len(a["history"]) == 1


@pytest.mark.slow
def test_cartpole_learns_on_two_processes(tmp_path):
    procs, outs = launch(tmp_path, "learn", str(tmp_path / "run"), {"env.num_envs": 128, "train.video_frames": 0})
    assert wait_all(procs, 900) == [0, 0], open(tmp_path / "learn-0.log").read()[-3000:]
    a, b = (json.load(open(o)) for o in outs)
    assert a["params"] == b["params"]
    returns = [h["environment/episode_return"] for h in a["history"] if "environment/episode_return" in h][-3:]
    assert sum(returns) / 3 > 150


def test_a_killed_process_stops_the_other_with_a_clear_error(tmp_path):
    run_dir = str(tmp_path / "run")
    long = {**SMALL, "train.total_timesteps": 10_000_000, "train.checkpoint_interval": 1}
    procs, _ = launch(tmp_path, "kill", run_dir, long)
    try:
        first = os.path.join(run_dir, "checkpoints", "latest")
        deadline = time.monotonic() + 180
        while not os.path.exists(first):
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs), \
                open(tmp_path / "kill-0.log").read()[-3000:]
            time.sleep(0.2)
        os.killpg(procs[1].pid, signal.SIGKILL)
        killed_at = time.monotonic()
        code = procs[0].wait(timeout=120)
        elapsed = time.monotonic() - killed_at
    finally:
        wait_all(procs, 1)
    log = open(tmp_path / "kill-0.log").read()
    assert code != 0 and elapsed < 60, log[-3000:]
    assert "PeerLostError: process 1 of 2 stopped" in log, log[-3000:]
    # The run's last checkpoint loads and trains in a single process.
    trainer = puffjax.Trainer(puffjax.run_config(run_dir), resume=run_dir, dashboard="none")
    assert trainer.epoch >= 1
    trainer.close()


def test_resumed_schedule_and_seeds_follow_the_agent_step():
    """On resuming with another geometry the learning rate's update count is set from the agent
    step (momenta untouched); re-seeded environments get a stream of the seed and the step."""
    import jax
    import optax
    from puffjax import parallel
    from puffjax.optim import make_optimizer, set_schedule_count
    cfg = puffjax.load_config("cartpole", **{"train.anneal_lr": "true"}).train
    params = {"w": jax.numpy.ones((3, 3)), "b": jax.numpy.ones(3)}
    is_schedule = lambda x: isinstance(x, optax.ScaleByScheduleState)
    for name in ("adam", "muon"):
        cfg.optimizer = name
        state = make_optimizer(cfg, 100).init(params)
        moved = set_schedule_count(state, 37)
        before, after = (jax.tree.leaves(s, is_leaf=is_schedule) for s in (state, moved))
        assert [int(x.count) for x in after if is_schedule(x)] == [37] * sum(map(is_schedule, before)) != [], name
        assert all(a is b for a, b in zip(before, after) if not is_schedule(a))  # momenta, Adam's count: unchanged
    seeds = {parallel.step_seed(7, 4096), parallel.step_seed(7, 8192), parallel.step_seed(8, 4096), 7}
    assert len(seeds) == 4 and parallel.step_seed(7, 4096) == parallel.step_seed(7, 4096)


def test_a_broken_link_names_the_other_of_two_processes():
    from puffjax import parallel
    try:
        try:
            raise ValueError("UNKNOWN: Gloo AllGather failed: [pair.cc:547] Connection closed by peer [127.0.0.1]:1")
        except ValueError as inner:
            raise RuntimeError("epoch failed") from inner
    except RuntimeError as e:
        assert parallel.lost_link(e)
    assert not parallel.lost_link(ValueError("shapes differ"))


NICE_CHILD = """
import os, sys
import jax, numpy as np, puffjax
from jax.sharding import PartitionSpec as P
puffjax.parallel.initialize("127.0.0.1:{port}", 2, int(sys.argv[1]), gloo_nice={nice})
mesh = puffjax.parallel.make_mesh()
psum = jax.jit(jax.shard_map(lambda x: jax.lax.psum(x, "data"), mesh=mesh, in_specs=P("data"), out_specs=P("data")))
total = puffjax.parallel.to_local(psum(puffjax.parallel.from_local(mesh, np.full((1, 3), 1.0 + jax.process_index()))))
nices = [int(open(f"/proc/self/task/{{t}}/stat").read().rsplit(")", 1)[1].split()[16]) for t in os.listdir("/proc/self/task")]
print(total.tolist(), sorted(n for n in nices if n != os.nice(0)))  # the threads not at the process's niceness
"""


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="reads thread priorities from Linux's /proc")
@pytest.mark.parametrize("nice", [19, 0])
def test_initialize_lowers_only_the_gloo_network_thread(tmp_path, nice):
    """Two processes: gloo's network thread, and no other, leaves the process's niceness for
    ``gloo_nice``; the collectives still sum right."""
    port = _free_port()
    env = forced_devices_env(1)
    code = textwrap.dedent(NICE_CHILD.format(port=port, nice=nice))
    outs = [open(tmp_path / f"{i}.log", "w+") for i in range(2)]
    procs = [subprocess.Popen([sys.executable, "-c", code, str(i)], stdout=outs[i], stderr=subprocess.STDOUT,
                              env=env, start_new_session=True) for i in range(2)]
    codes = wait_all(procs, 180)
    texts = [(out.seek(0), out.read())[1] for out in outs]
    assert codes == [0, 0], texts
    expected = f"[[3.0, 3.0, 3.0]] {[nice] if nice else []}"
    assert [t.strip().splitlines()[-1] for t in texts] == [expected] * 2, texts


def test_initialize_refuses_a_niceness_out_of_range():
    with pytest.raises(ValueError, match="gloo_nice must be in"):
        puffjax.parallel.initialize("127.0.0.1:1", 2, 0, gloo_nice=20)
