"""Copy config/serve.yaml into the RayService's serveConfigV2 (`make sync-kuberay`).

serveConfigV2 is config/serve.yaml verbatim except for `host: 0.0.0.0`, so that pods are
reachable on their IP; tests/kuberay fail when the two drift apart.
"""

from __future__ import annotations

import re
import sys

from training.paths import ROOT

SERVICE = ROOT / "kuberay" / "ray-service.yaml"
HOST = r"\1host: 0.0.0.0  # the one change from config/serve.yaml: reachable on the pod IP"


def rendered() -> str:
    """ray-service.yaml with serveConfigV2 regenerated from config/serve.yaml."""
    lines = (ROOT / "config" / "serve.yaml").read_text().splitlines()
    body = [re.sub(r"^(\s+)host:.*$", HOST, line) for line in lines]
    block = "\n".join(("    " + line) if line.strip() else "" for line in body)
    text = SERVICE.read_text()
    start = text.index("  serveConfigV2: |\n") + len("  serveConfigV2: |\n")
    end = text.index("\n  rayClusterConfig:", start)
    return text[:start] + block + "\n" + text[end:]


if __name__ == "__main__":
    new = rendered()
    changed = new != SERVICE.read_text()
    if "--check" in sys.argv:
        sys.exit(f"{SERVICE} is out of date: run `make sync-kuberay`" if changed else 0)
    SERVICE.write_text(new)
    print(f"{'updated' if changed else 'unchanged'}: {SERVICE.relative_to(ROOT)}")
