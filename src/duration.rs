//! Human durations as admins write them in an inventory: `90s`, `5m`, `1h30m`, `30d`.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

/// A whole number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration {
    pub seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a duration like `90s`, `5m`, `1h30m` or `30d`")]
pub struct DurationError {
    pub input: String,
}

impl Duration {
    pub const fn from_secs(seconds: u64) -> Self {
        Self { seconds }
    }

    /// Go's `time.Duration` spelling (`24h0m0s`), which kubeadm's config fields use.
    pub fn go_string(&self) -> String {
        let (h, m, s) = (self.seconds / 3600, self.seconds / 60 % 60, self.seconds % 60);
        if h > 0 {
            format!("{h}h{m}m{s}s")
        } else if m > 0 {
            format!("{m}m{s}s")
        } else {
            format!("{s}s")
        }
    }
}

impl FromStr for Duration {
    type Err = DurationError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = || DurationError { input: input.to_string() };
        if input.is_empty() {
            return Err(err());
        }
        let mut total: u64 = 0;
        let mut digits = String::new();
        for c in input.chars() {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            let unit = match c {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86_400,
                _ => return Err(err()),
            };
            let n: u64 = digits.parse().map_err(|_| err())?;
            total = n.checked_mul(unit).and_then(|v| total.checked_add(v)).ok_or_else(err)?;
            digits.clear();
        }
        if !digits.is_empty() {
            return Err(err());
        }
        Ok(Duration { seconds: total })
    }
}

impl fmt::Display for Duration {
    /// The shortest exact spelling: `30d`, `1h30m`, `90s` stays `1m30s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.seconds == 0 {
            return write!(f, "0s");
        }
        let mut rest = self.seconds;
        for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
            if rest >= size {
                write!(f, "{}{unit}", rest / size)?;
                rest %= size;
            }
        }
        Ok(())
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Days since the epoch → (year, month, day) (Howard Hinnant's civil_from_days).
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_combinations() {
        let d = |s: &str| s.parse::<Duration>().unwrap().seconds;
        assert_eq!(d("90s"), 90);
        assert_eq!(d("5m"), 300);
        assert_eq!(d("1h30m"), 5400);
        assert_eq!(d("30d"), 2_592_000);
    }

    #[test]
    fn rejects_garbage_and_overflow() {
        for bad in ["", "5", "m", "5x", "-5m", "1.5h", "99999999999999999999d", "5 m"] {
            assert!(bad.parse::<Duration>().is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn prints_compact_and_go_forms() {
        assert_eq!(Duration::from_secs(5400).to_string(), "1h30m");
        assert_eq!(Duration::from_secs(86_400).go_string(), "24h0m0s");
        assert_eq!(Duration::from_secs(90).go_string(), "1m30s");
        assert_eq!(Duration::from_secs(0).to_string(), "0s");
    }
}
