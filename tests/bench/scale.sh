#!/usr/bin/env bash
# Scale of the pure core: `plan --offline` and `render` on generated inventories of 50 to
# 5,000 hosts (3 control planes, the rest workers), wall time and peak RSS of each.
#
#   tests/bench/scale.sh [--sizes "50 500 1000 2000 5000"] [--out DIR] [--baseline BIN]
#
# With --baseline (another build of kubewright), each render runs three times with each
# binary, interleaved, and the medians' ratio (this build / baseline) is printed too.
#
# `render` writes every host's files under DIR (default: a directory in /tmp, removed after):
# its time is mostly the file system's (30,000 files at 5,000 hosts); give a tmpfs to see
# kubewright's own.
set -euo pipefail

sizes="50 500 1000 2000 5000" out= baseline=
while [ $# -gt 0 ]; do
    case "$1" in
        --sizes) sizes=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --baseline) baseline=$2; shift 2 ;;
        *) echo "scale.sh: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
    esac
done
repo=$(cd "$(dirname "$0")/../.." && pwd)
cargo build --release --quiet --manifest-path "$repo/Cargo.toml" --bin kubewright
bin="$repo/target/release/kubewright"
work=$(mktemp -d /tmp/kw-scale.XXXXXX)
trap 'rm -rf "$work"' EXIT
[ -n "$out" ] || out="$work/render"

# An inventory of $1 hosts: addresses 10.20.x.y, a /11 pod network (a /24 per node).
generate() {
    python3 - "$1" <<'PY'
import sys
n = int(sys.argv[1])
print("cluster:\n  name: scale\n  kubernetesVersion: 1.31.4\n  controlPlaneEndpoint: 10.20.0.100:6443")
print("  network:\n    podSubnet: 10.128.0.0/11\nssh:\n  user: root\nhosts:")
for i in range(n):
    role = "control-plane" if i < 3 else "worker"
    print(f"  - name: n{i:05d}\n    address: 10.{20 + i // 62500}.{(i // 250) % 250}.{i % 250 + 2}\n    roles: [{role}]")
PY
}

# The median wall time of three renders by binary $1 (the output directory emptied before each).
render_median() {
    for _ in 1 2 3; do
        rm -rf "$out"
        /usr/bin/time -f '%e' -o "$work/one.time" "$1" render -i "$work/inv.yaml" --out "$out" >/dev/null
        cat "$work/one.time"
    done | sort -n | sed -n 2p
}

if [ -n "$baseline" ]; then
    printf '%8s %12s %12s %8s\n' hosts "render s" "baseline s" ratio
    for n in $sizes; do
        generate "$n" >"$work/inv.yaml"
        ours=$(render_median "$bin")
        theirs=$(render_median "$baseline")
        printf '%8s %12s %12s %8s\n' "$n" "$ours" "$theirs" "$(python3 -c "print(f'{$ours / max($theirs, 0.001):.2f}')")"
    done
    exit 0
fi

printf '%8s %18s %14s %12s %14s\n' hosts "plan --offline s" "plan RSS MiB" "render s" "render RSS MiB"
for n in $sizes; do
    generate "$n" >"$work/inv.yaml"
    /usr/bin/time -f '%e %M' -o "$work/plan.time" "$bin" plan --offline -i "$work/inv.yaml" >/dev/null
    rm -rf "$out"
    /usr/bin/time -f '%e %M' -o "$work/render.time" "$bin" render -i "$work/inv.yaml" --out "$out" >/dev/null
    read -r pt pm <"$work/plan.time"
    read -r rt rm_ <"$work/render.time"
    printf '%8s %18s %14d %12s %14d\n' "$n" "$pt" $((pm / 1024)) "$rt" $((rm_ / 1024))
done
