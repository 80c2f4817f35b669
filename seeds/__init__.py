"""The command registry (the single source of truth for the catalog) and its seed revisions.

``seeds.registry`` defines the vocabulary; ``seeds.generate`` writes seed revisions for its
changes (``make seed-revision``); ``seeds.check`` locks registry, revisions and catalog together
(``make check-seeds``). Nothing here runs at import, and no revision imports this package.
"""
