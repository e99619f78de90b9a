"""Free pages go back to the system between a game day's episodes."""

from __future__ import annotations

import sys

import psutil
import pytest

from harness.experiment.memory import release_free_memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_freed_memory_is_returned_to_the_system() -> None:
    me = psutil.Process()
    # Many small blocks (below the mmap threshold) live in the heap; freeing them leaves
    # the pages with the allocator until they are trimmed.
    blocks = [bytearray(512) for _ in range(200_000)]
    keep = blocks[-1]  # the top of the heap stays in use, so nothing shrinks by itself
    del blocks
    before = me.memory_info().rss
    assert release_free_memory()
    after = me.memory_info().rss
    assert keep and before - after > 20 * 2**20, (before, after)
