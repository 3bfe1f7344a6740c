"""Training images: content-hash tags, builder detection, builds, pushes and their records.

Modules: ``context`` (what goes into an image and its hash, pure), ``builders`` (which builder
and its argv, pure), ``build`` (runs a build, subprocesses at the edge), ``records`` (pushed
digests for ``submit``), ``device_env`` (the image's device defaults). See docker/README.md.
"""

from bevlaunch.errors import BevlaunchError


class ImageError(BevlaunchError):
    """An image could not be built, found or pushed (CLI exit code 1)."""


class ImageUsageError(ImageError):
    """A build-image option is invalid (CLI exit code 2)."""

    exit_code = 2
