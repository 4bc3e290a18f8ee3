"""Your own C env out of tree: the template (examples/walker.h) builds against the installed
headers, is cached (privately, in its own subfolder, by the hash of the bytes it compiles),
steps with threads like a first-party env, and trains; compile errors show the compiler's
message."""
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest

import puffjax
from puffjax import compile_cache, envs
from puffjax.envs import custom_c

TEMPLATE = Path(__file__).resolve().parents[1] / "examples" / "walker.h"


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    if shutil.which(os.environ.get("CC") or "cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler")
    monkeypatch.setenv("PUFFJAX_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_installed_headers():
    root = Path(custom_c.include_dir())
    assert {p.name for p in (root / "puffjax").glob("*.h")} >= {"env_type.h", "rng.h", "render.h"}


def test_template_builds_once_and_steps_like_a_first_party_env(cache):
    lib = custom_c.build(str(TEMPLATE))
    assert lib.parent == cache / "c_envs" and lib.suffix == ".so"
    mtime = lib.stat().st_mtime_ns
    assert custom_c.build(str(TEMPLATE)) == lib and lib.stat().st_mtime_ns == mtime  # cached
    runs = []
    for threads in (1, 3):
        env = envs.make(str(TEMPLATE), num_envs=9, threads=threads, seed=4, length=6)
        assert env.observation_space.shape == (2,) and env.action_space.n == 3 and env.num_agents == 9
        assert env.options == {"length": 6, "max_steps": 32}
        acts = np.random.default_rng(0).integers(0, 3, (200, 9)).astype(np.int32)
        runs.append([tuple(x.copy() for x in env.step(a)) for a in acts])
        log = env.log()
        assert log["n"] > 0 and 0 < log["perf"] <= 1
        assert env.render(0).shape == (16, 96, 3)
        with pytest.raises(ValueError, match=r"actions\[2\] = 3 is out of range"):
            env.step(np.array([0, 0, 3, 0, 0, 0, 0, 0, 0], np.int32))
        with pytest.raises(TypeError, match="unknown option 'size'"):
            envs.make(str(TEMPLATE), num_envs=1, size=3)
        env.close()
    for a, b in zip(*runs):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)


def test_a_changed_header_is_rebuilt(tmp_path):
    copy = tmp_path / "walker.h"
    copy.write_text(TEMPLATE.read_text())
    first = custom_c.build(str(copy))
    copy.write_text(TEMPLATE.read_text().replace('{"length", 8,', '{"length", 5,'))
    second = custom_c.build(str(copy))
    assert first != second
    assert envs.make(str(copy), num_envs=1).options["length"] == 5


def test_an_edit_during_the_build_cannot_give_a_library_unlike_its_hash(tmp_path, monkeypatch):
    """The header changes between preprocessing (hashed) and compiling: the library cached under
    the hash still behaves as the hashed source, and the edited header gets a library of its own."""
    copy = tmp_path / "walker.h"
    original = TEMPLATE.read_text()
    edited = original.replace('{"length", 8,', '{"length", 5,')
    copy.write_text(original)
    compile_once = custom_c._compile

    def edit_then_compile(*args):
        copy.write_text(edited)
        return compile_once(*args)

    monkeypatch.setattr(custom_c, "_compile", edit_then_compile)
    hashed = custom_c.build(str(copy))
    monkeypatch.setattr(custom_c, "_compile", compile_once)
    assert copy.read_text() == edited
    assert envs.make(str(copy), num_envs=1).options["length"] == 5  # the edit: another hash, another library
    copy.write_text(original)
    assert custom_c.build(str(copy)) == hashed  # the original source: the library built while it changed
    assert envs.make(str(copy), num_envs=1).options["length"] == 8


def test_the_cache_is_private_and_apart_from_the_jax_cache(cache, monkeypatch):
    lib = custom_c.build(str(TEMPLATE))
    assert lib.parent == cache / "c_envs"
    assert stat.S_IMODE(lib.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(lib.stat().st_mode) == 0o600  # dlopen needs read permission only
    assert envs.make(str(TEMPLATE), num_envs=1).num_agents == 1  # and loads so
    assert [p.name for p in lib.parent.iterdir()] == [lib.name]  # no build leftovers
    # JAX's compilation cache: a sibling subfolder, as private
    settings = {}
    monkeypatch.setattr(compile_cache.jax.config, "update", lambda name, value: settings.update({name: value}))
    assert compile_cache.enable_compile_cache() == str(cache / "jax")
    assert settings["jax_compilation_cache_dir"] == str(cache / "jax")
    assert stat.S_IMODE((cache / "jax").stat().st_mode) == 0o700
    assert sorted(p.name for p in cache.iterdir()) == ["c_envs", "jax"]
    # a folder named explicitly is created private, or used as it is
    shared = cache.parent / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)
    assert compile_cache.enable_compile_cache(str(shared)) == str(shared)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755
    assert compile_cache.enable_compile_cache(str(cache.parent / "new")) == str(cache.parent / "new")
    assert stat.S_IMODE((cache.parent / "new").stat().st_mode) == 0o700


def test_a_cache_folder_open_to_others_is_made_private_and_anothers_is_refused(cache, monkeypatch):
    (cache / "c_envs").mkdir(parents=True)
    os.chmod(cache / "c_envs", 0o777)
    lib = custom_c.build(str(TEMPLATE))
    assert stat.S_IMODE(lib.parent.stat().st_mode) == 0o700
    with monkeypatch.context() as m:
        m.setattr(os, "geteuid", lambda: os.stat(cache).st_uid + 1)
        with pytest.raises(ValueError, match=r"cache folder .*c_envs belongs to another user"):
            custom_c.build(str(TEMPLATE))
    file = cache.parent / "a_file"
    file.write_text("")
    monkeypatch.setenv("PUFFJAX_CACHE_DIR", str(file))
    with pytest.raises(ValueError, match=r"cannot make the cache folder .*a_file"):
        custom_c.build(str(TEMPLATE))


def test_compile_errors_show_the_compilers_message(tmp_path):
    bad = tmp_path / "broken.h"
    bad.write_text(TEMPLATE.read_text().replace("Walker", "Broken").replace("walker", "broken")
                   .replace("env->position = p < 0", "env->position = undeclared_thing < 0"))
    with pytest.raises(custom_c.CompileError, match=r"broken\.h.*error.*undeclared_thing") as error:
        envs.make(str(bad), num_envs=1)
    line = 1 + TEMPLATE.read_text().split("\n").index(next(
        x for x in TEMPLATE.read_text().split("\n") if "env->position = p < 0" in x))
    assert f"broken.h:{line}:" in str(error.value)  # the header's own line
    misnamed = tmp_path / "other.h"
    misnamed.write_text(TEMPLATE.read_text())
    with pytest.raises(custom_c.CompileError, match=r"(?s)other_type.*must end with PUFFJAX_ENV\(Struct, other\)"):
        envs.make(str(misnamed), num_envs=1)
    with pytest.raises(FileNotFoundError):
        envs.make(str(tmp_path / "missing.h"), num_envs=1)


def test_an_env_without_a_field_table(tmp_path):
    """PUFFJAX_ENV_TABLES registers an env with NULL, 0 for the field table: it steps and
    snapshots like the template, and a field lookup names the empty table."""
    source = TEMPLATE.read_text()
    fields = source[source.index("/* Named pieces of the state"):source.index("/* Defines walker_type")]
    bare = tmp_path / "walker.h"
    bare.write_text(source.replace(fields, "").replace(
        "PUFFJAX_ENV(Walker, walker)", "PUFFJAX_ENV_TABLES(Walker, walker, walker_options, ENV_COUNT(walker_options), NULL, 0)"))
    runs = []
    for path in (TEMPLATE, bare):
        env = envs.make(str(path), num_envs=4, seed=2)
        acts = np.random.default_rng(0).integers(0, 3, (50, 4)).astype(np.int32)
        runs.append([x.copy() for a in acts for x in env.step(a)[:4]])
        state = env._c.get_state()
        first = env.step(acts[0])[0].copy()
        env._c.set_state(state)
        np.testing.assert_array_equal(env.step(acts[0])[0], first)
        if path == bare:
            with pytest.raises(KeyError, match=r"no field 'position' in walker; fields: \(none\)"):
                env._c.get_field(0, "position")
        env.close()
    for x, y in zip(*runs):
        np.testing.assert_array_equal(x, y)


def test_a_library_of_another_abi_is_refused(monkeypatch):
    monkeypatch.setattr(puffjax.envs.vector._envs, "ABI", 999)
    with pytest.raises(RuntimeError, match="ABI"):
        envs.make(str(TEMPLATE), num_envs=1)


def test_template_trains_from_the_command_line(tmp_path, capsys):
    from puffjax.cli import main
    run_dir = tmp_path / "run"
    code = main(["train", str(TEMPLATE), "--env.num-envs", "64", "--train.bptt-horizon", "16",
                 "--train.minibatch-size", "1024", "--train.total-timesteps", str(30 * 1024),
                 "--train.optimizer", "adam", "--train.learning-rate", "0.01", "--train.video-frames", "20",
                 "--run-dir", str(run_dir), "--dashboard", "none"])
    assert code == 0, capsys.readouterr().err
    rows = [__import__("json").loads(line) for line in open(run_dir / "metrics.jsonl")]
    length = [r["environment/episode_length"] for r in rows if "environment/episode_length" in r]
    early, late = np.mean(length[1:4]), np.mean(length[-3:])  # random walking: ~15 steps to the target
    assert len(rows) == 30 and late < early - 3, length
    assert (run_dir / "video.gif").exists()


def test_the_template_refuses_a_crafted_state():
    """A snapshot whose position lies off the line (it indexes nothing, but the header bounds it)
    is refused with the env, its index and the member named, and nothing changes."""
    env = envs.make(str(TEMPLATE), num_envs=3, seed=0)
    good = env.get_state()
    env._c.set_field(1, "position", 1000)
    crafted = env.get_state()
    other = envs.make(str(TEMPLATE), num_envs=3, seed=1)
    before = other.get_state()["envs"].copy()
    with pytest.raises(ValueError, match=r"^environment state: walker environment 1 has position out of its bounds"):
        other.set_state(crafted)
    np.testing.assert_array_equal(other.get_state()["envs"], before)
    other.set_state(good)


def test_a_header_without_a_state_check_does_not_compile(tmp_path):
    source = TEMPLATE.read_text()
    check = source[source.index("/* Before a saved state is restored"):source.index("static const EnvOption walker_options")]
    bare = tmp_path / "walker.h"
    bare.write_text(source.replace(check, ""))
    with pytest.raises(custom_c.CompileError, match=r"(?s)walker_check_state.*must define const char\* "
                                                     r"walker_check_state\(const Struct\* env\)"):
        envs.make(str(bare), num_envs=1)
