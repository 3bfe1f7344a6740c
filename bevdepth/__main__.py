"""Entry point of ``python -m bevdepth``."""

import sys

from bevdepth.cli import main

sys.exit(main())
