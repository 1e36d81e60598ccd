"""The import graph: serving and training stand on vision_core and never import each other.

Read from the source (every import statement, at module level or inside a function), so an
import hidden in a function counts as much as one at the top.
"""

from __future__ import annotations

import ast
import sys

from vision_core.paths import ROOT

OURS = ("vision_core", "serve_app", "training", "vision_client", "kuberay", "benchmarks",
        "container")
# Who may import whom. Benchmarks sit on top: they measure both sides and start the service.
ALLOWED = {
    "vision_core": set(),
    "serve_app": {"vision_core"},
    "training": {"vision_core"},
    "vision_client": set(),
    "kuberay": {"vision_core", "container"},  # the rehearsal's pods run the images
    "container": set(),  # `make image` runs before any venv: the standard library (and PyYAML)
    "benchmarks": {"vision_core", "serve_app", "training"},
}
# The core is small: the standard library, numpy, Pillow and PyYAML; ONNX Runtime in its loader,
# SQLAlchemy and Alembic in the feedback store that both sides use.
CORE_THIRD_PARTY = {"numpy", "PIL", "yaml", "onnxruntime", "sqlalchemy", "alembic"}


def imports(package: str) -> dict[str, set[str]]:
    """{file: the top-level names it imports}."""
    found = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


def test_each_package_imports_only_what_it_stands_on() -> None:
    wrong = {f"{file} imports {name}"
             for package, allowed in ALLOWED.items()
             for file, names in imports(package).items()
             for name in names & set(OURS) - allowed - {package}}
    assert not wrong, sorted(wrong)


def test_the_core_needs_no_torch_and_no_ray() -> None:
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    extra = {f"{file} imports {name}" for file, names in imports("vision_core").items()
             for name in names - stdlib - CORE_THIRD_PARTY - {"vision_core"}}
    assert not extra, sorted(extra)
