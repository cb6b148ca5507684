#!/bin/bash
# Offline checks of the Packer template in packer/ and its provisioner scripts.
#
#   tests/packer/check.sh
#
# Needs packer and shellcheck; installs them with apt-get when missing (as
# root on Debian 12, whose packer is 1.6.6). Contacts no cloud: `packer
# validate` only parses and type-checks the template with dummy values.
#
# Packer 1.6.6 predates `required_plugins`, so the template is validated from
# a copy of packer/ without plugins.pkr.hcl, against the azure-arm builder
# built into 1.6.6. The template sticks to arguments that builder shares with
# the current azure plugin (>= 2.0.0).
#
# One line per check ("ok: ..." or "FAIL: ..."), then a count; exits non-zero
# when any check failed.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
pk="$root/packer"

passed=0
failed=0
pass() { printf 'ok: %s\n' "$1"; passed=$((passed + 1)); }
fail() { printf 'FAIL: %s\n' "$1"; failed=$((failed + 1)); }

# run NAME CMD...: one check; its output is shown only when it fails.
run() {
    local name="$1" out
    shift
    if out="$("$@" 2>&1)"; then
        pass "$name"
    else
        fail "$name"
        printf '%s\n' "$out" | sed 's/^/    /'
    fi
}

# run_fails NAME TEXT CMD...: a check that the command is rejected with a
# message containing TEXT.
run_fails() {
    local name="$1" text="$2" out
    shift 2
    if out="$("$@" 2>&1)"; then
        fail "$name (was accepted)"
    elif [[ "$out" == *"$text"* ]]; then
        pass "$name"
    else
        fail "$name (rejected, but without \"$text\")"
        printf '%s\n' "$out" | sed 's/^/    /'
    fi
}

# --- tools -------------------------------------------------------------------
missing=()
command -v packer >/dev/null 2>&1 || missing+=(packer)
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
if ((${#missing[@]})); then
    echo "installing ${missing[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    # Package lists are refreshed only when the first try fails.
    apt=(apt-get -o DPkg::Lock::Timeout=600)  # waits out another dpkg user
    if ! out="$({ "${apt[@]}" install -y -qq "${missing[@]}" ||
        { "${apt[@]}" update -qq && "${apt[@]}" install -y -qq "${missing[@]}"; }; } 2>&1)"; then
        printf 'FAIL: apt-get install %s\n' "${missing[*]}"
        printf '%s\n' "$out" | sed 's/^/    /'
        exit 1
    fi
fi
echo "using $(packer version | head -n1), shellcheck $(shellcheck --version | sed -n 's/^version: //p')"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# --- packer fmt --------------------------------------------------------------
# fmt only parses, so 1.6.6 can check every file, plugins.pkr.hcl included.
for f in "$pk"/*.pkr.hcl "$pk"/*.pkrvars.hcl; do
    [ -e "$f" ] || continue
    run "packer fmt -check ${f#"$root"/}" packer fmt -check -diff "$f"
done

# --- packer validate ---------------------------------------------------------
tpl="$work/template"
mkdir -p "$tpl"
for f in "$pk"/*.pkr.hcl; do
    [ "$(basename "$f")" = plugins.pkr.hcl ] || cp "$f" "$tpl/"
done
cp -R "$pk/scripts" "$tpl/scripts"
# The file provisioner checks that its source exists.
deb="$work/build/azwait_0.0.0_amd64.deb"
mkdir -p "$(dirname "$deb")"
: >"$deb"

validate() {
    (cd "$tpl" && packer validate -var "deb_path=$deb" "$@" .)
}

run "packer validate: managed image, Ubuntu 24.04, Azure CLI auth" \
    validate -var location=westeurope -var use_azure_cli_auth=true \
    -var managed_image_name=azwait-test -var managed_image_resource_group_name=rg-images
run "packer validate: managed image + gallery version, Ubuntu 22.04, service principal, existing build RG" \
    validate -var ubuntu_version=22.04 -var build_resource_group_name=rg-build \
    -var client_id=00000000-0000-0000-0000-000000000001 -var client_secret=dummy \
    -var subscription_id=00000000-0000-0000-0000-000000000002 -var tenant_id=00000000-0000-0000-0000-000000000003 \
    -var managed_image_name=azwait-test -var managed_image_resource_group_name=rg-images \
    -var gallery_name=gal -var gallery_resource_group=rg-gallery -var gallery_image_version=1.2.3 \
    -var 'gallery_replication_regions=["westeurope","northeurope"]' -var enable_events_service=true \
    -var 'tags={"team":"hpc"}'
run "packer validate: Azure's Ubuntu HPC image (microsoft-dsvm:ubuntu-hpc:2404), pinned version" \
    validate -var location=westeurope -var managed_image_name=azwait-hpc \
    -var managed_image_resource_group_name=rg-images -var image_publisher=microsoft-dsvm \
    -var image_offer=ubuntu-hpc -var image_sku=2404 -var image_version=24.04.2026052601
run_fails "packer validate rejects a base image named by publisher alone" "An image_offer must be specified" \
    validate -var location=westeurope -var managed_image_name=x -var managed_image_resource_group_name=rg \
    -var image_publisher=microsoft-dsvm
if [ -e "$pk/example.pkrvars.hcl" ]; then
    run "packer validate: packer/example.pkrvars.hcl" \
        validate -var-file="$pk/example.pkrvars.hcl" -var "deb_path=$deb"
fi
run_fails "packer validate rejects ubuntu_version=20.04" "must be \"22.04\" or \"24.04\"" \
    validate -var location=westeurope -var managed_image_name=x -var managed_image_resource_group_name=rg \
    -var ubuntu_version=20.04
run_fails "packer validate rejects a deb_path that is not azwait_*.deb" "must name an azwait_" \
    validate -var location=westeurope -var managed_image_name=x -var managed_image_resource_group_name=rg \
    -var deb_path=/tmp/other.deb
# The simulator's package has no place in a production image.
run_fails "packer validate rejects the simulator's azwait-sim_*.deb" "must name an azwait_" \
    validate -var location=westeurope -var managed_image_name=x -var managed_image_resource_group_name=rg \
    -var deb_path=build/azwait-sim_0.2.0_all.deb
run_fails "packer validate rejects a template with no destination" "managed_image_name must be specified" \
    validate -var location=westeurope

# --- build order -------------------------------------------------------------
# The deprovision script must be the last step of the build.
last_script="$(grep -E '^\s*script\s*=' "$pk/build.pkr.hcl" | tail -n1)"
if [[ "$last_script" == *"scripts/deprovision.sh"* ]]; then
    pass "build.pkr.hcl: deprovision.sh is the last provisioner"
else
    fail "build.pkr.hcl: deprovision.sh is the last provisioner (last is: $last_script)"
fi
clean_line="$(grep -n '^azwait clean' "$pk/scripts/deprovision.sh" | cut -d: -f1 || true)"
waagent_line="$(grep -n 'waagent -force -deprovision+user' "$pk/scripts/deprovision.sh" | cut -d: -f1 || true)"
if [ -n "$clean_line" ] && [ -n "$waagent_line" ] && [ "$clean_line" -lt "$waagent_line" ]; then
    pass "deprovision.sh: azwait clean runs before waagent -deprovision+user"
else
    fail "deprovision.sh: azwait clean runs before waagent -deprovision+user"
fi

# --- shellcheck --------------------------------------------------------------
for f in "$pk"/scripts/*.sh "$root/tests/packer/check.sh"; do
    run "shellcheck ${f#"$root"/}" shellcheck "$f"
done

# --- install-azwait.sh against stub commands ---------------------------------
# Stubs for cloud-init, apt-get, azwait and systemctl record their arguments;
# the real script runs under sh, as on the build VM.
stubs="$work/stubs"
mkdir -p "$stubs"
for cmd in cloud-init apt-get azwait systemctl; do
    cat >"$stubs/$cmd" <<STUB
#!/bin/sh
echo "$cmd \$*" >>"$work/calls"
case "$cmd \$1" in
    "cloud-init status") exit "\${STUB_CLOUD_INIT_RC:-0}" ;;
    "azwait --version") echo "azwait 0.0.0"; exit "\${STUB_AZWAIT_RC:-0}" ;;
    "systemctl is-enabled") echo enabled ;;
esac
exit 0
STUB
    chmod +x "$stubs/$cmd"
done

# install_stubbed [VAR=VALUE...]: run install-azwait.sh with the stubs.
install_stubbed() {
    : >"$work/calls"
    : >"$work/up.deb"
    env PATH="$stubs:$PATH" DEB_PATH="$work/up.deb" "$@" sh "$pk/scripts/install-azwait.sh"
}

# The calls, one a line, in order, as a single string for pattern matching.
calls() { tr '\n' '|' <"$work/calls"; }

install_ok() {
    install_stubbed ENABLE_EVENTS=false >/dev/null || return 1
    local c
    c="$(calls)"
    [[ "$c" == "cloud-init status --wait|"*"apt-get "*"install -y $work/up.deb|"* ]] || { echo "calls: $c"; return 1; }
    [[ "$c" == *"azwait --version|"* ]] || { echo "no azwait --version: $c"; return 1; }
    [[ "$c" == *"systemctl enable azwait.service azure-provisioned.target|"* ]] || { echo "calls: $c"; return 1; }
    [[ "$c" != *"azwait-events"* ]] || { echo "events service enabled: $c"; return 1; }
    [[ "$c" != *"systemctl start"* && "$c" != *"--now"* ]] || { echo "a unit was started: $c"; return 1; }
    [ ! -e "$work/up.deb" ] || { echo "uploaded .deb left behind"; return 1; }
}
run "install-azwait.sh: waits for cloud-init, installs the .deb, enables (not starts) the units" install_ok

install_events() {
    install_stubbed ENABLE_EVENTS=true >/dev/null || return 1
    local c
    c="$(calls)"
    [[ "$c" == *"systemctl enable azwait.service azure-provisioned.target azwait-events.service|"* ]] \
        || { echo "calls: $c"; return 1; }
    [[ "$c" == *"systemctl is-enabled azwait-events.service|"* ]] || { echo "not checked: $c"; return 1; }
}
run "install-azwait.sh: ENABLE_EVENTS=true enables azwait-events.service" install_events
run "install-azwait.sh: cloud-init's recoverable errors (exit 2) are tolerated" \
    install_stubbed STUB_CLOUD_INIT_RC=2
run_fails "install-azwait.sh: fails when cloud-init failed (exit 1)" "cloud-init failed" \
    install_stubbed STUB_CLOUD_INIT_RC=1
run_fails "install-azwait.sh: fails when azwait --version fails" "" \
    install_stubbed STUB_AZWAIT_RC=1
run_fails "install-azwait.sh: fails without DEB_PATH" "DEB_PATH must name" \
    env -u DEB_PATH PATH="$stubs:$PATH" sh "$pk/scripts/install-azwait.sh"

echo "packer checks: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
