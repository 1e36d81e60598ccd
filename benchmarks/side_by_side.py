"""The seed, Ray's floor and the service answering in turns, seconds apart: `make bench`'s last phase.

This shared 2-core machine changes speed for minutes at a time. Measured one after the other,
as `make bench`'s first phases do (each server alone, for cold start and memory), the seed, the
floor and the service can each meet a different machine: two runs of the same code put the
canvas at 1.8x and 6.8x the floor (benchmarks/NOTES.md, row 30). Here all three run at once,
the floor as a second application of the service's own Serve instance (route prefix /floor, the
same process settings), and short wrk bursts go to each in turn, round after round. Each target
is a ratio within one round; the median over the rounds is reported.
"""

from __future__ import annotations

import statistics
import tempfile
from collections import defaultdict
from pathlib import Path

from benchmarks import wrk
from benchmarks.bodies import wrk_args
from benchmarks.servers import SEED_CMD, SEED_URL, SERVE, SERVE_URL, Server, floor_config
from vision_core import serve_config

FLOOR_PREFIX = "/floor"
# The bursts of one round, in order: (server, case, concurrency). All the rounds at c=1 run
# before any at c=32, so the one-client figures meet the replica counts the servers started with.
PHASES = ([("seed", "single", 1), ("floor", "single", 1), ("serve", "single", 1),
           ("serve", "canvas", 1)],
          [("seed", "single", 32), ("floor", "single", 32), ("serve", "single", 32)])


def combined_config(folder: Path) -> Path:
    """config/serve.yaml with Ray's floor (floor_config's application) beside the service."""
    floor = serve_config.load(floor_config(folder))["applications"][0]
    config = serve_config.for_host(serve_config.load(), "127.0.0.1")
    config["applications"].append({**floor, "route_prefix": FLOOR_PREFIX})
    path = folder / "side_by_side.yaml"
    path.write_text(serve_config.dump(config))
    return path


def ratios(rounds: list[dict]) -> dict[str, list[float]]:
    """Per round, issue 13's three load targets: `rounds` maps (server, case, c) to wrk rows."""
    out = defaultdict(list)
    for r in rounds:
        floor1 = r[("floor", "single", 1)]["p50_ms"]
        out["single_p50_minus_floor_ms"].append(r[("serve", "single", 1)]["p50_ms"] - floor1)
        out["canvas_p50_over_floor"].append(r[("serve", "canvas", 1)]["p50_ms"] / floor1)
        out["single_c32_over_seed"].append(
            r[("serve", "single", 32)]["req_s"] / r[("seed", "single", 32)]["req_s"])
    return dict(out)


def run(cases: dict, rounds: int, seconds: float, env: dict) -> dict:
    """Start the seed and the combined instance, measure PHASES `rounds` times, stop both.
    Returns every burst's wrk row and, per target, each round's ratio and their median."""
    single = cases["single"][1]
    per_round: list[dict] = [{} for _ in range(rounds)]
    with tempfile.TemporaryDirectory() as tmp:
        seed = Server(SEED_CMD, SEED_URL, ("/mnist", single))
        try:
            serve = Server([SERVE, "run", str(combined_config(Path(tmp)))],
                           SERVE_URL, ("/mnist", single), env)
            try:
                # The floor deploys after the service, which is all the probe waited for.
                serve._wait(FLOOR_PREFIX + "/mnist", single, timeout=600)
                base = {"seed": seed.url, "floor": serve.url + FLOOR_PREFIX, "serve": serve.url}
                for phase in PHASES:
                    for i in range(rounds):
                        for who, case, c in phase:
                            path, *request = cases[case]
                            send = wrk_args(*request)
                            wrk.run(base[who] + path, concurrency=c, seconds=1, **send)  # warm-up
                            row = wrk.run(base[who] + path, concurrency=c, seconds=seconds,
                                          **send).row()
                            per_round[i][(who, case, c)] = row
                            print({"round": i, "server": who, "case": case, **row}, flush=True)
            finally:
                serve.stop()
        finally:
            seed.stop()
    found = ratios(per_round)
    return {"rounds": rounds, "seconds_per_burst": seconds,
            "bursts": [{"round": i, "server": k[0], "case": k[1], **row}
                       for i, r in enumerate(per_round) for k, row in r.items()],
            "targets": {name: {"per_round": [round(v, 2) for v in values],
                               "median": round(statistics.median(values), 2)}
                        for name, values in found.items()}}
