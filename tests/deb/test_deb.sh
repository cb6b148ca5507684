#!/bin/bash
# The Debian package test: install the built .debs, with no network, into fresh
# Debian 12 (bookworm) and Debian 13 (trixie) root filesystems and check what
# the packages promise (README, "Packaging"): azwait, and azwait-sim (the
# simulator, which azwait must not contain) beside it where a test needs it.
#
#   tests/deb/test_deb.sh [build/azwait_<version>_all.deb [build/azwait-sim_<version>_all.deb]]
#
# Without an argument it runs `make deb` first; azwait-sim's .deb defaults to
# the one beside azwait's. Installs what it needs
# (mmdebstrap, lintian, ...) with apt-get; must run as root. The root
# filesystems are cached as tarballs in build/rootfs/, keyed by suite, variant,
# package list and mirror; every test extracts a fresh copy.
# Environment: AZWAIT_DEB_SUITES (default "bookworm trixie"),
# AZWAIT_DEB_MIRROR (default http://deb.debian.org/debian).
#
# One PASS/FAIL line per check, then "N passed, N failed"; exit 1 on any FAIL.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
cd "$TOP" || exit 2

SUITES=${AZWAIT_DEB_SUITES:-bookworm trixie}
MIRROR=${AZWAIT_DEB_MIRROR:-http://deb.debian.org/debian}
VARIANT=minbase
# The distribution dependencies are preinstalled, as on Ubuntu/Azure cloud
# images (cloud-init already depends on python3-requests), so that the package
# itself installs with no network.
INCLUDE=python3,python3-requests,python3-cryptography,ca-certificates
MAX_INSTALLED_KB=$((25 * 1024))

WORK=$TOP/build/deb-test
LOG=$WORK/log
passed=0
failed=0
MOUNTS=()
PIDS=()

pass() { echo "PASS: $*"; passed=$((passed + 1)); }
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }
note() { echo "      $*"; }

# check DESCRIPTION COMMAND...: PASS when COMMAND exits 0; on FAIL show its output.
check() {
    local what=$1
    shift
    if "$@" >"$LOG" 2>&1; then
        pass "$what"
    else
        fail "$what"
        sed 's/^/      | /' "$LOG" | tail -n 25
    fi
}

cleanup() {
    local pid mnt
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
    PIDS=()
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
        mnt=${MOUNTS[i]}
        mountpoint -q "$mnt" && { umount "$mnt" 2>/dev/null || umount -l "$mnt"; }
    done
    MOUNTS=()
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

need_tools() {
    local missing=() pkg
    for pkg in mmdebstrap lintian dpkg-dev debian-archive-keyring systemd util-linux man-db; do
        dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null | grep -q '^install ok installed' \
            || missing+=("$pkg")
    done
    if ((${#missing[@]})); then
        echo "installing ${missing[*]}"
        local apt=(apt-get -o DPkg::Lock::Timeout=600)  # waits out another dpkg user
        "${apt[@]}" update -q >/dev/null &&
            DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -q --no-install-recommends \
                "${missing[@]}" >/dev/null
    fi
}

# rootfs SUITE [PACKAGES [MMDEBSTRAP-OPTION...]] -> path of the cached tarball (built on first use)
rootfs() {
    local suite=$1 include=${2:-$INCLUDE} key tar
    shift $(($# < 2 ? $# : 2))
    key=$(printf '%s\n' "$suite" "$VARIANT" "$include" "$MIRROR" "$@" | sha256sum | cut -c1-12)
    tar=$TOP/build/rootfs/$suite-$VARIANT-$key.tar
    if [ ! -f "$tar" ] || [ ! -s "$tar" ]; then
        rm -rf "$tar" "$tar.part"
        mkdir -p "$TOP/build/rootfs"
        echo "      building the $suite root filesystem (mmdebstrap, once; cached in build/rootfs/)" >&2
        if ! mmdebstrap --quiet --format=tar --variant="$VARIANT" --include="$include" "$@" \
            "$suite" "$tar.part" "$MIRROR" >"$WORK/mmdebstrap-$suite.log" 2>&1; then
            tail -n 20 "$WORK/mmdebstrap-$suite.log" >&2
            rm -f "$tar.part"
            return 1
        fi
        mv "$tar.part" "$tar"
    fi
    echo "$tar"
}

in_root() { chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 "$@"; }
# Same, with no network at all: a new network namespace holds only a down "lo".
offline() { unshare --net chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"; }

# ---------------------------------------------------------------------------

if [ "$(id -u)" != 0 ]; then
    echo "tests/deb/test_deb.sh: run as root (mmdebstrap, chroot, mount)" >&2
    exit 2
fi
# A run that was killed may have left /proc mounted in a root: unmount
# before deleting, and never cross into another file system.
findmnt -rn -o TARGET | grep "^$WORK/" | sort -r | xargs -r -n1 umount -l
rm -rf --one-file-system "$WORK"
mkdir -p "$WORK"
need_tools

VERSION=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' agent/azwait/__init__.py)
DEB=${1:-}
if [ -z "$DEB" ]; then
    make deb || { fail "make deb"; echo "$passed passed, $failed failed"; exit 1; }
    DEB=build/azwait_${VERSION}_all.deb
fi
DEB=$(readlink -f "$DEB")
SIM_DEB=$(readlink -f "${2:-$(dirname "$DEB")/azwait-sim_${VERSION}_all.deb}")
for deb in "$DEB" "$SIM_DEB"; do
    if [ ! -f "$deb" ]; then
        fail "the .deb exists ($deb)"
        echo "$passed passed, $failed failed"
        exit 1
    fi
done
echo "packages: $DEB $SIM_DEB"

# --- the .deb itself -------------------------------------------------------

EXTRACT=$WORK/extract
dpkg-deb -x "$DEB" "$EXTRACT"
dpkg-deb -e "$DEB" "$WORK/control"
dpkg-deb -c "$DEB" | awk '{print $6}' | sed 's,^\./,/,; s,/$,,' >"$WORK/contents"

check "dpkg-deb: package version is $VERSION (agent/azwait/__init__.py)" \
    test "$(dpkg-deb -f "$DEB" Version)" = "$VERSION"

lintian --fail-on error --display-info "$DEB" "$SIM_DEB" >"$WORK/lintian" 2>&1
rc=$?
check "lintian: no errors (azwait and azwait-sim)" test "$rc" = 0
sed 's/^/      lintian | /' "$WORK/lintian"

expected=(/usr/bin/azwait /lib/systemd/system/azwait.service
    /lib/systemd/system/azure-provisioned.target /lib/systemd/system/azwait-events.service
    /etc/default/azwait
    /usr/share/man/man8/azwait.8.gz /usr/share/doc/azwait/copyright
    /usr/lib/azwait/azwait/cli.py /usr/lib/azwait/vendor/azure/core/__init__.py
    /usr/lib/azwait/vendor/azure/mgmt/resource/__init__.py)
# The cloud-init pieces, for each one the source tree has.
for f in cloud-init/per-boot/*; do
    [ -f "$f" ] && expected+=("/usr/share/azwait/cloud-init/per-boot/${f##*/}")
done
[ -f cloud-init/cc_azwait.py ] &&
    expected+=(/usr/lib/python3/dist-packages/cloudinit/config/cc_azwait.py
        /usr/lib/azwait/cloud-init-register)
missing=()
for f in "${expected[@]}"; do grep -qxF "$f" "$WORK/contents" || missing+=("$f"); done
check "dpkg -c lists the launcher, units, conffile, man page, cloud-init pieces (${#expected[@]} files)" \
    test ${#missing[@]} = 0
((${#missing[@]})) && note "missing: ${missing[*]}"

# No simulator, no certificate generator: those are azwait-sim's. Nothing in
# azwait needs cryptography: the token is one GET to IMDS, with no azure-identity,
# MSAL or PyJWT (which would need it) bundled.
simulator=$(grep -E '(azwait_sim|azwait-sim|/sim(/|$)|/tls\.py$)' "$WORK/contents")
check "azwait carries no simulator (no azwait_sim, sim/, tls.py, azwait-sim in its file list)" \
    test -z "$simulator"
[ -n "$simulator" ] && note "$simulator"
importers=$(grep -rlE '^[[:space:]]*(import|from)[[:space:]]+(cryptography|azwait_sim)\b' \
    "$EXTRACT/usr/lib/azwait/azwait" "$EXTRACT/usr/lib/azwait/cloud-init-register" "$EXTRACT/usr/bin" \
    "$EXTRACT/usr/lib/python3/dist-packages/cloudinit/config/cc_azwait.py" 2>&1)
check "nothing of azwait's own imports cryptography or the simulator" test -z "$importers"
[ -n "$importers" ] && note "$importers"

unneeded=$(grep -E '^/usr/lib/azwait/vendor/(azure/identity|azure_identity|msal|jwt|PyJWT|pyjwt)([/.-]|$)' "$WORK/contents")
check "vendor dir bundles no azure-identity, MSAL or PyJWT" test -z "$unneeded"
[ -n "$unneeded" ] && note "$(echo "$unneeded" | head -n 5)"
depends=$(dpkg-deb -f "$DEB" Depends)
check "azwait: Depends on python3-requests, not python3-cryptography ($depends)" \
    sh -c "echo '$depends' | grep -q 'python3-requests' && ! echo '$depends' | grep -q 'cryptography'"

shadow=$(grep -E '^/usr/lib/azwait/vendor/(requests|urllib3|idna|charset_normalizer|certifi|cryptography|cffi|_cffi_backend|pycparser)([/.-]|$)' "$WORK/contents")
check "vendor dir bundles nothing the distribution provides (requests, urllib3, cryptography, ...)" \
    test -z "$shadow"
check "no .pyc shipped (compiled by py3compile at install)" \
    test -z "$(grep -E '\.pyc$|__pycache__' "$WORK/contents")"

# azwait-sim: the simulator's source and a launcher, nothing vendored.
dpkg-deb -c "$SIM_DEB" | awk '{print $6}' | sed 's,^\./,/,; s,/$,,' >"$WORK/sim-contents"
check "azwait-sim: package version is $VERSION" test "$(dpkg-deb -f "$SIM_DEB" Version)" = "$VERSION"
expected=(/usr/bin/azwait-sim /usr/lib/azwait-sim/azwait_sim/cli.py /usr/lib/azwait-sim/azwait_sim/tls.py
    /usr/share/man/man1/azwait-sim.1.gz /usr/share/doc/azwait-sim/copyright
    /usr/share/doc/azwait-sim/README.md)
missing=()
for f in "${expected[@]}"; do grep -qxF "$f" "$WORK/sim-contents" || missing+=("$f"); done
check "azwait-sim: dpkg -c lists the launcher, the simulator, its man page and README (${#expected[@]} files)" \
    test ${#missing[@]} = 0
((${#missing[@]})) && note "missing: ${missing[*]}"
# (dh_python3's rtupdate hook recompiles /usr/lib/azwait-sim when python3 changes.)
stray=$(grep -vxE '|/usr|/usr/(bin|lib|share)|/usr/bin/azwait-sim|/usr/lib/azwait-sim(/azwait_sim(/[a-z_]+\.py)?)?|/usr/share/man(/man1(/azwait-sim\.1\.gz)?)?|/usr/share/doc(/azwait-sim(/[^/]+)?)?|/usr/share/python3(/runtime\.d(/azwait-sim\.rtupdate)?)?' \
    "$WORK/sim-contents")
check "azwait-sim: nothing else (no vendored module, no .pyc, no unit, no conffile)" test -z "$stray"
[ -n "$stray" ] && note "$stray"
depends=$(dpkg-deb -f "$SIM_DEB" Depends)
check "azwait-sim: Depends on python3 (>= 3.9) and python3-cryptography, not on azwait ($depends)" \
    sh -c "echo '$depends' | grep -q 'python3 (>= 3.9)' && echo '$depends' | grep -q 'python3-cryptography' &&
           ! echo '$depends' | grep -Eq '(^|[ ,])azwait([ ,(]|$)'"

check "conffiles: /etc/default/azwait, and nothing in /etc/cloud (the module list is generated)" \
    sh -c "grep -qxF /etc/default/azwait '$WORK/control/conffiles' && ! grep -q '^/etc/cloud' '$WORK/control/conffiles'"
check "triggers: interest in /etc/cloud/cloud.cfg and /etc/cloud/cloud.cfg.d" \
    sh -c "grep -qx 'interest-noawait /etc/cloud/cloud.cfg' '$WORK/control/triggers' &&
           grep -qx 'interest-noawait /etc/cloud/cloud.cfg.d' '$WORK/control/triggers'"
keys=(TIMEOUT INTERVAL CLIENT_ID OBJECT_ID MSI_RES_ID IDENTITY_GRACE RBAC_GRACE IMDS_GRACE
    ON_FAILED STATE_DIR LOG_FORMAT LOG_LEVEL IMDS_ENDPOINT ARM_ENDPOINT WORKER
    DRAIN_COMMAND DRAIN_TIMEOUT DRAIN_EVENTS)
absent=()
for k in "${keys[@]}"; do grep -q "^#AZWAIT_$k=" "$EXTRACT/etc/default/azwait" || absent+=("$k"); done
check "/etc/default/azwait lists every key, commented out" \
    sh -c "test ${#absent[@]} = 0 && ! grep -Eq '^[[:space:]]*[^#[:space:]]' '$EXTRACT/etc/default/azwait'"
((${#absent[@]})) && note "keys missing: ${absent[*]}"

# Maintainer scripts start nothing and enable nothing. debhelper's snippet
# re-creates enablement symlinks only for a unit the admin had enabled before
# (was-enabled); anything else that starts or enables is a failure.
scripts=$(cat "$WORK"/control/{preinst,postinst,prerm,postrm} 2>/dev/null)
bad=$(printf '%s\n' "$scripts" | grep -nE 'deb-systemd-invoke +(start|restart|try-restart)|systemctl +(--[a-z-]+ +)*(start|restart|enable|reenable)|invoke-rc\.d|update-rc\.d')
unguarded=$(printf '%s\n' "$scripts" | awk '/was-enabled/ {g=1; next} /deb-systemd-helper[^|]* enable / && !g {print} /^[[:space:]]*fi/ {g=0}')
check "maintainer scripts start nothing and enable nothing" test -z "$bad$unguarded"
[ -n "$bad$unguarded" ] && note "$bad $unguarded"

installed_kb=$(dpkg-deb -f "$DEB" Installed-Size)
du_kb=$(du -sk "$EXTRACT" | cut -f1)
check "installed size ${installed_kb} KiB (du ${du_kb} KiB, before .pyc) <= 25 MiB" \
    test "$installed_kb" -le "$MAX_INSTALLED_KB"
note "azwait-sim: Installed-Size $(dpkg-deb -f "$SIM_DEB" Installed-Size) KiB"

# systemd-analyze verify needs the unit's ExecStart binary and its man page:
# lay the package's over the host's in a private mount namespace.
check "systemd-analyze verify: azwait.service, azure-provisioned.target, azwait-events.service" \
    unshare -m sh -ec "
        mount -t overlay overlay -o lowerdir='$EXTRACT/usr/bin':/usr/bin /usr/bin
        MANPATH='$EXTRACT/usr/share/man:' systemd-analyze verify \
            '$EXTRACT/lib/systemd/system/azwait.service' \
            '$EXTRACT/lib/systemd/system/azure-provisioned.target' \
            '$EXTRACT/lib/systemd/system/azwait-events.service'"

# The version lives in agent/azwait/__init__.py; debian/rules refuses a
# debian/changelog that disagrees.
VCHK=$WORK/version-check
mkdir -p "$VCHK/agent/azwait" "$VCHK/sim/azwait_sim"
cp -r debian "$VCHK/"
cp agent/azwait/__init__.py "$VCHK/agent/azwait/"
cp sim/azwait_sim/__init__.py "$VCHK/sim/azwait_sim/"
check "debian/rules check-version passes when changelog and both __version__ agree" \
    make -s -C "$VCHK" -f debian/rules check-version
cp debian/changelog "$VCHK/changelog.orig"
sed -i "1s/(\([^)]*\))/(\1.1)/" "$VCHK/debian/changelog"
check "debian/rules check-version fails when they disagree ($(sed -n '1s/.*(\(.*\)).*/\1/p' "$VCHK/debian/changelog") vs $VERSION)" \
    sh -c "! make -s -C '$VCHK' -f debian/rules check-version"
cp "$VCHK/changelog.orig" "$VCHK/debian/changelog"
sed -i 's/^__version__ = ".*"/__version__ = "0.0.0"/' "$VCHK/sim/azwait_sim/__init__.py"
check "debian/rules check-version fails when azwait-sim's __version__ disagrees (0.0.0 vs $VERSION)" \
    sh -c "! make -s -C '$VCHK' -f debian/rules check-version 2>'$WORK/version-sim.err' &&
           grep -q 'sim/azwait_sim/__init__.py says __version__ = 0.0.0' '$WORK/version-sim.err'"

# --- install into fresh Debian 12 and 13 -----------------------------------

for SUITE in $SUITES; do
    echo "--- $SUITE"
    if ! TAR=$(rootfs "$SUITE"); then
        fail "$SUITE: mmdebstrap root filesystem"
        continue
    fi
    ROOT=$WORK/root-$SUITE
    mkdir -p "$ROOT"
    tar -C "$ROOT" -xf "$TAR"
    mount -t proc proc "$ROOT/proc" && MOUNTS+=("$ROOT/proc")
    cp "$DEB" "$ROOT/tmp/azwait.deb"
    cp "$SIM_DEB" "$ROOT/tmp/azwait-sim.deb"
    # A minbase bookworm root has no /etc/hosts (a booted system does), and
    # the sim's ARM URL names "localhost".
    [ -e "$ROOT/etc/hosts" ] || printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$ROOT/etc/hosts"
    note "$(in_root sh -c '. /etc/os-release; echo "$PRETTY_NAME"'), $(in_root python3 --version)," \
        "python3-requests $(in_root dpkg-query -W -f='${Version}' python3-requests)," \
        "python3-cryptography $(in_root dpkg-query -W -f='${Version}' python3-cryptography)"

    # No network: a fresh network namespace (only a down loopback) and no apt
    # lists in the root: the install can only succeed if everything it needs
    # is already there. (apt's --no-download refuses a local .deb, so it is
    # not used.)
    ifaces=$(unshare --net sh -c 'tail -n +3 /proc/net/dev' | awk '{printf "%s ", $1}')
    check "$SUITE: the install's network namespace has no interface but lo ($ifaces)" \
        test "$ifaces" = "lo: "
    check "$SUITE: apt-get install ./azwait.deb with no network" \
        offline apt-get install -y -o Dpkg::Use-Pty=0 --no-install-recommends /tmp/azwait.deb
    grep -E '^(The following NEW|  azwait|[0-9]+ upgraded)' "$LOG" | sed 's/^/      apt | /'

    check "$SUITE: azwait --version prints $VERSION" \
        sh -c "test \"\$(chroot '$ROOT' /usr/bin/env -i PATH=/usr/bin:/bin /usr/bin/azwait --version)\" = 'azwait $VERSION'"
    t0=$(date +%s%N)
    in_root azwait --version >/dev/null 2>&1
    t1=$(date +%s%N)
    note "azwait --version took $(((t1 - t0) / 1000000)) ms (byte-compiled at install)"
    check "$SUITE: azwait --help exits 0" in_root azwait --help
    check "$SUITE: modules byte-compiled at install (py3compile)" \
        sh -c "ls '$ROOT'/usr/lib/azwait/azwait/__pycache__/cli.*.pyc '$ROOT'/usr/lib/azwait/vendor/azure/core/__pycache__/*.pyc >/dev/null"
    note "/usr/lib/azwait after byte-compiling: $(du -sh "$ROOT/usr/lib/azwait" | cut -f1)"
    check "$SUITE: requests, urllib3 from the distribution; azure-core, azure-mgmt-resource, structlog from the vendor dir" \
        in_root /usr/bin/python3 -I -c '
import sys
sys.path[0:0] = ["/usr/lib/azwait", "/usr/lib/azwait/vendor"]
import requests, urllib3, azure.core, azure.mgmt.resource.resources, structlog
for m in (requests, urllib3):
    assert m.__file__.startswith("/usr/lib/python3/dist-packages/"), m.__file__
for m in (azure.core, azure.mgmt.resource.resources, structlog):
    assert m.__file__.startswith("/usr/lib/azwait/vendor/"), m.__file__'
    check "$SUITE: dpkg-query Conffiles lists /etc/default/azwait" \
        sh -c "chroot '$ROOT' dpkg-query -W -f='\${Conffiles}' azwait | grep -q '^ /etc/default/azwait '"
    wants=$(find "$ROOT/etc/systemd/system" -name 'azwait*' -o -name 'azure-provisioned*' 2>/dev/null)
    check "$SUITE: installing enabled nothing (no azwait/azure-provisioned link in /etc/systemd/system)" \
        test -z "$wants"
    [ -n "$wants" ] && note "$wants"

    # azwait alone, as on a production VM: no simulator, and the old verb says
    # where it went.
    check "$SUITE: azwait alone installs no azwait-sim and no /usr/lib/azwait-sim" \
        sh -c "! test -e '$ROOT/usr/bin/azwait-sim' && ! test -e '$ROOT/usr/lib/azwait-sim'"
    check "$SUITE: azwait sim exits 2 with one line naming azwait-sim" \
        sh -c "chroot '$ROOT' /usr/bin/env -i PATH=/usr/bin:/bin azwait sim --states Succeeded@0 \
                >'$WORK/old-verb-$SUITE' 2>&1; rc=\$?; cat '$WORK/old-verb-$SUITE';
               test \$rc = 2 && test \$(wc -l <'$WORK/old-verb-$SUITE') = 1 &&
               grep -q 'azwait-sim' '$WORK/old-verb-$SUITE'"

    # The simulator's package beside it, for the tests below.
    check "$SUITE: apt-get install ./azwait-sim.deb with no network" \
        offline apt-get install -y -o Dpkg::Use-Pty=0 --no-install-recommends /tmp/azwait-sim.deb
    grep -E '^(The following NEW|  azwait|[0-9]+ upgraded)' "$LOG" | sed 's/^/      apt | /'
    check "$SUITE: azwait-sim --help exits 0" \
        sh -c "chroot '$ROOT' /usr/bin/env -i PATH=/usr/bin:/bin LC_ALL=C.UTF-8 azwait-sim --help >'$LOG' 2>&1 &&
               grep -q -- '--states' '$LOG'"
    check "$SUITE: azwait-sim --version prints $VERSION" \
        sh -c "test \"\$(chroot '$ROOT' /usr/bin/env -i PATH=/usr/bin:/bin /usr/bin/azwait-sim --version)\" = 'azwait-sim $VERSION'"
    check "$SUITE: azwait-sim with a bad flag: exit 2, one line, no traceback" \
        sh -c "chroot '$ROOT' /usr/bin/env -i PATH=/usr/bin:/bin azwait-sim --vms many >'$LOG' 2>&1; rc=\$?;
               test \$rc = 2 && test \$(wc -l <'$LOG') = 1 && ! grep -q Traceback '$LOG'"
    check "$SUITE: azwait-sim byte-compiled at install (py3compile)" \
        sh -c "ls '$ROOT'/usr/lib/azwait-sim/azwait_sim/__pycache__/cli.*.pyc >/dev/null"
    check "$SUITE: azwait-sim's cryptography is the distribution's" \
        in_root /usr/bin/python3 -I -c '
import sys
sys.path[0:0] = ["/usr/lib/azwait-sim"]
import azwait_sim.tls, cryptography
assert azwait_sim.tls.__file__.startswith("/usr/lib/azwait-sim/"), azwait_sim.tls.__file__
assert cryptography.__file__.startswith("/usr/lib/python3/dist-packages/"), cryptography.__file__'

    # azwait status against azwait-sim, both inside the root. The sim's test
    # CA goes into the root's trust store: Debian's requests uses the system
    # CA bundle, so no REQUESTS_CA_BUNDLE is needed.
    rm -f "$ROOT/var/tmp/sim-ready.json"
    chroot "$ROOT" /usr/bin/env -i PATH=/usr/bin:/bin LC_ALL=C.UTF-8 \
        azwait-sim --states Succeeded@0 --cert-dir /var/tmp/azwait-sim \
        --ready-file /var/tmp/sim-ready.json --duration 300 \
        >"$WORK/sim-$SUITE.out" 2>"$WORK/sim-$SUITE.err" &
    PIDS+=($!)
    for _ in $(seq 100); do
        [ -s "$ROOT/var/tmp/sim-ready.json" ] && break
        kill -0 "${PIDS[-1]}" 2>/dev/null || break
        sleep 0.2
    done
    if ! [ -s "$ROOT/var/tmp/sim-ready.json" ]; then
        fail "$SUITE: azwait-sim starts inside the root and prints its ready line"
        sed 's/^/      | /' "$WORK/sim-$SUITE.err" | tail -n 20
    else
        pass "$SUITE: azwait-sim starts inside the root and prints its ready line"
        ready=$(cat "$ROOT/var/tmp/sim-ready.json")
        note "sim: $ready"
        field() { python3 -c 'import json,sys; v=json.loads(sys.argv[1]).get(sys.argv[2]); print(v or "")' "$ready" "$1"; }
        imds=$(field imds)
        arm=$(field arm)
        ca=$(field ca)
        if [ -n "$ca" ]; then
            cp "$ROOT$ca" "$ROOT/usr/local/share/ca-certificates/azwait-sim-test-ca.crt"
            check "$SUITE: update-ca-certificates adds the sim's CA" in_root update-ca-certificates
        fi
        check "$SUITE: azwait status (IMDS $imds, ARM $arm) exits 0 and reports Succeeded" \
            sh -c "chroot '$ROOT' /usr/bin/env -i PATH=/usr/bin:/bin LC_ALL=C.UTF-8 \
                AZWAIT_IMDS_ENDPOINT='$imds' AZWAIT_ARM_ENDPOINT='$arm' azwait status >'$WORK/status-$SUITE' 2>&1;
                rc=\$?; cat '$WORK/status-$SUITE'; test \$rc = 0 && grep -Eq '^state: +Succeeded' '$WORK/status-$SUITE'"
        sed 's/^/      status | /' "$WORK/status-$SUITE"
        check "$SUITE: azwait -- /bin/echo worker-ran: waits for Succeeded, then execs the worker" \
            sh -c "chroot '$ROOT' /usr/bin/env -i PATH=/usr/bin:/bin LC_ALL=C.UTF-8 \
                AZWAIT_IMDS_ENDPOINT='$imds' AZWAIT_ARM_ENDPOINT='$arm' azwait --timeout 60s -- /bin/echo worker-ran \
                | tail -n 1 | grep -qx worker-ran"
        # The whole wait (IMDS, the token, ARM over TLS) with cryptography made
        # unimportable: the package's Depends leave it out, so nothing may need it.
        cat >"$ROOT/var/tmp/no-crypto.py" <<'PY'
import sys
sys.modules["cryptography"] = None  # any import of it now fails
sys.path[0:0] = ["/usr/lib/azwait", "/usr/lib/azwait/vendor"]  # as /usr/bin/azwait
from azwait.cli import main
main(["--timeout", "60s", "--", "/bin/echo", "worker-ran-without-cryptography"])
PY
        check "$SUITE: a whole wait, with cryptography unimportable, starts the worker" \
            sh -c "chroot '$ROOT' /usr/bin/env -i PATH=/usr/bin:/bin LC_ALL=C.UTF-8 \
                AZWAIT_IMDS_ENDPOINT='$imds' AZWAIT_ARM_ENDPOINT='$arm' AZWAIT_STATE_DIR=/var/tmp/no-crypto \
                python3 -I /var/tmp/no-crypto.py >'$WORK/no-crypto-$SUITE' 2>&1; rc=\$?;
                cat '$WORK/no-crypto-$SUITE'; test \$rc = 0 &&
                tail -n 1 '$WORK/no-crypto-$SUITE' | grep -qx worker-ran-without-cryptography"
        check "$SUITE: the wait left its Succeeded marker in /var/lib/azwait" \
            sh -c "ls -A '$ROOT/var/lib/azwait' | grep -q ."
        # A non-root azwait on a VM where root's run made the state directory 0700:
        # no marker, no lock, a warning, and still the worker.
        chmod 0700 "$ROOT/var/lib/azwait"
        check "$SUITE: as nobody, with root's 0700 /var/lib/azwait, azwait warns, waits and starts the worker" \
            sh -c "chroot '$ROOT' setpriv --reuid=nobody --regid=nogroup --clear-groups \
                /usr/bin/env -i PATH=/usr/bin:/bin LC_ALL=C.UTF-8 AZWAIT_LOG_FORMAT=json \
                AZWAIT_IMDS_ENDPOINT='$imds' AZWAIT_ARM_ENDPOINT='$arm' azwait --timeout 60s -- /bin/echo worker-ran-as-nobody \
                >'$WORK/nobody-$SUITE' 2>&1; rc=\$?; cat '$WORK/nobody-$SUITE';
                test \$rc = 0 && tail -n 1 '$WORK/nobody-$SUITE' | grep -qx worker-ran-as-nobody \
                && grep -q 'cannot take the wait lock in /var/lib/azwait' '$WORK/nobody-$SUITE'"
    fi
    cleanup   # stop the sim, unmount /proc
    mount -t proc proc "$ROOT/proc" && MOUNTS+=("$ROOT/proc")

    check "$SUITE: apt-get purge azwait-sim" offline apt-get purge -y -o Dpkg::Use-Pty=0 azwait-sim
    check "$SUITE: purge removed /usr/lib/azwait-sim (byte-code included) and /usr/bin/azwait-sim" \
        sh -c "! test -e '$ROOT/usr/lib/azwait-sim' && ! test -e '$ROOT/usr/bin/azwait-sim'"
    # Purge removes the state directory and everything the package installed.
    mkdir -p "$ROOT/var/lib/azwait" && echo marker >"$ROOT/var/lib/azwait/test-marker"
    check "$SUITE: apt-get purge azwait" offline apt-get purge -y -o Dpkg::Use-Pty=0 azwait
    check "$SUITE: purge removed /var/lib/azwait, /etc/default/azwait and /usr/lib/azwait" \
        sh -c "! test -e '$ROOT/var/lib/azwait' && ! test -e '$ROOT/etc/default/azwait' && ! test -e '$ROOT/usr/lib/azwait'"
    cleanup
    rm -rf --one-file-system "$ROOT"
done

# --- cloud-init registration, with the distribution's real cloud-init ---------

# cloud-init's effective final-stage list, read by the root's own cloud-init.
final_modules() {
    in_root /usr/bin/python3 -I -c '
import json
from cloudinit import util
print(json.dumps(util.read_conf_with_confd("/etc/cloud/cloud.cfg").get("cloud_final_modules")))'
}
# plus_azwait LIST-JSON -> the list with azwait right after scripts_user
plus_azwait() {
    python3 -c '
import json, sys
mods = json.loads(sys.argv[1])
name = lambda e: (e[0] if isinstance(e, list) else e).replace("-", "_")
at = max(i for i, e in enumerate(mods) if name(e) == "scripts_user") + 1
print(json.dumps(mods[:at] + ["azwait"] + mods[at:]))' "$1"
}
DROP_IN=/etc/cloud/cloud.cfg.d/99_zz_azwait_final_modules.cfg

for SUITE in $SUITES; do
    echo "--- $SUITE, with cloud-init"
    UBUNTU_CFG=$TOP/build/cloud-init/$SUITE/rendered/ubuntu.cfg
    # The apt cache is kept: its cloud-init .deb is reinstalled below, as an upgrade would.
    if ! TAR=$(rootfs "$SUITE" "$INCLUDE,cloud-init" --skip=cleanup/apt/cache); then
        fail "$SUITE: mmdebstrap root filesystem with cloud-init"
        continue
    fi
    if [ ! -f "$UBUNTU_CFG" ]; then
        fail "$SUITE: $UBUNTU_CFG exists (tests/cloudinit/fixtures.sh)"
        continue
    fi
    ROOT=$WORK/root-$SUITE-cloud-init
    mkdir -p "$ROOT"
    tar -C "$ROOT" -xf "$TAR"
    mount -t proc proc "$ROOT/proc" && MOUNTS+=("$ROOT/proc")
    cp "$DEB" "$ROOT/tmp/azwait.deb"
    note "cloud-init $(in_root dpkg-query -W -f='${Version}' cloud-init)"

    distro=$(final_modules)
    cfg_sum=$(sha256sum <"$ROOT/etc/cloud/cloud.cfg")
    check "$SUITE: apt-get install ./azwait.deb with no network, cloud-init installed" \
        offline apt-get install -y -o Dpkg::Use-Pty=0 --no-install-recommends /tmp/azwait.deb
    check "$SUITE: the effective final list is the distribution's own with azwait after scripts_user" \
        test "$(final_modules)" = "$(plus_azwait "$distro")"
    note "distribution's list: $distro"
    check "$SUITE: cloud-init-register --check agrees" \
        in_root /usr/bin/python3 -I /usr/lib/azwait/cloud-init-register --check
    check "$SUITE: /etc/cloud/cloud.cfg untouched" \
        test "$(sha256sum <"$ROOT/etc/cloud/cloud.cfg")" = "$cfg_sum"

    # An upgrade of cloud-init that brings another cloud.cfg (here the ubuntu
    # variant's, kept with --force-confold as an admin's would be): dpkg fires the
    # trigger, and the list is rebuilt from the new one.
    cp "$UBUNTU_CFG" "$ROOT/etc/cloud/cloud.cfg"
    ubuntu=$(in_root /usr/bin/python3 -I -c '
import json
from cloudinit import util
print(json.dumps(util.read_conf("/etc/cloud/cloud.cfg").get("cloud_final_modules")))')
    offline sh -c 'dpkg -i --force-confold /var/cache/apt/archives/cloud-init_*.deb' \
        >"$WORK/trigger-$SUITE" 2>&1
    rc=$?
    check "$SUITE: reinstalling cloud-init (dpkg -i, no network) fires azwait's trigger" \
        sh -c "test $rc = 0 && grep -q 'Processing triggers for azwait' '$WORK/trigger-$SUITE'"
    grep -E 'Processing triggers|cloud-init-register' "$WORK/trigger-$SUITE" | sed 's/^/      dpkg | /'
    check "$SUITE: after the upgrade the list is the ubuntu variant's own with azwait" \
        test "$(final_modules)" = "$(plus_azwait "$ubuntu")"
    check "$SUITE: ... ubuntu_drivers and ansible included" \
        sh -c "grep -Eq 'ubuntu.drivers' '$ROOT$DROP_IN' && grep -q '\"ansible\"' '$ROOT$DROP_IN'"
    offline apt-get remove -y -o Dpkg::Use-Pty=0 azwait >"$LOG" 2>&1
    check "$SUITE: apt-get remove azwait takes its list away" test ! -e "$ROOT$DROP_IN"
    check "$SUITE: ... and cloud-init reads exactly cloud.cfg's list again" \
        test "$(final_modules)" = "$ubuntu"
    cleanup
    rm -rf --one-file-system "$ROOT"
done

echo
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
