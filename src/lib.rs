//! kubewright: bootstrap, renew and upgrade kubeadm Kubernetes clusters over SSH.
//!
//! Data flows one way:
//!
//! ```text
//! inventory YAML --load+validate--> Inventory
//! CLI            ----------------->  Goal (what the user asked for)
//! hosts          --facts (read)--->  ClusterFacts
//! Inventory + Goal + Facts --plan (pure)--> Plan (printed by `plan`, executed by every job)
//! Plan           --run::apply----->  lock, journal, engine over a Transport --> RunReport
//! ```
//!
//! The core modules never touch the network, the clock or the process environment: callers
//! pass text, facts and generated secrets in, and get values back. The I/O edges are `ssh`,
//! `exec` and `run` (and, in the binary, `cli` and `report`).

pub mod certs;
pub mod diag;
pub mod duration;
pub mod etcd;
pub mod exec;
pub mod facts;
pub mod goal;
pub mod hostlist;
pub mod inventory;
pub mod kube;
pub mod kubeconfig;
pub mod outcome;
pub mod pki;
pub mod plan;
pub mod playbook;
pub mod redact;
pub mod render;
pub mod run;
pub mod schedule;
pub mod script;
pub mod source_map;
pub mod ssh;
pub mod steps;
pub mod terminal;
pub mod upgrade;
pub mod version;
