"""Where the project lives: the one definition of its root.

Relative paths in configs (checkpoints, data) mean "relative to the project", not to whatever
directory a command was started from.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def resolve(path: str | Path) -> Path:
    """Relative paths are relative to the project root, not to the cwd."""
    path = Path(path)
    return path if path.is_absolute() else ROOT / path
