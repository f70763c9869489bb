# Set-up and checks. Both targets create or reuse .venv in this folder and are safe to rerun.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.pcc-installed

.PHONY: install test demo system-deps browser-deps clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# torch==2.13.0 is pinned first so pip takes the CPU wheel on this machine kind instead of a CUDA build.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet "torch==2.13.0" || $(PY) -m pip install --quiet torch
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

# open3d's binary needs Debian's libusb-1.0-0; install it only when open3d cannot load without it.
system-deps: $(STAMP)
	@$(PY) -c "import open3d" 2>/dev/null || { \
	  echo "open3d cannot load: installing Debian's libusb-1.0-0"; \
	  SUDO=$$(command -v sudo >/dev/null && [ "$$(id -u)" != 0 ] && echo sudo); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq libusb-1.0-0 >/dev/null; \
	  $(PY) -c "import open3d"; }

# The review page's browser test (tests/outputs/test_review.py) runs Debian's headless Chromium; installed
# here for `make test` only when it is missing.
browser-deps:
	@command -v chromium >/dev/null || { echo "installing Debian's chromium for the review page's browser test"; \
	  SUDO=$$(command -v sudo >/dev/null && [ "$$(id -u)" != 0 ] && echo sudo); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null; }

install: $(STAMP) system-deps

test: install browser-deps
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

demo: install
	$(VENV)/bin/pcc demo

clean:
	rm -rf $(VENV) build *.egg-info
