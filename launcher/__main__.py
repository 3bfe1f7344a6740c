"""``python -m bevlaunch``."""

from bevlaunch.cli import main

main()
