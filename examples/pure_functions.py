"""The pure pieces of puffjax, without the trainer: a C env, the puff advantage, the HL-Gauss
target, the clipped policy loss and the LSTM recurrence."""
import jax, jax.numpy as jnp, numpy as np
from puffjax import puff_advantage, value_head, losses
from puffjax.envs import make
from puffjax.lstm import lstm

env = make("breakout", num_envs=1024, seed=0)           # C envs over zero-copy NumPy buffers
obs, rewards, terminals, truncations = env.step(np.random.randint(0, 3, 1024, dtype=np.int32))

S, H = 256, 64                                           # [segments, horizon] float32
values, rewards, ratio = (jax.random.normal(k, (S, H)) for k in jax.random.split(jax.random.key(0), 3))
terminals = (jax.random.uniform(jax.random.key(1), (S, H)) < 0.02).astype(jnp.float32)
adv = jax.jit(lambda v, r, d, p: puff_advantage(v, r, d, jnp.exp(0.1 * p), gamma=0.99, gae_lambda=0.95,
                                                rho_clip=1.0, c_clip=1.0))(values, rewards, terminals, ratio)

support = value_head.make_support(-10.0, 10.0, 101)  # HL-Gauss value head, pure functions
target = value_head.hl_gauss_target(adv + values, support)      # [S, H, 101], rows sum to 1
pg = losses.clipped_policy_loss(losses.normalize(adv), jnp.exp(0.1 * ratio), clip_coef=0.2)

w_h = jax.random.normal(jax.random.key(2), (128, 512)) / 16  # LSTM recurrence: fused kernel on CPU
gates_x = jax.random.normal(jax.random.key(3), (S, H, 512))  # x @ W_x + b for all H steps
hs, (c, h) = lstm(gates_x, terminals > 0, w_h, (jnp.zeros((S, 128)), jnp.zeros((S, 128))))
print("advantages", adv.shape, "HL-Gauss target", target.shape, "policy loss", float(pg), "LSTM states", hs.shape)
