"""The embedded PostgreSQL that demos, tests and benchmarks run on (``substrate db``).

``server`` installs and runs it; ``cli`` is its command line. Nothing here is needed to deploy.
"""
