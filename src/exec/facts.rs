//! Gathering facts over SSH: the read-only script of [`crate::facts::gather`] on every host at
//! once (one command per host), parsed into [`ClusterFacts`].

use std::collections::BTreeMap;

use super::for_each_host;
use crate::facts::gather::{parse, script};
use crate::facts::{ClusterFacts, HostFacts};
use crate::ssh::{Connector, Target, Transport};

/// Why a host's facts are missing.
#[derive(Debug, Clone)]
pub struct FactsFailure {
    pub host: String,
    pub message: String,
    pub hint: String,
}

/// The facts of every target (`paths`: the files kubewright manages on each host, by host
/// name), `window` hosts at a time; all hosts' failures at once.
pub async fn gather(
    connector: &Connector,
    targets: Vec<Target>,
    paths: &BTreeMap<String, Vec<String>>,
    window: usize,
) -> Result<ClusterFacts, Vec<FactsFailure>> {
    let items: Vec<(String, Target)> = targets.into_iter().map(|t| (t.name.clone(), t)).collect();
    let outcomes = for_each_host(items, window, |target| async move {
        let host = target.name.clone();
        let fail = |message: String, hint: String| FactsFailure { host: host.clone(), message, hint };
        let session = connector.connect(target).await.map_err(|e| fail(e.to_string(), e.hint()))?;
        let wanted = paths.get(&host).map(Vec::as_slice).unwrap_or_default();
        let out = session.run(&script(wanted)).await;
        session.close().await;
        let out = out.map_err(|e| fail(e.to_string(), e.hint()))?;
        if !out.success() {
            return Err(fail(
                format!("{host}: reading facts exited with {:?}: {}", out.code, out.stderr.trim()),
                "the facts command only reads (cat, lsmod, dpkg-query, base64); check the host's shell and coreutils"
                    .into(),
            ));
        }
        parse(&host, &out.stdout)
            .map_err(|e| fail(e.to_string(), "re-run; a cut connection truncates the output".into()))
    })
    .await;
    let mut hosts: BTreeMap<String, HostFacts> = BTreeMap::new();
    let mut failures = Vec::new();
    for o in outcomes {
        match o.result {
            Ok(f) => {
                hosts.insert(o.host, f);
            }
            Err(e) => failures.push(e),
        }
    }
    if failures.is_empty() { Ok(ClusterFacts { hosts, assumed_fresh: false }) } else { Err(failures) }
}
