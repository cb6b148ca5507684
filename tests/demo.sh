#!/usr/bin/env bash
# make demo: azwait holds a worker until the simulated VM turns Succeeded.
set -euo pipefail
bin=${1:-.venv/bin}
work=$(mktemp -d)
trap 'kill "$sim_pid" 2>/dev/null || true; rm -rf "$work"' EXIT

flip=${DEMO_FLIP:-8}
"$bin/azwait-sim" --states "Creating@0,Succeeded@$flip" --ready-file "$work/ready.json" \
  --duration 120 >/dev/null &
sim_pid=$!
for _ in $(seq 50); do [ -s "$work/ready.json" ] && break; sleep 0.1; done
ready=$(cat "$work/ready.json")
field() { "$bin/python" -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$ready" "$1"; }

echo "== the simulated VM is Creating and turns Succeeded ${flip}s after start"
echo "== azwait -- sh -c 'echo worker started ...'"
AZWAIT_IMDS_ENDPOINT=$(field imds) AZWAIT_ARM_ENDPOINT=$(field arm) \
REQUESTS_CA_BUNDLE=$(field ca) AZWAIT_STATE_DIR="$work/state" AZWAIT_LOG_FORMAT=console \
  "$bin/azwait" --config /dev/null -- \
  sh -c 'echo "worker started as PID $$ at $(date +%T): the VM is Succeeded"'
kill "$sim_pid"; wait "$sim_pid" 2>/dev/null || true
echo "== the simulator is gone; a second call on the same boot returns at once (marker, no network):"
AZWAIT_IMDS_ENDPOINT=$(field imds) AZWAIT_ARM_ENDPOINT=$(field arm) AZWAIT_STATE_DIR="$work/state" \
AZWAIT_LOG_FORMAT=console "$bin/azwait" --config /dev/null -- echo "worker started again"
echo "== azwait is $bin/azwait (and $bin/azwait-sim the simulator): try --help on either"
