"""Analysing a mesh leaves the cyclic GC as it found it.

The GC is off during an analysis; at the end, what the analysis made is moved to the
oldest generation (a freeze and an unfreeze), unless the caller has frozen objects
of its own, which must stay frozen.
"""

from __future__ import annotations

import gc

from corpus import ROOT
from meshc.api import analyze_text

TEXT = (ROOT / "meshes" / "doc_review.yaml").read_text(encoding="utf-8")


def test_the_gc_is_on_again_and_the_analysis_is_old() -> None:
    assert gc.isenabled()
    analysis = analyze_text(TEXT)
    assert analysis.ok
    assert gc.isenabled() and gc.get_freeze_count() == 0
    assert any(o is analysis.core for o in gc.get_objects(generation=2))


def test_a_disabled_gc_stays_disabled() -> None:
    gc.disable()
    try:
        assert analyze_text(TEXT).ok
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_objects_the_caller_froze_stay_frozen() -> None:
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        assert frozen > 0
        assert analyze_text(TEXT).ok
        assert gc.get_freeze_count() == frozen and gc.isenabled()
    finally:
        gc.unfreeze()
