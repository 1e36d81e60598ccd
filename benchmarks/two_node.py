"""Scale-out and node loss, simulated: a two-node local Ray cluster (ray.cluster_utils.Cluster).

Shows where replicas land, the throughput on two nodes, then removes the worker node under load
and reports failed requests (client retries up to 4 times) and the time until the service is
whole again. Both "nodes" share this machine's cores, so no speed-up is expected.

    python -m benchmarks.two_node        -> benchmarks/results/two_node.json
"""

from __future__ import annotations

import json
import os
import threading
import time

import ray
import requests
from ray import serve
from ray.cluster_utils import Cluster
from ray.serve._private.api import serve_start
from ray.serve.schema import ServeDeploySchema

from benchmarks import load
from benchmarks.bodies import bodies
from benchmarks.report import RESULTS
from vision_core import serve_config

PORT = 8300


def config() -> dict:
    cfg = serve_config.for_host(serve_config.load(), "127.0.0.1")
    # Every simulated node is this host: one proxy, or the nodes would fight over the port.
    cfg.update(proxy_location="HeadOnly")
    cfg["http_options"]["port"] = PORT
    for dep in cfg["applications"][0]["deployments"]:
        if dep["name"] in ("Classifier_mnist", "Preprocess"):
            dep["autoscaling_config"].update(min_replicas=2, max_replicas=2)
    return cfg


def placement() -> dict[str, list[str]]:
    """Deployment -> the node (first 8 hex of its id) of each alive replica."""
    import ray._private.state as state

    out: dict[str, list[str]] = {}
    for actor in state.actors(actor_state_name="ALIVE").values():
        if actor["ActorClassName"].startswith("ServeReplica:vision:"):
            dep = actor["ActorClassName"].split(":")[-1]
            out.setdefault(dep, []).append(actor["Address"]["NodeID"][:8])
    return {k: sorted(v) for k, v in sorted(out.items())}


def wait_running(timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        app = serve.status().applications.get("vision")
        if app and app.status == "RUNNING" and all(
                d.replica_states.get("RUNNING", 0) >= (2 if n in ("Classifier_mnist", "Preprocess")
                                                       else 1)
                for n, d in app.deployments.items()):
            return
        time.sleep(0.5)
    raise TimeoutError("service not whole again")


def main() -> None:
    os.environ.update(serve_config.serve_env())  # Serve's process settings, as under `make serve`
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    worker = cluster.add_node(num_cpus=2)
    ray.init(address=cluster.address)
    try:
        schema = ServeDeploySchema.model_validate(config())
        serve_start(http_options=schema.http_options.model_dump(),
                    proxy_location=schema.proxy_location).deploy_apps(schema, _blocking=False)
        wait_running()
        url = f"http://127.0.0.1:{PORT}/mnist"
        # A canvas drawing goes through every stage (a 28x28 image would skip Preprocess).
        _, body, _, _ = bodies()["canvas"]
        nodes = {"head": cluster.head_node.node_id[:8], "worker": worker.node_id[:8]}
        before = placement()
        two = load.run(url, body, 16, 8.0).row()

        sent = failed = 0
        stop = threading.Event()

        def traffic():
            nonlocal sent, failed
            while not stop.is_set():
                sent += 1
                for attempt in range(5):
                    try:
                        if requests.post(url, data=body, timeout=15,
                                         headers={"Content-Type": "application/json"}).ok:
                            break
                    except requests.RequestException:
                        pass
                    time.sleep(0.2 * 2 ** attempt)
                else:
                    failed += 1

        threads = [threading.Thread(target=traffic) for _ in range(3)]
        for t in threads:
            t.start()
        time.sleep(2)
        start = time.monotonic()
        cluster.remove_node(worker)
        gone = nodes["worker"]
        deadline = time.monotonic() + 120
        # Serve's status lags the node's death: wait until no replica is left on it and every
        # deployment is whole again on the head.
        while time.monotonic() < deadline:
            where = placement()
            if all(gone not in v for v in where.values()) and \
                    len(where.get("Classifier_mnist", [])) == 2 and \
                    len(where.get("Preprocess", [])) == 2 and "Ingress" in where:
                break
            time.sleep(0.2)
        wait_running()
        recovery = round(time.monotonic() - start, 1)
        time.sleep(3)
        stop.set()
        for t in threads:
            t.join()
        one = load.run(url, body, 16, 8.0).row()
        result = {"nodes": nodes, "placement_two_nodes": before, "placement_after": placement(),
                  "two_nodes_c16": two, "one_node_c16": one,
                  "throughput_ratio_one_vs_two": round(one["req_s"] / two["req_s"], 2),
                  "node_loss": {"requests": sent, "failed_after_retries": failed,
                                "recovery_s": recovery}}
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "two_node.json").write_text(json.dumps(result, indent=2))
        print(json.dumps(result, indent=2))
    finally:
        serve.shutdown()
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main()
