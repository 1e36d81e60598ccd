"""Pods without Kubernetes: each Ray pod is a network namespace with an address of its own on a
private bridge, a private /tmp and /dev/shm (a mount namespace), the manifest's user and dropped
capabilities, running the operator's command. Needs root and iproute2.

Every name starts with rh<pid>, so a later run can tell (and remove) what a killed run left.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

from kuberay.rehearsal.operator import PodPlan
from vision_core.paths import ROOT

NETNS_ETC = Path("/etc/netns")  # `ip netns exec` bind-mounts /etc/netns/<ns>/hosts on /etc/hosts
CANDIDATE_SUBNETS = [f"10.253.{i}.0/24" for i in range(14, 24)]
CLAIMS_IN_POD = "/tmp/pvc"  # where a pod sees claim <name>: /tmp/pvc/<name> (see Pod.mounts)
# Inside the pod's mount namespace, as root: the claims, a private /tmp and /dev/shm, then the
# pod's user. Arguments: tmp shm-bytes uid gid setpriv-flags keep script [claim-dir claim-name]...
# `keep` is the project's folder when it lives under /tmp (a clone made with mktemp -d): it is
# bound into the private /tmp at the same path, or the pod could not see the code and the venv
# it runs (the image's equivalent is baked in).
SETUP = """set -e
tmp=$1 shm=$2 uid=$3 gid=$4 priv=$5 keep=$6 script=$7; shift 7
while [ $# -gt 1 ]; do mkdir -p "$tmp/pvc/$2"; mount --bind "$1" "$tmp/pvc/$2"; shift 2; done
if [ -n "$keep" ]; then mkdir -p "$tmp${keep#/tmp}"; mount --bind "$keep" "$tmp${keep#/tmp}"; fi
mount --rbind "$tmp" /tmp
if [ -n "$shm" ]; then mount -t tmpfs -o size="$shm" shm /dev/shm; fi
exec setpriv --reuid "$uid" --regid "$gid" $priv bash -c -- "$script"
"""
STALE = re.compile(r"^rh(\d+)-\d+$")


def _project_under_tmp() -> str:
    """The project's folder if it is below /tmp (SETUP keeps it visible in the pod), else ""."""
    root = ROOT.resolve()
    return str(root) if root.is_relative_to("/tmp") else ""


def ip(*args: str, check: bool = True) -> str:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True).stdout


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def sweep() -> list[str]:
    """Remove the namespaces, bridges and folders of earlier runs whose process is gone."""
    removed = []
    for line in ip("netns", "list").splitlines():
        name = line.split()[0]
        if (m := STALE.match(name)) and not _alive(int(m.group(1))):
            kill_all(name)
            ip("netns", "del", name, check=False)
            shutil.rmtree(NETNS_ETC / name, ignore_errors=True)
            removed.append(name)
    for link in json.loads(ip("-j", "link", "show", "type", "bridge") or "[]"):
        if (m := re.fullmatch(r"rh(\d+)b", link["ifname"])) and not _alive(int(m.group(1))):
            ip("link", "del", link["ifname"], check=False)
            removed.append(link["ifname"])
    for folder in Path("/tmp").glob("rh-*"):
        if folder.name[3:].isdigit() and not _alive(int(folder.name[3:])):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(str(folder))
    return removed


def free_subnet() -> ipaddress.IPv4Network:
    """The first candidate /24 that no route on this machine touches."""
    used = [ipaddress.ip_network(r["dst"]) for r in json.loads(ip("-j", "-4", "route") or "[]")
            if r["dst"] != "default"]
    for text in CANDIDATE_SUBNETS:
        net = ipaddress.ip_network(text)
        if not any(net.overlaps(u) for u in used):
            return net
    raise RuntimeError(f"every candidate subnet is in use: {CANDIDATE_SUBNETS}")


def kill_all(ns: str, sig: int = signal.SIGKILL) -> int:
    """Signal every process in network namespace `ns`; how many there were."""
    pids = [int(p) for p in ip("netns", "pids", ns, check=False).split()]
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    return len(pids)


class Network:
    """A bridge with a private /24 in the root namespace; the pods hang off it."""

    def __init__(self) -> None:
        self.tag = f"rh{os.getpid()}"
        self.root = Path(f"/tmp/rh-{os.getpid()}")  # short: Ray's socket paths live below
        self.subnet = free_subnet()
        self.bridge, self.gateway = f"{self.tag}b", str(self.subnet[1])
        self.names: dict[str, str] = {}  # host name -> address, for every pod's /etc/hosts
        self.pods: list[Pod] = []
        self._next = 2

    def __enter__(self) -> Network:
        self.root.mkdir(mode=0o755)
        ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "add", f"{self.gateway}/{self.subnet.prefixlen}", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for pod in self.pods:
            try:
                pod.delete()
            except Exception as err:  # noqa: BLE001 - one stubborn pod must not keep the rest
                print(f"clean-up of {pod.ns}: {err!r}")
        ip("link", "del", self.bridge, check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def claim(self, name: str, fs_group: int | None) -> Path:
        """A PersistentVolumeClaim: one folder that every pod mounting it shares, owned by the
        pod's fsGroup and group-writable, as the kubelet prepares a volume."""
        folder = self.root / "claims" / name
        if not folder.exists():
            folder.mkdir(parents=True)
            if fs_group is not None:
                os.chown(folder, 0, fs_group)
            folder.chmod(0o2775)
        return folder

    def pod(self, plan: PodPlan, kind: type[Pod] | None = None, **kwargs) -> Pod:
        """A new pod of `kind` (a process in the namespace by default; containers.ContainerPod
        runs the image), with the next address."""
        index, self._next = self._next, self._next + 1
        pod = (kind or Pod)(self, plan, index, **kwargs)
        self.pods.append(pod)
        return pod


class Pod:
    """One pod: namespace rh<pid>-<index>, address <subnet>.<index>, its command as a process."""

    def __init__(self, net: Network, plan: PodPlan, index: int, base_env: dict[str, str],
                 cwd: Path) -> None:
        self.net, self.plan, self.cwd = net, plan, cwd
        self.ns, self.ip = f"{net.tag}-{index}", str(net.subnet[index])
        self.tmp = net.root / plan.name
        self.log = net.root / f"{plan.name}.log"
        self.env = {**base_env, **plan.env}
        self.proc: subprocess.Popen | None = None
        self.started = 0.0
        veth = f"{net.tag}v{index}"
        ip("netns", "add", self.ns)
        ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", self.ns)
        ip("link", "set", veth, "master", net.bridge, "up")
        ip("-n", self.ns, "addr", "add", f"{self.ip}/{net.subnet.prefixlen}", "dev", "eth0")
        ip("-n", self.ns, "link", "set", "eth0", "up")
        ip("-n", self.ns, "link", "set", "lo", "up")
        # A default route as pods have (Ray finds its own address with it); no gateway, and the
        # host does not forward, so nothing leaves the bridge.
        ip("-n", self.ns, "route", "add", "default", "dev", "eth0")
        (NETNS_ETC / self.ns).mkdir(parents=True, exist_ok=True)
        self.hosts = {"localhost": "127.0.0.1", plan.name: self.ip, **net.names}
        (NETNS_ETC / self.ns / "hosts").write_text(
            "".join(f"{addr} {name}\n" for name, addr in self.hosts.items()))
        uid, gid = self.user()
        self.tmp.mkdir()
        os.chown(self.tmp, uid, gid)
        self.tmp.chmod(0o1777)

    def user(self) -> tuple[int, int]:
        sc = self.plan.security
        return int(sc.get("runAsUser", 0)), int(sc.get("runAsGroup", sc.get("runAsUser", 0)))

    def argv(self, script: str) -> list[str]:
        """`script` as the pod's container runs it: in its namespaces, as its user."""
        sc, (uid, gid) = self.plan.security, self.user()
        fs_group = sc.get("fsGroup")
        # The kubelet adds fsGroup to the container's groups; no other supplementary group.
        extra = [f"--groups={fs_group}" if fs_group is not None else "--clear-groups"]
        if sc.get("allowPrivilegeEscalation") is False:
            extra.append("--no-new-privs")
        if "ALL" in sc.get("capabilities", {}).get("drop", []):
            extra += ["--inh-caps=-all", "--bounding-set=-all"]
        return ["ip", "netns", "exec", self.ns, "unshare", "--mount", "--propagation", "private",
                "bash", "-c", SETUP, "pod", str(self.tmp), str(self.plan.shm_bytes or ""),
                str(uid), str(gid), " ".join(extra), _project_under_tmp(), script,
                *[x for claim in self.plan.mounts.values()
                  for x in (str(self.net.claim(claim, fs_group)), claim)]]

    def mounts(self) -> dict[str, str]:
        """{the manifest's mountPath: where this pod sees that claim}."""
        return {path: f"{CLAIMS_IN_POD}/{claim}" for path, claim in self.plan.mounts.items()}

    def on_host(self, path: str) -> Path | None:
        """Where a path the pod sees on a claim is on this host (None: not on a claim)."""
        for mount, claim in self.plan.mounts.items():
            seen = self.mounts()[mount]
            if path == seen or path.startswith(seen.rstrip("/") + "/"):
                return self.net.claim(claim, None) / path[len(seen):].lstrip("/")
        return None

    def start(self) -> None:
        """Run the pod's command (`ray start ... --block`) in the background."""
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.argv(self.plan.command), env=self.env, cwd=self.cwd,
                                         stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        self.started = time.monotonic()

    def run(self, script: str, timeout: float) -> subprocess.CompletedProcess:
        """Run `script` in the pod (as `kubectl exec` would, with the pod's environment)."""
        return subprocess.run(self.argv(script), env=self.env, cwd=self.cwd, timeout=timeout,
                              capture_output=True, text=True)

    def probe(self) -> bool:
        """The readiness probe: every check passes within the probe's timeout."""
        for check in self.plan.readiness:
            try:
                done = subprocess.run(["ip", "netns", "exec", self.ns, "bash", "-c", check],
                                      capture_output=True, timeout=self.plan.probe_timeout_s + 10)
            except subprocess.TimeoutExpired:
                return False
            if done.returncode:
                return False
        return True

    def kill(self, grace_s: float = 0.0) -> None:
        """Stop every process of the pod: SIGTERM first if given a grace period, then SIGKILL."""
        if grace_s:
            kill_all(self.ns, signal.SIGTERM)
            deadline = time.monotonic() + grace_s
            while time.monotonic() < deadline and kill_all(self.ns, 0):
                time.sleep(0.5)
        for _ in range(20):  # bounded: processes forked while we kill get the next round
            if not kill_all(self.ns):
                break
            time.sleep(0.2)
        if self.proc:
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def delete(self) -> None:
        """The pod is gone: no processes, no namespace (its veth goes with it), no files."""
        self.kill()
        ip("netns", "del", self.ns, check=False)
        shutil.rmtree(NETNS_ETC / self.ns, ignore_errors=True)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def tail(self, lines: int = 30) -> str:
        """The end of the pod's output and of its Serve controller's log, if any."""
        # Not session_latest: that link holds the path as the pod sees it (/tmp/ray/...).
        logs = [self.log, *sorted(self.tmp.glob("ray/session_2*/logs/serve/controller_*.log"))]
        return "\n".join(line for path in logs if path.exists()
                         for line in path.read_text(errors="replace").splitlines()[-lines:])
