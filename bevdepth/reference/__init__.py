"""The ``reference`` workload: the published Ascend recipe, run and translated into our events.

Runs inside the ``npu-reference`` image (docker/README.md). ``agent`` starts upstream BEVDepth's
experiment script per stage; ``logparse`` turns its output into events (pure); ``env`` gives
the script the environment pytorch-lightning 1.6.5 needs (pure); ``recipe`` holds the script's
arguments; ``checkpoints`` and ``workdir`` find and place its files. Nothing here imports
upstream's code: it only ever runs in a child process (docs/REFERENCE.md).
"""
