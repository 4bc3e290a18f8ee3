"""Atari env steps/s: ale-py's raw game, one preprocessed game (puffjax.envs.atari), and the
vector env of ``--envs`` games stepped here (workers 0) and in worker processes.

    python benchmarks/atari.py                           # atari:Breakout, 8 games, workers 0 1 2
    python benchmarks/atari.py --game atari:ALE/Pong-v5 --workers 0 2 4

Steps are agent steps (each 4 frames with the standard frame skip). Random actions. CPU seconds of
this process are printed beside wall time (worker processes' CPU is not in them).
"""
import argparse
import time

import ale_py
import gymnasium
import numpy as np

from puffjax import envs
from puffjax.envs import atari


def rate(step, steps: int) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - t0), time.process_time() - c0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--game", default="atari:Breakout")
    parser.add_argument("--envs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=2000, help="agent steps per game for each measurement")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    game = atari.game_id(args.game)

    gymnasium.register_envs(ale_py)
    raw = gymnasium.make(game, frameskip=4, repeat_action_probability=0.0)  # ale-py's own frame skip
    raw.reset(seed=0)
    n = raw.action_space.n

    def raw_step():
        if any(raw.step(int(rng.integers(n)))[2:4]):
            raw.reset()

    sps, cpu = rate(raw_step, args.steps)
    print(f"{game} ale-py, frameskip 4, no preprocessing: {sps:8,.0f} steps/s ({cpu:.1f} CPU s)")
    one = atari.make_game(game)
    one.reset(seed=0)

    def one_step():
        if any(one.step(int(rng.integers(n)))[2:4]):
            one.reset()

    sps, cpu = rate(one_step, args.steps)
    print(f"{game} one preprocessed game: {sps:8,.0f} steps/s ({cpu:.1f} CPU s)")
    for workers in args.workers:
        vec = envs.make(args.game, num_envs=args.envs, seed=0, workers=workers)
        vec.reset()
        actions = rng.integers(n, size=(args.steps // 4, args.envs)).astype(np.int32)
        it = iter(actions)
        sps, cpu = rate(lambda: vec.step(next(it)), len(actions))
        print(f"{args.game} x {args.envs}, workers {workers}: {sps * args.envs:8,.0f} steps/s ({cpu:.1f} CPU s here)",
              flush=True)
        vec.close()


if __name__ == "__main__":
    main()
