"""Backends run a :class:`~bevlaunch.plan.RunPlan` somewhere and report on it.

Every backend implements :class:`~bevlaunch.backends.base.Backend`; ``watch`` and the CLI only
use that interface. ``local`` runs processes on this machine; ``kubernetes`` comes later.
"""
