"""Tiny models on a shared 2-core machine run with one intra-op thread: with two, each op's hand-off between
threads cost more than the op whenever other processes held the cores (measured 10-100× slower).
Test modules import the fixture (`from one_thread import one_thread`) to apply it to their tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
