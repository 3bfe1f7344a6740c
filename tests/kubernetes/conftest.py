"""Fixtures of the Kubernetes tests: an emulated API server and the backend connected to it.

Everything about the emulator lives in ``k8s_emulator.py``; tests get a :class:`Cluster` (the
server, and the test's hands as controllers and kubelets) and a backend that reached it the way
a user's would: through a kubeconfig file named by ``KUBECONFIG``.
"""

from __future__ import annotations

import pytest
from k8s_emulator import Cluster

from bevlaunch.backends.kubernetes import KubernetesBackend
from bevlaunch.spec import spec_from_dict

# Fast enough for tests; the backend's defaults are for real clusters.
POLL_S = 0.02


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    server = Cluster(tmp_path)
    monkeypatch.setenv("KUBECONFIG", str(server.kubeconfig))
    monkeypatch.setenv("BEVLAUNCH_K8S_POLL_S", str(POLL_S))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    yield server
    server.close()


@pytest.fixture
def backend(cluster):
    return KubernetesBackend(poll_s=POLL_S, read_timeout_s=5.0)


@pytest.fixture
def make_spec():
    """Builds a Kubernetes spec (1 node x 8 NPUs, PVC dataset and outputs) with changes merged."""
    return _make_spec


def _make_spec(name: str = "demo", **changes):
    """A Kubernetes spec (1 node x 8 NPUs, PVC dataset and outputs) with ``changes`` merged."""
    data = {
        "name": name,
        "image": "registry.example.com/bevdepth:0.1.0",
        "backend": "kubernetes",
        "data": {"pvc": {"claim": "nuscenes"}},
        "output": {"pvc": {"claim": "bevdepth-runs"}},
        "resources": {"memory": "512Gi"},
    }
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return spec_from_dict(data)
