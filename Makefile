# kumo: the two commands are `make up` (an all-in-one cloud) and `make test`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMPS  := .stamps

.PHONY: setup host venv proto lint test test-fast bench up clean image dashboard-assets dashboard-screenshots

setup: host venv

host:
	scripts/setup-host.sh

$(STAMPS)/venv: pyproject.toml
	@mkdir -p $(STAMPS)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

venv: $(STAMPS)/venv

proto: venv
	scripts/gen-proto.sh

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/buf lint

test: setup
	$(BIN)/pytest -q -ra --durations=25

# The tests that need no libvirt guests: quick feedback while coding.
test-fast: venv
	$(BIN)/pytest -q -ra -m "not e2e"

bench: setup
	$(BIN)/python -m bench

# The guest test image (images/kumo-test.qcow2), built from Debian packages;
# rebuilt only when missing or when its script or the kernel changed.
image:
	scripts/build-test-image.sh

up: setup image
	$(BIN)/python -m controller.allinone

clean:
	rm -rf $(VENV) $(STAMPS) .kumo

# The dashboard's front-end files (htmx, xterm.js) from the npm lockfile into
# dashboard/static/vendor/ (committed: CI needs no npm).
dashboard-assets:
	scripts/vendor-dashboard-assets.sh

# The screenshots in docs/dashboard.md, taken in headless Chromium against a
# fresh cloud of fake nodes.
dashboard-screenshots: setup
	$(BIN)/python -m tests.dashboard_screenshots docs/dashboard
