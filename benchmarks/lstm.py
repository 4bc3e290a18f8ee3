"""The recurrences: the LSTM's fused CPU kernel (puffjax.lstm) against the lax.scan it replaces,
and the minGRU (puffjax.mingru: its CPU kernel where there is one) against its sequential scan,
at the same shapes.

    python benchmarks/lstm.py            # Breakout's shapes: training 512 x 64, rollout 8192 x 1
    python benchmarks/lstm.py --hidden 256 --rows 256

Prints the median time per call (forward, and forward + backward for the training shape) and
the speed-ups. The minGRU columns are the recurrence alone (its input projections, like the LSTM's,
are one matmul outside). Run it on a quiet machine: the numbers are wall-clock times.
"""
import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import puffjax.lstm as L
from puffjax.mingru import mingru, mingru_sequential


def median_ms(fn, *args, repeats):
    jax.block_until_ready(fn(*args))  # compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--rows", type=int, default=512, help="training rows (segments per minibatch)")
    parser.add_argument("--horizon", type=int, default=64)
    parser.add_argument("--rollout-rows", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    if not L.has_kernel():
        raise SystemExit("puffjax._ffi is not built: nothing to compare")
    H, rng = args.hidden, np.random.default_rng(0)
    platform = jax.devices()[0].platform
    print(f"jax {jax.__version__} on {platform}, H = {H}, median of {args.repeats}"
          + ("" if platform == "cpu" else " (no fused kernel on this platform: both columns run lax.scan)"))
    print(f"{'':>22s} {'--------- LSTM ---------':>30s}   {'-------- minGRU --------':>30s}")
    print(f"{'shape':>12s} {'pass':>9s} {'kernel ms':>10s} {'scan ms':>9s} {'speed-up':>9s}   "
          f"{'kernel ms':>10s} {'scan ms':>9s} {'speed-up':>9s}")
    for B, T in ((args.rows, args.horizon), (args.rollout_rows, 1)):
        gx = jnp.asarray(rng.normal(size=(B, T, 4 * H)), jnp.float32)
        reset = jnp.asarray(rng.random((B, T)) < 0.01)
        w = jnp.asarray(rng.normal(size=(H, 4 * H)) / np.sqrt(H), jnp.float32)
        carry = (jnp.zeros((B, H)), jnp.zeros((B, H)))
        passes = {"forward": lambda fn: jax.jit(lambda g, w: fn(g, reset, w, carry)[0])}
        if T > 1:
            passes["fwd+bwd"] = lambda fn: jax.jit(jax.grad(
                lambda g, w: fn(g, reset, w, carry)[0].sum(), argnums=(0, 1)))
        zc = jnp.asarray(rng.normal(size=(B, T, 2 * H)), jnp.float32)
        gru = {"forward": lambda fn: jax.jit(lambda zc: fn(*jnp.split(zc, 2, -1), reset, carry[0])[0])}
        if T > 1:
            gru["fwd+bwd"] = lambda fn: jax.jit(jax.grad(
                lambda zc: fn(*jnp.split(zc, 2, -1), reset, carry[0])[0].sum()))
        for name, make in passes.items():
            kernel = median_ms(make(L.lstm), gx, w, repeats=args.repeats)
            scan = median_ms(make(L.lstm_reference), gx, w, repeats=args.repeats)
            gru_kernel = median_ms(gru[name](mingru), zc, repeats=args.repeats)
            gru_scan = median_ms(gru[name](mingru_sequential), zc, repeats=args.repeats)
            print(f"{B:>7d} x {T:<3d} {name:>9s} {kernel:10.2f} {scan:9.2f} {scan / kernel:8.2f}x   "
                  f"{gru_kernel:10.2f} {gru_scan:9.2f} {gru_scan / gru_kernel:8.2f}x")


if __name__ == "__main__":
    main()
