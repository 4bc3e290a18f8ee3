"""Training on a JAX environment as pure jitted functions: the rollout is a ``lax.scan`` over
:func:`puffjax.envs.jaxenv.protocol.vec_step`, the update is :func:`puffjax.update.make_update`'s
epoch, and a whole run is one function of a key (PureJaxRL's ``make_train``)::

    train = puffjax.make_train(cfg, env)             # env: a JaxEnv or puffjax.envs.make("gymnax:...")
    runner, metrics = jax.jit(jax.vmap(train))(jax.random.split(key, 16))   # 16 seeds, one call

``train(key, hyper=None)``: ``hyper`` (a :class:`puffjax.update.Hyper`) replaces the config's
hyperparameters, and may be vmapped over (e.g. several learning rates in one call). The
per-epoch pieces are :class:`OnDevice`'s ``init`` and ``epoch``, for a loop of your own.

The rollout writes the same :class:`puffjax.buffer.Batch` as the host rollout
(:func:`puffjax.rollout.policy_step` makes both): agent i's j-th horizon of an epoch is row
``j * N + i`` of the device's N agents, rewards clipped to ``±train.reward_clip``, truncations bootstrapped with
``gamma`` times the last value, the recurrent carry zeroed at every segment start. With
``train.normalize_obs`` / ``train.normalize_reward`` the rollout standardises observations and
scales rewards as the host rollout does (:func:`puffjax.normalize.rollout_step`, with the
statistics of the epochs before it) and merges its own steps' moments in after it, combined over
the mesh (:func:`puffjax.normalize.update`). Every function
runs under ``shard_map`` over the mesh (:mod:`puffjax.parallel`; one device is a mesh of one):
each device steps its own block of environments and holds their rows, as the trainer does.
"""
from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

from . import finite, normalize, parallel
from .buffer import Batch
from .envs.jaxenv.protocol import VecState, log_means, vec_log_names, vec_reset, vec_step
from .envs.spaces import observation_layout
from .geometry import geometry
from .models import policy_from_config
from .optim import make_optimizer
from .rollout import policy_step
from .update import Hyper, TrainState, make_update, minibatch_unroll


class Runner(NamedTuple):
    """Everything a run carries from one epoch to the next (a pytree of arrays).

    ``train``: parameters and optimizer state (replicated over the mesh); ``env``: the
    environments (rows over the mesh); ``rewards``, ``terminals``, ``truncations``: what arrived
    with ``env.obs`` (rows); ``prev_value``: each agent's value of its previous observation (rows);
    ``rollout_key``, ``env_key``, ``train_key``: the policy's, the environments' and the update's
    random streams; ``epoch``: epochs done (int32). With ``train.normalize_obs`` or
    ``train.normalize_reward``: ``returns``, each agent's running discounted return (rows), and
    ``stats``, the running :class:`puffjax.normalize.Stats` (replicated); None otherwise."""
    train: TrainState
    env: VecState
    rewards: jax.Array
    terminals: jax.Array
    truncations: jax.Array
    prev_value: jax.Array
    rollout_key: jax.Array
    env_key: jax.Array
    train_key: jax.Array
    epoch: jax.Array
    returns: jax.Array | None
    stats: normalize.Stats | None


def _inner_env(env):
    """The :class:`JaxEnv` of ``env``: itself, or the ``.env`` of a ``JaxVecEnv``."""
    return env if hasattr(env, "reset") and not hasattr(env, "num_agents") else env.env


@dataclasses.dataclass(frozen=True, eq=False)
class OnDevice:
    """A config's training run on a JAX environment as jitted functions (see the module docstring).

    ``cfg``: a :class:`puffjax.Config` (its ``env.num_envs`` environments, policy, batch geometry
    and hyperparameters; ``env.name`` is not read); ``env``: a :class:`JaxEnv` or a ``JaxVecEnv``
    (its ``.env``); ``mesh``: default :func:`puffjax.parallel.make_mesh` of ``train.devices``.

    Methods (each jitted, ``hyper`` a :class:`Hyper` or None for the config's values):
    ``init(key, hyper) -> Runner``; ``epoch(runner, hyper) -> (runner, metrics)``: one rollout
    and one update; ``train(key, hyper) -> (runner, metrics)``: ``init`` and
    ``geom.total_epochs`` epochs, ``metrics`` stacked per epoch. ``metrics``: the update's
    losses (:data:`puffjax.update.LOSS_KEYS`), ``env`` (the means of :attr:`log_names` over the
    episodes finished in the epoch, zeros when none) and ``episodes`` (their number), and
    ``health``: the non-finite guard's flags (``inputs``: one
    :func:`puffjax.finite.record` per device of the rollout's observations and rewards;
    ``bad_minibatch``, ``bad_terms``, ``params_finite``: the update's, for
    :func:`puffjax.finite.check_update`), empty when ``train.check_finite`` is false.
    ``stats0``: the normalisation statistics a run starts from (no samples), None when the
    config normalises neither observations nor rewards."""
    cfg: Any
    env: Any
    mesh: Any = None

    def __post_init__(self):
        t = self.cfg.train
        object.__setattr__(self, "env", _inner_env(self.env))
        mesh = self.mesh if self.mesh is not None else parallel.make_mesh(t.devices)
        object.__setattr__(self, "mesh", mesh)
        agents = self.cfg.env.num_envs * self.env.agents_per_env
        if self.env.agents_per_env != 1:
            raise ValueError(f"OnDevice: a JAX environment with {self.env.agents_per_env} agents per environment; "
                             f"only single-agent environments train on device")
        object.__setattr__(self, "stats0", normalize.initial_stats(self.env.observation_space, t)
                           if t.normalize_obs or t.normalize_reward else None)
        object.__setattr__(self, "geom", geometry(t, agents, mesh.size))
        object.__setattr__(self, "policy", policy_from_config(self.cfg.policy, self.env.observation_space,
                                                              self.env.action_space))
        object.__setattr__(self, "hyper", Hyper.from_config(t))
        object.__setattr__(self, "log_names", vec_log_names(self.env))
        object.__setattr__(self, "_update", make_update(self.policy, self.geom, t.check_finite,
                                                             minibatch_unroll(self.policy, mesh),
                                                             t.recompute_advantage, t.shuffle))
        object.__setattr__(self, "_jitted", {})

    # -- the pure pieces, run on one device's block under shard_map ---------------------------
    def tx(self, hyper):
        """The optimizer with ``hyper.learning_rate`` (:func:`puffjax.make_optimizer`)."""
        return make_optimizer(self.cfg.train, self.geom.total_updates, learning_rate=hyper.learning_rate)

    def _init(self, key, hyper):
        n = self.cfg.env.num_envs // parallel.local_devices(self.mesh)
        init_key, rollout_key, train_key, env_key = jax.random.split(key, 4)
        params = self.policy._init(init_key)
        env_state = vec_reset(self.env, parallel.device_key(env_key), n)
        zeros = jnp.zeros(n, jnp.float32)
        no = jnp.zeros(n, bool)
        return Runner(TrainState(params, self.tx(hyper).init(params)), env_state, zeros, no, no, zeros,
                      rollout_key, jax.random.fold_in(env_key, 1), train_key, jnp.int32(0),
                      None if self.stats0 is None else zeros, self.stats0)

    def _rollout(self, runner, hyper):
        """One epoch's rollout on this device: ``(runner, batch, record)``, the runner's
        normalisation statistics updated with the rollout's steps."""
        t = self.cfg.train
        g, check = self.geom, t.check_finite
        n = runner.prev_value.shape[0]
        first = jax.lax.axis_index(parallel.AXIS) * n
        ids = first + jnp.arange(n)
        params = runner.train.params
        carry0 = self.policy.initial_carry(n)
        layout = observation_layout(self.env.observation_space)

        live = jnp.ones(n, bool)
        stats = runner.stats

        def step(c, s):
            env_state, rew, term, trunc, prev_value, carry, key, env_key, seen, ret, acc = c
            seen = finite.record(seen, s, env_state.obs, rew, first) if check else seen
            obs = env_state.obs
            if stats is not None:
                obs, rew, ret, acc = normalize.rollout_step(stats, acc, ret, obs, rew, term | trunc, live,
                                                            hyper.gamma, t.normalize_obs, t.normalize_reward,
                                                            t.obs_clip)
            col, carry, key, action = policy_step(self.policy, hyper.gamma, params, carry, key, obs,
                                                  rew, term, trunc, live, prev_value,
                                                  s % g.horizon == 0, ids, t.reward_clip)
            env_key, k = jax.random.split(env_key)
            env_state, rew, term, trunc = vec_step(self.env, parallel.device_key(k), env_state, action)
            return (env_state, rew, term, trunc, col.values, carry, key, env_key, seen, ret, acc), col

        c0 = (runner.env, runner.rewards, runner.terminals, runner.truncations, runner.prev_value, carry0,
              runner.rollout_key, runner.env_key, jnp.asarray(finite.clean_record()), runner.returns, self.stats0)
        (env_state, rew, term, trunc, prev_value, _, key, env_key, seen, ret, acc), cols = jax.lax.scan(
            step, c0, jnp.arange(g.rows_per_agent * g.horizon))

        def rows(x):  # [R * H, n, ...] (step-major) -> [R * n, H, ...]: row j * n + i
            x = x.reshape(g.rows_per_agent, g.horizon, n, *x.shape[2:])
            return jnp.swapaxes(x, 1, 2).reshape(g.rows_per_agent * n, g.horizon, *x.shape[3:])

        batch = Batch(*(rows(x) for x in cols))
        batch = batch._replace(obs=batch.obs.astype(layout.dtype))
        runner = runner._replace(env=env_state, rewards=rew, terminals=term, truncations=trunc,
                                 prev_value=prev_value, rollout_key=key, env_key=env_key, returns=ret,
                                 stats=None if stats is None else normalize.update(stats, acc, parallel.AXIS))
        return runner, batch, seen

    def _rollout_gathered(self, runner, hyper):
        runner, batch, seen = self._rollout(runner, hyper)
        return runner, batch, jax.lax.all_gather(seen, parallel.AXIS)

    def _epoch(self, runner, hyper):
        runner, batch, seen = self._rollout(runner, hyper)
        key = jax.random.fold_in(runner.train_key, runner.epoch)
        state, losses, health = self._update(hyper, self.tx(hyper), runner.train, batch, key, runner.epoch)
        if health:
            health = dict(health, inputs=jax.lax.all_gather(seen, parallel.AXIS))
        env = runner.env
        total = env._replace(log_sum=jax.lax.psum(env.log_sum, parallel.AXIS),
                             log_count=jax.lax.psum(env.log_count, parallel.AXIS))
        means, count = log_means(total)
        env = env._replace(log_sum=jnp.zeros_like(env.log_sum), log_count=jnp.zeros_like(env.log_count))
        runner = runner._replace(train=state, env=env, epoch=runner.epoch + 1)
        return runner, dict(losses, env=means, episodes=count, health=health)

    def _train(self, key, hyper):
        runner = self._init(key, hyper)
        return jax.lax.scan(lambda r, _: self._epoch(r, hyper), runner, None, length=self.geom.total_epochs)

    # -- jitted over the mesh --------------------------------------------------------------------
    def runner_specs(self, runner) -> Runner:
        """The mesh layout of a :class:`Runner`: environments' arrays and returns by rows, the
        rest replicated."""
        rows = P(parallel.AXIS)
        env = runner.env
        env_specs = VecState(jax.tree.map(lambda _: rows, env.env), rows, rows, rows, P(), P())
        return Runner(jax.tree.map(lambda _: P(), runner.train), env_specs, rows, rows, rows, rows,
                      P(), P(), P(), P(), jax.tree.map(lambda _: rows, runner.returns),
                      jax.tree.map(lambda _: P(), runner.stats))

    def _sharded(self, fn, hyper, in_spec, out_spec):
        """``fn(x, hyper)`` jitted under shard_map, cached per function and kind of ``hyper``:
        None compiles the config's values in as constants, a :class:`Hyper` is passed traced.
        ``in_spec``/``out_spec``: "runner" for the Runner's layout, or a PartitionSpec."""
        traced = hyper is not None
        if (fn, traced) not in self._jitted:
            structure = jax.shard_map(lambda k: self._init(k, self.hyper), mesh=self.mesh, in_specs=P(),
                                      out_specs=P(), check_vma=False)  # shapes of one device's block
            specs = self.runner_specs(jax.eval_shape(structure, jax.random.PRNGKey(0)))
            resolve = lambda spec: specs if isinstance(spec, str) else spec
            in_specs, out_specs = resolve(in_spec), jax.tree.map(resolve, out_spec, is_leaf=lambda x: isinstance(x, str))
            body = fn if traced else (lambda x: fn(x, self.hyper))
            self._jitted[(fn, traced)] = jax.jit(jax.shard_map(
                body, mesh=self.mesh, in_specs=(in_specs, P()) if traced else (in_specs,), out_specs=out_specs,
                check_vma=False))
        f = self._jitted[(fn, traced)]
        if not traced:
            return f
        hyper = Hyper(*(jnp.asarray(v, jnp.float32) for v in hyper))
        return lambda x: f(x, hyper)

    def init(self, key, hyper: Hyper | None = None) -> Runner:
        """A new run drawn from ``key``: fresh parameters, optimizer and environments."""
        return self._sharded(self._init, hyper, P(), "runner")(key)

    def rollout(self, runner: Runner, hyper: Hyper | None = None):
        """One epoch's rollout with ``runner``'s parameters: ``(runner, batch, record)``, the
        :class:`puffjax.buffer.Batch` sharded by rows and the non-finite record of each device
        stacked (see :func:`puffjax.finite.check_record`)."""
        return self._sharded(self._rollout_gathered, hyper, "runner", ("runner", P(parallel.AXIS), P()))(runner)

    def epoch(self, runner: Runner, hyper: Hyper | None = None):
        """One epoch, rollout and update: ``(runner, metrics)``."""
        return self._sharded(self._epoch, hyper, "runner", ("runner", P()))(runner)

    def train(self, key, hyper: Hyper | None = None):
        """A whole run: :meth:`init` and ``geom.total_epochs`` epochs, ``(runner, metrics per epoch)``."""
        return self._sharded(self._train, hyper, P(), ("runner", P()))(key)


def make_train(cfg, env, mesh=None):
    """``train(key, hyper=None) -> (runner, metrics)``: a whole run of ``cfg`` on the JAX
    environment ``env`` as one jitted function (:meth:`OnDevice.train`); ``jax.vmap`` it over
    keys for several seeds, and over a :class:`puffjax.update.Hyper` of arrays for several
    hyperparameters."""
    return OnDevice(cfg, env, mesh).train
