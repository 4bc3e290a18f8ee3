"""Write env_registry.h, the list of C environments that vecenv.c includes.

    python envs_c/gen_registry.py OUTPUT_FILE

Every header in envs_c/envs/ is an environment: envs/foo.h ends with
PUFFJAX_ENV(Foo, foo), which defines foo_type (see env_type.h). The generated
file #includes each header and lists the foo_types, sorted by file name, so
puffjax.envs.names() is alphabetical.
CMake runs this script when it configures (envs_c/CMakeLists.txt), and the
plain-gcc sanitizer build runs it too (tests/test_envs_sanitize.py), so both
builds see the same registry. The output is rewritten only when its text
changes, so that nothing recompiles for nothing. Standard library only.
"""
import re
import sys
from pathlib import Path

ENVS_DIR = Path(__file__).resolve().parent / "envs"


def registry_text(envs_dir: Path = ENVS_DIR) -> str:
    names = sorted(p.stem for p in envs_dir.glob("*.h"))
    if not names:
        raise SystemExit(f"gen_registry.py: no environment headers in {envs_dir}")
    for name in names:
        # The name starts C identifiers (foo_type).
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise SystemExit(f"gen_registry.py: {envs_dir / name}.h: an environment header's name must be "
                             "lower-case letters, digits and underscores, starting with a letter")
    lines = ["/* env_registry.h - written by envs_c/gen_registry.py from the headers in",
             " * envs_c/envs/. Do not edit: add or remove a header there instead. */",
             "#ifndef PUFFJAX_ENV_REGISTRY_H",
             "#define PUFFJAX_ENV_REGISTRY_H",
             ""]
    lines += [f'#include "envs/{name}.h"' for name in names]
    lines += ["", "static const EnvType* const ENV_TYPES[] = {"]
    lines += [f"    &{name}_type," for name in names]
    lines += ["};", "", "#endif", ""]
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise SystemExit(__doc__)
    out = Path(argv[1])
    text = registry_text()
    if not out.exists() or out.read_text() != text:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)


if __name__ == "__main__":
    main(sys.argv)
