"""The package's shape: data flows down (no import cycles), no hidden process-wide state."""
import ast
import os
import subprocess
import sys
import textwrap

import pytest

import puffjax

PACKAGE = os.path.dirname(puffjax.__file__)


def _module_imports() -> dict[str, set[str]]:
    """puffjax module -> the puffjax modules it imports (anywhere in the file, functions too)."""
    graph = {}
    for root, _, files in os.walk(PACKAGE):
        for f in files:
            if not f.endswith(".py"):
                continue
            path = os.path.join(root, f)
            rel = os.path.relpath(path, os.path.dirname(PACKAGE))[:-3].replace(os.sep, ".")
            name = rel[: -len(".__init__")] if rel.endswith(".__init__") else rel
            package = name if f == "__init__.py" else name.rpartition(".")[0]
            deps = set()
            for node in ast.walk(ast.parse(open(path).read())):
                if isinstance(node, ast.ImportFrom):
                    base = node.module or ""
                    if node.level:
                        parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                        base = ".".join(parts + ([base] if base else []))
                    if base.startswith("puffjax"):
                        for alias in node.names:
                            sub = f"{base}.{alias.name}"
                            deps.add(sub if os.path.exists(os.path.join(os.path.dirname(PACKAGE), *sub.split(".")) + ".py")
                                     else base)
                elif isinstance(node, ast.Import):
                    deps |= {a.name for a in node.names if a.name.startswith("puffjax")}
            graph[name] = deps - {name}
    return graph


def test_no_import_cycles():
    graph = _module_imports()
    assert "puffjax.trainer" in graph and "puffjax.buffer" in graph["puffjax.rollout"]
    done, stack = set(), []

    def visit(m):
        if m in stack:
            pytest.fail("import cycle: " + " -> ".join(stack[stack.index(m):] + [m]))
        if m in done or m not in graph:
            return
        stack.append(m)
        for d in graph[m]:
            if d != "puffjax":  # a submodule importing its own package's __init__ is not a cycle
                visit(d)
        stack.pop()
        done.add(m)

    for m in graph:
        if m != "puffjax":
            visit(m)


def test_data_flows_down():
    """The rollout writes the buffer and the update reads it; neither knows the trainer."""
    graph = _module_imports()
    assert "puffjax.update" not in graph["puffjax.rollout"]
    for m in ("puffjax.rollout", "puffjax.update", "puffjax.buffer", "puffjax.evaluate", "puffjax.models"):
        assert "puffjax.trainer" not in graph[m], m


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_building_a_trainer_leaves_malloc_alone(tmp_path):
    """Only keep_freed_memory() changes glibc's settings: a Trainer on its own does not."""
    probe = textwrap.dedent(f"""
        import ctypes, ctypes.util, puffjax
        t = puffjax.Trainer(puffjax.load_config("cartpole", **{{"env.num_envs": 8, "train.bptt_horizon": 8,
            "train.minibatch_size": 64, "train.total_timesteps": 64, "train.data_dir": {str(tmp_path)!r}}}),
            dashboard="none")
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
        libc.sbrk.restype, libc.sbrk.argtypes = ctypes.c_void_p, [ctypes.c_ssize_t]
        def heap_block():
            block = libc.malloc(64 << 20)
            below = block < libc.sbrk(0)
            libc.free.argtypes = [ctypes.c_void_p]
            libc.free(block)
            return below
        before = heap_block()
        puffjax.keep_freed_memory()
        print(before, heap_block())
    """)
    p = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    if p.stdout.split() == ["False", "False"]:
        pytest.skip("not glibc")
    assert p.stdout.split() == ["False", "True"]  # mmap'd by default; from the heap only when asked


def test_evaluate_policy_cache_is_bounded(tmp_path):
    """evaluate keeps one rebuilt policy per (policy config, spaces), and at most _MAX_POLICIES."""
    import gymnasium as gym
    evaluate = sys.modules["puffjax.evaluate"]  # the module (puffjax.evaluate is also the function)
    trainer = puffjax.Trainer(puffjax.load_config("cartpole", **{
        "env.num_envs": 8, "train.bptt_horizon": 8, "train.minibatch_size": 64, "train.total_timesteps": 64,
        "train.data_dir": str(tmp_path), "train.video_frames": 0}), dashboard="none")
    ckpt = trainer.save()
    trainer.close()
    for n in range(2, 2 + evaluate._MAX_POLICIES + 3):  # other action spaces: other policies
        with pytest.raises(ValueError, match="different environment or policy"):
            evaluate.load_policy(ckpt, trainer.env.observation_space, gym.spaces.Discrete(n + 1))
    assert len(evaluate._POLICIES) == evaluate._MAX_POLICIES
    evaluate.load_policy(ckpt, trainer.env.observation_space, trainer.env.action_space)
    assert len(evaluate._POLICIES) == evaluate._MAX_POLICIES
