"""Ray's floor: the service's shape with nothing of ours in it, HTTP -> ingress -> leaf.

A FastAPI ingress reads the body and awaits one call to a leaf deployment that answers a
constant, so a request pays exactly what Serve itself costs for our architecture: HAProxy,
the ingress replica, one replica-to-replica hop. `make bench` runs it under config/serve.yaml's
process settings and the same deployment options as the service's ingress and classifier
(benchmarks/serve_bench.py: floor_config), in the same run as the service.
"""

from fastapi import FastAPI, Request
from ray import serve

api = FastAPI()


@serve.deployment
class Leaf:
    async def predict(self, body_bytes: int) -> dict:
        return {"label": "0", "confidence": 1.0, "bytes": body_bytes}


@serve.deployment
@serve.ingress(api)
class FloorIngress:
    def __init__(self, leaf):
        self._leaf = leaf

    @api.post("/mnist")
    async def mnist(self, request: Request) -> dict:
        return await self._leaf.predict.remote(len(await request.body()))

    @api.get("/healthz")
    async def healthz(self) -> str:
        return "ok"


app = FloorIngress.bind(Leaf.bind())
