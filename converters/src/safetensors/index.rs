//! `model.safetensors.index.json`: which shard holds which tensor (RELIABILITY.md I1-I5).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use wharf_core::TensorSource;

use super::SafetensorsSource;
use crate::error::{Error, ErrorKind, Result};
use crate::json::read_strict;
use crate::limits::MAX_SHARDS;

/// Name of the index file in an HF folder.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// A parsed shard index.
#[derive(Debug, Clone)]
pub struct ShardIndex {
    /// `metadata.total_size`, if present.
    pub total_size: Option<u64>,
    /// Tensor name to shard file name, in file order.
    pub weight_map: Vec<(String, String)>,
}

fn index_err(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::Index(msg.into()))
}

impl ShardIndex {
    /// Reads and checks the index of `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        Self::load_file(&dir.join(INDEX_FILE))
    }

    /// Reads and checks an index file of this layout under any name (PyTorch folders use
    /// `pytorch_model.bin.index.json`).
    pub fn load_file(path: &Path) -> Result<Self> {
        Self::parse(&read_strict(path)?).map_err(|e| e.in_file(path))
    }

    pub(crate) fn parse(v: &serde_json::Value) -> Result<Self> {
        let map = v
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| index_err("no `weight_map` object"))?;
        let mut weight_map = Vec::with_capacity(map.len());
        for (name, shard) in map {
            let shard = shard
                .as_str()
                .ok_or_else(|| index_err(format!("shard of `{name}` is not a string")))?;
            check_basename(shard)?;
            weight_map.push((name.clone(), shard.to_owned()));
        }
        if weight_map.is_empty() {
            return Err(Error::new(ErrorKind::Empty));
        }
        let total_size = match v.get("metadata").and_then(|m| m.get("total_size")) {
            None | Some(serde_json::Value::Null) => None,
            Some(t) => Some(
                t.as_u64()
                    .ok_or_else(|| index_err("total_size is not an integer"))?,
            ),
        };
        Ok(ShardIndex {
            total_size,
            weight_map,
        })
    }

    /// The distinct shard files, sorted, each a regular file (not a link) inside `dir`.
    pub fn shard_paths(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        let names: BTreeSet<&str> = self.weight_map.iter().map(|(_, s)| s.as_str()).collect();
        if names.len() > MAX_SHARDS {
            return Err(index_err(format!("{} shards", names.len())));
        }
        names
            .into_iter()
            .map(|n| {
                let p = dir.join(n);
                let meta = std::fs::symlink_metadata(&p).map_err(|_| {
                    index_err(format!("shard `{n}` named by the index is missing")).in_file(dir)
                })?;
                if meta.file_type().is_symlink() || !meta.is_file() {
                    return Err(Error::new(ErrorKind::PathEscape(n.to_owned())).in_file(dir));
                }
                Ok(p)
            })
            .collect()
    }

    /// Checks the index and the opened shards agree exactly.
    pub fn check_against(
        &self,
        source: &SafetensorsSource,
        dir: &Path,
        warnings: &mut Vec<String>,
    ) -> Result<()> {
        self.check_map(
            source.tensors(),
            |t| source.locate(t).map(|(p, ..)| p),
            dir,
            warnings,
        )
    }

    /// Checks the index agrees exactly with opened shards: `tensors` are every tensor held,
    /// `locate` names the file holding one.
    pub fn check_map<'a>(
        &self,
        tensors: &[wharf_core::TensorMeta],
        locate: impl Fn(&str) -> Option<&'a Path>,
        dir: &Path,
        warnings: &mut Vec<String>,
    ) -> Result<()> {
        let indexed: HashMap<&str, &str> = self
            .weight_map
            .iter()
            .map(|(t, s)| (t.as_str(), s.as_str()))
            .collect();
        for (tensor, shard) in &self.weight_map {
            let Some(path) = locate(tensor) else {
                return Err(index_err(format!("`{tensor}` is not in shard `{shard}`")).in_file(dir));
            };
            if path.file_name().and_then(|f| f.to_str()) != Some(shard.as_str()) {
                return Err(index_err(format!(
                    "`{tensor}` is indexed in `{shard}` but stored in `{}`",
                    path.display()
                ))
                .in_file(dir));
            }
        }
        for meta in tensors {
            if !indexed.contains_key(meta.name.as_str()) {
                return Err(index_err(format!(
                    "`{}` is in a shard but not in the index",
                    meta.name
                ))
                .in_file(dir));
            }
        }
        let sum = tensors.iter().try_fold(0u64, |acc, m| {
            m.nbytes().ok().and_then(|n| acc.checked_add(n))
        });
        if let (Some(stated), Some(sum)) = (self.total_size, sum)
            && stated != sum
        {
            warnings.push(format!(
                "index: metadata.total_size is {stated} but the shards hold {sum} bytes of tensors"
            ));
        }
        Ok(())
    }
}

/// A shard name must be a plain file name: no separators, no `..`, not absolute, no NUL.
pub fn check_basename(name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name.contains(['/', '\\', '\0'])
        || name.contains(':')
        || Path::new(name).is_absolute();
    if bad {
        return Err(Error::new(ErrorKind::PathEscape(name.to_owned())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_names_must_be_basenames() {
        for bad in [
            "../x.safetensors",
            "/etc/passwd",
            "sub/../../x",
            "a\\..\\b",
            "",
            "..",
            "C:x",
        ] {
            assert!(check_basename(bad).is_err(), "{bad}");
        }
        assert!(check_basename("model-00001-of-00002.safetensors").is_ok());
    }
}
