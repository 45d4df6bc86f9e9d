//! Kubernetes versions and the per-release facts kubewright's templates depend on.
//!
//! The range kubewright supports is the range whose kubeadm behaviour it models
//! (config API, images, skew rules; see `docs/architecture.md`). A version outside it is
//! rejected at inventory load, not discovered half-way through an install.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The oldest minor kubewright installs. kubeadm 1.28 and older are past end of life
/// (upstream support ended 2024-10-28) and their kubelet skew rule differs (1 minor, not 3).
pub const MIN_SUPPORTED_MINOR: u32 = 29;
/// The newest minor whose kubeadm behaviour kubewright knows. Newer releases may change
/// the config API (v1beta3 is removed in 1.36, kubernetes/kubernetes#136016).
pub const MAX_SUPPORTED_MINOR: u32 = 35;

/// A release version `MAJOR.MINOR.PATCH`, printed without a `v`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a version of the form MAJOR.MINOR.PATCH")]
pub struct VersionError {
    pub input: String,
}

impl FromStr for Version {
    type Err = VersionError;

    /// Accepts `1.31.4` and `v1.31.4`. Pre-releases (`1.31.0-rc.1`) are refused: packages
    /// for them are not published in the stable repositories kubewright installs from.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = || VersionError { input: input.to_string() };
        let trimmed = input.strip_prefix('v').unwrap_or(input);
        let mut parts = trimmed.split('.');
        let mut next = || -> Result<u32, VersionError> {
            let part = parts.next().ok_or_else(err)?;
            if part.is_empty() || part.len() > 6 || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err());
            }
            part.parse().map_err(|_| err())
        };
        let version = Version { major: next()?, minor: next()?, patch: next()? };
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(version)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The kubeadm configuration API a Kubernetes version reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum KubeadmApi {
    /// `kubeadm.k8s.io/v1beta3`: 1.22 to 1.30 here (deprecated in 1.31, removed in 1.36).
    V1Beta3,
    /// `kubeadm.k8s.io/v1beta4`: default from 1.31 (kubernetes/kubernetes#125029).
    V1Beta4,
}

impl KubeadmApi {
    pub fn api_version(self) -> &'static str {
        match self {
            KubeadmApi::V1Beta3 => "kubeadm.k8s.io/v1beta3",
            KubeadmApi::V1Beta4 => "kubeadm.k8s.io/v1beta4",
        }
    }
}

impl Version {
    pub fn is_supported_kubernetes(&self) -> bool {
        self.major == 1 && (MIN_SUPPORTED_MINOR..=MAX_SUPPORTED_MINOR).contains(&self.minor)
    }

    pub fn kubeadm_api(&self) -> KubeadmApi {
        if self.minor < 31 { KubeadmApi::V1Beta3 } else { KubeadmApi::V1Beta4 }
    }

    /// The pause image tag kubeadm expects for this release (kubeadm's `PauseVersion`
    /// constant; a different sandbox image makes kubeadm print a preflight warning).
    pub fn pause_tag(&self) -> &'static str {
        match self.minor {
            ..=30 => "3.9",
            31..=33 => "3.10",
            _ => "3.10.1",
        }
    }

    /// kubeadm's pause image for this release: the sandbox image containerd should use.
    pub fn pause_image(&self) -> String {
        format!("registry.k8s.io/pause:{}", self.pause_tag())
    }

    /// The package version string pkgs.k8s.io publishes, e.g. `1.31.4-1.1`.
    pub fn deb_version(&self) -> String {
        format!("{self}-1.1")
    }

    /// `v1.31`: the pkgs.k8s.io repository path component for this minor.
    pub fn minor_channel(&self) -> String {
        format!("v{}.{}", self.major, self.minor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_with_and_without_v() {
        let v: Version = "v1.31.4".parse().unwrap();
        assert_eq!(v, Version { major: 1, minor: 31, patch: 4 });
        assert_eq!("1.31.4".parse::<Version>().unwrap(), v);
        assert_eq!(v.to_string(), "1.31.4");
    }

    #[test]
    fn rejects_partial_and_prerelease_versions() {
        for bad in ["1.31", "1.31.4-rc.1", "", "v", "1..3", "1.31.4.5", "a.b.c", "1.31.+4", "1.31.99999999"] {
            assert!(bad.parse::<Version>().is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn picks_the_kubeadm_api_by_minor() {
        let v = |s: &str| s.parse::<Version>().unwrap();
        assert_eq!(v("1.30.9").kubeadm_api(), KubeadmApi::V1Beta3);
        assert_eq!(v("1.31.0").kubeadm_api(), KubeadmApi::V1Beta4);
        assert_eq!(v("1.30.9").pause_tag(), "3.9");
        assert_eq!(v("1.32.1").pause_tag(), "3.10");
        assert_eq!(v("1.31.4").deb_version(), "1.31.4-1.1");
    }

    #[test]
    fn support_window() {
        assert!(!"1.28.15".parse::<Version>().unwrap().is_supported_kubernetes());
        assert!("1.29.0".parse::<Version>().unwrap().is_supported_kubernetes());
        assert!(!"1.36.0".parse::<Version>().unwrap().is_supported_kubernetes());
        assert!(!"2.29.0".parse::<Version>().unwrap().is_supported_kubernetes());
    }
}
