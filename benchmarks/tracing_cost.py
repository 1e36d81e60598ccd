"""What Ray Serve's OpenTelemetry tracing shows and costs for this service (docs/monitoring.md).

One local Ray session runs the service twice: `vision` as configured, then `traced`, deployed with
`tracing_config` enabled so that only its replicas (started after the change) trace. Single-image
requests alternate between the two, each with a W3C `traceparent`; then the spans Ray's default
file exporter wrote are read back.

    python -m benchmarks.tracing_cost [--requests 300] [--ratio 1.0] [--no-traceparent]
        -> benchmarks/results/tracing-*.json
"""

from __future__ import annotations

import argparse
import collections
import copy
import json
import statistics
import time
from pathlib import Path

import ray
import requests
from ray import serve
from ray.serve._private.api import serve_start
from ray.serve.schema import ServeDeploySchema

from benchmarks.bodies import bodies
from benchmarks.report import RESULTS
from vision_core import serve_config

PORT = 8310
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = {"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"}  # flags 01: "sampled"


def deploy(config: dict, app: str, timeout: float = 180) -> None:
    schema = ServeDeploySchema.model_validate(config)
    serve_start(http_options=schema.http_options.model_dump(),
                proxy_location=schema.proxy_location).deploy_apps(schema, _blocking=False)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = serve.status().applications.get(app)
        if status and status.status == "RUNNING":
            return
        time.sleep(0.5)
    raise TimeoutError(f"{app} did not start")


def spans(session: Path) -> list[dict]:
    """Every span in the exporter's files: concatenated, pretty-printed JSON objects."""
    found, decoder = [], json.JSONDecoder()
    for path in sorted((session / "logs" / "serve" / "spans").glob("*")):
        text, i = path.read_text(), 0
        while True:
            while i < len(text) and text[i].isspace():
                i += 1
            if i == len(text):
                break
            span, i = decoder.raw_decode(text, i)
            found.append(span)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="per app")
    parser.add_argument("--ratio", type=float, default=1.0, help="tracing sampling_ratio")
    # Sampling is parent-based: a request whose traceparent says "sampled" is always traced, so
    # --ratio only matters for requests sent without one.
    parser.add_argument("--no-traceparent", action="store_true",
                        help="send no traceparent header (then --ratio decides)")
    args = parser.parse_args()
    base = serve_config.for_host(serve_config.load(), "127.0.0.1")
    base["http_options"]["port"] = PORT
    ray.init(include_dashboard=False, log_to_driver=False)
    session = Path(ray._private.worker._global_node.get_session_dir_path())
    try:
        deploy(base, "vision")
        traced = copy.deepcopy(base)
        app = copy.deepcopy(base["applications"][0])
        app.update(name="traced", route_prefix="/traced")
        traced["applications"].append(app)
        traced["tracing_config"] = {"enabled": True, "sampling_ratio": args.ratio}
        deploy(traced, "traced")
        # A canvas drawing goes through every stage (a 28x28 image would skip Preprocess).
        _, body, _, _ = bodies()["canvas"]
        paths = {"plain": f"http://127.0.0.1:{PORT}/mnist",
                 "traced": f"http://127.0.0.1:{PORT}/traced/mnist"}
        latency: dict[str, list[float]] = {"plain": [], "traced": []}
        headers = {"Content-Type": "application/json",
                   **({} if args.no_traceparent else TRACEPARENT)}
        for i in range(20 + args.requests):
            for name in (("plain", "traced") if i % 2 else ("traced", "plain")):
                start = time.perf_counter()
                answer = requests.post(paths[name], data=body, headers=headers, timeout=30)
                if i >= 20:  # the first 20 warm both up
                    latency[name].append((time.perf_counter() - start) * 1000)
                answer.raise_for_status()
        time.sleep(2)  # the exporter writes synchronously; let the last spans land
        found = spans(session)
    finally:
        serve.shutdown()
        ray.shutdown()
    traces = collections.Counter(s["context"]["trace_id"] for s in found)
    row = {"requests_per_app": args.requests, "sampling_ratio": args.ratio,
           "traceparent_sent": not args.no_traceparent}
    for name, values in latency.items():
        values.sort()
        row[f"{name}_median_ms"] = round(statistics.median(values), 2)
        row[f"{name}_p95_ms"] = round(values[int(0.95 * len(values))], 2)
    row.update(median_ratio=round(row["traced_median_ms"] / row["plain_median_ms"], 3),
               p95_ratio=round(row["traced_p95_ms"] / row["plain_p95_ms"], 3),
               spans=len(found), traces=len(traces),
               spans_with_client_trace_id=traces.get(f"0x{TRACE_ID}", 0),
               span_names=sorted({s["name"] for s in found}))
    print(json.dumps(row, indent=2))
    name = f"tracing-ratio-{args.ratio}{'-no-traceparent' if args.no_traceparent else ''}.json"
    (RESULTS / name).write_text(json.dumps(row, indent=2) + "\n")


if __name__ == "__main__":
    main()
