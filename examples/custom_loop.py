"""A training loop of your own from puffjax's public pieces: gymnax CartPole on device, one
jitted epoch (rollout scan + update) per call, the entropy bonus decayed by hand from epoch to
epoch through the traced hyperparameters, the NaN guard's flags checked, progress printed.

    python examples/custom_loop.py [total_timesteps]
"""
import sys
import time

import jax
import numpy as np

import puffjax
from puffjax.envs.jaxenv.gymnax import make
from puffjax.finite import check_record, check_update

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
cfg = puffjax.load_config("cartpole", **{"train.total_timesteps": steps})
run = puffjax.OnDevice(cfg, make("CartPole-v1"))   # init / rollout / epoch / train, each jitted
base = puffjax.Hyper.from_config(cfg.train)        # the config's values; any of them may change per call
epochs = run.geom.total_epochs

runner = run.init(jax.random.PRNGKey(0))
start, returns = time.perf_counter(), []
for epoch in range(epochs):
    hyper = base._replace(ent_coef=base.ent_coef * 10 * (1 - epoch / epochs))   # a hand-made schedule
    new, metrics = run.epoch(runner, hyper)
    metrics = jax.device_get(metrics)
    check_record(metrics["health"]["inputs"], epoch + 1)   # raises NonFiniteError naming the bad input
    check_update(metrics["health"], epoch + 1)             # ... or the bad minibatch: the old runner stays
    runner = new
    if metrics["episodes"] > 0:
        returns.append(float(metrics["env"][0]))
    if (epoch + 1) % max(1, epochs // 10) == 0 or epoch + 1 == epochs:
        recent = np.mean(returns[-20:]) if returns else float("nan")
        print(f"epoch {epoch + 1}/{epochs}  steps {(epoch + 1) * run.geom.batch_size:,}  "
              f"return {recent:.1f}  entropy {float(metrics['entropy']):.3f}  {time.perf_counter() - start:.0f}s")
print(f"Done: {epochs * run.geom.batch_size:,} steps")
