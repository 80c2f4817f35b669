"""Tooling for CI and DBAs: is a database, and the SQL that built it, what the tree says?

``schema_snapshot`` reads what the package owns from the catalogs; ``schema_files`` keeps the
committed snapshot (``make schema``); ``scratch`` builds the expected state of a revision in a
scratch database; ``drift`` compares a live database with it; ``verify`` checks a live database
against head; ``checksums`` renders a revision's SQL and its digest; ``sqllint`` is squawk on
the rendered upgrade; ``tree`` is the Alembic tree they all compare against.
"""
