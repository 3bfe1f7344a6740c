"""The prepare stage's wait for rank 0 outlives the collective timeout."""

from __future__ import annotations

from datetime import timedelta

from bevdepth.runtime.prepare import prepare_timeout


def test_prepare_wait_defaults_to_a_day_and_is_configurable():
    assert prepare_timeout({}) == timedelta(days=1)
    assert prepare_timeout({"BEVDEPTH_PREPARE_TIMEOUT_S": "90"}) == timedelta(seconds=90)
