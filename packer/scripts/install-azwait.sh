#!/bin/sh
# Install the azwait package on the build VM and enable (not start) its units.
#
# Environment (set by build.pkr.hcl):
#   DEB_PATH       the uploaded azwait_<version>_<arch>.deb
#   ENABLE_EVENTS  "true" to enable azwait-events.service as well
# Runs as root through sudo -E.
set -eu

: "${DEB_PATH:?DEB_PATH must name the uploaded azwait .deb}"
ENABLE_EVENTS="${ENABLE_EVENTS:-false}"

log() {
    printf 'install-azwait: %s\n' "$*"
}

# apt-get that waits for a dpkg lock held by apt-daily/unattended-upgrades on
# a freshly booted VM instead of failing at once.
apt_get() {
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 "$@"
}

# cloud-init still runs on the build VM when SSH comes up; its package and
# user steps race with ours. Exit 2 is "done, with recoverable errors".
if command -v cloud-init >/dev/null 2>&1; then
    log "waiting for cloud-init to finish"
    rc=0
    cloud-init status --wait >/dev/null || rc=$?
    case "$rc" in
        0) ;;
        2) log "cloud-init finished with recoverable errors; going on" ;;
        *)
            log "cloud-init failed (cloud-init status exit $rc)"
            cloud-init status --long || true
            exit 1
            ;;
    esac
fi

[ -f "$DEB_PATH" ] || { log "no package at $DEB_PATH"; exit 1; }

log "installing $DEB_PATH"
# Fresh package lists, in case the package needs a dependency the image
# does not have yet.
apt_get update
apt_get install -y "$DEB_PATH"
rm -f "$DEB_PATH"
apt_get clean

# A separate assignment, so that set -e sees a failing azwait.
version="$(azwait --version)"
log "installed: $version"

# Enable only: the units must first run on the VMs made from this image, not
# on the build VM.
units="azwait.service azure-provisioned.target"
if [ "$ENABLE_EVENTS" = "true" ]; then
    units="$units azwait-events.service"
fi
# shellcheck disable=SC2086 # a list of unit names, split on purpose
systemctl enable $units
for unit in $units; do
    state="$(systemctl is-enabled "$unit")"
    log "$unit: $state"
done
