"""bevlaunch: build the training image, submit BEVDepth jobs and follow them.

The launcher never imports torch.
"""

__version__ = "0.1.0"
