"""These models are tiny: one intra-op thread is as fast as two, and on a shared machine it does not spin-wait."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _models_run_on_one_thread(one_thread):
    yield
