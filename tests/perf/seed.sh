#!/usr/bin/env bash
# The usual boot-gating loop azwait replaces, for side-by-side measurement: sleep 10 s,
# then ask ARM for provisioningState, until Succeeded; then exec the worker. curl
# stands in for `az login --identity` + `az resource show` (the Azure CLI is not
# installed here), so this is a lower bound on the original's time and cost.
# Environment: IMDS (base URL), ARM (base URL), CA (bundle for ARM).
set -u
# json KEY...: print that field of the JSON document on stdin.
json() { python3 -c 'import json,sys
d = json.load(sys.stdin)
for k in sys.argv[1:]: d = d[k]
print(d)' "$@"; }
while true; do
  sleep 10
  token=$(curl -sf -H Metadata:true \
    "$IMDS/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com/" \
    | json access_token) || continue
  rid=$(curl -sf -H Metadata:true \
    "$IMDS/metadata/instance/compute/resourceId?api-version=2021-02-01&format=text") || continue
  state=$(curl -sf --cacert "$CA" -H "Authorization: Bearer $token" \
    "$ARM$rid?api-version=2024-07-01" | json properties provisioningState) || continue
  [ "$state" = Succeeded ] && break
done
exec "$@"
