"""The import layers of the package, and the rule that every lint exception says why.

Layers, lowest first (a layer imports only from those listed for it, and from itself):

    model, errors, reasons        nothing of the gateway
    config                        errors
    profiles                      model, errors, config          (pure: what a profile file means)
    stages                        + profiles, operations.counters
    policies                      + stages
    process                       model, errors, profiles, stages, policies  (the message rules)
    operations                    everything above
    pipeline                      everything above (the composition root)
    workers, cli                  anything
    dashboards (outside gateway)  errors only; the runtime never imports dashboards but from cli
"""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_BASE = {"model", "errors", "reasons"}
ALLOWED: dict[str, set[str]] = {
    "model": set(),
    "reasons": set(),
    "errors": set(),
    "config": {"errors"},
    "profiles": _BASE | {"config"},
    "stages": _BASE | {"config", "profiles", "operations.counters"},
    "policies": _BASE | {"config", "profiles", "stages"},
    "process": _BASE | {"profiles", "stages", "policies"},
    "operations": _BASE | {"config", "profiles", "stages", "policies", "process"},
    "pipeline": _BASE | {"config", "profiles", "stages", "policies", "process", "operations"},
    "dashboards": {"errors"},
}
# Known exceptions, each with its reason.
EXCEPTIONS = {
    # Loading a profile with `decode: {format: javascript}` compiles its script in the sandbox,
    # so a bad codec stops loading with the file named (imported only for such profiles).
    ("gateway/profiles/registry.py", "stages.codec"),
}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "dashboards":
        return "dashboards"
    if parts[0] != "gateway" or len(parts) == 1:
        return None
    return parts[1]


def _target(module: str) -> str:
    """`stages`, or `operations.counters` for the one named module of a layer."""
    parts = module.split(".")
    if parts[0] == "dashboards":
        return "dashboards"
    return ".".join(parts[1:3]) if module.startswith("gateway.operations.counters") else parts[1]


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


def _module_of(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_violations() -> list[str]:
    found = []
    files = [*ROOT.joinpath("gateway").rglob("*.py"), *ROOT.joinpath("dashboards").rglob("*.py")]
    for path in files:
        layer = _layer(_module_of(path))
        if layer not in ALLOWED:
            continue  # cli, workers, __main__: may import anything
        relative = str(path.relative_to(ROOT))
        for name in _imports(path):
            target_layer = _layer(name)
            if target_layer is None or target_layer == layer:
                continue
            target = _target(name)
            allowed = ALLOWED[layer]
            if target in allowed or target_layer in allowed:
                continue
            if any(relative == f and name.endswith(t) for f, t in EXCEPTIONS):
                continue
            found.append(f"{relative} ({layer}) imports {name} ({target_layer})")
    return sorted(found)


def test_imports_follow_the_layers() -> None:
    assert layer_violations() == []


def test_a_back_import_is_caught(tmp_path: Path) -> None:
    """The check itself: a profiles module importing the pipeline is reported."""
    probe = ROOT / "gateway" / "profiles" / "_layer_probe_test.py"
    probe.write_text("from gateway.pipeline import Gateway\n", encoding="utf-8")
    try:
        found = (
            "gateway/profiles/_layer_probe_test.py (profiles) imports gateway.pipeline (pipeline)"
        )
        assert found in layer_violations()
    finally:
        probe.unlink()


_SUPPRESSION = re.compile(
    r"#\s*(noqa(?::\s*[A-Z0-9]+(?:\s*,\s*[A-Z0-9]+)*)?|type:\s*ignore(?:\[[a-z0-9_,\- ]+\])?)(.*)$"
)


def unexplained_suppressions(files: list[str]) -> list[str]:
    """Lint suppressions (noqa, type-ignore comments) not followed by a reason (`  # why`)."""
    found = []
    for name in files:
        for number, line in enumerate((ROOT / name).read_text(encoding="utf-8").splitlines(), 1):
            match = _SUPPRESSION.search(line)
            if match and not re.match(r"\s*(#|[-:])\s*\S", match.group(2)):
                found.append(f"{name}:{number}: {line.strip()}")
    return found


def test_every_lint_exception_says_why() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    untracked = subprocess.run(
        ["git", "ls-files", "--others", "--exclude-standard", "*.py"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    files = [name for name in tracked + untracked if (ROOT / name).exists()]
    assert unexplained_suppressions(files) == []


def test_a_bare_noqa_is_caught(tmp_path: Path) -> None:
    probe = ROOT / "tests" / "_noqa_probe_test.py"
    noqa = "# no" + "qa: F401"  # spelled apart, or this file would hold a bare one
    probe.write_text(f"import os  {noqa}\nimport re  {noqa}  # a reason\n")
    try:
        assert unexplained_suppressions(["tests/_noqa_probe_test.py"]) == [
            f"tests/_noqa_probe_test.py:1: import os  {noqa}"
        ]
    finally:
        probe.unlink()
