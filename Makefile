# One-command entry points. Every target installs what it needs first.
PY        ?= python3.11
VENV      ?= .venv
BIN       := $(VENV)/bin
DATA_DIR  ?= data
SHARED    ?= ../shared
STAMP     := $(VENV)/.installed

.PHONY: install test serve lint data train bench bench-train realistic clean sync-kuberay scan

install: $(STAMP)

# Re-install only when the dependency list changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

test: install
	KUBERAY_CRDS=$${KUBERAY_CRDS:-$(SHARED)/kuberay/crds} $(BIN)/python -m pytest

# config/serve.env holds the Serve process settings (throughput mode, HAProxy).
serve: install
	set -a && . config/serve.env && set +a && $(BIN)/serve run config/serve.yaml

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
	$(BIN)/python -m training.evaluate models/mnist_cnn.pt --data-dir $(DATA_DIR)
	$(BIN)/python -m training.evaluate models/fmnist_cnn.pt --data-dir $(DATA_DIR)

clean:
	rm -rf $(VENV) .venv-scan .pytest_cache test-artifacts

# IaC scan of the Dockerfile and kuberay/ with checkov, kept in its own venv: its pinned
# dependencies clash with Ray's. Findings are fixed, or skipped inline with a reason
# (`checkov.io/skipN` annotations). --skip-download: no calls to the vendor's API.
SCAN_VENV ?= .venv-scan
CHECKOV   := $(SCAN_VENV)/bin/checkov --compact --quiet --skip-download

.PHONY: install test serve lint data train bench bench-train realistic clean sync-kuberay scan

$(SCAN_VENV)/bin/checkov:
	$(PY) -m venv $(SCAN_VENV)
	$(SCAN_VENV)/bin/pip install -q 'checkov==3.3.30'

scan: $(SCAN_VENV)/bin/checkov
	$(CHECKOV) --framework dockerfile -f Dockerfile
	$(CHECKOV) --framework kubernetes -d kuberay

# Play the KubeRay operator's part against a real multi-node Ray cluster in network namespaces,
# started from kuberay/*.yaml (needs root and iproute2; kuberay/README.md, "Rehearsal").
.PHONY: rehearse
rehearse: install
	$(BIN)/python -m kuberay.rehearse --report test-artifacts/rehearsal.json

# serveConfigV2 in kuberay/ray-service.yaml is generated from config/serve.yaml.
sync-kuberay: install
	$(BIN)/python kuberay/sync.py

# Benchmarks are not tests: run them on an otherwise idle machine. Results: benchmarks/results/.
bench: install
	$(BIN)/python -m benchmarks.serve_bench

bench-train: install data
	$(BIN)/python -m benchmarks.train_cost --data-dir $(DATA_DIR)

# Accuracy on realistic inputs (canvas, photo, font digits; catalog clothes) through the
# service's preprocessing; --golden refreshes tests/golden/.
realistic: install data
	$(BIN)/python -m benchmarks.realistic --data-dir $(DATA_DIR) --n 1000
