# attnviz: `make run` sets up and starts the app; `make test` sets up and runs every test.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: setup run test test-fast browser bench evaluate clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-* && touch $@

setup: $(STAMP)

run: setup
	$(PY) -m streamlit run app.py

# Debian's Chromium for the browser tests (never `playwright install`: it downloads a browser)
browser:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q chromium; \
	  else echo "browser tests need Debian's chromium: sudo apt-get install chromium"; fi; }

test: setup browser
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not browser and not slow"

bench: setup
	$(PY) -m attnviz.bench

evaluate: setup
	$(PY) -m attnviz.evaluate

clean:
	rm -rf $(VENV) .pytest_cache
