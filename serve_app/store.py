"""Rollout state that outlives any replica: which checkpoint each classifier slot serves, what the
gate said of each candidate, and each model's rollout. Kept in the GCS's key-value store: every
replica of the application reads the same values, a restarted replica finds them again, and with
GCS fault tolerance (Redis) they survive the head pod too.

Keys are scoped by application, so two copies of the app on one cluster (the tests run several)
keep separate rollouts. Outside a Ray worker (unit tests) a process-local dict stands in.
"""

from __future__ import annotations

import json

NAMESPACE = "vision_ai"
STABLE, CANDIDATE = "stable", "candidate"  # the two classifier slots of a model


class _MemoryKV:
    def __init__(self) -> None:
        self._data: dict[str, bytes] = {}

    def get(self, key: str) -> bytes | None:
        return self._data.get(key)

    def put(self, key: str, value: bytes) -> None:
        self._data[key] = value

    def delete(self, key: str) -> None:
        self._data.pop(key, None)


class _GcsKV:
    def get(self, key: str) -> bytes | None:
        from ray.experimental.internal_kv import _internal_kv_get

        return _internal_kv_get(key, namespace=NAMESPACE)

    def put(self, key: str, value: bytes) -> None:
        from ray.experimental.internal_kv import _internal_kv_put

        _internal_kv_put(key, value, overwrite=True, namespace=NAMESPACE)

    def delete(self, key: str) -> None:
        from ray.experimental.internal_kv import _internal_kv_del

        _internal_kv_del(key, namespace=NAMESPACE)


def _backend():
    import ray

    return _GcsKV() if ray.is_initialized() else _MemoryKV()


def app_name() -> str:
    """The Serve application this replica belongs to ("local" outside Serve)."""
    from ray import serve

    try:
        return serve.get_replica_context().app_name
    except Exception:  # not in a replica: a unit test, a script
        return "local"


class Store:
    """JSON values under `<app>/<key>`."""

    def __init__(self, app: str, backend=None):
        self._prefix, self._kv = f"{app}/", backend or _backend()

    def get(self, key: str) -> dict | None:
        raw = self._kv.get(self._prefix + key)
        return None if raw is None else json.loads(raw)

    def put(self, key: str, value: dict) -> None:
        self._kv.put(self._prefix + key, json.dumps(value).encode())

    def delete(self, key: str) -> None:
        self._kv.delete(self._prefix + key)


def slot(model: str, role: str) -> str:
    """The key of what a classifier slot ("stable" or "candidate") is assigned to serve."""
    return f"assign/{model}/{role}"


def gate(model: str, sha256: str) -> str:
    """The key of the gate's result for one candidate checkpoint."""
    return f"gate/{model}/{sha256}"


def rollout(model: str) -> str:
    """The key of a model's rollout (rollout.py)."""
    return f"rollout/{model}"
