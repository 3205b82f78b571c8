# The two commands: `make demo` and `make test`. Both create .venv and install on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-cluster bench docs clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# constraints.txt pins torch==2.13.0 (a local CPU build here; unpinned torch pulls GBs of CUDA packages)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# The clean example must pass (exit 0); the buggy twin must be caught (exit 1 is the demo succeeding).
demo: $(STAMP)
	$(BIN)/sanitycheck run examples/digits/clean/sanitycheck.yaml
	@echo
	@$(BIN)/sanitycheck run examples/digits/buggy/sanitycheck.yaml; rc=$$?; \
	if [ $$rc -eq 1 ]; then echo "demo: the buggy pipeline was caught (exit 1), as intended"; else \
	echo "demo: expected exit 1 from the buggy pipeline, got $$rc"; exit 1; fi

test: $(STAMP)
	$(BIN)/python -m pytest -q

# Only the ray engine's tests on a real local Ray cluster (a head + a second node, 1 CPU each; also part of `test`).
test-cluster: $(STAMP)
	$(BIN)/python -m pytest -q -m cluster tests/test_ray_engine.py

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

# docs/checks/: one page per check, generated from its CodeDocs and Settings (tests/test_docs.py checks they match)
docs: $(STAMP)
	$(BIN)/python -m sanitycheck.faces.docgen docs/checks

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
