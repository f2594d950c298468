//! PyTorch `torch.save` checkpoints (`.bin`, `.pt`, `.pth`): a zip of a pickled state dict and
//! one raw record per storage. Layout: pytorch `torch/serialization.py` (`_save`, `_load`),
//! read as data only (see [`pickle`]).
//!
//! The legacy pre-1.6 format (a bare pickle stream starting with torch's magic number), bare
//! pickles, wrapped archives (gzip, 7z, tar) and TorchScript archives are refused with an error
//! that says what they are (RELIABILITY.md P12, P13).

mod pickle;
mod reader;
mod rebuild;
mod tensors;
mod value;
mod zip;

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use wharf_core::{Access, TensorMeta, TensorSource};

pub use pickle::load as unpickle;
pub use tensors::Slot;
pub use value::{Global, StorageRef, TensorRef, Value};

use crate::error::{Error, ErrorKind, Result, malformed};
use crate::limits::PICKLE_MAX_BYTES;
use crate::mmap::Mapped;
use crate::safetensors::ShardIndex;

/// The single-file name in an HF folder.
pub const WEIGHTS_FILE: &str = "pytorch_model.bin";
/// The shard index in an HF folder.
pub const INDEX_FILE: &str = "pytorch_model.bin.index.json";

/// The zip local-file-header magic every `torch.save` zip starts with.
pub const ZIP_MAGIC: [u8; 4] = *b"PK\x03\x04";

/// What the first bytes of a file say when they are a PyTorch-related format wharf refuses.
pub fn refused_kind(head: &[u8]) -> Option<&'static str> {
    // torch's legacy format pickles MAGIC_NUMBER = 0x1950a86a20f9469cfc6c first:
    // PROTO 2, LONG1 10 bytes (torch/serialization.py `_legacy_save`).
    const LEGACY: [u8; 4] = [0x80, 0x02, 0x8a, 0x0a];
    if head.starts_with(&LEGACY) {
        return Some(
            "a legacy (pre-1.6, non-zip) torch.save file; re-save it with a current torch or as \
             safetensors",
        );
    }
    if head.first() == Some(&0x80) && head.get(1).is_some_and(|p| (2..=5).contains(p)) {
        return Some("a bare pickle stream, not a torch zip checkpoint");
    }
    if head.starts_with(&[0x1f, 0x8b]) {
        return Some("a gzip-compressed file; unpack it first");
    }
    if head.starts_with(b"7z\xbc\xaf\x27\x1c") {
        return Some("a 7z archive; unpack it first");
    }
    if head.get(257..262) == Some(b"ustar") {
        return Some("a tar archive (legacy torch.save tar format or a wrapped checkpoint)");
    }
    None
}

/// One opened `torch.save` zip.
#[derive(Debug)]
pub struct TorchFile {
    map: Mapped,
    slots: Vec<Slot>,
    /// Record key → (start, len, crc, checked once).
    records: HashMap<String, RecordCheck>,
    warnings: Vec<String>,
}

#[derive(Debug)]
pub(crate) struct RecordCheck {
    start: u64,
    len: u64,
    crc: u32,
    ok: OnceLock<bool>,
}

impl TorchFile {
    /// Maps `path`, checks its zip directory, runs its pickle and checks every tensor view.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let map = Mapped::open(path)?;
        Self::from_map(map).map_err(|e| e.in_file(path))
    }

    fn from_map(map: Mapped) -> Result<Self> {
        let (slots, records, warnings) = parse(map.bytes())?;
        Ok(TorchFile {
            map,
            slots,
            records,
            warnings,
        })
    }

    /// The file path.
    pub fn path(&self) -> &Path {
        self.map.path()
    }

    /// The tensors and where they are.
    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }

    /// Entries of the state dict that were not tensors.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The bytes of `slot`, after the CRC of its whole record was checked once (Z8).
    fn read(&self, slot: &Slot) -> Result<&[u8]> {
        let bytes = self.map.bytes();
        let rec = self
            .records
            .get(&slot.key)
            .ok_or_else(|| malformed("torch zip", "record vanished"))?;
        let ok = *rec.ok.get_or_init(|| {
            region(bytes, rec.start, rec.len).is_ok_and(|r| crc32fast::hash(r) == rec.crc)
        });
        if !ok {
            return Err(
                malformed("zip", format!("CRC-32 mismatch in record `{}`", slot.key))
                    .at(rec.start)
                    .in_file(self.path()),
            );
        }
        region(bytes, slot.start, slot.len).map_err(|e| e.in_file(self.path()))
    }
}

fn check_crc(bytes: &[u8], crc: u32, name: &str) -> Result<()> {
    if crc32fast::hash(bytes) != crc {
        return Err(malformed("zip", format!("CRC-32 mismatch in `{name}`")));
    }
    Ok(())
}

fn region(bytes: &[u8], start: u64, len: u64) -> Result<&[u8]> {
    let end = start.checked_add(len);
    let r = usize::try_from(start)
        .ok()
        .zip(end.and_then(|e| usize::try_from(e).ok()))
        .and_then(|(a, b)| bytes.get(a..b));
    r.ok_or_else(|| {
        Error::new(ErrorKind::Truncated {
            need: end.unwrap_or(u64::MAX),
            have: bytes.len() as u64,
        })
    })
}

/// Tensors from one `torch.save` zip or a sharded HF folder of them.
///
/// Order: shards in file-name order, tensors in state-dict order within a shard.
#[derive(Debug)]
pub struct TorchSource {
    files: Vec<TorchFile>,
    metas: Vec<TensorMeta>,
    location: HashMap<String, (usize, usize)>,
}

impl TorchSource {
    /// Opens one checkpoint file.
    pub fn open_file(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_files(vec![TorchFile::open(path)?])
    }

    /// Opens an HF folder: `pytorch_model.bin.index.json` and its shards, or `pytorch_model.bin`.
    pub fn open_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let index = dir.join(INDEX_FILE);
        if !index.exists() {
            return Self::open_file(dir.join(WEIGHTS_FILE));
        }
        let index = ShardIndex::load_file(&index)?;
        let files = index
            .shard_paths(dir)?
            .into_iter()
            .map(TorchFile::open)
            .collect::<Result<Vec<_>>>()?;
        let source = Self::from_files(files)?;
        let mut warnings = Vec::new();
        index.check_map(&source.metas, |t| source.locate(t), dir, &mut warnings)?;
        Ok(source)
    }

    fn from_files(files: Vec<TorchFile>) -> Result<Self> {
        let mut metas = Vec::new();
        let mut location = HashMap::new();
        for (fi, f) in files.iter().enumerate() {
            for (si, s) in f.slots.iter().enumerate() {
                if location.insert(s.meta.name.clone(), (fi, si)).is_some() {
                    return Err(Error::new(ErrorKind::Duplicate {
                        what: "tensor across shards",
                        name: s.meta.name.clone(),
                    })
                    .in_file(f.path()));
                }
                metas.push(s.meta.clone());
            }
        }
        Ok(TorchSource {
            files,
            metas,
            location,
        })
    }

    /// The opened files, in order.
    pub fn files(&self) -> &[TorchFile] {
        &self.files
    }

    /// Every file read, for provenance.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.files.iter().map(|f| f.path().to_path_buf()).collect()
    }

    /// Non-fatal findings (state-dict entries that are not tensors).
    pub fn warnings(&self) -> Vec<String> {
        self.files.iter().flat_map(|f| f.warnings.clone()).collect()
    }

    fn locate(&self, name: &str) -> Option<&Path> {
        let &(fi, _) = self.location.get(name)?;
        self.files.get(fi).map(TorchFile::path)
    }

    fn entry(&self, name: &str) -> Result<(&TorchFile, &Slot)> {
        let missing =
            || Error::new(ErrorKind::Index(format!("no tensor named `{name}`"))).in_tensor(name);
        let &(fi, si) = self.location.get(name).ok_or_else(missing)?;
        let f = self.files.get(fi).ok_or_else(missing)?;
        let s = f.slots.get(si).ok_or_else(missing)?;
        Ok((f, s))
    }
}

impl TensorSource for TorchSource {
    fn tensors(&self) -> &[TensorMeta] {
        &self.metas
    }

    fn bytes(&self, name: &str) -> wharf_core::Result<Cow<'_, [u8]>> {
        let (f, s) = self.entry(name)?;
        Ok(Cow::Borrowed(f.read(s).map_err(|e| e.in_tensor(name))?))
    }

    fn advise(&self, name: &str, access: Access) {
        if let Ok((f, s)) = self.entry(name) {
            f.map.advise(s.start, s.len, access);
        }
    }

    fn meta(&self, name: &str) -> Option<&TensorMeta> {
        let &(fi, si) = self.location.get(name)?;
        self.files.get(fi)?.slots.get(si).map(|s| &s.meta)
    }
}

/// What a checked `torch.save` zip holds: tensor slots, records by key, warnings.
pub(crate) type Parsed = (Vec<Slot>, HashMap<String, RecordCheck>, Vec<String>);

/// Checks a whole `torch.save` zip held in memory: directory, pickle, every tensor view.
pub(crate) fn parse(bytes: &[u8]) -> Result<Parsed> {
    if !bytes.starts_with(b"PK") {
        let what = refused_kind(bytes).unwrap_or("not a zip file");
        return Err(Error::new(ErrorKind::UnknownFormat(format!(
            "this is {what}"
        ))));
    }
    let dir = zip::read_directory(bytes)?;
    if let Some(b) = &dir.byteorder {
        let text = region(bytes, b.start, b.len)?;
        if text != b"little" {
            return Err(malformed("torch zip", "byteorder is not `little`").at(b.start));
        }
    }
    if dir.pickle.len > PICKLE_MAX_BYTES {
        return Err(Error::new(ErrorKind::TooLarge {
            what: "data.pkl bytes",
            value: dir.pickle.len,
            cap: PICKLE_MAX_BYTES,
        }));
    }
    let pkl = region(bytes, dir.pickle.start, dir.pickle.len)?;
    check_crc(pkl, dir.pickle.crc, &dir.pickle.name)?;
    let root = pickle::load(pkl).map_err(|e| e.rebase(dir.pickle.start))?;
    let (slots, warnings) = tensors::slots(root, &dir)?;
    let records = dir
        .records
        .into_iter()
        .map(|(k, r)| {
            let check = RecordCheck {
                start: r.start,
                len: r.len,
                crc: r.crc,
                ok: OnceLock::new(),
            };
            (k, check)
        })
        .collect();
    Ok((slots, records, warnings))
}
