#!/usr/bin/env python3
"""Sample a running kubewright until it exits: the most open file descriptors and threads it
had, the most `ssh` client processes on the machine at once (the openssh transport's masters
and sessions) with their summed resident memory, and kubewright's own peak RSS (VmHWM).

    peaks.py PID [INTERVAL_S] > peaks.json

Prints one JSON object when PID is gone. Reads only /proc.
"""
import json
import os
import sys
import time


def ssh_clients():
    """(count, summed RSS in KiB) of processes named `ssh` (not sshd)."""
    count, rss = 0, 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() != "ssh":
                    continue
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
            count += 1
        except OSError:
            continue
    return count, rss


def main():
    pid = int(sys.argv[1])
    interval = float(sys.argv[2]) if len(sys.argv) > 2 else 0.2
    peak = {"fds": 0, "threads": 0, "ssh_processes": 0, "ssh_rss_kib": 0, "rss_kib": 0}
    while True:
        try:
            fds = len(os.listdir(f"/proc/{pid}/fd"))
            with open(f"/proc/{pid}/status") as f:
                status = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            break
        peak["fds"] = max(peak["fds"], fds)
        peak["threads"] = max(peak["threads"], int(status.get("Threads", "0").strip() or 0))
        peak["rss_kib"] = max(peak["rss_kib"], int(status.get("VmHWM", "0 kB").split()[0]))
        count, rss = ssh_clients()
        peak["ssh_processes"] = max(peak["ssh_processes"], count)
        peak["ssh_rss_kib"] = max(peak["ssh_rss_kib"], rss)
        time.sleep(interval)
    print(json.dumps(peak))


if __name__ == "__main__":
    main()
