"""The operator's client of the head's dashboard (utils/dashboardclient in KubeRay v1.7.0): the
Serve REST API with the `x-ray-authorization: Bearer <token>` header, and the Jobs API."""

from __future__ import annotations

import time

import requests

from kuberay.rehearsal.operator import SERVE_POLL_S

SERVE_PATH = "/api/serve/applications/"


class DeployFailed(RuntimeError):
    """An application reached DEPLOY_FAILED: its message says why."""


class Dashboard:
    def __init__(self, url: str, token: str | None) -> None:
        self.url, self.token = url, token
        self.http = requests.Session()
        self.http.trust_env = False  # straight to the pod: never through a proxy from the env

    def _headers(self) -> dict[str, str]:
        return {"x-ray-authorization": f"Bearer {self.token}"} if self.token else {}

    def put_config(self, body: bytes) -> None:
        """UpdateDeployments: PUT the Serve config; any non-2xx is an error."""
        answer = self.http.put(self.url + SERVE_PATH, data=body, timeout=30,
                               headers={"Content-Type": "application/json", **self._headers()})
        if not 200 <= answer.status_code <= 299:
            raise RuntimeError(f"UpdateDeployments: {answer.status_code} {answer.text[:500]}")

    def details(self) -> dict:
        """GetServeDetails: the declarative applications, their deployments and replicas."""
        answer = self.http.get(self.url + SERVE_PATH, params={"api_type": "declarative"},
                               headers=self._headers(), timeout=30)
        answer.raise_for_status()
        return answer.json()

    def status_without_token(self, path: str) -> int:
        return self.http.get(self.url + path, timeout=30).status_code

    def wait_running(self, deadline_s: float, done=lambda details: True) -> dict:
        """Poll every 2 s as the operator does until every application is RUNNING (and `done`
        holds); fail fast with the application's message on DEPLOY_FAILED."""
        deadline, last = time.monotonic() + deadline_s, "no answer yet"
        while time.monotonic() < deadline:
            try:
                details = self.details()
            except requests.RequestException as err:  # the dashboard may still be starting
                last = repr(err)
            else:
                apps = details.get("applications") or {}
                failed = {n: a.get("message") for n, a in apps.items()
                          if a["status"] == "DEPLOY_FAILED"}
                if failed:
                    raise DeployFailed(f"DEPLOY_FAILED: {failed}")
                if apps and all(a["status"] == "RUNNING" for a in apps.values()) and done(details):
                    return details
                last = {n: a["status"] for n, a in apps.items()} or "no application"
            time.sleep(SERVE_POLL_S)
        raise TimeoutError(f"Serve not RUNNING after {deadline_s:.0f} s: {last}")

    def job(self, job_id: str) -> dict:
        answer = self.http.get(f"{self.url}/api/jobs/{job_id}", headers=self._headers(),
                               timeout=30)
        answer.raise_for_status()
        return answer.json()
