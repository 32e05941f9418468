#!/usr/bin/env bash
# Nightly garbage collection of a registry on this host; cron runs it (registry-gc.cron).
#
# On a plain host the registry cannot be put in read-only mode and back without
# restarting it, so this runs against the live registry and relies on the grace
# period: nothing written in the last GRACE (default 1h) is deleted, which covers
# pushes in progress. Each run leaves in REPORT_DIR a JSON report (the summary) and
# the list of its deletions, one JSON line each (gc-STAMP.deletions.jsonl).
#
# Settings, from the environment:
#   REGISTRY_CONFIG   the registry's config.yml (default /etc/docker/registry/config.yml);
#                     its storage section says where the data is, REGISTRY_STORAGE_*
#                     variables apply as for the registry
#   REGISTRY_ROOT     the storage root instead (a directory, or s3://bucket/prefix)
#   GRACE             keep anything younger than this (default 1h; never 0 on a live registry)
#   DELETE_UNTAGGED   1 (default): also delete manifests no tag reaches (-m); 0: keep them
#   REPORT_DIR        where reports go (default /var/log/registry-gc); kept KEEP_DAYS days (30)
#   RESTART_COMMAND   run after a sweep that deleted something, when the configuration
#                     enables storage.cache.blobdescriptor (e.g. "systemctl restart
#                     docker-registry"); empty: only say that a restart is needed
#   METRICS_FILE      write the run's metrics there for node_exporter's textfile collector
#                     (e.g. /var/lib/prometheus/node-exporter/registry-gc.prom; its directory
#                     must exist), also when the run fails; empty (default): no metrics
#   REGISTRY_GC       the registry-gc command (default: registry-gc from PATH)
#   PYTHON            a Python 3 to read the JSON report with (default: python3)
#
# Exit status: registry-gc's (0 done, 1 some deletions failed, 2 bad input,
# 3 refused and nothing deleted, 4 storage error), or 75 when another run holds the lock.
set -euo pipefail

config="${REGISTRY_CONFIG:-/etc/docker/registry/config.yml}"
root="${REGISTRY_ROOT:-}"
grace="${GRACE:-1h}"
report_dir="${REPORT_DIR:-/var/log/registry-gc}"
keep_days="${KEEP_DAYS:-30}"
registry_gc="${REGISTRY_GC:-registry-gc}"

mkdir -p "$report_dir"
exec 9>"$report_dir/.lock"
if ! flock -n 9; then
    echo "registry-gc: another run holds $report_dir/.lock; not starting" >&2
    exit 75
fi

stamp="$(date -u +%Y%m%dT%H%M%SZ)"
report="$report_dir/gc-$stamp.json"
args=(gc --json --grace "$grace" --deletions-out "$report_dir/gc-$stamp.deletions.jsonl")
if [[ "${DELETE_UNTAGGED:-1}" == 1 ]]; then
    args+=(--delete-untagged)
fi
if [[ -n "${METRICS_FILE:-}" ]]; then
    args+=(--metrics-file "$METRICS_FILE")
fi
if [[ -n "$root" ]]; then
    args+=("$root")
else
    args+=(--config "$config")
fi

echo "registry-gc: $stamp: $registry_gc ${args[*]}"
status=0
"$registry_gc" "${args[@]}" >"$report" 2>"$report_dir/gc-$stamp.log" || status=$?

# One line for the cron log, from the JSON report, and whether the registry needs a restart.
read_report() {
    "${PYTHON:-python3}" - "$report" <<'PY'
import json, sys
try:
    with open(sys.argv[1]) as f:
        doc = json.load(f)
except (OSError, ValueError):
    print("no-restart no report (see the .log next to it)")
    sys.exit()
if "totals" not in doc:
    print("no-restart error: " + str(doc.get("error")))
    sys.exit()
totals = doc["totals"]
needed = (doc.get("registry_config") or {}).get("restart_required") and totals["objects"]
print(
    ("restart" if needed else "no-restart")
    + f" deleted {totals['objects']} objects, {totals['bytes']} bytes; {totals['failed']} "
    + f"failed; {totals['kept_for_grace']} kept for the grace period"
)
PY
}
read -r restart summary < <(read_report)
echo "registry-gc: exit $status: $summary"

if [[ "$status" == 0 && "$restart" == restart ]]; then
    if [[ -n "${RESTART_COMMAND:-}" ]]; then
        echo "registry-gc: the registry caches blob descriptors: $RESTART_COMMAND"
        bash -c "$RESTART_COMMAND"
    else
        echo "registry-gc: the registry caches blob descriptors: restart it now (set RESTART_COMMAND to do it here)" >&2
    fi
fi

find "$report_dir" -maxdepth 1 -name 'gc-*' -mtime +"$keep_days" -delete
exit "$status"
