"""Pods as containers of the project's images, the kubelet's part: each pod's command runs in a
container of the image its manifest names, joined to the pod's network namespace (pods.Pod makes
it: the address on the bridge, /etc/hosts), with the pod's user, fsGroup, capabilities,
no-new-privileges, CPU and memory limits, /dev/shm and claims. Needs podman: docker cannot join a
network namespace by its path.

Containers are named after their pod's namespace (rh<pid>-<index>), so a later run can tell, and
remove, what a killed run left.
"""

from __future__ import annotations

import re
import subprocess
import time

from container.engine import Engine, find
from kuberay.rehearsal.operator import PodPlan, quantity, quantity_value
from kuberay.rehearsal.pods import Network, Pod, _alive
from vision_core.paths import ROOT

STALE = re.compile(r"^rh(\d+)-\d+(-init-\d+)?$")


class ContainerPod(Pod):
    """One pod whose processes run in a container; the namespace and folders as pods.Pod."""

    def __init__(self, net: Network, plan: PodPlan, index: int, engine: Engine) -> None:
        super().__init__(net, plan, index, base_env={}, cwd=ROOT)
        self.engine = engine
        self.env = dict(plan.env)  # the image's ENV applies; the pod's env comes on top
        self.env_file = net.root / f"{plan.name}.env"  # the token: not on a command line
        self.env_file.touch(mode=0o600)
        self.env_file.write_text("".join(f"{k}={v}\n" for k, v in self.env.items()))
        self._inits = 0

    def _flags(self, main: bool) -> list[str]:
        """What the kubelet gives the pod's containers; `main`: the Ray container itself, whose
        /tmp is the pod's folder on the host (so its logs outlive it, as `kubectl logs` does)."""
        sc, (uid, gid) = self.plan.security, self.user()
        flags = ["--network", f"ns:/run/netns/{self.ns}", "--hostname", self.plan.name,
                 "--user", f"{uid}:{gid}", "--env-file", str(self.env_file),
                 "--no-healthcheck"]  # the kubelet ignores an image's HEALTHCHECK
        flags += [x for name, addr in self.hosts.items() if name != "localhost"
                  for x in ("--add-host", f"{name}:{addr}")]
        if sc.get("fsGroup") is not None:
            flags += ["--group-add", str(sc["fsGroup"])]
        if sc.get("allowPrivilegeEscalation") is False:
            flags += ["--security-opt", "no-new-privileges"]
        if "ALL" in sc.get("capabilities", {}).get("drop", []):
            flags += ["--cap-drop", "ALL"]
        if "memory" in self.plan.limits:  # no swap, as on a Kubernetes node
            memory = str(quantity_value(self.plan.limits["memory"]))
            flags += ["--memory", memory, "--memory-swap", memory]
        if "cpu" in self.plan.limits:  # a CFS quota, as the kubelet sets it
            flags += ["--cpus", f"{float(quantity(self.plan.limits['cpu'])):g}"]
        if self.plan.shm_bytes:
            flags += ["--shm-size", str(self.plan.shm_bytes)]
        for path, claim in self.plan.mounts.items():
            flags += ["-v", f"{self.net.claim(claim, sc.get('fsGroup'))}:{path}"]
        if main:
            flags += ["-v", f"{self.tmp}:/tmp"]
        return flags

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """`<engine> run` in the foreground, so the process lives exactly as long as the pod."""
        argv = self.engine.run_argv("--name", self.ns, *self._flags(main=True), self.plan.image,
                                    *self.plan.shell, self.plan.command)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        self.started = time.monotonic()

    def run(self, script: str, timeout: float) -> subprocess.CompletedProcess:
        """`kubectl exec` once the pod runs; before that, as an init container: a container of
        the same image in the pod's namespace (the engine ends it after `timeout`)."""
        if self.running():
            argv = [*self.engine.argv, "exec", self.ns, *self.plan.shell, script]
        else:
            self._inits += 1
            argv = self.engine.run_argv("--rm", "--name", f"{self.ns}-init-{self._inits}",
                                        "--timeout", str(int(timeout)), *self._flags(main=False),
                                        self.plan.image, *self.plan.shell, script)
        return subprocess.run(argv, timeout=timeout + 30, capture_output=True, text=True)

    def probe(self) -> bool:
        """The readiness probe, run in the container as the kubelet runs an exec probe."""
        for check in self.plan.readiness:
            if not self.running():
                return False
            try:
                done = self.engine("exec", self.ns, "bash", "-c", check, check=False,
                                   timeout=self.plan.probe_timeout_s + 10)
            except subprocess.TimeoutExpired:
                return False
            if done.returncode:
                return False
        return True

    def kill(self, grace_s: float = 0.0) -> None:
        """SIGTERM and `grace_s` to stop, then SIGKILL (`kill` alone: SIGKILL at once)."""
        if grace_s:
            self.engine("stop", "-t", str(int(grace_s)), self.ns, check=False,
                        timeout=grace_s + 60)
        self.engine("kill", self.ns, check=False, timeout=60)
        if self.proc:
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def delete(self) -> None:
        self.engine("rm", "-f", "-t", "0", self.ns, check=False, timeout=120)
        super().delete()
        self.env_file.unlink(missing_ok=True)

    def mounts(self) -> dict[str, str]:
        """Claims are mounted at the manifest's own mountPaths."""
        return {path: path for path in self.plan.mounts}


def left(prefix: str) -> list[str]:
    """Containers whose name starts with `prefix`, wherever an engine runs here."""
    engine, _ = find()
    if engine is None:
        return []
    return [n for n in engine("ps", "-a", "--format", "{{.Names}}").stdout.split()
            if n.startswith(prefix)]


def sweep(engine: Engine) -> list[str]:
    """Remove the containers of earlier runs whose process is gone."""
    names = engine("ps", "-a", "--format", "{{.Names}}").stdout.split()
    stale = [n for n in names if (m := STALE.match(n)) and not _alive(int(m.group(1)))]
    for name in stale:
        engine("rm", "-f", "-t", "0", name, check=False, timeout=120)
    return stale

