# Set-up and checks. Both targets create or reuse .venv in this folder and are safe to rerun.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.pcc-installed

.PHONY: install test demo system-deps clean

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

install: $(STAMP) system-deps

test: install
	$(PY) -m pytest -q

demo: install
	$(VENV)/bin/pcc demo

clean:
	rm -rf $(VENV) build *.egg-info
