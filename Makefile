# One-command entry points. Every target installs what it needs first.
PY        ?= python3.11
VENV      ?= .venv
BIN       := $(VENV)/bin
DATA_DIR  ?= data
SHARED    ?= ../shared
STAMP     := $(VENV)/.installed

.PHONY: install test serve monitor lint data train ood-fit export cards ood realistic bench \
        retrain feedback-loop gate-sets \
        bench-train clean scan k8s-validate rehearse sync-kuberay image

# Every registered model and its checkpoint (vision_core/registry.py, the one list of the models).
MODEL_NAMES := $(shell $(PY) -c 'from vision_core.registry import MODELS; print(*MODELS)')
CHECKPOINTS := $(shell $(PY) -c 'from vision_core.registry import MODELS; \
                 print(*(m.checkpoint for m in MODELS.values()))')

install: $(STAMP)

# Re-install only when the dependency list changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[train,dev]'
	touch $(STAMP)

# The KubeRay CRD schemas come from ../shared where it exists (CI); a user's clone has none,
# and those checks then skip with a line saying how to get them.
CRDS_DEFAULT := $(wildcard $(SHARED)/kuberay/crds)

test: install
	KUBERAY_CRDS=$${KUBERAY_CRDS:-$(CRDS_DEFAULT)} $(BIN)/python -m pytest

# The authoritative check of kuberay/, once you have a cluster: the API server itself (with the
# KubeRay operator's CRDs installed) validates every manifest, creating nothing.
k8s-validate:
	@command -v kubectl >/dev/null || \
	  { echo "k8s-validate: skipped: kubectl not found (install it, then point it at a cluster)"; exit 0; }; \
	ctx=$$(kubectl config current-context 2>/dev/null) || \
	  { echo "k8s-validate: skipped: kubectl has no current context (minikube start, or kubectl config use-context NAME)"; exit 0; }; \
	echo "k8s-validate: kubectl apply --dry-run=server -f kuberay/ (context $$ctx)"; \
	kubectl apply --dry-run=server -f kuberay/

# Exactly what a Ray user runs: config/serve.yaml carries every setting, Serve's own included.
# The venv first on PATH: `ray job submit -- python ...` then runs the project's Python. The RAY_*
# monitoring variables tell the Ray dashboard where `make monitor`'s Prometheus (and Grafana) are:
# the dashboard reads them from the environment of the process that starts Ray.
serve: install
	PATH="$(abspath $(BIN)):$$PATH" RAY_PROMETHEUS_HOST=$(RAY_PROMETHEUS_HOST) \
	  RAY_PROMETHEUS_NAME=$(RAY_PROMETHEUS_NAME) RAY_GRAFANA_HOST=$(RAY_GRAFANA_HOST) \
	  serve run config/serve.yaml

# The container image with docker or podman, whichever is here: Ray's upstream base where it can
# be pulled, the local stand-in built from Debian's packages otherwise (docs/standin-base.md);
# prints the tag and size. TARGET=train builds the RayJob's image (CPU torch; TORCH_INDEX=URL
# takes torch from another index). Standard library only: no venv needed.
TARGET ?= serve
image:
	$(PY) -m container.build --target $(TARGET) $(if $(TORCH_INDEX),--torch-index $(TORCH_INDEX))

# Prometheus with the project's config and alert rules (config/monitoring/), scraping every node of
# the local Ray session through Ray's service-discovery file. Debian's `prometheus` package; other
# systems: docs/monitoring.md. Runs in the foreground; data in $(PROMETHEUS_DATA).
include config/monitoring/monitoring.env
PROMETHEUS_CONFIG ?= config/monitoring/prometheus.yml
PROMETHEUS_DATA   ?= .prometheus
monitor:
	@command -v prometheus >/dev/null || { echo "prometheus is missing: apt-get install prometheus" \
	  "(Debian/Ubuntu) or see docs/monitoring.md"; exit 1; }
	prometheus --config.file=$(PROMETHEUS_CONFIG) --storage.tsdb.path=$(PROMETHEUS_DATA) \
	  --web.listen-address=$(PROMETHEUS_ADDRESS)

lint: install
	$(BIN)/ruff check .

# Copy the shared gzip'd IDX files into data/; training unpacks and verifies them.
data:
	mkdir -p $(DATA_DIR)
	cp -rn $(SHARED)/datasets/MNIST $(SHARED)/datasets/FashionMNIST $(DATA_DIR)/ 2>/dev/null || true
	chmod -R u+w $(DATA_DIR)

train: install data
	$(BIN)/python -m training.train mnist --data-dir $(DATA_DIR)
	$(BIN)/python -m training.train fmnist --init models/mnist_cnn.pt --data-dir $(DATA_DIR)
	$(MAKE) ood-fit cards

# Fit the out-of-domain detector into every checkpoint: metadata only, weights untouched (the
# sha256, i.e. the served version, changes). Chosen on held-out training images (docs/ood.md).
ood-fit: install data
	for c in $(CHECKPOINTS); do $(BIN)/python -m training.ood $$c --data-dir $(DATA_DIR) || exit 1; done
	$(MAKE) export

# The ONNX exports the classifier replicas serve (training/export.py), one per checkpoint; a
# checkpoint without a current export is refused by the service with this command's name.
export: install
	$(BIN)/python -m training.export $(CHECKPOINTS)

# The model cards beside the checkpoints: test accuracy, plots, and the out-of-domain
# evaluation set's figures (training/ood_eval.py), measured in-process.
cards: install data
	for c in $(CHECKPOINTS); do $(BIN)/python -m training.evaluate $$c --data-dir $(DATA_DIR) || exit 1; done

# The gate sets a candidate version must pass at load (models/gate/, serve_app/gate.py): 500
# official test images per model, written once.
gate-sets: install data
	$(BIN)/python -m training.gate_set --data-dir $(DATA_DIR)

# Learn from users' corrections (docs/feedback.md): per model, a Ray Train fine-tune of the served
# checkpoint on its corrections in the feedback store, then the gate. A passing checkpoint goes to
# models/candidates/ and is declared as the model's candidate in config/serve.yaml, at 10% of its
# traffic: re-apply the config (serve deploy config/serve.yaml) to roll it out. A model with too
# few corrections, or a checkpoint the gate rejects (models/rejected/), is said so and skipped.
retrain: install data
	for m in $(MODEL_NAMES); do \
	  $(BIN)/python -m training.retrain $$m --data-dir $(DATA_DIR) --propose 0.1 || echo "retrain $$m: nothing proposed"; \
	done

# The loop end to end on one service and its Ray cluster, through HTTP (benchmarks/feedback_loop.py):
# a shifted population, half sent as feedback, retrained, rolled out, measured before and after.
# Starts its own service on config/serve.yaml's port: stop `make serve` first.
feedback-loop: install data
	$(BIN)/python -m benchmarks.feedback_loop --data-dir $(DATA_DIR)

# The same figures through HTTP, as a user sends the images, from a service it starts on
# config/serve.yaml's port (stop `make serve` first): benchmarks/results/ood.json, which the
# README and docs/ood.md cite.
ood: install data
	$(BIN)/python -m benchmarks.ood --data-dir $(DATA_DIR) --n 300

clean:
	rm -rf $(VENV) .venv-scan .pytest_cache test-artifacts $(PROMETHEUS_DATA)

# IaC scan of the Dockerfile and kuberay/ with checkov, kept in its own venv: its pinned
# dependencies clash with Ray's. Findings are fixed, or skipped inline with a reason
# (`checkov.io/skipN` annotations). --skip-download: no calls to the vendor's API.
SCAN_VENV ?= .venv-scan
CHECKOV   := $(SCAN_VENV)/bin/checkov --compact --quiet --skip-download

$(SCAN_VENV)/bin/checkov:
	$(PY) -m venv $(SCAN_VENV)
	$(SCAN_VENV)/bin/pip install -q 'checkov==3.3.30'

scan: $(SCAN_VENV)/bin/checkov
	$(CHECKOV) --framework dockerfile -f Dockerfile
	$(CHECKOV) --framework kubernetes -d kuberay

# Play the KubeRay operator's part against a real multi-node Ray cluster in network namespaces,
# started from kuberay/*.yaml (needs root and iproute2; kuberay/README.md, "Rehearsal"). Each pod
# runs its manifest's image as a container where podman can (building it as `make image` does),
# else the venv, saying so; PODS=venv runs every pod from the venv.
PODS ?= image
rehearse: install
	$(BIN)/python -m kuberay.rehearse --report test-artifacts/rehearsal.json --pods $(PODS)

# serveConfigV2 in kuberay/ray-service.yaml is generated from config/serve.yaml.
sync-kuberay: install
	$(BIN)/python -m kuberay.sync

# Benchmarks are not tests: run them on an otherwise idle machine. Results: benchmarks/results/.
# make bench loads each server with wrk (apt-get install wrk) and measures the service against the
# compute ceiling, the seed's architecture and Ray's floor in one run (benchmarks/README.md).
bench: install
	@command -v wrk >/dev/null || { echo "make bench: wrk is missing: apt-get install wrk"; exit 1; }
	$(BIN)/python -m benchmarks.serve_bench

bench-train: install data
	$(BIN)/python -m benchmarks.train_cost --data-dir $(DATA_DIR)

# Accuracy on realistic inputs (canvas, photo, font digits; catalog clothes) through the
# service's preprocessing; --golden refreshes tests/golden/.
realistic: install data
	$(BIN)/python -m benchmarks.realistic --data-dir $(DATA_DIR) --n 1000
