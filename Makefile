# Every target bootstraps first (fast when nothing is missing), so a fresh clone needs only
# `make test` or `make demo`.
PYTHON := .venv/bin/python
# Extra pytest arguments, e.g. `make test ARGS='-k influx -x'`.
ARGS ?=
# Demo length in seconds, e.g. `make demo DURATION=60`; the demo's own default otherwise.
DURATION ?=

.PHONY: venv test test-unit lint demo bench fuzz clean distclean

venv:
	bash scripts/bootstrap.sh

# What CI runs (.ci/run): the lint the README promises, then every test. pytest's exit code 5
# (no tests collected) fails the target on purpose: a CI run that ran nothing is not green.
test: venv lint
	$(PYTHON) -m pytest $(ARGS)

# The fast loop while editing: tests that start no mosquitto, influxd or gateway process.
test-unit: venv
	$(PYTHON) -m pytest -m "not integration" $(ARGS)

lint: venv
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	$(PYTHON) -m mypy
	$(PYTHON) -m mypy tests scripts/demo.py

demo: venv
	$(PYTHON) scripts/demo.py $(if $(DURATION),--duration $(DURATION))

# The in-process hot path, then the Speed issue's benchmark through real processes (a few
# minutes; `make bench BENCH_ARGS=--quick` for a smoke run, `--runs 5` for more runs).
BENCH_ARGS ?=
bench: venv
	$(PYTHON) -m benchmarks
	$(PYTHON) -m benchmarks.full $(BENCH_ARGS)

# Not in CI: a million mutated payloads through decode, normalize and line protocol (fuzz/run.py).
fuzz: venv
	$(PYTHON) -m fuzz $(ARGS)

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache .hypothesis .demo build dist
	find . -path ./.venv -prune -o -type d -name __pycache__ -exec rm -rf {} +

distclean: clean
	rm -rf .venv *.egg-info
