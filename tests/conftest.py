"""Shared fixtures: configs for short training runs that write into a temporary directory, and
a helper that trains one to the end.

The test session keeps its own puffjax cache folder (``PUFFJAX_CACHE_DIR``, inherited by the
processes tests start) with JAX's compilation cache switched on in it, for this process and,
through JAX's environment variables, for the processes tests start: the many short runs that
build the same programs compile each once, in every worker when the tests run in parallel
(pytest-xdist). The folder starts empty and is removed at the end,
so nothing carries over from one session to the next or into the user's own cache.
"""
import os
import shutil
import tempfile

import pytest

# pytest-xdist's workers inherit the controller's environment: they share its folder, and only
# the process that made the folder removes it.
_OWNER = "PUFFJAX_TEST_CACHE" not in os.environ
if _OWNER:
    os.environ["PUFFJAX_TEST_CACHE"] = tempfile.mkdtemp(prefix="puffjax-test-cache-")
_CACHE = os.environ["PUFFJAX_TEST_CACHE"]
os.environ["PUFFJAX_CACHE_DIR"] = _CACHE
# The tests check behaviour, not speed: XLA's CPU backend compiles them without LLVM's
# optimisations, which takes a quarter less CPU time over the suite. The HLO passes (fusion,
# the collectives' combining that tests count) run as always; users and benchmarks compile at
# XLA's default level. Set before JAX starts its backend; the processes tests start inherit it.
_TEST_XLA_FLAG = "--xla_backend_optimization_level=0"
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_TEST_XLA_FLAG}".strip()
# for the processes tests start: the same folder, and the same threshold as enable_compile_cache
os.environ["JAX_COMPILATION_CACHE_DIR"] = os.path.join(_CACHE, "jax")
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.1"

import puffjax  # noqa: E402

puffjax.enable_compile_cache()


def pytest_unconfigure(config):
    if _OWNER:
        shutil.rmtree(_CACHE, ignore_errors=True)

# A tiny run: 8 environments x 8 steps, one epoch of one minibatch (any of it can be overridden).
TINY = {"env.num_envs": 8, "train.bptt_horizon": 8, "train.minibatch_size": 64, "train.total_timesteps": 64}


@pytest.fixture(scope="session")
def shipped_config(tmp_path_factory):
    """``shipped_config(env="cartpole", **overrides)``: the shipped config of ``env`` with
    ``overrides`` (as in :func:`puffjax.load_config`), writing its runs into a fresh temporary
    directory, with no rollout videos unless overridden."""
    def make(env: str = "cartpole", **overrides) -> puffjax.Config:
        defaults = {"train.data_dir": str(tmp_path_factory.mktemp("runs")), "train.video_frames": 0}
        return puffjax.load_config(env, **{**defaults, **overrides})
    return make


@pytest.fixture(scope="session")
def tiny_config(shipped_config):
    """``tiny_config(env="cartpole", **overrides)``: :func:`shipped_config` with the geometry of
    :data:`TINY` under ``overrides``: a run of a second or two."""
    def make(env: str = "cartpole", **overrides) -> puffjax.Config:
        return shipped_config(env, **{**TINY, **overrides})
    return make


@pytest.fixture(scope="session")
def train_run():
    """``train_run(cfg, **trainer_kwargs) -> (trainer, history)``: a :class:`puffjax.Trainer`
    without dashboard, trained to the end and closed."""
    def run(cfg: puffjax.Config, **kw):
        trainer = puffjax.Trainer(cfg, dashboard="none", **kw)
        try:
            history = trainer.train()
        finally:
            trainer.close()
        return trainer, history
    return run
