# Both targets are idempotent and work on a fresh machine: they make .venv, install torch==2.13.0
# first (the CPU wheel; an unpinned torch would pull GBs of CUDA packages), then playworld with
# its test extras, then any Debian packages the tests need.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test install system-deps clean

demo: $(STAMP)
	$(VENV)/bin/playworld quickstart

test: $(STAMP) system-deps
	$(VENV)/bin/python -m pytest -q

install: $(STAMP)

$(PY):
	python3 -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

# Debian's chromium for the browser tests (Playwright cannot download a browser here).
system-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
