#!/usr/bin/env bash
# Per-command cost through a bastion vs direct, for both transports: 100 `true` commands in
# order on one host over one connection, best of 3, all in this one run.
#
#   sudo tests/bench/bastion.sh [--commands 100]
#
# Prints the seconds per method and `ratio bastion/direct (TRANSPORT): X` (the goal: <= 2).
set -euo pipefail
commands=100
while [ $# -gt 0 ]; do
    case "$1" in
        --commands) commands=$2; shift 2 ;;
        *) echo "bastion.sh: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "bastion.sh: run as root (the test bed needs network namespaces)" >&2; exit 2; }
repo=$(cd "$(dirname "$0")/../.." && pwd)
cargo build --release --workspace --quiet --manifest-path "$repo/Cargo.toml"
bin="$repo/target/release"
work=$(mktemp -d /tmp/kw-bastion.XXXXXX)
bed="$work/bed"
trap '"$bin/kubewright-testbed" down --dir "$bed" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
"$bin/kubewright-testbed" up 2 --control-planes 1 --dir "$bed" >/dev/null
# cp1 is the bastion for w1.
cp1=$(awk '/name: cp1/ { f = 1 } f && /address:/ { print $2; exit }' "$bed/inventory.yaml")
sed "0,/^ssh:/s//ssh:\n  bastion:\n    host: $cp1\n    user: root/" "$bed/inventory.yaml" >"$work/via.yaml"
args=()
for _ in $(seq "$commands"); do args+=(--shell true); done
best() { # inventory transport
    local b="" s e t
    for _ in 1 2 3; do
        s=$(date +%s.%N)
        "$bin/kubewright" run -i "$1" --transport "$2" --hosts w1 "${args[@]}" >/dev/null
        e=$(date +%s.%N)
        t=$(echo "$e - $s" | bc)
        if [ -z "$b" ] || [ "$(echo "$t < $b" | bc)" = 1 ]; then b=$t; fi
    done
    printf '%.3f' "$b"
}
for transport in russh openssh; do
    direct=$(best "$bed/inventory.yaml" "$transport")
    via=$(best "$work/via.yaml" "$transport")
    echo "$transport: direct ${direct}s, through the bastion ${via}s ($commands commands, best of 3)"
    echo "ratio bastion/direct ($transport): $(printf '%.2f' "$(echo "scale=3; $via / $direct" | bc)")"
done
