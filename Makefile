# Everything a user or CI needs, from a fresh clone: `make run`, `make lint test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
OUT ?= output
WORKERS ?=

.PHONY: install test test-images lint run sample-data demo-models models bench fuzz clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -e '.[torch,dicom,deploy,dev]'
	touch $@

test: $(STAMP)
	$(BIN)/pytest

# The images built with buildah from stand-in bases and every stage run inside them
# (tests/bundle/test_images.py); needs root, buildah, podman, runc and debootstrap.
test-images: $(STAMP)
	$(BIN)/pytest -m images tests/bundle/test_images.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

sample-data: $(STAMP)
	$(BIN)/python scripts/make_sample_data.py --out sample_data

# Seeded stand-in weights, only where no checkpoint is present (real ones: `make models`).
demo-models: $(STAMP)
	@if [ ! -e models/sample_patch_model.p ]; then $(BIN)/bcd models demo models; fi

models: $(STAMP)
	$(BIN)/bcd models download models

run: $(STAMP) demo-models
	$(BIN)/bcd run --data sample_data --models models --out $(OUT) $(if $(WORKERS),--workers $(WORKERS)) \
		--summary-json $(OUT)/run-summary.json
	@echo "Predictions: $(OUT)/summary/predictions.csv   Reports: $(OUT)/summary/index.html"

# Each tests/fuzz/fuzz_<boundary>.py for FUZZ_SECONDS, from its seeds in tests/fuzz/corpus/<boundary>;
# what it finds goes to $(FUZZ_OUT)/<boundary>/ (corpus/, crashes/), never into the repository.
FUZZ_SECONDS ?= 600
FUZZ_RSS_MB ?= 2048
FUZZ_OUT ?= $(OUT)/fuzz
fuzz: $(STAMP)
	@failed=""; for harness in tests/fuzz/fuzz_*.py; do \
		name=$$(basename $$harness .py); name=$${name#fuzz_}; \
		mkdir -p $(FUZZ_OUT)/$$name/corpus $(FUZZ_OUT)/$$name/crashes $(FUZZ_OUT)/$$name/tmp; \
		echo "== $$name: $(FUZZ_SECONDS) s"; \
		TMPDIR=$(abspath $(FUZZ_OUT))/$$name/tmp PYTHONPATH=$(CURDIR) $(BIN)/python $$harness -max_total_time=$(FUZZ_SECONDS) -timeout=2 \
			-rss_limit_mb=$(FUZZ_RSS_MB) -print_final_stats=1 \
			-artifact_prefix=$(FUZZ_OUT)/$$name/crashes/ \
			$(FUZZ_OUT)/$$name/corpus tests/fuzz/corpus/$$name || failed="$$failed $$name"; \
		rm -rf $(FUZZ_OUT)/$$name/tmp; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: crashes in:$$failed (inputs under $(FUZZ_OUT)/*/crashes)"; exit 1; fi

bench: $(STAMP) demo-models
	$(BIN)/bcd bench --json $(OUT)/bench.json

clean:
	rm -rf $(OUT) build *.egg-info

include bundle.mk
