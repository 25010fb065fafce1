"""The garbage collector of a long-running `onegrid serve`.

CPython's full collection walks every object it tracks. A process holding the frameworks, the map,
the reference caches and the compiled statements tracks about half a million, and each full
collection held its event loop for 250–370 ms (docs/BENCHMARKS.md, 2026-12-06): every work order,
reply and API answer due in that moment waited, and at 25 orders a second those 0.3 s became the
p99 of dispatch. What is built at start-up lives as long as the process, so `settle()` moves it out
of the collector's way once the process is up (gc.freeze): later collections walk only what came after.
"""

from __future__ import annotations

import gc


def settle() -> int:
    """Collect what start-up left behind, then exempt everything alive now from later collections;
    returns how many objects that is. For a server process's start only (never in tests: frozen
    objects are never freed)."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
