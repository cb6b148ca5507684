#!/bin/bash
# cloud-init as Debian ships it, for the registration tests: the source packages of
# bookworm (22.4) and trixie (25.1), each unpacked with its patches, and cloud.cfg
# rendered from each one's own config/cloud.cfg.tmpl with its own renderer for the
# ubuntu, debian, rhel and unknown variants. Each suite also gets a Python of the
# version that suite ships (3.11, 3.13; from pyenv when the machine has it) with what
# the renderer and cloudinit.util import, so tests run cloud-init's own code as the
# target would.
#
#   tests/cloudinit/fixtures.sh    -> build/cloud-init/<suite>/{src,rendered,venv,version}
#
# Needs apt-get, dpkg-source (dpkg-dev) and Debian's archive keyring; no root: apt
# runs with a private configuration under build/cloud-init/apt. Cached: a suite
# that is complete is left alone.
set -euo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT=$TOP/build/cloud-init
MIRROR=${AZWAIT_DEB_MIRROR:-http://deb.debian.org/debian}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
declare -A PYTHON=([bookworm]=3.11 [trixie]=3.13)
VARIANTS=(ubuntu debian rhel unknown)

for tool in apt-get dpkg-source; do
    command -v "$tool" >/dev/null || { echo "fixtures.sh: $tool is missing (apt-get install dpkg-dev)" >&2; exit 2; }
done
[ -r "$KEYRING" ] || { echo "fixtures.sh: $KEYRING is missing (apt-get install debian-archive-keyring)" >&2; exit 2; }

APT=$OUT/apt
mkdir -p "$APT/lists/partial" "$APT/cache/archives/partial" "$APT/parts" "$APT/prefs"
{
    for suite in "${!PYTHON[@]}"; do
        echo "deb-src [signed-by=$KEYRING] $MIRROR $suite main"
    done
} >"$APT/sources.list"
apt_private=(-o "Dir::Etc::SourceList=$APT/sources.list" -o "Dir::Etc::SourceParts=$APT/parts"
    -o "Dir::Etc::PreferencesParts=$APT/prefs" -o "Dir::State::Lists=$APT/lists"
    -o "Dir::Cache=$APT/cache" -o "Debug::NoLocking=1" -o "APT::Sandbox::User=$(id -un)")

updated=
for suite in "${!PYTHON[@]}"; do
    dir=$OUT/$suite
    [ -f "$dir/complete" ] && continue
    rm -rf "$dir"
    mkdir -p "$dir/rendered"
    if [ -z "$updated" ]; then
        apt-get "${apt_private[@]}" -q update >"$OUT/apt-update.log" 2>&1 ||
            { tail -n 20 "$OUT/apt-update.log" >&2; exit 1; }
        updated=1
    fi
    (cd "$dir" && apt-get "${apt_private[@]}" -q source "cloud-init/$suite" >"$dir/source.log" 2>&1) ||
        { tail -n 20 "$dir/source.log" >&2; exit 1; }
    src=$(find "$dir" -maxdepth 1 -type d -name 'cloud-init-*' | head -n 1)
    mv "$src" "$dir/src"
    sed -n 's/^Version: //p' "$dir"/*.dsc >"$dir/version"

    base=$("$TOP/tests/python-for" "${PYTHON[$suite]}")
    base=${base:-$(command -v python3)}
    "$base" -m venv "$dir/venv"
    "$dir/venv/bin/pip" install -q --disable-pip-version-check PyYAML Jinja2 requests 2>&1 |
        { grep -v '^WARNING: Location' || true; } >&2

    for variant in "${VARIANTS[@]}"; do
        if [ -x "$dir/src/tools/render-template" ]; then  # 25.1, called as its setup.py does
            (cd "$dir/src" && ../venv/bin/python tools/render-template --variant "$variant" --prefix /usr \
                --is-yaml config/cloud.cfg.tmpl "$dir/rendered/$variant.cfg")
        else  # 22.4
            (cd "$dir/src" && ../venv/bin/python tools/render-cloudcfg --variant "$variant" \
                config/cloud.cfg.tmpl "$dir/rendered/$variant.cfg")
        fi
    done
    touch "$dir/complete"
    echo "cloud-init $(cat "$dir/version") ($suite): ${VARIANTS[*]} rendered with $("$dir/venv/bin/python" --version)"
done
