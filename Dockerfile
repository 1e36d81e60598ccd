# vision-ai: Ray 2.60 with the pinned dependencies, the code, config/ and the checkpoints in models/.
#
#   docker build -t vision-ai:0.1.0 .        (or `minikube image build -t vision-ai:0.1.0 .`)
#   docker run --rm -p 8000:8000 --shm-size=1g vision-ai:0.1.0
#
# Build it where PyPI and the PyTorch CPU wheel index are reachable. The image serves
# config/serve.yaml on 0.0.0.0:8000. KubeRay ignores CMD and starts Ray itself (kuberay/README.md).
# The tag must match rayVersion in kuberay/*.yaml and the ray pin in pyproject.toml
# (tests/kuberay/test_manifests.py checks that).
FROM rayproject/ray:2.60.0-py311-cpu

WORKDIR /home/ray/app

# Dependencies first, read from pyproject.toml alone, so a code change reuses this layer.
# The CPU wheel index serves torch==2.14.1+cpu (about 200 MB); PyPI's Linux torch pulls CUDA (GBs).
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && pip install --no-cache-dir --extra-index-url https://download.pytorch.org/whl/cpu -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

USER root
# The base image gives `ray` passwordless sudo for interactive use; a server does not need it.
# Without that line sudo asks for a password, and `ray` has none.
RUN sed -i '/^ray ALL=NOPASSWD: ALL$/d' /etc/sudoers && chown root:root /home/ray/app

# Code, config and checkpoints are owned by root: the service can read but not rewrite them.
# Not pip-installed: serve_app.settings resolves models/... against this folder (PYTHONPATH).
COPY vision_core/ vision_core/
COPY serve_app/ serve_app/
COPY training/ training/
COPY config/ config/
COPY models/ models/
RUN python -m compileall -q vision_core serve_app training

# Serve must listen on all interfaces in a container, and config/serve.yaml binds 127.0.0.1 for
# local runs (serve run has no host flag). The container's copy is derived by the same code as
# every other copy (vision_core/serve_config.py); only http_options.host differs.
RUN python -m vision_core.serve_config --host 0.0.0.0 config/serve.container.yaml

ENV PYTHONPATH=/home/ray/app \
    PYTHONUNBUFFERED=1 \
    RAY_USAGE_STATS_ENABLED=0

# The base image's non-root user `ray`, numeric so Kubernetes' runAsNonRoot can verify it;
# the manifests pin the same uid and gid.
USER 1000:100

EXPOSE 8000 8265

HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"

# `serve run` shuts Serve down cleanly on SIGINT (Ctrl-C); SIGTERM would skip that.
STOPSIGNAL SIGINT

# Token auth guards the dashboard (8265): pass -e RAY_AUTH_TOKEN=..., or read the generated one
# with `docker exec <container> ray get-auth-token`. Port 8000 is the app (VISION_API_KEY guards it).
CMD ["bash", "-c", "ray get-auth-token --generate >/dev/null && export RAY_AUTH_MODE=token && ray start --head --dashboard-host=0.0.0.0 && exec serve run config/serve.container.yaml"]
