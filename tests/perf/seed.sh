#!/usr/bin/env bash
# The usual boot-gating loop azwait replaces, for side-by-side measurement: sleep 10 s,
# then ask ARM for provisioningState, until Succeeded; then exec the worker. No
# jitter, no backoff, a failure just waits for the next round. curl stands in for
# `az login --identity` + `az resource show` (the Azure CLI is not installed here),
# so this is a lower bound on the original's time and cost, light enough to run
# hundreds at once.
# Environment: IMDS (base URL), ARM (base URL), CA (bundle for ARM).
set -u
# field NAME: the string value of "NAME" in the one-line JSON document on stdin.
field() { sed -n "s/.*\"$1\": *\"\([^\"]*\)\".*/\1/p"; }
while true; do
  sleep 10
  token=$(curl -sf -H Metadata:true \
    "$IMDS/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com/" \
    | field access_token)
  [ -n "$token" ] || continue
  rid=$(curl -sf -H Metadata:true \
    "$IMDS/metadata/instance/compute/resourceId?api-version=2021-02-01&format=text") || continue
  state=$(curl -sf --cacert "$CA" -H "Authorization: Bearer $token" \
    "$ARM$rid?api-version=2024-07-01" | field provisioningState)
  [ "$state" = Succeeded ] && break
done
exec "$@"
