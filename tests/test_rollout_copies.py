"""How the rollout moves a step's host data to the devices: the packed flags keep every bit, a
process's rows land on the devices :func:`puffjax.parallel.from_local` puts them on, and the
played buffer is what a plain step-by-step loop over the policy writes."""
import os
import socket
import subprocess
import sys
import textwrap
import types

import jax
import jax.numpy as jnp
import numpy as np

import puffjax
from puffjax import buffer, envs, parallel
from puffjax.rollout import FLAGS, Timer, collect, pack_flags, policy_step, unpack_flags
from forced_devices import forced_devices_env


def test_packed_flags_keep_every_bit():
    rng = np.random.default_rng(0)
    rewards = rng.normal(size=40).astype(np.float32)
    rewards[:6] = [np.nan, -np.inf, np.inf, -0.0, np.float32(1e-45), np.finfo(np.float32).max]
    rewards.view(np.uint32)[6] = 0x7FC0_1234  # a NaN with a payload
    env = types.SimpleNamespace(rewards=rewards, **{k: rng.random(40) < 0.5 for k in FLAGS[1:]})
    rows = slice(8, 40)
    packed = pack_flags(env, slice(0, 40), np.empty((40, len(FLAGS)), np.float32))
    packed_rows = pack_flags(env, rows, np.empty((32, len(FLAGS)), np.float32))
    for flags, sl in ((packed, slice(0, 40)), (packed_rows, rows)):
        got = [np.asarray(x) for x in jax.jit(unpack_flags)(flags)]
        np.testing.assert_array_equal(got[0].view(np.uint32), rewards[sl].view(np.uint32))
        for x, name in zip(got[1:], FLAGS[1:]):
            assert x.dtype == np.bool_
            np.testing.assert_array_equal(x, getattr(env, name)[sl])


def test_the_rollout_writes_what_a_plain_loop_over_the_policy_writes(tiny_config):
    """One group, one device: :func:`collect` against the policy stepped on the env's buffers
    as they are, each step's column written with :func:`puffjax.buffer.write_step`."""
    cfg = tiny_config("cartpole", **{"env.num_envs": 16, "train.rollout_groups": 1, "train.batch_size": 256,
                                     "train.minibatch_size": 128, "train.total_timesteps": 256})
    trainer = puffjax.Trainer(cfg, dashboard="none")
    policy, t, geom = trainer.policy, cfg.train, trainer.geom
    params, A, H = trainer.state.params, 16, geom.horizon
    assert trainer.mesh.size == 1 and geom.rows_per_agent == 2
    zeros = lambda: jax.tree.map(jnp.zeros_like, trainer.buf)  # the rollout donates its buffer

    env = envs.make("cartpole", num_envs=A, seed=3)
    env.reset(seed=3)
    got, key, prev, _, _ = collect(env, trainer.act, params, zeros(), [trainer._initial_carry()], jax.random.PRNGKey(1),
                                   [jnp.full(A, 0.5, jnp.float32)], [jnp.zeros(A, jnp.float32)], trainer.stats,
                                   trainer._empty_acc(), geom, Timer(), epoch=1, mesh=trainer.mesh)
    env.close()

    env = envs.make("cartpole", num_envs=A, seed=3)
    env.reset(seed=3)
    step = jax.jit(lambda *a: policy_step(policy, t.gamma, *a, reward_clip=t.reward_clip))
    write = jax.jit(buffer.write_step)
    want, carry, want_key, value = zeros(), policy.initial_carry(A), jax.random.PRNGKey(1), jnp.full(A, 0.5, jnp.float32)
    for s in range(geom.rows_per_agent * H):
        j, col = divmod(s, H)
        columns, carry, want_key, action = step(params, carry, want_key, env.observations, env.rewards,
                                                env.terminals, env.truncations, env.masks, value, col == 0,
                                                jnp.arange(A))
        want, value = write(want, columns, j * A, col), columns.values
        env.step(np.asarray(action))
    env.close()
    trainer.close()

    for a, b in zip(got, want):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(np.asarray(key), np.asarray(want_key))
    np.testing.assert_array_equal(np.asarray(prev[0]), np.asarray(value))
    assert np.any(np.asarray(got.episode_starts)[:, 1:] > 0)  # episodes ended within the rollout


FEED_CHILD = """
import sys
import jax, numpy as np, puffjax
from puffjax import parallel
parallel.initialize("127.0.0.1:{port}", 2, int(sys.argv[1]))
mesh = parallel.make_mesh()
local = (np.arange(6 * 3, dtype=np.float32).reshape(6, 3) + 100 * jax.process_index())
a, b = parallel.row_feed(mesh)(local), parallel.from_local(mesh, local)
assert a.shape == b.shape == (12, 3) and a.sharding == b.sharding, (a.shape, a.sharding)
shards = lambda x: {{s.device.id: (s.index, np.asarray(s.data).tolist()) for s in x.addressable_shards}}
assert shards(a) == shards(b), (shards(a), shards(b))
print("same")
"""


def test_row_feed_places_rows_as_from_local_does_on_two_processes(tmp_path):
    """Two processes of two devices each: the global array from one copy per device holds the
    same rows on the same devices as :func:`puffjax.parallel.from_local`'s."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = textwrap.dedent(FEED_CHILD.format(port=port))
    env = forced_devices_env(2)
    outs = [open(tmp_path / f"{i}.log", "w+") for i in range(2)]
    procs = [subprocess.Popen([sys.executable, "-c", code, str(i)], stdout=outs[i], stderr=subprocess.STDOUT,
                              env=env, start_new_session=True) for i in range(2)]
    try:
        codes = [p.wait(timeout=180) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, 9)
                p.wait()
    texts = [(out.seek(0), out.read())[1] for out in outs]
    assert codes == [0, 0], texts
    assert [t.strip().splitlines()[-1] for t in texts] == ["same"] * 2, texts


def test_row_feed_of_a_one_process_mesh_is_the_host_array():
    mesh = parallel.make_mesh()
    local = np.ones((4, 2), np.float32)
    assert parallel.row_feed(mesh)(local) is local
