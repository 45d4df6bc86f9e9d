#!/usr/bin/env bash
# Fan-out benchmark: the same 10 small commands on every host of a test bed, through
# kubewright and through its peers, all in this one run so the ratios compare like with like.
#
#   sudo tests/bench/fanout.sh [--hosts 20] [--latency "0 20"] [--rounds 3] [--venv DIR]
#                              [--skip "ansible ..."]
#
# Methods (each "cold": connections are opened inside the timed part):
#   kubewright-openssh  kubewright run --transport openssh, one --shell per command
#   kubewright-russh    kubewright run --transport russh (in-process SSH, no ssh processes)
#   raw-ssh             one ControlMaster per host, per-host loops in parallel: the floor
#   ansible             ansible-core, forks=hosts, pipelining, ControlPersist   (needs --venv)
#   pyinfra             pyinfra --parallel hosts, one server.shell per command  (needs --venv)
# --venv names a virtualenv holding ansible-core and pyinfra, e.g.
#   python3 -m venv /tmp/benchvenv && /tmp/benchvenv/bin/pip install ansible-core pyinfra
# Without it, only kubewright and raw-ssh run. Prints a table of medians (seconds) and the
# ratio lines; run as root (the test bed needs network namespaces).
set -euo pipefail

hosts=20 latencies="0 20" rounds=3 venv="" skip=""
while [ $# -gt 0 ]; do
    case "$1" in
        --hosts) hosts=$2; shift 2 ;;
        --latency) latencies=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --venv) venv=$2; shift 2 ;;
        --skip) skip=$2; shift 2 ;;
        *) echo "fanout.sh: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "fanout.sh: run as root (the test bed needs network namespaces)" >&2; exit 2; }

repo=$(cd "$(dirname "$0")/../.." && pwd)
cargo build --release --workspace --quiet --manifest-path "$repo/Cargo.toml"
bin="$repo/target/release"
work=$(mktemp -d /tmp/kw-bench.XXXXXX)
bed="$work/bed"
cleanup() { "$bin/kubewright-testbed" down --dir "$bed" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

commands=(
    "mkdir -p /tmp/kwbench"
    "echo hello > /tmp/kwbench/file"
    "cat /etc/hostname"
    "uname -r"
    "id -u"
    "test -d /etc"
    "ls /tmp/kwbench"
    "cat /tmp/kwbench/file"
    "rm -f /tmp/kwbench/file"
    "true"
)

"$bin/kubewright-testbed" up "$hosts" --control-planes 1 --dir "$bed" >/dev/null
names=$(awk '$1 == "Host" { print $2 }' "$bed/ssh_config")

# --- one function per method; each runs the whole job once -----------------------------------

run_kubewright() { # $1: the transport
    local args=()
    for c in "${commands[@]}"; do args+=(--shell "$c"); done
    "$bin/kubewright" run -i "$bed/inventory.yaml" --transport "$1" --concurrency "$hosts" -o json "${args[@]}" \
        >"$work/kw.out"
}

run_raw_ssh() {
    local cm="$work/cm" h pids=() pid
    mkdir -p "$cm"
    for h in $names; do
        (
            ssh -F "$bed/ssh_config" -o ControlMaster=yes -o "ControlPath=$cm/%n" -o ControlPersist=60 -fN "$h"
            for c in "${commands[@]}"; do
                ssh -F "$bed/ssh_config" -o "ControlPath=$cm/%n" "$h" "$c" >/dev/null
            done
            ssh -F "$bed/ssh_config" -o "ControlPath=$cm/%n" -O exit "$h" 2>/dev/null
        ) &
        pids+=($!)
    done
    # `wait` alone would report success whatever the loops did.
    for pid in "${pids[@]}"; do wait "$pid" || return 1; done
}

setup_ansible() {
    local a="$work/ansible" h
    mkdir -p "$a"
    { echo "[bed]"; for h in $names; do
        echo "$h ansible_host=$(awk -v h="$h" '$1=="Host"{n=$2} $1=="HostName"&&n==h{print $2}' "$bed/ssh_config")"
    done; } >"$a/hosts.ini"
    cat >"$a/ansible.cfg" <<EOF
[defaults]
inventory = $a/hosts.ini
forks = $hosts
host_key_checking = True
remote_user = root
private_key_file = $bed/id_ed25519
interpreter_python = /usr/bin/python3
gathering = explicit
[ssh_connection]
pipelining = True
control_path_dir = $work/ansible-cp
ssh_args = -o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile=$bed/known_hosts -o GlobalKnownHostsFile=/dev/null
EOF
    { echo "- hosts: bed"; echo "  gather_facts: false"; echo "  tasks:"
      for c in "${commands[@]}"; do echo "    - shell: \"$c\""; done; } >"$a/play.yaml"
}

run_ansible() {
    rm -rf "$work/ansible-cp"
    ANSIBLE_CONFIG="$work/ansible/ansible.cfg" "$venv/bin/ansible-playbook" "$work/ansible/play.yaml" >"$work/ansible.out"
}

setup_pyinfra() {
    local p="$work/pyinfra" h
    mkdir -p "$p"
    { echo "bed = ["; for h in $names; do
        ip=$(awk -v h="$h" '$1=="Host"{n=$2} $1=="HostName"&&n==h{print $2}' "$bed/ssh_config")
        echo "    (\"$h\", {\"ssh_hostname\": \"$ip\", \"ssh_user\": \"root\", \"ssh_key\": \"$bed/id_ed25519\","
        echo "             \"ssh_known_hosts_file\": \"$bed/known_hosts\", \"ssh_strict_host_key_checking\": \"yes\"}),"
    done; echo "]"; } >"$p/inventory.py"
    { echo "from pyinfra.operations import server"
      for c in "${commands[@]}"; do echo "server.shell(commands=[\"$c\"])"; done; } >"$p/deploy.py"
}

run_pyinfra() {
    (cd "$work/pyinfra" && "$venv/bin/pyinfra" inventory.py deploy.py --parallel "$hosts" -y >"$work/pyinfra.out" 2>&1)
}

# --- timing ------------------------------------------------------------------------------------

methods=""
for m in kubewright-openssh kubewright-russh raw-ssh ansible pyinfra; do
    case " $skip " in *" $m "*) continue ;; esac
    case "$m" in ansible | pyinfra) [ -n "$venv" ] || continue; "setup_$m" ;; esac
    methods="$methods $m"
done
has() { case " $methods " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

seconds() { # run a method once, print its wall time; a failure aborts the benchmark loudly
    local start end
    start=$(date +%s.%N)
    if ! "run_${1//-/_}" ; then
        echo "fanout.sh: $1 failed; its output is in $work (kept)" >&2
        trap - EXIT
        "$bin/kubewright-testbed" down --dir "$bed" >/dev/null 2>&1 || true
        exit 1
    fi
    end=$(date +%s.%N)
    printf '%.2f' "$(echo "$end - $start" | bc)"
}
median() { tr ' ' '\n' | awk 'NF' | sort -g | awk '{ v[NR] = $1 } END { printf "%.2f", v[int((NR + 1) / 2)] }'; }
run_kubewright_openssh() { run_kubewright openssh; }
run_kubewright_russh() { run_kubewright russh; }

declare -A result
for ms in $latencies; do
    for h in $names; do "$bin/kubewright-testbed" fault --dir "$bed" latency "$h" "$ms" >/dev/null; done
    for m in $methods; do
        times=""
        for _ in $(seq "$rounds"); do times="$times $(seconds "$m")"; done
        result[$m,$ms]=$(echo "$times" | median)
        echo "  $m at +${ms} ms: $times" >&2
    done
done

printf '\n%s hosts, 10 commands per host, median of %s (seconds)\n' "$hosts" "$rounds"
printf '%-22s' "method"; for ms in $latencies; do printf '%14s' "+${ms} ms"; done; echo
for m in $methods; do
    printf '%-22s' "$m"; for ms in $latencies; do printf '%14s' "${result[$m,$ms]}"; done; echo
done
ratio() { printf "%.2f" "$(echo "scale=3; $1 / $2" | bc)"; }
for kwm in kubewright-openssh kubewright-russh; do
    has "$kwm" || continue
    for ms in $latencies; do
        kw=${result[$kwm,$ms]} at="${kwm#kubewright-}, +${ms} ms"
        if has raw-ssh; then echo "ratio kubewright/raw-ssh ($at): $(ratio "$kw" "${result[raw-ssh,$ms]}")"; fi
        if has ansible; then echo "ratio ansible/kubewright ($at): $(ratio "${result[ansible,$ms]}" "$kw")"; fi
        if has pyinfra; then echo "ratio pyinfra/kubewright ($at): $(ratio "${result[pyinfra,$ms]}" "$kw")"; fi
    done
done
