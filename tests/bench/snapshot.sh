#!/usr/bin/env bash
# Snapshot benchmark: the bastion's peak memory while an etcd snapshot travels (issue 18).
#
#   sudo tests/bench/snapshot.sh [--size-mib 1024] [--transport russh] [--baseline OTHER-KUBEWRIGHT]
#
# A fresh 3-control-plane bed is installed (not measured). Its first control plane's etcdctl is
# wrapped so that `snapshot save` pads the simulator's snapshot to --size-mib with trailing
# whitespace (the simulator's snapshot is JSON; padding keeps it valid, its hash and status
# still checked). Then, each as its own process:
#   - `etcd snapshot`: the snapshot comes down from cp1 to the state directory;
#   - `etcd restore FILE`: it goes up to all three control planes and the cluster is restored.
# Printed: each command's wall time and peak resident memory (kubewright's own VmHWM, and the
# largest of its processes by getrusage: with --transport openssh its `ssh` children count), and
# the same for --baseline, another build, against the same bed in this run (this machine is
# noisy: compare ratios from one run only).
set -euo pipefail

size_mib=1024 transport=russh baseline=
while [ $# -gt 0 ]; do
    case "$1" in
        --size-mib) size_mib=$2; shift 2 ;;
        --transport) transport=$2; shift 2 ;;
        --baseline) baseline=$2; shift 2 ;;
        *) echo "snapshot.sh: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "snapshot.sh: run as root (the test bed needs network namespaces)" >&2; exit 2; }

repo=$(cd "$(dirname "$0")/../.." && pwd)
cargo build --release --workspace --quiet --manifest-path "$repo/Cargo.toml"
bin="$repo/target/release"
work=$(mktemp -d /tmp/kw-snapshot-bench.XXXXXX)
bed="$work/bed"
cleanup() { "$bin/kubewright-testbed" down --dir "$bed" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "snapshot.sh: $1; see $work" >&2; trap - EXIT; exit 1; }

"$bin/kubewright-testbed" up 3 --control-planes 3 --dir "$bed" >/dev/null
inv="$bed/inventory.yaml"
name=$(sed -n 's/^  name: *//p' "$inv" | head -1)
export KUBEWRIGHT_STATE_DIR="$work/state"
"$bin/kubewright" apply -i "$inv" --yes -q --transport "$transport" >"$work/install.out" 2>&1 \
    || fail "the install failed"

# The wrapper keeps the simulator's etcdctl under its own name (it is one binary answering to
# the name it was called by) and pads what `snapshot save` wrote.
ssh -F "$bed/ssh_config" cp1 sh -s "$size_mib" <<'SH' || fail "cannot wrap etcdctl on cp1"
set -eu
real=$(command -v etcdctl)
mkdir -p /usr/local/lib/kw-bench
mv "$real" /usr/local/lib/kw-bench/etcdctl
cat > "$real" <<EOF
#!/bin/sh
/usr/local/lib/kw-bench/etcdctl "\$@" || exit \$?
case " \$* " in
*" snapshot save "*)
    for f; do :; done
    have=\$(stat -c %s "\$f")
    head -c \$(( $1 * 1048576 - have )) /dev/zero | tr '\0' ' ' >> "\$f" ;;
esac
EOF
chmod 0755 "$real"
SH

# Runs a command; prints "WALL_S PEAK_KIB CHILDREN_PEAK_KIB": kubewright's own peak resident
# memory (VmHWM, read from /proc until it exits) and getrusage's ru_maxrss of the largest process
# it started (with --transport openssh, its `ssh` children). The output goes to $work/LOG.
measure() {
    local log=$1
    shift
    python3 - "$work/$log" "$@" <<'PY'
import resource, subprocess, sys, time
log, argv = sys.argv[1], sys.argv[2:]
start = time.monotonic()
peak = 0
with open(log, "w") as out:
    child = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    while child.poll() is None:
        try:
            with open(f"/proc/{child.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
        except OSError:
            pass
        time.sleep(0.05)
wall = time.monotonic() - start
if child.returncode != 0:
    sys.exit(f"{' '.join(argv[:3])} exited {child.returncode}; see {log}")
print("%.2f %d %d" % (wall, peak, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
PY
}

round() {
    local label=$1 kw=$2
    find "$work/state" -path '*/backups/*' -delete
    read -r snap_s snap_kib snap_children_kib < <(measure "$label-snapshot.out" "$kw" etcd snapshot -i "$inv" --transport "$transport") \
        || fail "$label: etcd snapshot failed"
    local file
    file=$(find "$work/state" -path '*/backups/cp1/*' -name '*.db' -size +1M | head -1)
    [ -n "$file" ] || fail "$label: no snapshot of more than 1 MiB in the state directory"
    local bytes
    bytes=$(stat -c %s "$file")
    read -r restore_s restore_kib restore_children_kib < <(measure "$label-restore.out" "$kw" etcd restore "$file" -i "$inv" \
        --confirm "$name" --transport "$transport") || fail "$label: etcd restore failed"
    mib() { echo "scale=1; $1 / 1024" | bc; }
    printf '%-9s %5d MiB snapshot: etcd snapshot %6.2f s, peak %7.1f MiB (largest of its processes %7.1f) | etcd restore to 3 CPs %6.2f s, peak %7.1f MiB (largest of its processes %7.1f)\n' \
        "$label" $((bytes / 1048576)) "$snap_s" "$(mib "$snap_kib")" "$(mib "$snap_children_kib")" \
        "$restore_s" "$(mib "$restore_kib")" "$(mib "$restore_children_kib")"
    eval "${label}_snap_kib=$snap_kib ${label}_restore_kib=$restore_kib"
}

echo "etcd snapshot and restore of a ${size_mib} MiB snapshot, 3 control planes, $transport transport"
round this "$bin/kubewright"
if [ -n "$baseline" ]; then
    round baseline "$baseline"
    printf 'peak memory this/baseline: etcd snapshot %.3f, etcd restore %.3f\n' \
        "$(echo "scale=4; $this_snap_kib / $baseline_snap_kib" | bc)" \
        "$(echo "scale=4; $this_restore_kib / $baseline_restore_kib" | bc)"
fi
