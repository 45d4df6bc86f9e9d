#!/usr/bin/env bash
# Install benchmark: bare hosts to a Ready cluster on a fresh test bed, by kubewright and by the
# same step commands run over raw OpenSSH (tests/bench/install_baseline.py writes that script
# from kubewright's own plan and rendered files), in this one run so the ratio compares like
# with like. Each round brings up a fresh bed for each method, outside the timed part.
#
#   sudo tests/bench/install.sh [--hosts 20] [--control-planes 3] [--rounds 3] [--methods "openssh russh raw"]
#
# Prints the median wall times and `ratio kubewright/raw-ssh (<transport>)`; target <= 1.3,
# and for each kubewright run its peaks (tests/bench/peaks.py): open fds, threads, `ssh`
# processes and their memory, kubewright's own peak RSS, and the memory per host.
set -euo pipefail

hosts=20 cps=3 rounds=3 methods="openssh russh raw"
while [ $# -gt 0 ]; do
    case "$1" in
        --hosts) hosts=$2; shift 2 ;;
        --control-planes) cps=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --methods) methods=$2; shift 2 ;;
        *) echo "install.sh: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "install.sh: run as root (the test bed needs network namespaces)" >&2; exit 2; }

repo=$(cd "$(dirname "$0")/../.." && pwd)
cargo build --release --workspace --quiet --manifest-path "$repo/Cargo.toml"
bin="$repo/target/release"
work=$(mktemp -d /tmp/kw-install-bench.XXXXXX)
bed="$work/bed"
cleanup() { "$bin/kubewright-testbed" down --dir "$bed" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

fresh_bed() {
    "$bin/kubewright-testbed" down --dir "$bed" >/dev/null 2>&1 || true
    rm -rf "$bed" "$work/state" "$work/baseline"
    "$bin/kubewright-testbed" up "$hosts" --control-planes "$cps" --dir "$bed" >/dev/null
}

now() { date +%s.%N; }
elapsed() { printf '%.2f' "$(echo "$(now) - $1" | bc)"; }

time_kubewright() { # $1: transport
    fresh_bed
    local start; start=$(now)
    KUBEWRIGHT_STATE_DIR="$work/state" "$bin/kubewright" apply -i "$bed/inventory.yaml" --yes -o json \
        --transport "$1" --concurrency "$hosts" >"$work/kw.out" 2>&1 &
    local pid=$!
    python3 "$repo/tests/bench/peaks.py" "$pid" >"$work/peaks.json" &
    local sampler=$!
    wait "$pid" || { echo "install.sh: kubewright apply failed; see $work/kw.out" >&2; trap - EXIT; exit 1; }
    local took; took=$(elapsed "$start")
    wait "$sampler"
    python3 - "$work/peaks.json" "$hosts" "$1" >&2 <<'PY'
import json, sys
p = json.load(open(sys.argv[1])); n = int(sys.argv[2])
mem = p["rss_kib"] + p["ssh_rss_kib"]
print(f"  {sys.argv[3]} peaks: {p['fds']} fds, {p['threads']} threads, {p['ssh_processes']} ssh processes "
      f"({p['ssh_rss_kib'] / 1024:.0f} MiB), kubewright RSS {p['rss_kib'] / 1024:.0f} MiB; "
      f"{mem / n:.0f} KiB per host")
PY
    echo "$took"
}

time_raw_ssh() {
    fresh_bed
    # The script is written before timing, from the plan of this very bed.
    mkdir -p "$work/baseline"
    KUBEWRIGHT_STATE_DIR="$work/state" "$bin/kubewright" plan -i "$bed/inventory.yaml" -o json 2>/dev/null >"$work/baseline/plan.json"
    "$bin/kubewright" render -i "$bed/inventory.yaml" --out "$work/baseline/render" >/dev/null 2>&1
    python3 "$repo/tests/bench/install_baseline.py" "$work/baseline/plan.json" "$work/baseline/render" \
        "$bed/ssh_config" "$work/baseline" >"$work/baseline/run.sh"
    local start; start=$(now)
    bash "$work/baseline/run.sh" || { echo "install.sh: the raw-ssh baseline failed" >&2; trap - EXIT; exit 1; }
    elapsed "$start"
}

median() { tr ' ' '\n' | awk 'NF' | sort -g | awk '{ v[NR] = $1 } END { printf "%.2f", v[int((NR + 1) / 2)] }'; }
declare -A times
for _ in $(seq "$rounds"); do
    for m in $methods; do
        case $m in raw) t=$(time_raw_ssh) ;; *) t=$(time_kubewright "$m") ;; esac
        times[$m]="${times[$m]:-} $t"
        echo "  $m: $t s" >&2
    done
done

printf '\ninstall on %s hosts (%s control planes), median of %s (seconds)\n' "$hosts" "$cps" "$rounds"
for m in $methods; do printf '%-22s %8s\n' "$([ $m = raw ] && echo raw-ssh || echo "kubewright-$m")" "$(echo "${times[$m]}" | median)"; done
[ -n "${times[raw]:-}" ] || exit 0
raw=$(echo "${times[raw]}" | median)
for m in $methods; do
    [ "$m" = raw ] && continue
    printf 'ratio kubewright/raw-ssh (%s): %.2f\n' "$m" "$(echo "scale=3; $(echo "${times[$m]}" | median) / $raw" | bc)"
done
