# azwait — `make help` lists the targets. Every target installs what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help venv demo check test unit integration lint bench bench-agent bench-fleet clean packer-check deb deb-test e2e cloudinit-fixtures matrix

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-15s %s\n", $$1, $$2}'

$(STAMP): agent/pyproject.toml agent/requirements.lock sim/pyproject.toml tests/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r agent/requirements.lock -r tests/requirements.txt
	$(BIN)/pip install --quiet --no-deps -e agent -e sim
	@# Both went in with --no-deps: the pins must satisfy what each declares.
	$(BIN)/pip check
	touch $@

venv: $(STAMP) ## Create .venv with azwait, azwait-sim and the pinned dependencies

demo: $(STAMP) ## Watch azwait hold a worker until the simulated VM turns Succeeded
	tests/demo.sh $(BIN)

check: lint unit integration ## Root-free, a few minutes: lint, types, unit and integration tests

test: check matrix packer-check deb-test e2e ## The test command (root): check, then every Python, packaging and boots

CLOUDINIT_FIXTURES := build/cloud-init/bookworm/complete build/cloud-init/trixie/complete

$(CLOUDINIT_FIXTURES): tests/cloudinit/fixtures.sh
	@$(call apt_ensure,dpkg-dev debian-archive-keyring)
	tests/cloudinit/fixtures.sh

cloudinit-fixtures: $(CLOUDINIT_FIXTURES) ## Debian's cloud-init 22.4 and 25.1 sources, cloud.cfg rendered per variant

unit: $(STAMP) $(CLOUDINIT_FIXTURES) ## Unit tests (pure logic; cloud-init registration against cloud-init's own code)
	$(BIN)/python -m pytest -q tests/unit

# The integration tests spend their time waiting on child processes, not on the CPU:
# four at once cut them from about 3 minutes to under 1 on 2 cores.
PYTEST_WORKERS ?= 4
export PYTEST_WORKERS

integration: $(STAMP) ## The real azwait executable against azwait-sim on loopback
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) tests/integration

# Every Python the images ship: 3.9 (RHEL 9), 3.10 (Ubuntu 22.04), 3.11 (Debian 12),
# 3.12 (Ubuntu 24.04), 3.13 (Debian 13). 3.11 is the main venv's (unit, integration).
MATRIX := 3.9 3.10 3.12 3.13

matrix: ## Unit and integration tests on every other supported Python (pyenv's or python3.X)
	tests/matrix.sh $(MATRIX)

lint: $(STAMP) ## ruff and mypy
	$(BIN)/ruff check agent sim tests cloud-init
	$(BIN)/mypy --config-file agent/pyproject.toml agent/azwait cloud-init/register.py
	$(BIN)/mypy --config-file sim/pyproject.toml sim/azwait_sim

packer-check: ## Validate the Packer template offline (installs packer and shellcheck if missing)
	tests/packer/check.sh

# Waits for a dpkg lock held by unattended-upgrades or a parallel job rather than failing.
APT := DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600
# $(call apt_ensure,PACKAGES): install those of PACKAGES that are missing.
apt_ensure = missing=$$(for p in $(1); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    $(APT) update -q && $(APT) install -y -q --no-install-recommends $$missing; fi

DEB_VERSION = $(shell sed -n 's/^__version__ = "\(.*\)"$$/\1/p' agent/azwait/__init__.py)
DEB = build/azwait_$(DEB_VERSION)_all.deb
SIM_DEB = build/azwait-sim_$(DEB_VERSION)_all.deb
DEB_BUILD_DEPS := build-essential dpkg-dev debhelper dh-python python3 python3-pip \
	python3-requests python3-cryptography python3-pytest lintian

deb: ## Build build/azwait{,-sim}_<version>_all.deb (as root on Debian 12; installs the build tools)
	@$(call apt_ensure,$(DEB_BUILD_DEPS))
	mkdir -p build/wheels
	/usr/bin/python3 -m pip download --quiet --require-hashes --no-deps --only-binary=:all: \
	    --dest build/wheels -r agent/vendor.lock
	dpkg-buildpackage -us -uc -b
	mv ../azwait_$(DEB_VERSION)_all.deb ../azwait-sim_$(DEB_VERSION)_all.deb \
	    ../azwait_$(DEB_VERSION)_*.buildinfo ../azwait_$(DEB_VERSION)_*.changes build/
	debian/rules clean
	@for deb in $(DEB) $(SIM_DEB); do \
	    echo "built $$deb: Installed-Size $$(dpkg-deb -f $$deb Installed-Size) KiB" \
	        "($$(dpkg-deb -c $$deb | awk '{s += $$3} END {printf "%d", s / 1024}') KiB of files; byte-compiled at install)"; \
	done

deb-test: deb $(CLOUDINIT_FIXTURES) ## Install the .debs with no network into fresh Debian 12 and 13 roots and check them (root)
	tests/deb/test_deb.sh $(DEB) $(SIM_DEB)

E2E_TOOLS := mmdebstrap systemd-container iproute2 util-linux

e2e: $(STAMP) deb $(CLOUDINIT_FIXTURES) ## Boot Debian 12 and 13 with the .deb under systemd-nspawn (root)
	@$(call apt_ensure,$(E2E_TOOLS))
	AZWAIT_DEB=$(DEB) $(BIN)/python -m pytest -q -s tests/e2e

bench: bench-agent bench-fleet ## All benchmarks: one agent, then a fleet

bench-agent: $(STAMP) ## Start-up, marker, memory and detection-delay benchmarks (medians)
	$(BIN)/python tests/perf/bench_agent.py

BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP) tests/requirements-bench.txt
	$(BIN)/pip install --quiet -r tests/requirements-bench.txt
	touch $@

bench-fleet: $(BENCH_STAMP) ## Scale-outs at real budget ratios, azwait vs the seed loop: 200 agents, and a model of 1,000 and 5,000 VMs (~15 min)
	$(BIN)/python -m tests.perf.bench_fleet

clean: ## Remove the venv and build output
	rm -rf $(VENV) .venv-* build .pytest_cache .mypy_cache .ruff_cache
