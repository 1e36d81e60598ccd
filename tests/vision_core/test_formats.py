"""vision_core/formats.py: a file's sha256, and the version a checkpoint is served as."""

from __future__ import annotations

import hashlib

from vision_core.formats import VERSION_HEX, file_sha256, version


def test_sha256_of_a_file_larger_than_one_chunk(tmp_path) -> None:
    data = bytes(range(256)) * 10_000  # 2.5 MB: several reads
    (tmp_path / "f").write_bytes(data)
    assert file_sha256(tmp_path / "f") == hashlib.sha256(data).hexdigest()


def test_the_version_is_the_sha256s_prefix() -> None:
    sha = "0123456789abcdef" * 4
    assert version(sha) == sha[:VERSION_HEX] == "0123456789ab"
