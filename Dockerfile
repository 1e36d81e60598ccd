# vision-ai: Ray 2.60 with the pinned dependencies, the code, config/ and the checkpoints in models/.
# Two targets: `serve` (the default: no torch, the classifiers run the ONNX exports), what
# `docker run` and the RayService run; `train` (CPU torch), what the RayJob runs.
#
#   make image                   (docker or podman; prints the tag and size; README, "The image")
#   docker build -t vision-ai:0.1.0 .                          (or `minikube image build ...`)
#   docker build --target train -t vision-ai:0.1.0-train .
#   docker run --rm -p 8000:8000 --shm-size=1g vision-ai:0.1.0
#
# BASE_IMAGE is Ray's upstream image; `make image` builds on a local stand-in made from Debian's
# packages where that cannot be pulled (docs/standin-base.md). Its tag must match rayVersion in
# kuberay/*.yaml and the ray pin in pyproject.toml (tests/kuberay/test_manifests.py checks that).
# KubeRay ignores CMD and starts Ray itself (kuberay/README.md).
ARG BASE_IMAGE=rayproject/ray:2.60.0-py311-cpu

# ---- base: the serving dependencies and the hardened user, no project code yet
# checkov:skip=CKV_DOCKER_7:the tag is pinned by ARG BASE_IMAGE above; checkov does not read ARGs
FROM ${BASE_IMAGE} AS base

WORKDIR /home/ray/app

# Dependencies first, read from pyproject.toml alone, so a code change reuses this layer. The
# host's pip certificate and index URL, if given, arrive as build secrets (never in a layer).
# Installed as the base image's user `ray`, who owns its Python environment.
COPY pyproject.toml ./
RUN --mount=type=secret,id=pip_cert,mode=0444 --mount=type=secret,id=pip_index_url,mode=0444 \
    if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi \
 && if [ -s /run/secrets/pip_index_url ]; then export PIP_INDEX_URL="$(cat /run/secrets/pip_index_url)"; fi \
 && python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && pip install --no-cache-dir -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

USER root
# The base image gives `ray` passwordless sudo for interactive use; a server does not need it.
# Without that line sudo asks for a password, and `ray` has none.
RUN sed -i '/^ray ALL=NOPASSWD: ALL$/d' /etc/sudoers && chown root:root /home/ray/app

ENV PYTHONPATH=/home/ray/app \
    PYTHONUNBUFFERED=1 \
    RAY_USAGE_STATS_ENABLED=0

EXPOSE 8000 8265

HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"

# `serve run` shuts Serve down cleanly on SIGINT (Ctrl-C); SIGTERM would skip that.
STOPSIGNAL SIGINT

# container/preflight.py refuses to start, in one line, where the engine's limits would crash
# Serve's HAProxy (open files). Token auth guards the dashboard (8265): pass
# -e RAY_AUTH_TOKEN=..., or read the generated one with `docker exec <container> ray
# get-auth-token`. Port 8000 is the app (VISION_API_KEY guards it).
CMD ["bash", "-c", "python container/preflight.py config/serve.container.yaml && ray get-auth-token --generate >/dev/null && export RAY_AUTH_MODE=token && ray start --head --dashboard-host=0.0.0.0 && exec serve run config/serve.container.yaml"]

# ---- app: what serving reads, owned by root: the service can read but not rewrite it
FROM base AS app

# The torch-free core and the service; not pip-installed: vision_core.paths resolves models/...
# against this folder (PYTHONPATH). training/ is the train target's alone.
COPY vision_core/ vision_core/
COPY serve_app/ serve_app/
COPY config/ config/
COPY models/ models/
COPY container/preflight.py container/preflight.py
RUN python -m compileall -q vision_core serve_app

# Serve must listen on all interfaces in a container, and config/serve.yaml binds 127.0.0.1 for
# local runs (serve run has no host flag). The container's copy is derived by the same code as
# every other copy (vision_core/serve_config.py); only http_options.host differs.
RUN python -m vision_core.serve_config --host 0.0.0.0 config/serve.container.yaml

# The one folder the service writes: the feedback store's SQLite file (config/serve.yaml,
# feedback.sqlite_path). A volume, so corrections outlive the container; owned by `ray`.
RUN mkdir -p var && chown 1000:100 var
VOLUME /home/ray/app/var

# ---- train: the RayJob's image: the app plus torch (CPU build) and the rest of training's needs
FROM base AS train

# torch and torchvision from TORCH_INDEX alone, so the build fails where the CPU wheel index is out
# of reach instead of taking PyPI's Linux torch (a CUDA build: GBs). Then the rest of the `train`
# extra from the usual index. Before the code, so that a code change reuses these layers.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
LABEL vision-ai.torch-index="${TORCH_INDEX}"
USER 1000:100
RUN --mount=type=secret,id=pip_cert,mode=0444 --mount=type=secret,id=pip_index_url,mode=0444 \
    if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi \
 && if [ -s /run/secrets/pip_index_url ]; then export PIP_INDEX_URL="$(cat /run/secrets/pip_index_url)"; fi \
 && python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['train']; torch = [d for d in deps if d.startswith('torch')]; open('/tmp/torch.txt', 'w').write('\n'.join(torch)); open('/tmp/requirements.txt', 'w').write('\n'.join(d for d in deps if d not in torch))" \
 && pip install --no-cache-dir --index-url "${TORCH_INDEX}" -r /tmp/torch.txt \
 && pip install --no-cache-dir -r /tmp/requirements.txt \
 && rm /tmp/torch.txt /tmp/requirements.txt
USER root
COPY --from=app /home/ray/app/ /home/ray/app/
COPY training/ training/
RUN python -m compileall -q training
# The base image's user `ray`, numeric so Kubernetes' runAsNonRoot can verify it;
# the manifests pin the same uid and gid.
USER 1000:100

# ---- serve: the default target, what `docker run` and the RayService run (no torch)
FROM app AS serve
USER 1000:100
