"""The trainer's pieces on a CUDA GPU (marked `gpu`; they skip elsewhere): the CUDA advantage
inside the sharded programs, the recurrent policy's scan, the overlapped rollout and a short
training run with a checkpoint that a CPU loads."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

import puffjax
from puffjax import parallel


def _has_cuda() -> bool:
    try:
        return bool(jax.devices("cuda"))
    except RuntimeError:
        return False


pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not _has_cuda(), reason="no CUDA device")]
HP = dict(gamma=0.99, gae_lambda=0.95, rho_clip=1.0, c_clip=1.0)


def test_cuda_advantage_per_shard_equals_the_reference():
    mesh = parallel.make_mesh()
    assert mesh.devices.flat[0].platform == "gpu"
    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    s = 64 * mesh.size
    v, r, q = (jax.random.normal(k, (s, 64)) for k in keys[:3])
    d = (jax.random.uniform(keys[3], (s, 64)) < 0.05).astype(jnp.float32)
    sharded = jax.jit(jax.shard_map(lambda *a: puffjax.puff_advantage(*a, **HP), mesh=mesh, check_vma=False,
                                    in_specs=P("data"), out_specs=P("data")))
    got = sharded(v, r, d, jnp.exp(0.2 * q))
    want = puffjax.puff_advantage_reference(v, r, d, jnp.exp(0.2 * q), **HP)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-5)
    assert "puffjax_puff_advantage" in sharded.lower(v, r, d, q).as_text()


def test_recurrent_training_on_the_gpu_and_its_checkpoint_on_the_cpu(tmp_path):
    cfg = puffjax.load_config("memory", **{"env.num_envs": 256, "train.minibatch_size": 4096,
                                           "train.total_timesteps": 3 * 256 * 64, "train.video_frames": 0,
                                           "train.data_dir": str(tmp_path)})
    trainer = puffjax.Trainer(cfg, dashboard="none")
    assert trainer.mesh.devices.flat[0].platform == "gpu" and trainer.groups == 2
    history = trainer.train()
    trainer.close()
    assert len(history) == 3 and all(np.isfinite(h["losses/policy_loss"]) for h in history)
    with jax.default_device(jax.devices("cpu")[0]):
        result = puffjax.evaluate(trainer.run_dir, episodes=2)
    assert len(result.episodes) >= 2
