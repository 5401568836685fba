# The two commands of the README: `make run` (the main job on embedded defaults) and `make test`.
# Each creates .venv on a fresh clone and installs what it needs (CPU torch first, see README).
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt pyproject.toml | cksum | cut -d' ' -f1)

export DO_NOT_TRACK := true
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export MLFLOW_DISABLE_TELEMETRY := true
export COLORIZE_HOME ?= $(CURDIR)/.state
export PREFECT_HOME ?= $(COLORIZE_HOME)/prefect
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: install browser viewer run test bench bench-avx2 stack-up stack-down clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/colorize run

# the browser tests drive Debian's Chromium (browser builds that download themselves cannot be had here)
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null; }

# Mirador, from the npm registry, for the IIIF viewer test
viewer: tests/viewer/node_modules/mirador/dist/mirador.min.js
tests/viewer/node_modules/mirador/dist/mirador.min.js: tests/viewer/package-lock.json
	npm ci --prefix tests/viewer --no-audit --no-fund --loglevel=error
	touch $@

test: $(STAMP) browser viewer
	mkdir -p $(PREFECT_HOME)
	$(PY) -m pytest -q --durations=15 tests  # the slowest fifteen listed: where the suite's time goes

bench: $(STAMP) browser
	$(PY) -m pip install -q --disable-pip-version-check -r bench/requirements.txt
	$(PY) -m bench

# restore as on a CPU without AVX-512: torch, oneDNN and the compiled join capped to AVX2 (bf16 emulated)
bench-avx2: $(STAMP)
	ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 NUMBA_CPU_NAME=haswell $(PY) -m bench restore

stack-up: $(STAMP)
	$(VENV)/bin/colorize stack up

stack-down: $(STAMP)
	$(VENV)/bin/colorize stack down

clean:
	rm -rf .state
