# quickspike: two commands on a fresh machine, `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
JOBS ?= auto

.PHONY: venv demo test bench clean

venv: $(STAMP)

# Re-installs only when the dependency lists change. torch==2.13.0 resolves to
# the CPU wheel that lies on this machine's disk (see DESIGN.md).
$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/quickspike flow --out build/demo

test: $(STAMP)
	$(PY) -m pytest -q -n $(JOBS) tests

bench: $(STAMP)
	$(PY) -m quickspike.bench --out build/bench

clean:
	rm -rf build .venv
