#!/bin/bash
# Unit and integration tests on each Python version given: tests/matrix.sh 3.9 3.10 ...
# Each version gets its own venv (.venv-<version>) with the pinned runtime set and the
# test tools, so an interpreter the pins do not support fails here, at install.
# A version with no interpreter on this machine is reported as SKIPPED, loudly, in the
# summary; the run still fails if any version that ran failed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

summary=()
failed=0
for version in "$@"; do
    python=$(tests/python-for "$version")
    if [ -z "$python" ]; then
        summary+=("SKIPPED  Python $version: no interpreter on this machine (pyenv or python$version)")
        continue
    fi
    venv=.venv-$version
    stamp=$venv/.installed
    stale=0
    for input in agent/pyproject.toml agent/requirements.lock sim/pyproject.toml tests/requirements.txt; do
        [ "$input" -nt "$stamp" ] && stale=1
    done
    if [ ! -f "$stamp" ] || [ "$stale" = 1 ]; then
        rm -rf "$venv"
        { "$python" -m venv "$venv" &&
            "$venv/bin/pip" install -q --disable-pip-version-check -r agent/requirements.lock \
                -r tests/requirements.txt &&
            "$venv/bin/pip" install -q --disable-pip-version-check --no-deps -e agent -e sim &&
            "$venv/bin/pip" check --disable-pip-version-check &&
            touch "$stamp"; } 2>&1 | { grep -v '^WARNING: Location' || true; }
        if [ ! -f "$stamp" ]; then
            summary+=("FAILED   Python $version ($python): the pinned set does not install")
            failed=1
            continue
        fi
    fi
    echo "--- Python $version: $("$venv/bin/python" --version)"
    # The registration tests run cloud-init's code under each suite's own Python,
    # whatever runs pytest: once, in the main venv, is enough.
    if "$venv/bin/python" -m pytest -q -p no:cacheprovider -n "${PYTEST_WORKERS:-4}" tests/unit tests/integration \
            --ignore=tests/unit/test_cloudinit_register.py; then
        summary+=("passed   Python $version ($("$venv/bin/python" --version))")
    else
        summary+=("FAILED   Python $version ($("$venv/bin/python" --version))")
        failed=1
    fi
done
echo
echo "Python matrix:"
printf '  %s\n' "${summary[@]}"
exit "$failed"
