"""The docs stay true to the repository: every command, path and link they show still exists.

Ray runs its doc snippets as tests so that a stale example fails the build; this is the cheap
part of that (no Ray): `make` targets, repository paths, `python -m` modules and markdown links.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from tests.helpers import SHOWN_URL, curl_examples
from vision_core.paths import ROOT

DOC_GLOBS = ("README.md", "docs/**/*.md", "benchmarks/README.md", "benchmarks/NOTES.md",
             "kuberay/README.md")
DOCS = sorted({p for pattern in DOC_GLOBS for p in ROOT.glob(pattern)})

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
# Inline code may wrap onto the next line of its paragraph, never across a blank line.
INLINE_CODE = re.compile(r"`((?:[^`\n]|\n(?![ \t]*\n))+)`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^()\s]+)(?:\s+\"[^\"]*\")?\)")
MAKE = re.compile(r"(?:^|[\s;&|(])make\s+((?:[A-Z_]+=\S*\s+)*)([a-z][\w-]*)", re.M)
PYTHON_M = re.compile(r"python[\d.]*\s+-m\s+([A-Za-z_][\w.]*)")


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def code_of(text: str) -> list[str]:
    """Fenced blocks and inline code spans: where commands and paths are written."""
    blocks = [m.group(0) for m in FENCE.finditer(text)]
    prose = FENCE.sub("", text)
    return blocks + INLINE_CODE.findall(prose)


def links_of(text: str) -> list[str]:
    """Markdown link targets outside code blocks (inline code may show link syntax too)."""
    prose = INLINE_CODE.sub("", FENCE.sub("", text))
    return LINK.findall(prose)


def top_folders() -> list[str]:
    """The repository's own top-level folders: paths under them are claims about this repo.

    Folders the .gitignore excludes (data/, runs/, ...) exist only on some machines.
    """
    ignored = {line.strip().strip("/") for line in (ROOT / ".gitignore").read_text().splitlines()}
    return sorted(d.name for d in ROOT.iterdir()
                  if d.is_dir() and not d.name.startswith((".", "_")) and d.name not in ignored)


def makefile_targets() -> set[str]:
    targets = set()
    for line in (ROOT / "Makefile").read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-/$() ]+?)\s*:(?!=)", line)
        if m and not line.startswith(("\t", "#")):
            targets.update(m.group(1).split())
    return targets


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link shows its text
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    result = set()
    for line in FENCE.sub("", path.read_text()).splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        base = slug(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        result.add(base if n == 0 else f"{base}-{n}")
    return result


def named_paths(text: str, folders: list[str]) -> set[str]:
    """Repository paths named in code: `config/serve.yaml`, `tests/golden/...png`, `docs/`."""
    start = "|".join(re.escape(f) for f in folders)
    pattern = re.compile(rf"(?<![\w./~$-])((?:{start})/[\w./*{{}}-]*)")
    found = set()
    for code in code_of(text):
        # A Helm chart is named repo/chart (`kuberay/kuberay-operator`), not a path.
        code = "\n".join(line for line in code.splitlines() if "helm " not in line)
        for path in pattern.findall(code):
            # An f-string's {field} stands for any part of a name: a glob then.
            found.add(re.sub(r"\{[^}]*\}", "*", path).rstrip(".,:;"))
    return found


def exists(path: str) -> bool:
    return any(ROOT.glob(path)) if "*" in path else (ROOT / path).exists()


def test_the_docs_are_found():
    names = {rel(p) for p in DOCS}
    assert {"README.md", "docs/api.md", "benchmarks/README.md", "kuberay/README.md"} <= names


@pytest.mark.parametrize("doc", DOCS, ids=rel)
def test_make_targets_exist(doc: Path):
    targets = makefile_targets()
    named = {m.group(2) for code in code_of(doc.read_text()) for m in MAKE.finditer(code)}
    assert named <= targets, f"{rel(doc)} names make targets the Makefile lacks: {named - targets}"


@pytest.mark.parametrize("doc", DOCS, ids=rel)
def test_repository_paths_exist(doc: Path):
    missing = sorted(p for p in named_paths(doc.read_text(), top_folders()) if not exists(p))
    assert not missing, f"{rel(doc)} names paths that do not exist: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=rel)
def test_python_modules_import(doc: Path):
    modules = {m for code in code_of(doc.read_text()) for m in PYTHON_M.findall(code)}
    missing = sorted(m for m in modules if importlib.util.find_spec(m) is None)
    assert not missing, f"{rel(doc)} runs modules that cannot be found: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=rel)
def test_relative_links_resolve(doc: Path):
    broken = []
    for target in links_of(doc.read_text()):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        linked = (doc.parent / file_part).resolve() if file_part else doc
        if not linked.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target} (no heading makes #{anchor})")
    assert not broken, f"{rel(doc)} has broken links: {broken}"


# The examples against the running service: each curl command shown with its answer is run
# against the session's service, and must answer with the keys (and labels, error codes) shown.

def shape(value):
    """What an answer promises: its keys all the way down, its labels and error codes."""
    if isinstance(value, dict):
        return {k: (v if k in ("label", "code") else shape(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value] if value and isinstance(value[0], dict) else "list"
    return type(value).__name__ if not isinstance(value, int | float) else "number"


CURL_DOCS = [p for p in DOCS if curl_examples(p)]


def test_curl_examples_are_found():
    assert {rel(p) for p in CURL_DOCS} >= {"README.md", "docs/api.md"}


@pytest.mark.ray
@pytest.mark.parametrize("doc", CURL_DOCS, ids=rel)
def test_curl_examples_answer_as_shown(doc: Path, serve_url: str):
    import json
    import subprocess

    for command, shown in curl_examples(doc):
        run = subprocess.run(["bash", "-c", command.replace(SHOWN_URL, serve_url)], cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, f"{command}\n{run.stderr[-500:]}"
        assert shape(json.loads(run.stdout)) == shape(json.loads(shown)), \
            f"{rel(doc)}: {command}\nanswered {run.stdout[:300]}"
