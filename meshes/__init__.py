"""Example meshes of meshc and their handlers: review, question answering, pipeline.

The YAML files next to this module describe the meshes; the handlers here are plain,
offline Python (no network, no Redis) so that the examples run anywhere and tests can
call them directly. Sample documents ship as package data under ``samples/``.
"""

from __future__ import annotations

from importlib.resources import files

__all__ = ["load_samples"]


def load_samples() -> dict[str, str]:
    """The sample documents, doc_id (file name without ``.md``) → text, sorted by id.

    Read through ``importlib.resources`` so that they are found in an installed wheel
    as well as in a source checkout.
    """
    folder = files(__name__).joinpath("samples")
    texts = {
        entry.name.removesuffix(".md"): entry.read_text(encoding="utf-8")
        for entry in folder.iterdir()
        if entry.name.endswith(".md")
    }
    return dict(sorted(texts.items()))
