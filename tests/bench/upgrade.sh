#!/usr/bin/env bash
# Upgrade benchmark: the orchestrator's overhead on a rolling upgrade of many workers.
#
#   sudo tests/bench/upgrade.sh [--workers 100] [--batch 10%] [--wait 5] [--transport russh]
#
# A fresh bed (one control plane, N workers) is installed at 1.31.4 (not timed), then every
# node's `kubeadm upgrade apply|node` is made to take --wait seconds in the simulator (kubeadm
# really takes that long and more; the simulator alone would take none). The upgrade to 1.32
# goes through 1 + ceil(N / batch) serial groups, each waiting --wait seconds at least: that is
# the simulator's time. Overhead = wall time - that, printed in seconds and as a fraction of the
# wall time (target < 5 %). Both are measured in this one run.
set -euo pipefail

workers=100 batch=10% wait_s=5 transport=russh
while [ $# -gt 0 ]; do
    case "$1" in
        --workers) workers=$2; shift 2 ;;
        --batch) batch=$2; shift 2 ;;
        --wait) wait_s=$2; shift 2 ;;
        --transport) transport=$2; shift 2 ;;
        *) echo "upgrade.sh: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "upgrade.sh: run as root (the test bed needs network namespaces)" >&2; exit 2; }

repo=$(cd "$(dirname "$0")/../.." && pwd)
cargo build --release --workspace --quiet --manifest-path "$repo/Cargo.toml"
bin="$repo/target/release"
work=$(mktemp -d /tmp/kw-upgrade-bench.XXXXXX)
bed="$work/bed"
cleanup() { "$bin/kubewright-testbed" down --dir "$bed" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "upgrade.sh: $1; see $work" >&2; trap - EXIT; exit 1; }

hosts=$((workers + 1))
"$bin/kubewright-testbed" up "$hosts" --control-planes 1 --kubernetes-version 1.31.4 --dir "$bed" >/dev/null
inv="$bed/inventory.yaml"
sed -i "0,/^cluster:/s//cluster:\n  upgrade:\n    maxUnavailable: $batch/" "$inv"
export KUBEWRIGHT_STATE_DIR="$work/state"
"$bin/kubewright" apply -i "$inv" --yes -q --transport "$transport" --concurrency "$hosts" >"$work/install.out" 2>&1 \
    || fail "the install failed"

"$bin/kubewright-testbed" fault --dir "$bed" hang cp1 "kubeadm upgrade apply" "$wait_s" >/dev/null
for i in $(seq "$workers"); do
    "$bin/kubewright-testbed" fault --dir "$bed" hang "w$i" "kubeadm upgrade node" "$wait_s" >/dev/null
done

case $batch in
    *%) size=$((workers * ${batch%\%} / 100)) ;;
    *) size=$batch ;;
esac
[ "$size" -ge 1 ] || size=1
groups=$((1 + (workers + size - 1) / size))
simulator_s=$((groups * wait_s))

# Each event line stamped as it arrives, for the breakdown below.
stamp='import sys, time
for line in sys.stdin:
    sys.stdout.write("%.3f %s" % (time.time(), line))'
start=$(date +%s.%N)
{ "$bin/kubewright" upgrade -i "$inv" --to 1.32 --yes -o json --transport "$transport" --concurrency "$hosts" \
    2>"$work/upgrade.err" || fail "the upgrade failed"; } | python3 -u -c "$stamp" >"$work/upgrade.out"
wall=$(echo "$(date +%s.%N) - $start" | bc)

printf 'upgrade 1.31.4 -> 1.32 of 1 control plane + %s workers, batches of %s (%s nodes), %s transport\n' \
    "$workers" "$batch" "$size" "$transport"
printf 'wall time            %8.2f s\n' "$wall"
printf "simulator's waits    %8.2f s (%s serial groups x %s s)\n" "$simulator_s" "$groups" "$wait_s"
printf 'overhead             %8.2f s, %.1f %% of the wall time (target < 5 %%)\n' \
    "$(echo "$wall - $simulator_s" | bc)" "$(echo "scale=4; ($wall - $simulator_s) * 100 / $wall" | bc)"
# Where it goes: before the first step (facts of every host, the repository's releases, the
# checks), and each step's wall time beyond its waits.
python3 - "$work/upgrade.out" "$start" "$wait_s" "$size" <<'PY'
import json, sys
path, start, wait_s, size = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
first, steps = None, {}
for line in open(path):
    at, _, text = line.partition(" ")
    try:
        e = json.loads(text)
    except ValueError:
        continue
    if not isinstance(e, dict) or "event" not in e:
        continue
    if e["event"] == "step-started":
        first = first or float(at)
        steps[e["step"]] = [float(at), None, e["hosts"]]
    elif e["event"] == "step-finished":
        steps[e["step"]][1] = float(at)
print("before the first step %8.2f s (facts, releases, checks)" % (first - start))
for name, (a, b, hosts) in steps.items():
    waits = 0 if name.startswith(("etcd", "apply-cni")) else wait_s * (1 if name.startswith("upgrade-control") else -(-hosts // size))
    print("  %-28s %6.2f s, %6.2f s beyond its waits" % (name, b - a, b - a - waits))
PY
