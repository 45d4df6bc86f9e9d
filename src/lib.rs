//! kubewright: bootstrap, renew and upgrade kubeadm Kubernetes clusters over SSH.
//!
//! The library is the pure core of the tool. Data flows one way:
//!
//! ```text
//! inventory YAML --load+validate--> Inventory
//! templates      --render-------->  RemoteFile per host
//! playbook YAML  --load---------->  Playbook
//! Inventory + Playbook + Facts --plan--> Plan (printed by `plan`, executed by `apply`)
//! ```
//!
//! Nothing in this crate's core modules touches the network, the clock or the process
//! environment: callers pass text, facts and generated secrets in, and get values back.
//! The binary (`src/main.rs`, `src/cli`, `src/report`) does the I/O and the printing.

pub mod certs;
pub mod diag;
pub mod duration;
pub mod exec;
pub mod facts;
pub mod inventory;
pub mod kube;
pub mod kubeconfig;
pub mod pki;
pub mod plan;
pub mod playbook;
pub mod redact;
pub mod render;
pub mod schedule;
pub mod script;
pub mod source_map;
pub mod ssh;
pub mod steps;
pub mod terminal;
pub mod upgrade;
pub mod version;
