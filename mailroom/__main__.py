"""`python -m mailroom <command>`, the same as the `mailroom` command."""

from __future__ import annotations

import sys

from mailroom.cli import main

sys.exit(main())
