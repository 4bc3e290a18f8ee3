"""One small all-reduce between processes on localhost: its time and CPU cost, with gloo's
network thread at its usual priority and lowered (``puffjax.parallel.initialize(gloo_nice=...)``).

    python benchmarks/allreduce.py                      # 2 processes, each on its own core
    python benchmarks/allreduce.py --floats 100000 --iters 500 --no-pin

Each process holds one CPU device; a jitted ``psum`` over the mesh of both sums a float32 vector
of ``--floats`` numbers (CartPole's update sends about 5,000 per minibatch). Prints, per
niceness, the milliseconds per all-reduce when every call is waited for ("blocking") and when
``--iters`` calls are queued back to back ("chained"), and the CPU milliseconds each all-reduce
costs the two processes together.
"""
import argparse
import json
import textwrap

from scaling import _free_port, _run_processes

CHILD = """
import json, resource, sys, time
import jax, numpy as np, puffjax
from jax.sharding import PartitionSpec as P
puffjax.parallel.initialize("127.0.0.1:{port}", {processes}, int(sys.argv[1]), gloo_nice={nice})
mesh = puffjax.parallel.make_mesh()
psum = jax.jit(jax.shard_map(lambda x: jax.lax.psum(x, "data"), mesh=mesh, in_specs=P("data"), out_specs=P("data")))
x = puffjax.parallel.from_local(mesh, np.ones((1, {floats}), np.float32))
for _ in range(20):
    x = psum(x).block_until_ready()
use = lambda: sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
cpu, start = use(), time.perf_counter()
for _ in range({iters}):
    x = psum(x).block_until_ready()
blocking, cpu = time.perf_counter() - start, use() - cpu
start = time.perf_counter()
for _ in range({iters}):
    x = psum(x)
x.block_until_ready()
print(json.dumps({{"blocking": blocking, "chained": time.perf_counter() - start, "cpu": cpu}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--floats", type=int, default=5000)
    parser.add_argument("--iters", type=int, default=300)
    parser.add_argument("--nice", type=int, nargs="+", default=[0, 19], help="gloo_nice values to compare")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="let the processes share every core")
    args = parser.parse_args()
    print(f"{args.processes} processes{', one core each (taskset)' if args.pin else ''}, psum of {args.floats:,} "
          f"float32, {args.iters} calls")
    print(f"{'gloo_nice':>9s} {'blocking ms':>12s} {'chained ms':>11s} {'CPU ms':>7s}")
    for nice in args.nice:
        code = textwrap.dedent(CHILD.format(port=_free_port(), processes=args.processes, nice=nice,
                                            floats=args.floats, iters=args.iters))
        rs = _run_processes(code, args.processes, args.pin, 600)
        ms = lambda k: 1e3 * max(r[k] for r in rs) / args.iters
        print(f"{nice:9d} {ms('blocking'):12.3f} {ms('chained'):11.3f} "
              f"{1e3 * sum(r['cpu'] for r in rs) / args.iters:7.3f}")


if __name__ == "__main__":
    main()
