# Two commands on a fresh machine:
#   make demo   - create .venv, install torch (CPU wheel) then the project, run the main job
#   make test   - create .venv, install the project with its test extras, run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
OUT ?= runs/demo

.PHONY: install demo test bench clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch first, pinned to the CPU wheel, so the project's torch range installs nothing more
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[test,bench,ray]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/tocsr-nas run --out $(OUT)

test: install
	$(PY) -m pytest -q

bench: install
	$(PY) -m pytest -q tests/benchmarks --benchmark-only --benchmark-enable

clean:
	rm -rf $(VENV) build *.egg-info
