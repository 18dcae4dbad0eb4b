"""Allocator tuning of `genphys train` (genphys.train.runtime)."""

from __future__ import annotations

import sys

import pytest

from genphys.train.runtime import tune_allocator


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt is Linux-only")
def test_tune_allocator_applies_on_glibc_and_respects_opt_outs(monkeypatch):
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not a glibc system")
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    monkeypatch.delenv("GENPHYS_TUNE_MALLOC", raising=False)
    assert tune_allocator() is True
    monkeypatch.setenv("GENPHYS_TUNE_MALLOC", "0")
    assert tune_allocator() is False
    monkeypatch.delenv("GENPHYS_TUNE_MALLOC")
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")  # the user's own setting wins
    assert tune_allocator() is False


def test_tune_allocator_is_a_no_op_off_linux(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    assert tune_allocator() is False
