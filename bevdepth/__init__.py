"""BEVDepth workload: the model, data, training and evaluation that run inside the container.

Importing this package (or ``bevdepth.events``) must stay cheap and must not import torch:
the launcher reads events with it.
"""

__version__ = "0.1.0"
