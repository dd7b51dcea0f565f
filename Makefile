# attnviz: `make run` sets up and starts the app; `make test` sets up and runs every test.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: setup run serve cluster test test-fast test-paths lint browser nginx bench evaluate clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-* && touch $@

setup: $(STAMP)

run: setup
	$(PY) -m attnviz.serve

# several app processes behind Debian's nginx (a course larger than one process serves)
cluster: setup nginx
	$(PY) -m attnviz.cluster --servers 2 --port 8500

# Debian's Chromium for the browser tests (never `playwright install`: it downloads a browser), and Debian's
# CJK fonts, without which every Chinese character of a zh screenshot is an empty box
browser:
	@{ test -x /usr/bin/chromium && test -f /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc; } || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q chromium fonts-noto-cjk; \
	  else echo "browser tests need Debian's chromium and fonts-noto-cjk: sudo apt-get install chromium fonts-noto-cjk"; fi; }

# Debian's nginx for the two-process proxy test and `make cluster` (the test skips, saying so, without it)
nginx:
	@test -x /usr/sbin/nginx || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx; \
	  else echo "the proxy test needs Debian's nginx: sudo apt-get install nginx"; fi; }

# the style every file keeps (pyproject.toml [tool.ruff]): formatted, and no lint finding
lint: setup
	$(PY) -m ruff format --check .
	$(PY) -m ruff check .

# the fast tests again on other CPUs' code paths, switched on this one: torch's own kernels (ATen), MKL's BLAS
# and oneDNN at AVX2 with OpenBLAS's Zen kernels (NumPy), as an AMD EPYC takes them; then at the oldest paths
# (ATen's default, SSE4.2, OpenBLAS's Nehalem). x86 torch wheels carry MKL, not OpenBLAS: there is no switch.
PATHS_AVX2   := ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2 OPENBLAS_CORETYPE=Zen
PATHS_OLDEST := ATEN_CPU_CAPABILITY=default MKL_ENABLE_INSTRUCTIONS=SSE4_2 ONEDNN_MAX_CPU_ISA=SSE41 \
                OPENBLAS_CORETYPE=Nehalem
test-paths: setup
	$(PATHS_AVX2) $(PY) -m pytest -q -m "not browser and not slow" -p no:cacheprovider
	$(PATHS_OLDEST) $(PY) -m pytest -q -m "not browser and not slow" -p no:cacheprovider

test: setup browser nginx lint
	$(PY) -m pytest -q -rs
	$(MAKE) --no-print-directory test-paths

test-fast: setup
	$(PY) -m pytest -q -m "not browser and not slow"

bench: setup
	$(PY) -m attnviz.bench

evaluate: setup
	$(PY) -m attnviz.evaluate

clean:
	rm -rf $(VENV) .pytest_cache
