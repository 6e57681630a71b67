"""A deliberately broken example mesh (``broken_review.yaml``) that ``meshc test`` fails.

It looks like a small review mesh and runs fine, which is the point: its two bugs
only show under property tests. ``stamp`` numbers the notes it writes with a counter,
so the same task reviewed twice (a retry, a reclaimed message) gives two different
results although the agent claims to be deterministic; ``collect`` merges the lanes in
the order their partials arrived, so the same three partials give different digests.
``sample`` is random too, but says so (``deterministic: false``), which is allowed.
"""
