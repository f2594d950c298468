//! The `wharf.bundle/v1` manifest: what is in a bundle, where it came from, how it was made,
//! and what the reference check expects.
//!
//! Written deterministically (struct order, sorted maps and files, no timestamp unless
//! `SOURCE_DATE_EPOCH` is set) and read strictly (unknown fields, duplicate or unsafe names,
//! malformed digests are errors).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::paths;

/// The schema name every manifest carries.
pub const SCHEMA: &str = "wharf.bundle/v1";

/// Largest manifest accepted when reading, in bytes.
pub const MAX_MANIFEST_BYTES: u64 = 64 << 20;

/// A bundle's manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// The tool that wrote the bundle.
    pub tool: Tool,
    /// UTC time from `SOURCE_DATE_EPOCH`, when it was set at export.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The target profile, as `wharf targets --json` prints it.
    pub target: Value,
    /// Where the weights came from.
    pub source: Source,
    /// The model description (architecture and its dimensions).
    pub architecture: Value,
    /// How every tensor was stored.
    pub recipe: Recipe,
    /// Every file of the bundle except the manifest itself, sorted by path.
    pub files: Vec<FileEntry>,
    /// The reference check.
    pub reference: Reference,
}

/// Tool name and version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tool {
    /// `wharf`.
    pub name: String,
    /// The crate version.
    pub version: String,
}

/// Provenance: the source's name and every file it was read from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// The source's file or folder name (not its host path, so bundles are host-independent).
    pub name: String,
    /// The source format (`hf-safetensors`, `gguf`, ...).
    pub format: String,
    /// Every source file, relative to the source folder, sorted.
    pub files: Vec<FileEntry>,
}

/// The quantization recipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// The scheme (`gguf:Q4_K_M`, `fp8-block`, `mlx4`, ...).
    pub scheme: String,
    /// Options that changed the output.
    pub options: BTreeMap<String, Value>,
    /// Every written tensor's storage type.
    pub tensors: BTreeMap<String, String>,
}

/// One file: path relative to the bundle root, sha256, size.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// `/`-separated relative path.
    pub path: String,
    /// Lowercase hex sha256.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// What `wharf verify` runs and what it must find.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reference {
    /// The model to load, relative to the bundle root (`.` for the bundle folder itself).
    pub model: String,
    /// The golden file (`reference.json`).
    pub golden: String,
    /// Prompt token ids.
    pub prompt_ids: Vec<u32>,
    /// Pass/fail limits.
    pub thresholds: Thresholds,
    /// The bundle's metrics against the golden, measured at export.
    pub metrics: Metrics,
}

/// Pass/fail limits of the reference check.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// Smallest accepted top-1 agreement with the source over prompt positions.
    pub min_top1: f64,
    /// Largest accepted mean KL(source || bundle) per position, nats.
    pub max_mean_kl: f64,
}

/// The bundle's agreement with the source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    /// Fraction of prompt positions whose argmax equals the source's.
    pub top1: f64,
    /// Mean top-k KL(source || bundle), nats.
    pub mean_kl: f64,
    /// Largest per-position top-k KL, nats.
    pub max_kl: f64,
    /// Greedy continuation of the bundle's own weights.
    pub greedy: Vec<u32>,
    /// Fraction of greedy tokens equal to the source's, up to the first difference.
    pub greedy_agreement: f64,
}

impl Manifest {
    /// The canonical bytes: pretty JSON, files sorted, one trailing newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut m = self.clone();
        m.files.sort();
        m.source.files.sort();
        let mut out = serde_json::to_vec_pretty(&m).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Parses and checks a manifest read from `path` (used in messages only).
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Manifest> {
        if bytes.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(Error::manifest(path, "larger than 64 MiB"));
        }
        let m: Manifest =
            serde_json::from_slice(bytes).map_err(|e| Error::manifest(path, e.to_string()))?;
        m.check(path)?;
        Ok(m)
    }

    /// Schema rules beyond the JSON shape.
    fn check(&self, path: &Path) -> Result<()> {
        if self.schema != SCHEMA {
            return Err(Error::manifest(
                path,
                format!("schema `{}`, expected `{SCHEMA}`", self.schema),
            ));
        }
        let mut seen = BTreeSet::new();
        for f in &self.files {
            paths::check(&f.path)?;
            if f.path == crate::MANIFEST_FILE {
                return Err(Error::manifest(path, "the manifest lists itself"));
            }
            if !seen.insert(f.path.as_str()) {
                return Err(Error::manifest(path, format!("`{}` listed twice", f.path)));
            }
            check_digest(&f.sha256)
                .map_err(|d| Error::manifest(path, format!("{}: {d}", f.path)))?;
        }
        paths::check(&self.reference.golden)?;
        if self.reference.model != "." {
            paths::check(&self.reference.model)?;
        }
        Ok(())
    }

    /// The entry for `name`, if listed.
    pub fn file(&self, name: &str) -> Option<&FileEntry> {
        self.files.iter().find(|f| f.path == name)
    }
}

fn check_digest(s: &str) -> std::result::Result<(), String> {
    if s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(format!("`{s}` is not a lowercase hex sha256"))
    }
}

/// `SOURCE_DATE_EPOCH` (seconds since 1970) as an RFC 3339 UTC time, when set and valid.
pub fn source_date_epoch() -> Option<String> {
    let secs: i64 = std::env::var("SOURCE_DATE_EPOCH")
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(rfc3339(secs))
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian, UTC).
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_formatting() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_000_000), "2026-11-18T11:06:40Z");
    }
}
