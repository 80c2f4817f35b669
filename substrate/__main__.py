"""``python -m substrate``: the ``substrate`` command."""

from __future__ import annotations

import sys

from substrate.cli import main

sys.exit(main())
