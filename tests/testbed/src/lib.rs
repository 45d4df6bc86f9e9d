//! A test bed of real SSH hosts on one Linux machine, and a simulator of the node tools
//! kubewright drives (kubeadm, kubectl, kubelet, systemctl, sysctl, etcdctl...); apt, dpkg,
//! gpg and curl on the hosts are Debian's own.
//!
//! Each host is a network namespace on a private bridge with its own hostname, PID
//! namespace and file system (an overlay over a cached Debian 12 root, `bed::image`), and a
//! real OpenSSH `sshd`. The simulator keeps each host's state on the host and the cluster's
//! (what the API server and etcd would hold) in a directory shared by the hosts of one bed.
//!
//! Nothing here touches the machine's real `/etc` or kernel settings: `/proc/sys` is
//! read-only inside the hosts except `/proc/sys/net`, which is per network namespace.

pub mod bed;
pub mod faults;
pub mod sim;

pub use bed::{EtcdMembers, Host, Testbed, TestbedOptions};

/// One `#[test]` per scenario and SSH transport: `openssh::name` and `russh::name`, each
/// calling `name(transport)` with `"openssh"` or `"russh"`.
#[macro_export]
macro_rules! on_both_transports {
    ($($name:ident),* $(,)?) => {
        mod openssh {
            $( #[test] fn $name() { super::$name("openssh") } )*
        }
        mod russh {
            $( #[test] fn $name() { super::$name("russh") } )*
        }
    };
}
