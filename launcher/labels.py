"""Names Kubernetes objects carry: label and annotation keys, and the one name sanitizer.

Our own keys live under ``bevlaunch.io/``; the others are set by Kubernetes, Volcano or Kueue
and only read or requested here.
"""

from __future__ import annotations

import re

LABEL_PREFIX = "bevlaunch.io/"
LABEL_RUN = f"{LABEL_PREFIX}run"
"""Every object of a run carries the run name: ``kubectl get all -l bevlaunch.io/run=NAME``."""
LABEL_COMPONENT = f"{LABEL_PREFIX}component"
"""``config``, ``rendezvous``, ``job`` or ``worker`` (the pods)."""

LABEL_APP_NAME = "app.kubernetes.io/name"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"

LABEL_RANK = "batch.kubernetes.io/job-completion-index"
"""The node rank of a pod of an Indexed Job: Kubernetes sets this label (GA in 1.32) and the
annotation of the same name on every pod, so a template cannot (and need not) carry it."""
ANNOTATION_RANK = LABEL_RANK

LABEL_KUEUE_QUEUE = "kueue.x-k8s.io/queue-name"
"""Kueue admits a Job created suspended with this label into the named LocalQueue."""

# A DNS-1123 label: what Job, Service and pod host names must be.
_NOT_ALLOWED = re.compile(r"[^a-z0-9-]+")
DNS1123_LABEL_MAX = 63


def sanitize_k8s_name(text: str, max_length: int = DNS1123_LABEL_MAX) -> str:
    """Turn free text into a DNS-1123 label: lowercase, ``[a-z0-9-]``, trimmed to ``max_length``.

    Runs of other characters become one ``-``; leading and trailing dashes go. Used for names
    bevlaunch derives (never to silently repair a name the user wrote: the spec rejects those).

    Raises:
        ValueError: nothing usable is left (e.g. ``"__"``).
    """
    name = _NOT_ALLOWED.sub("-", text.lower()).strip("-")[:max_length].rstrip("-")
    if not name:
        raise ValueError(f"{text!r} has no characters usable in a Kubernetes name")
    return name
