# One-command entry points. Every target installs what it needs first.
PY        ?= python3.11
VENV      ?= .venv
BIN       := $(VENV)/bin
DATA_DIR  ?= data
SHARED    ?= ../shared
STAMP     := $(VENV)/.installed

.PHONY: install test serve lint data train bench clean

install: $(STAMP)

# Re-install only when the dependency list changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

test: install
	KUBERAY_CRDS=$${KUBERAY_CRDS:-$(SHARED)/kuberay/crds} $(BIN)/python -m pytest

serve: install
	$(BIN)/serve run config/serve.yaml

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
	rm -rf $(VENV) .pytest_cache
