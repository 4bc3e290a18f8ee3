"""Train Breakout with the shipped config (two-layer MLP, 4096 agents, 30M steps; about 5 minutes
on 2 CPU cores, mean perf 0.9 after 3 to 3.5). PufferLib 3.0's own config (LSTM, 8192 agents,
90M steps) is `breakout_lstm`: `puffjax train breakout_lstm`.

    python examples/train_breakout.py                                   # the full run
    python examples/train_breakout.py --train.total-timesteps 5_000_000 # a shorter one

Any config field can be overridden as --<section>.<field> VALUE. The run directory
(metrics.jsonl, checkpoints/, config.json) is printed at the start and the end.
"""
import sys

import puffjax

puffjax.keep_freed_memory()  # reuse freed memory (glibc): XLA's CPU buffers stop page-faulting
puffjax.enable_compile_cache()  # a second run loads the compiled programs from ~/.cache/puffjax
cfg = puffjax.load_config("breakout", **puffjax.parse_overrides(sys.argv[1:]))
trainer = puffjax.Trainer(cfg)
print(f"Training Breakout: {trainer.num_params:,} parameters, {trainer.geom.total_epochs} epochs "
      f"of {trainer.geom.batch_size:,} steps, run directory {trainer.run_dir}")
best = 0.0
for log in trainer.train_iter():
    best = max(best, log.get("environment/perf", 0.0))
trainer.close()
print(f"Done: {trainer.global_step:,} steps in {trainer.uptime / 60:.1f} min, "
      f"best mean perf {best:.3f}, last score {trainer.last_env_log.get('score', float('nan')):.1f}")
print(f"Checkpoint: {trainer.last_checkpoint}")
