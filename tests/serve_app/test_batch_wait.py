"""The batcher's wait (serve_app/batch_wait.py): none for a lone client, full under load."""

import pytest

from serve_app.batch_wait import AdaptiveWait


def test_lone_requests_do_not_wait():
    assert AdaptiveWait(0.003).after(requests=1) == 0.0


def test_overlapping_requests_get_the_configured_wait():
    wait = AdaptiveWait(0.003)
    assert wait.after(requests=1) == 0.0
    assert wait.after(requests=5) == 0.003
    assert wait.after(requests=1) == 0.0  # load gone: back to no wait


def test_fixed_wait_when_adaptation_is_off():
    assert AdaptiveWait(0.003, adaptive=False).after(requests=1) == 0.003


def test_negative_wait_is_refused():
    with pytest.raises(ValueError, match=">= 0"):
        AdaptiveWait(-1)
