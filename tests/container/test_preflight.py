"""container/preflight.py: the image refuses, in one line, to start where HAProxy would crash."""

from __future__ import annotations

import copy

from container.preflight import HAPROXY_MIN_OPEN_FILES, haproxy_enabled, problems
from vision_core.serve_config import load

CONFIG = load()


def without_haproxy() -> dict:
    config = copy.deepcopy(CONFIG)
    del config["controller_options"]["runtime_env"]["env_vars"]["RAY_SERVE_ENABLE_HA_PROXY"]
    return config


def test_config_serve_yaml_turns_haproxy_on() -> None:
    assert haproxy_enabled(CONFIG)
    assert not haproxy_enabled(without_haproxy())


def test_a_hard_limit_below_haproxys_need_is_refused_with_how_to_fix_it() -> None:
    (line,) = problems(CONFIG, 1024)
    assert str(HAPROXY_MIN_OPEN_FILES) in line and "1024" in line and "--ulimit nofile=" in line


def test_enough_open_files_or_no_haproxy_pass() -> None:
    assert problems(CONFIG, HAPROXY_MIN_OPEN_FILES) == []
    assert problems(CONFIG, -1) == []  # RLIM_INFINITY
    assert problems(without_haproxy(), 1024) == []
