//! Gathering facts over SSH: the read-only script of [`crate::facts::gather`] on every host at
//! once (one command per host), parsed into [`ClusterFacts`].

use std::collections::BTreeMap;

use super::for_each_host;
use crate::facts::gather::{cluster_script, parse, parse_cluster, script};
use crate::facts::{ClusterFacts, ClusterView, HostFacts};
use crate::ssh::{Connector, Target, Transport};

/// Why a host's facts are missing.
#[derive(Debug, Clone)]
pub struct FactsFailure {
    pub host: String,
    pub message: String,
    pub hint: String,
}

/// How long reading a host's facts may take. The script only reads, and its kubectl, crictl
/// and etcdctl calls have short timeouts of their own; what is left to hang is the host
/// itself (a hung mount, a runtime that never answers), which must not hold up every job.
const FACTS_LIMIT: crate::duration::Duration = crate::duration::Duration::from_secs(5 * 60);

/// A host's facts, and on a control plane what its API server says of the cluster.
pub type HostReading = (HostFacts, Option<ClusterView>);

/// One host's facts over an open session (`paths`: the files kubewright manages there); a
/// host with an admin kubeconfig is also asked for the cluster's nodes and kubeadm-config.
pub async fn read_host<T: Transport>(session: &T, host: &str, paths: &[String]) -> Result<HostReading, FactsFailure> {
    let facts = read_host_facts(session, host, paths).await?;
    let cluster = match facts.admin_conf {
        // An API server that is down or refuses is not a failure of the facts: the plan goes
        // on without the cluster's view.
        true => match super::run_limited(session, &cluster_script(), FACTS_LIMIT).await {
            Ok(out) => parse_cluster(host, &out.stdout),
            Err(_) => None,
        },
        false => None,
    };
    Ok((facts, cluster))
}

async fn read_host_facts<T: Transport>(session: &T, host: &str, paths: &[String]) -> Result<HostFacts, FactsFailure> {
    let fail = |message: String, hint: String| FactsFailure { host: host.to_string(), message, hint };
    let out =
        super::run_limited(session, &script(paths), FACTS_LIMIT).await.map_err(|e| fail(e.to_string(), e.hint()))?;
    if out.code == Some(super::TIMEOUT_EXIT_CODE) {
        return Err(fail(
            format!("{host}: reading facts did not finish within {FACTS_LIMIT} and was stopped"),
            "something on the host hangs a read-only command (a hung mount, a container runtime that never answers): log in and run `ps -ef --forest` to see what it waits on".into(),
        ));
    }
    if !out.success() {
        return Err(fail(
            format!("{host}: reading facts exited with {:?}: {}", out.code, out.stderr.trim()),
            "the facts command only reads (cat, lsmod, dpkg-query, ss, base64); check the host's shell and coreutils"
                .into(),
        ));
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut facts = parse(host, &out.stdout)
        .map_err(|e| fail(e.to_string(), "re-run; a cut connection truncates the output".into()))?;
    // The host read its clock a moment before the answer arrived: the skew is accurate to the
    // command's run time, far below what matters for certificates.
    if facts.host_time != 0 {
        facts.clock_skew_s = Some(facts.host_time as i64 - now as i64);
    }
    Ok(facts)
}

/// Gathered facts, or every host's failure. The cluster's view is the first control plane's
/// (in the order given) that answered.
pub fn collect(
    outcomes: Vec<super::HostOutcome<HostReading, FactsFailure>>,
) -> Result<ClusterFacts, Vec<FactsFailure>> {
    match collect_partial(outcomes) {
        (facts, failures) if failures.is_empty() => Ok(facts),
        (_, failures) => Err(failures),
    }
}

/// The facts of the hosts that answered, and the failures of those that did not (for reports
/// that go on without them, like `certs check`).
pub fn collect_partial(
    outcomes: Vec<super::HostOutcome<HostReading, FactsFailure>>,
) -> (ClusterFacts, Vec<FactsFailure>) {
    let mut hosts: BTreeMap<String, HostFacts> = BTreeMap::new();
    let mut cluster = None;
    let mut failures = Vec::new();
    for o in outcomes {
        match o.result {
            Ok((facts, view)) => {
                hosts.insert(o.host, facts);
                cluster = cluster.or(view);
            }
            Err(e) => failures.push(e),
        }
    }
    (
        ClusterFacts {
            hosts,
            assumed_fresh: false,
            bastion_kubeconfig: false,
            cluster,
            unreachable: BTreeMap::new(),
            releases: None,
        },
        failures,
    )
}

/// The facts of every target (`paths`: the files kubewright manages on each host, by host
/// name), `window` hosts at a time; all hosts' failures at once.
pub async fn gather(
    connector: &Connector,
    targets: Vec<Target>,
    paths: &BTreeMap<String, Vec<String>>,
    window: usize,
) -> Result<ClusterFacts, Vec<FactsFailure>> {
    match gather_partial(connector, targets, paths, window).await {
        (facts, failures) if failures.is_empty() => Ok(facts),
        (_, failures) => Err(failures),
    }
}

/// [`gather`], keeping the facts of the hosts that answered beside the failures of the rest.
pub async fn gather_partial(
    connector: &Connector,
    targets: Vec<Target>,
    paths: &BTreeMap<String, Vec<String>>,
    window: usize,
) -> (ClusterFacts, Vec<FactsFailure>) {
    let items: Vec<(String, Target)> = targets.into_iter().map(|t| (t.name.clone(), t)).collect();
    let outcomes = for_each_host(items, window, |target| async move {
        let host = target.name.clone();
        let session = connector.connect(target).await.map_err(|e| FactsFailure {
            host: host.clone(),
            message: e.to_string(),
            hint: e.hint(),
        })?;
        let facts = read_host(&session, &host, paths.get(&host).map(Vec::as_slice).unwrap_or_default()).await;
        session.close().await;
        facts
    })
    .await;
    collect_partial(outcomes)
}

/// What the package repository of each minor in `minors` offers, asked on `host` (the first
/// control plane) through a temporary sources list: the host's own apt setup is not touched.
pub async fn read_releases<T: Transport>(
    session: &T,
    host: &str,
    mirror: &str,
    minors: &[u32],
) -> Result<crate::facts::Releases, FactsFailure> {
    let script = crate::upgrade::releases_script(mirror, crate::steps::APT_KEYRING, minors);
    let fail = |message: String, hint: String| FactsFailure { host: host.to_string(), message, hint };
    let out = super::run_limited(session, &script, FACTS_LIMIT)
        .await
        .map_err(|e| fail(format!("cannot ask {host} which releases the repository offers: {e}"), e.hint()))?;
    if !out.success() {
        return Err(fail(
            format!("asking the repository on {host} failed: {}", out.stderr.trim()),
            "run `apt-get update` on that host to see why, or give the releases with --path".into(),
        ));
    }
    let (offered, unreadable) = crate::upgrade::parse_releases(&out.stdout);
    Ok(crate::facts::Releases { offered, unreadable })
}
