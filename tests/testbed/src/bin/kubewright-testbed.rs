//! `kubewright-testbed`: bring a test bed up and down by hand, inject faults.
//! Also each host's PID 1 (`kubewright-testbed __init CONFIG`, started by the bed).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kubewright_testbed::faults::{Fault, FaultAction};
use kubewright_testbed::{Testbed, TestbedOptions};

#[derive(Parser)]
#[command(
    name = "kubewright-testbed",
    about = "Real SSH hosts in network namespaces, with a simulated kubeadm cluster"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Bring up N hosts; writes DIR/inventory.yaml, DIR/ssh_config, DIR/known_hosts
    #[command(
        after_help = "Example:\n  kubewright-testbed up 5 --control-planes 3 --dir /tmp/bed\n  ssh -F /tmp/bed/ssh_config cp1 hostname\n  kubewright plan --offline -i /tmp/bed/inventory.yaml"
    )]
    Up {
        hosts: usize,
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 1)]
        control_planes: usize,
        #[arg(long, default_value = "1.31.4")]
        kubernetes_version: String,
    },
    /// Tear the bed in DIR down and check nothing is left
    Down {
        #[arg(long)]
        dir: PathBuf,
    },
    /// List the hosts and whether they are up
    Status {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Inject or clear a fault
    Fault {
        #[arg(long)]
        dir: PathBuf,
        #[command(subcommand)]
        fault: FaultCmd,
    },
    /// Make every leaf certificate of the cluster expired: each signed again with its own key
    /// and CA, valid for the year up to AGO ago, and served so by the running servers
    #[command(
        name = "expire-certs",
        after_help = "Example:\n  kubewright-testbed expire-certs --dir /tmp/bed --ago 1d --kubeconfig ~/.local/state/kubewright/lab/admin.conf"
    )]
    ExpireCerts {
        #[arg(long)]
        dir: PathBuf,
        /// How long ago they expired: 1d, 12h, 30m, 90s
        #[arg(long, default_value = "1d", value_parser = parse_ago)]
        ago: std::time::Duration,
        /// A kubeconfig on this machine whose embedded client certificate expires too (the
        /// bastion's copy of admin.conf); repeatable
        #[arg(long)]
        kubeconfig: Vec<PathBuf>,
    },
    #[command(name = "__init", hide = true)]
    Init { config: PathBuf },
    #[command(name = "__delay", hide = true)]
    Delay { ms: u64 },
    #[command(name = "__serve", hide = true)]
    Serve { dir: PathBuf, addr: String, bed: Option<PathBuf> },
}

#[derive(Subcommand)]
enum FaultCmd {
    /// Cut a host's network link
    LinkDown { host: String },
    /// Restore a host's network link
    LinkUp { host: String },
    /// Kill a host's sshd listener (open sessions survive)
    KillSshd { host: String },
    /// Start a host's sshd again
    StartSshd { host: String },
    /// Kill every process of a host and cut its link (files are kept)
    Crash { host: String },
    /// Boot a crashed host
    Boot { host: String },
    /// Make a command fail: `fault fail cp1 "kubeadm init" --code 1 --stderr "..."`
    Fail {
        host: String,
        command_prefix: String,
        #[arg(long, default_value_t = 1)]
        code: i32,
        #[arg(long, default_value = "")]
        stderr: String,
        /// Fail only the first time, then behave normally
        #[arg(long)]
        once: bool,
    },
    /// Make a command hang for SECONDS (0: until `fault clear`) before running
    Hang { host: String, command_prefix: String, seconds: u64 },
    /// Remove every command fault on a host
    Clear { host: String },
    /// Delay every packet a host sends and receives by MS milliseconds (0: remove)
    Latency { host: String, ms: u64 },
}

/// `1d`, `12h`, `30m`, `90s` (a number alone: seconds).
fn parse_ago(text: &str) -> Result<std::time::Duration, String> {
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: u64 = number.parse().map_err(|_| format!("{text}: expected a number with d, h, m or s (1d)"))?;
    let seconds = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        "s" | "" => 1,
        _ => return Err(format!("{text}: the unit is d, h, m or s")),
    };
    n.checked_mul(seconds).map(std::time::Duration::from_secs).ok_or_else(|| format!("{text}: too long"))
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Cmd::Init { config } => kubewright_testbed::bed::run_init(&config),
        Cmd::Delay { ms } => kubewright_testbed::bed::run_delay(std::time::Duration::from_millis(ms)),
        Cmd::Serve { dir, addr, bed } => {
            // The same process answers the hosts' API storage requests (sim::cluster).
            if let Some(bed) = bed {
                std::thread::spawn(move || {
                    if let Err(e) = kubewright_testbed::sim::cluster::serve_api(&bed) {
                        eprintln!("API socket: {e:#}");
                    }
                });
            }
            kubewright_testbed::bed::run_serve(&dir, &addr)
        }
        Cmd::Up { hosts, dir, control_planes, kubernetes_version } => {
            let started = std::time::Instant::now();
            let bed = Testbed::up(TestbedOptions {
                hosts,
                control_planes,
                dir: Some(dir),
                kubernetes_version,
                persistent: true,
                without_kmod: Vec::new(),
            })?;
            println!(
                "{} hosts up in {:.1}s in {}",
                bed.hosts().len(),
                started.elapsed().as_secs_f64(),
                bed.dir().display()
            );
            for h in bed.hosts() {
                println!("  {:<6} {:<15} {}", h.name, h.ip, if h.control_plane { "control-plane" } else { "worker" });
            }
            println!(
                "inventory: {}\nssh:       ssh -F {} {}",
                bed.inventory_path().display(),
                bed.ssh_config_path().display(),
                bed.hosts()[0].name
            );
            Ok(())
        }
        Cmd::Down { dir } => {
            Testbed::open(&dir)?.down()?;
            println!("test bed in {} is down; nothing left", dir.display());
            Ok(())
        }
        Cmd::Status { dir } => {
            let bed = Testbed::open(&dir)?;
            for h in bed.hosts() {
                let up = bed.host_pid1(&h.name).is_some();
                println!(
                    "{:<6} {:<15} {:<13} {}",
                    h.name,
                    h.ip,
                    if h.control_plane { "control-plane" } else { "worker" },
                    if up { "up" } else { "down" }
                );
            }
            Ok(())
        }
        Cmd::ExpireCerts { dir, ago, kubeconfig } => {
            print!("{}", Testbed::open(&dir)?.expire_certs(ago, &kubeconfig)?);
            Ok(())
        }
        Cmd::Fault { dir, fault } => {
            let mut bed = Testbed::open(&dir)?;
            match fault {
                FaultCmd::LinkDown { host } => bed.link_down(&host),
                FaultCmd::LinkUp { host } => bed.link_up(&host),
                FaultCmd::KillSshd { host } => bed.kill_sshd(&host),
                FaultCmd::StartSshd { host } => bed.start_sshd(&host),
                FaultCmd::Crash { host } => bed.crash(&host),
                FaultCmd::Boot { host } => bed.boot(&host),
                FaultCmd::Fail { host, command_prefix, code, stderr, once } => {
                    let action =
                        if once { FaultAction::FailOnce { code, stderr } } else { FaultAction::Fail { code, stderr } };
                    bed.add_fault(&host, Fault { command_prefix, action, fired: false })
                }
                FaultCmd::Hang { host, command_prefix, seconds } => {
                    bed.add_fault(&host, Fault { command_prefix, action: FaultAction::Hang { seconds }, fired: false })
                }
                FaultCmd::Clear { host } => bed.clear_faults(&host),
                FaultCmd::Latency { host, ms } => {
                    if ms == 0 {
                        bed.clear_latency(&host)
                    } else {
                        bed.add_latency(&host, ms)
                    }
                }
            }
        }
    }
}
