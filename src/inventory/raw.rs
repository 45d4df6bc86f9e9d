//! The inventory as written: serde types that accept any scalar where a value can be
//! wrong in many ways (ports, CIDRs, versions), so that validation can report every
//! problem at once instead of stopping at the first type error.
//!
//! Unknown fields are not rejected here: the loader collects them all with
//! `serde_ignored` and reports each with a suggestion taken from these types' field lists.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// Any YAML scalar, kept as text: `6443`, `"6443"` and `true` are all accepted here and
/// checked by the validator, which knows what the field means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl Visitor<'_> for ScalarVisitor {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        d.deserialize_any(ScalarVisitor)
    }
}

/// One value or a list of them (`identityFile: key` or `identityFile: [key1, key2]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneOrMany {
    pub items: Vec<Scalar>,
    /// Written as a list (its items then have paths of their own, `identityFile[1]`).
    pub is_list: bool,
}

impl OneOrMany {
    fn one(value: String) -> Self {
        OneOrMany { items: vec![Scalar(value)], is_list: false }
    }
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct OneOrManyVisitor;
        impl<'de> Visitor<'de> for OneOrManyVisitor {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany::one(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<OneOrMany, E> {
                Ok(OneOrMany::one(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<OneOrMany, E> {
                Ok(OneOrMany::one(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<OneOrMany, E> {
                Ok(OneOrMany::one(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<OneOrMany, E> {
                Ok(OneOrMany::one(v.to_string()))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
                let mut all = Vec::new();
                while let Some(item) = seq.next_element::<Scalar>()? {
                    all.push(item);
                }
                Ok(OneOrMany { items: all, is_list: true })
            }
        }
        d.deserialize_any(OneOrManyVisitor)
    }
}

/// A host's `internalAddress`: an IP (`192.168.56.11`), or where the host itself has it
/// (`{interface: eth1}`), read from the host when a plan is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawInternalAddress {
    Literal(Scalar),
    Of(RawAddressOf),
}

/// `internalAddress: {interface: NAME}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawAddressOf {
    pub interface: Option<Scalar>,
}

impl<'de> Deserialize<'de> for RawInternalAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct AddressVisitor;
        impl<'de> Visitor<'de> for AddressVisitor {
            type Value = RawInternalAddress;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an IP address, or a mapping `{interface: NAME}`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawInternalAddress, E> {
                Ok(RawInternalAddress::Literal(Scalar(v.to_string())))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawInternalAddress, E> {
                Ok(RawInternalAddress::Literal(Scalar(v.to_string())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawInternalAddress, E> {
                Ok(RawInternalAddress::Literal(Scalar(v.to_string())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawInternalAddress, E> {
                Ok(RawInternalAddress::Literal(Scalar(v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawInternalAddress, E> {
                Ok(RawInternalAddress::Literal(Scalar(v.to_string())))
            }
            // Through the map access the loader's wrapper gave: unknown keys are still
            // collected and reported with a suggestion.
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<RawInternalAddress, A::Error> {
                RawAddressOf::deserialize(de::value::MapAccessDeserializer::new(map)).map(RawInternalAddress::Of)
            }
        }
        d.deserialize_any(AddressVisitor)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawInventory {
    pub cluster: Option<RawCluster>,
    pub ssh: Option<RawSsh>,
    pub hosts: Option<Vec<RawHost>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawCluster {
    pub name: Option<Scalar>,
    pub kubernetes_version: Option<Scalar>,
    pub control_plane_endpoint: Option<Scalar>,
    pub load_balancer: Option<RawLoadBalancer>,
    pub network: Option<RawNetwork>,
    pub cni: Option<RawCni>,
    pub containerd: Option<RawContainerd>,
    pub packages: Option<RawPackages>,
    pub sysctls: Option<RawSysctls>,
    pub certificates: Option<RawCertificates>,
    pub upgrade: Option<RawUpgrade>,
    pub timeouts: Option<RawTimeouts>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawLoadBalancer {
    #[serde(rename = "type")]
    pub kind: Option<Scalar>,
    pub image: Option<Scalar>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawNetwork {
    pub pod_subnet: Option<Scalar>,
    pub service_subnet: Option<Scalar>,
    pub node_cidr_mask_size: Option<Scalar>,
    pub dns_domain: Option<Scalar>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawCni {
    pub flannel: Option<RawFlannel>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawFlannel {
    pub backend: Option<Scalar>,
    pub interface: Option<Scalar>,
    pub version: Option<Scalar>,
    pub cni_plugin_version: Option<Scalar>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawContainerd {
    pub version: Option<Scalar>,
    pub sandbox_image: Option<Scalar>,
    pub systemd_cgroup: Option<Scalar>,
    pub registry_mirrors: Option<BTreeMap<String, Vec<Scalar>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawPackages {
    pub mirror: Option<Scalar>,
    pub key_fingerprint: Option<Scalar>,
    pub manage_repository: Option<Scalar>,
    pub containerd_package: Option<Scalar>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawSysctls {
    pub tuning: Option<Scalar>,
    pub extra: Option<BTreeMap<String, Scalar>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawCertificates {
    pub renew_before: Option<Scalar>,
    pub keep_backups: Option<Scalar>,
    pub ca_key_type: Option<Scalar>,
    pub ca_validity: Option<Scalar>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawUpgrade {
    pub max_unavailable: Option<Scalar>,
    pub drain_timeout: Option<Scalar>,
    pub drain_grace_period: Option<Scalar>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawTimeouts {
    pub command: Option<Scalar>,
    pub ready: Option<Scalar>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawSsh {
    pub user: Option<Scalar>,
    pub port: Option<Scalar>,
    pub identity_file: Option<OneOrMany>,
    #[serde(rename = "become")]
    pub sudo: Option<Scalar>,
    pub known_hosts: Option<Scalar>,
    pub transport: Option<Scalar>,
    pub connect_timeout: Option<Scalar>,
    pub server_alive_interval: Option<Scalar>,
    pub bastion: Option<RawBastion>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawBastion {
    pub host: Option<Scalar>,
    pub user: Option<Scalar>,
    pub port: Option<Scalar>,
    pub identity_file: Option<Scalar>,
}

/// Per-host SSH settings that override the inventory's `ssh` defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawHostSsh {
    pub user: Option<Scalar>,
    pub port: Option<Scalar>,
    pub identity_file: Option<OneOrMany>,
    #[serde(rename = "become")]
    pub sudo: Option<Scalar>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawHost {
    pub name: Option<Scalar>,
    pub address: Option<Scalar>,
    pub internal_address: Option<RawInternalAddress>,
    pub roles: Option<Vec<Scalar>>,
    pub labels: Option<BTreeMap<String, Scalar>>,
    pub taints: Option<Vec<Scalar>>,
    pub ssh: Option<RawHostSsh>,
    pub sysctls: Option<BTreeMap<String, Scalar>>,
    pub flannel_interface: Option<Scalar>,
}

/// The field names serde accepts for the struct found at `parent`, for "did you mean"
/// suggestions on unknown fields. `parent` uses `[]` for any sequence index.
pub fn fields_at(parent: &str) -> &'static [&'static str] {
    match parent {
        "" => fields_of::<RawInventory>(),
        "cluster" => fields_of::<RawCluster>(),
        "cluster.network" => fields_of::<RawNetwork>(),
        "cluster.cni" => fields_of::<RawCni>(),
        "cluster.cni.flannel" => fields_of::<RawFlannel>(),
        "cluster.containerd" => fields_of::<RawContainerd>(),
        "cluster.packages" => fields_of::<RawPackages>(),
        "cluster.sysctls" => fields_of::<RawSysctls>(),
        "cluster.certificates" => fields_of::<RawCertificates>(),
        "cluster.upgrade" => fields_of::<RawUpgrade>(),
        "cluster.timeouts" => fields_of::<RawTimeouts>(),
        "ssh" => fields_of::<RawSsh>(),
        "ssh.bastion" => fields_of::<RawBastion>(),
        "hosts[]" => fields_of::<RawHost>(),
        "hosts[].ssh" => fields_of::<RawHostSsh>(),
        "hosts[].internalAddress" => fields_of::<RawAddressOf>(),
        _ => &[],
    }
}

/// The field list serde's derive generated for `T`, read by asking `T` to deserialize
/// from a probe that records the list and then refuses.
fn fields_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    use std::cell::Cell;

    #[derive(Debug)]
    struct Stop;
    impl fmt::Display for Stop {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("probe")
        }
    }
    impl std::error::Error for Stop {}
    impl de::Error for Stop {
        fn custom<M: fmt::Display>(_: M) -> Self {
            Stop
        }
    }

    struct Probe<'a>(&'a Cell<&'static [&'static str]>);
    impl<'de> Deserializer<'de> for Probe<'_> {
        type Error = Stop;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            self.0.set(fields);
            Err(Stop)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map
            enum identifier ignored_any
        }
    }

    let fields = Cell::new(&[][..]);
    let _ = T::deserialize(Probe(&fields));
    fields.get()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_reads_renamed_field_lists() {
        assert!(fields_at("cluster").contains(&"kubernetesVersion"));
        assert!(fields_at("hosts[]").contains(&"internalAddress"));
        assert!(fields_at("nope").is_empty());
        assert_eq!(fields_at("hosts[].internalAddress"), ["interface"]);
    }
}
