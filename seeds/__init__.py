"""The command registry (the single source of truth for the catalog) and its seed revisions.

``seeds.registry`` defines the vocabulary; ``seeds.generate`` writes seed revisions for its
changes (``make seed-revision``), their text rendered by ``seeds.writer``; ``seeds.check`` locks
registry and revisions together (``make check-seeds``). An offline maintainer tool: nothing here
runs at import, nothing here imports ``substrate``, and no revision imports this package.
"""
