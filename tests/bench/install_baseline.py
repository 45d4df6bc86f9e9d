#!/usr/bin/env python3
"""The install, done by hand over raw OpenSSH: the baseline tests/bench/install.sh times
kubewright against.

Reads kubewright's own JSON plan (what to run, step by step, host by host) and the files
`kubewright render` wrote, and writes a bash script that does the same work the way a careful
admin's script would: one ControlMaster connection per host, one remote script per step and
host, hosts of a step in parallel (one at a time for a serial step), files written atomically,
the CA pin computed with openssl, waits polled with kubectl and etcdctl.

    install_baseline.py PLAN.json RENDER_DIR SSH_CONFIG WORK_DIR > baseline.sh
"""
import json
import os
import shlex
import sys

TOKEN = "kwbnch.0123456789abcdef"
CERT_KEY = "0123456789abcdef" * 4


def remote_script(host, actions, render_dir):
    lines = ["set -eu"]
    after = []  # what the bastion does once the host's script finished
    for a in actions:
        kind = a["kind"]
        if kind == "write-file":
            path = a["path"]
            with open(os.path.join(render_dir, host, path.lstrip("/"))) as f:
                content = f.read()
            content = (content.replace("<bootstrap-token>", TOKEN)
                       .replace("<certificate-key>", CERT_KEY)
                       .replace("<ca-cert-hash>", "@CA_HASH@"))
            tmp = shlex.quote(path + ".kwtmp")
            lines.append(f"mkdir -p {shlex.quote(os.path.dirname(path))}")
            lines.append(f"cat > {tmp} <<'KW_EOF'\n{content}KW_EOF")
            lines.append(f"chmod {a['mode']} {tmp}; mv {tmp} {shlex.quote(path)}")
        elif kind == "run":
            lines.extend(a["commands"])
        elif kind == "wait":
            kubectl = "kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes"
            names = " ".join(shlex.quote(n) for n in a["nodes"])
            check = (f"for n in {names}; do {kubectl} \"$n\" | awk -v v={shlex.quote(a['version'])} "
                     "'$1 != \"NAME\" && ($2 != \"Ready\" || $5 != v) { exit 1 }' || return 1; done")
            if a["etcd"]:
                check += ("; etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt "
                          "--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt "
                          "--key=/etc/kubernetes/pki/etcd/healthcheck-client.key endpoint health >/dev/null 2>&1")
            lines.append(f"ready() {{ {check}; }}")
            lines.append(f"i=0; until ready; do i=$((i + 1)); [ $i -lt {a['timeout_s'] // 2} ] || exit 1; sleep 2; done")
        elif kind == "probe":
            probe = "; ".join(a["commands"])
            lines.append(f"i=0; until ( {probe} ) >/dev/null 2>&1; do i=$((i + 1)); [ $i -lt {a['timeout_s'] // 2} ] || exit 1; sleep 2; done")
        elif kind == "verify-kubeadm-config":
            # The admin's script reads it too (comparing it is kubewright's own work).
            lines.append("kubectl --kubeconfig /etc/kubernetes/admin.conf -n kube-system get configmap kubeadm-config -o json >/dev/null")
        elif kind == "fetch":
            after.append(f"ssh -F \"$cfg\" -o \"ControlPath=$cm/%n\" {host} cat {shlex.quote(a['remote'])} > \"$work/admin.conf\"")
        elif kind == "pin-ca":
            after.append(
                f"CA_HASH=sha256:$(ssh -F \"$cfg\" -o \"ControlPath=$cm/%n\" {host} cat {shlex.quote(a['remote'])}"
                " | openssl x509 -pubkey -noout | openssl pkey -pubin -outform der | sha256sum | cut -d' ' -f1)")
        # check and package actions: decided by the plan (facts) or done by the run commands.
    return "\n".join(lines) + "\n", after


def main():
    plan_path, render_dir, ssh_config, work = sys.argv[1:5]
    with open(plan_path) as f:
        plan = json.load(f)
    hosts = sorted({h["host"] for s in plan["steps"] for h in s["hosts"]})
    out = ["#!/usr/bin/env bash", "set -euo pipefail",
           f"cfg={shlex.quote(ssh_config)} work={shlex.quote(work)} cm={shlex.quote(work)}/cm CA_HASH=",
           "mkdir -p \"$cm\"", "scripts=\"$work/scripts\"; mkdir -p \"$scripts\""]
    out.append("on() { sed \"s|@CA_HASH@|$CA_HASH|g\" \"$scripts/$2\" | ssh -F \"$cfg\" -o \"ControlPath=$cm/%n\" \"$1\" sh >/dev/null 2>&1 "
               "|| { echo \"baseline: $2 failed on $1\" >&2; return 1; }; }")
    for h in hosts:
        out.append(f"ssh -F \"$cfg\" -o ControlMaster=yes -o \"ControlPath=$cm/%n\" -o ControlPersist=120 -fN {h} &")
    out.append("wait")
    scripts_dir = os.path.join(work, "scripts")
    os.makedirs(scripts_dir, exist_ok=True)
    for n, step in enumerate(plan["steps"]):
        work_items = [(h["host"], h.get("actions", [])) for h in step["hosts"]
                      if any(a["kind"] not in ("check", "package") for a in h.get("actions", []))]
        if not work_items:
            continue
        serial = step["rollout"]["kind"] == "serial"
        out.append(f"# step {step['id']}")
        afters = []
        for host, actions in work_items:
            name = f"{n:02d}-{step['id']}-{host}.sh"
            script, after = remote_script(host, actions, render_dir)
            with open(os.path.join(scripts_dir, name), "w") as f:
                f.write(script)
            out.append(f"on {host} {name}" + ("" if serial else " &"))
            afters.extend(after)
        if not serial:
            out.append("for p in $(jobs -p); do wait \"$p\"; done")
        out.extend(afters)
    for h in hosts:
        out.append(f"ssh -F \"$cfg\" -o \"ControlPath=$cm/%n\" -O exit {h} 2>/dev/null || true")
    print("\n".join(out))


if __name__ == "__main__":
    main()
