"""Training and evaluation runtime: ``python -m bevdepth run|train|eval|bench --config FILE``.

One module per job: ``config`` (the resolved run config), ``environment`` (rank and rendezvous
from the environment, pure), ``agent`` (one rank per device in node mode), ``runner`` (stages,
process group, errors and exit codes), ``train`` / ``evaluate`` / ``bench`` / ``prepare`` (the
stages), ``lightning_module`` / ``datamodule`` / ``trainer`` (Lightning pieces),
``checkpoints``, ``submission`` (nuScenes format and devkit scoring), ``results`` and ``plots``.
See docs/RUNTIME.md.
"""
