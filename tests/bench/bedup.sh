#!/usr/bin/env bash
# Test bed benchmark: how long a bed of N hosts takes to come up, and kubewright's install on it
# (bare hosts to a Ready cluster, 1 control plane), with the binaries in BIN. Compare two trees
# by pointing --bin at each one's target directory.
#
#   sudo tests/bench/bedup.sh [--bin target/debug] [--hosts 20] [--rounds 3] [--no-install]
#
# Prints each round's `up`, `install` and `down` wall times, then their medians. The first
# bed a tree brings up after its cache changed also builds the Debian root and the package
# archive (/var/cache/kubewright-testbed): run once before measuring, or count it apart.
set -euo pipefail

bin=target/debug hosts=20 rounds=3 install=1
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) bin=$2; shift 2 ;;
        --hosts) hosts=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --no-install) install=0; shift ;;
        *) echo "bedup.sh: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "bedup.sh: run as root (the test bed needs network namespaces)" >&2; exit 2; }
for b in kubewright-testbed kubewright; do
    [ -x "$bin/$b" ] || { echo "bedup.sh: no $bin/$b; cargo build --workspace first" >&2; exit 2; }
done

work=$(mktemp -d /tmp/kw-bedup-bench.XXXXXX)
cleanup() { "$bin/kubewright-testbed" down --dir "$work/bed" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }
median() { sort -n | awk '{a[NR]=$1} END {printf "%.2f", (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

: >"$work/up"; : >"$work/install"; : >"$work/down"
for r in $(seq "$rounds"); do
    rm -rf "$work/bed" "$work/state"
    start=$(now)
    "$bin/kubewright-testbed" up "$hosts" --dir "$work/bed" >/dev/null
    up=$(since "$start"); echo "$up" >>"$work/up"
    took=-
    if [ "$install" = 1 ]; then
        start=$(now)
        KUBEWRIGHT_STATE_DIR="$work/state" "$bin/kubewright" apply -i "$work/bed/inventory.yaml" --yes -q \
            >"$work/apply.out" 2>&1 || { echo "bedup.sh: apply failed; see $work/apply.out" >&2; trap - EXIT; exit 1; }
        took=$(since "$start"); echo "$took" >>"$work/install"
    fi
    start=$(now)
    "$bin/kubewright-testbed" down --dir "$work/bed" >/dev/null
    down=$(since "$start"); echo "$down" >>"$work/down"
    [ "$took" = - ] || took=$(printf '%.2f' "$took")
    printf 'round %s: up %.2f s, install %s s, down %.2f s\n' "$r" "$up" "$took" "$down"
done
printf 'median of %s, %s hosts: up %s s' "$rounds" "$hosts" "$(median <"$work/up")"
[ "$install" = 1 ] && printf ', install %s s' "$(median <"$work/install")"
printf ', down %s s\n' "$(median <"$work/down")"
