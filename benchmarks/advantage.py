"""Benchmark of the puff advantage: XLA FFI handlers vs the lax.scan reference vs NumPy.

    python benchmarks/advantage.py [--sizes 8192,16384,65536] [--horizon 64]
                                   [--repeats 50] [--bandwidth GBPS]

CPU (always): median wall time per call of the jitted FFI op (device-resident
inputs, block_until_ready), of the jitted lax.scan reference, and of a NumPy
implementation (vectorised over rows, Python loop over t).

GPU (when JAX sees a CUDA device): the CUDA handler (min(32, next_pow2(H)) lanes
per row, chosen by the handler), the reference on the GPU, and the
memory-bandwidth floor: 5 float32 arrays of S*H elements (4 inputs, 1 output)
moved once at the device's nominal bandwidth (--bandwidth in GB/s, else a table
of known devices, else a measured device copy). GPU kernel times are measured
as a chain of K dependent calls inside one jitted fori_loop (the advantages of
call k are the values of call k+1), divided by K, so Python dispatch does not
count.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from puffjax import kernels  # noqa: E402
from puffjax.advantage import puff_advantage, puff_advantage_reference  # noqa: E402

HP = dict(gamma=0.995, gae_lambda=0.90, rho_clip=1.0, c_clip=1.0)  # PufferLib defaults

# Nominal peak memory bandwidth, bytes/s, by jax device_kind substring.
KNOWN_BANDWIDTH = [
    ("H200", 4.8e12),
    ("H100 PCIe", 2.0e12),
    ("H100", 3.35e12),  # SXM (HBM3)
    ("A100-SXM4-80GB", 2.04e12),
    ("A100", 1.555e12),
]


def make_inputs(S, H, seed=0):
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(S, H)).astype(np.float32)
    r = rng.normal(size=(S, H)).astype(np.float32)
    d = (rng.random((S, H)) < 0.01).astype(np.float32)
    q = rng.uniform(0.5, 1.5, (S, H)).astype(np.float32)
    return v, r, d, q


def numpy_advantage(v, r, d, q, gamma, gae_lambda, rho_clip, c_clip):
    f32 = np.float32
    nnt = f32(1) - d[:, 1:]
    rho = np.minimum(q[:, :-1], f32(rho_clip))
    c = np.minimum(q[:, :-1], f32(c_clip))
    delta = rho * (r[:, 1:] + f32(gamma) * v[:, 1:] * nnt - v[:, :-1])
    coef = f32(gamma * gae_lambda) * c * nnt
    out = np.zeros_like(v)
    for t in range(v.shape[1] - 2, -1, -1):
        out[:, t] = delta[:, t] + coef[:, t] * out[:, t + 1]
    return out


def median_time(fn, repeats, warmup=3):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def chained_kernel_time(step, args, repeats, k=20):
    """Seconds per call of step(v, r, d, q) chained k times in one jit (v <- result)."""
    v, r, d, q = args

    @jax.jit
    def chain(v, r, d, q):
        return jax.lax.fori_loop(0, k, lambda i, v: step(v, r, d, q), v)

    return median_time(lambda: chain(v, r, d, q).block_until_ready(), repeats) / k


def fmt_ms(x):
    return "—" if x is None else f"{x * 1e3:9.3f}"


def fmt_us(x):
    return "—" if x is None else f"{x * 1e6:9.1f}"


def bench_cpu(sizes, H, repeats):
    cpu = jax.devices("cpu")[0]
    ffi = jax.jit(lambda *a: puff_advantage(*a, **HP))
    ref = jax.jit(lambda *a: puff_advantage_reference(*a, **HP))
    rows = []
    for S in sizes:
        host = make_inputs(S, H)
        args = [jax.device_put(x, cpu) for x in host]
        with jax.default_device(cpu):
            t_ffi = median_time(lambda: ffi(*args).block_until_ready(), repeats)
            t_ref = median_time(lambda: ref(*args).block_until_ready(), max(5, repeats // 5))
        t_np = median_time(lambda: numpy_advantage(*host, **HP), max(5, repeats // 5))
        err = float(np.max(np.abs(np.asarray(ffi(*args)) - numpy_advantage(*host, **HP))))
        rows.append((S, t_ffi, t_ref, t_np, err))
    print(f"\nCPU ({os.cpu_count()} cores visible, jax {jax.__version__}, H = {H}): "
          f"median ms per call")
    print(f"{'S x H':>12} | {'FFI (C++)':>9} | {'lax.scan':>9} | {'NumPy':>9} | "
          f"{'scan/FFI':>8} | {'NumPy/FFI':>9} | max|FFI-NumPy|")
    print("-" * 92)
    for S, t_ffi, t_ref, t_np, err in rows:
        print(f"{f'{S} x {H}':>12} | {fmt_ms(t_ffi)} | {fmt_ms(t_ref)} | {fmt_ms(t_np)} | "
              f"{t_ref / t_ffi:7.1f}x | {t_np / t_ffi:8.1f}x | {err:.2e}")
    return rows


def gpu_bandwidth(dev, override_gbps):
    if override_gbps:
        return override_gbps * 1e9, "--bandwidth"
    for key, bw in KNOWN_BANDWIDTH:
        if key in dev.device_kind:
            return bw, f"nominal {dev.device_kind}"
    return None, None


def measured_copy_bandwidth(dev, repeats):
    n = 64 * 1024 * 1024  # 256 MiB of float32
    x = jax.device_put(jnp.zeros((n,), jnp.float32), dev)
    f = jax.jit(lambda x: x + 1.0)
    t = median_time(lambda: f(x).block_until_ready(), repeats)
    return 2 * 4 * n / t


def bench_gpu(sizes, H, repeats, override_gbps):
    try:
        dev = jax.devices("cuda")[0]
    except RuntimeError:
        print("\nGPU: no CUDA device visible to JAX; skipped.")
        return None
    if "cuda" not in kernels.platforms(kernels.ADVANTAGE):
        print("\nGPU: puffjax._ffi was built without CUDA; skipped.")
        return None
    bw_copy = measured_copy_bandwidth(dev, repeats)
    bw, bw_src = gpu_bandwidth(dev, override_gbps)
    if bw is None:
        bw, bw_src = bw_copy, "measured copy"

    def cuda_step(v, r, d, q):  # on a CUDA device this lowers to the CUDA handler alone
        return puff_advantage(v, r, d, q, **HP)

    rows = []
    for S in sizes:
        host = make_inputs(S, H)
        args = [jax.device_put(x, dev) for x in host]
        floor = 5 * S * H * 4 / bw
        t_cuda = chained_kernel_time(cuda_step, args, repeats)
        t_ref = chained_kernel_time(
            lambda v, r, d, q: puff_advantage_reference(v, r, d, q, **HP), args,
            max(5, repeats // 5), k=5)
        f = jax.jit(lambda *a: puff_advantage(*a, **HP))
        t_call = median_time(lambda: f(*args).block_until_ready(), repeats)
        err = float(np.max(np.abs(np.asarray(f(*args)) - numpy_advantage(*host, **HP))))
        rows.append((S, floor, t_cuda, t_ref, t_call, err))
    print(f"\nGPU {dev.device_kind} (jax {jax.__version__}): microseconds per call, H = {H}; "
          f"floor = 5 x S x H x 4 B at {bw / 1e12:.2f} TB/s ({bw_src}); "
          f"measured copy {bw_copy / 1e12:.2f} TB/s")
    print(f"{'S x H':>12} | {'floor':>9} | {'CUDA':>9} | {'/floor':>6} | "
          f"{'lax.scan':>9} | {'jit call':>9} | max|CUDA-NumPy|")
    print("-" * 90)
    for S, floor, t_cuda, t_ref, t_call, err in rows:
        print(f"{f'{S} x {H}':>12} | {fmt_us(floor)} | {fmt_us(t_cuda)} | {t_cuda / floor:5.2f}x | "
              f"{fmt_us(t_ref)} | {fmt_us(t_call)} | {err:.2e}")
    print("CUDA = the handler's sub-warp group (min(32, next_pow2(H)) lanes per row, warp-shuffle "
          "scan); 'jit call' includes Python dispatch.")
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="8192,16384,65536")
    p.add_argument("--horizon", type=int, default=64)
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--bandwidth", type=float, default=None,
                   help="GPU memory bandwidth in GB/s for the floor (H100 SXM: 3350)")
    p.add_argument("--no-cpu", action="store_true")
    p.add_argument("--no-gpu", action="store_true")
    a = p.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]
    if not a.no_cpu:
        bench_cpu(sizes, a.horizon, a.repeats)
    if not a.no_gpu:
        bench_gpu(sizes, a.horizon, a.repeats, a.bandwidth)


if __name__ == "__main__":
    main()
