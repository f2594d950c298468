//! The streaming boundary between formats: fallible tensor sources and sinks.

use std::borrow::Cow;
use std::ops::Range;
use std::path::PathBuf;

use crate::{Error, Result, TensorMeta};

/// What a caller will do next with a tensor's stored bytes: a hint for [`TensorSource::advise`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// They will be read soon: a mapped source asks the OS to start reading them from the disk
    /// now, without waiting, so the reader later finds them in the page cache.
    Soon,
    /// Done with them for now: their pages may leave this process's resident set (the page
    /// cache keeps them; a later read faults them back in).
    Done,
}

/// Where a tensor's stored bytes lie in a file, for a reader that reads them itself (with
/// direct I/O into reused buffers) instead of through the source's map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    /// The file.
    pub path: PathBuf,
    /// First byte of the tensor in the file.
    pub offset: u64,
    /// Bytes, exactly the tensor's `nbytes()`.
    pub len: u64,
    /// Device and inode of the file the source opened, so a reader that opens `path` again
    /// can refuse a file replaced since (`None` where the platform has no such identity).
    pub identity: Option<(u64, u64)>,
}

/// Something that holds named tensors: a checkpoint file, a sharded folder, a converted view.
///
/// `bytes` borrows when the storage is memory-mapped and owns when the tensor had to be built
/// (a dequantized or re-laid-out tensor). Either way only the asked-for tensor is in memory.
pub trait TensorSource: Send + Sync {
    /// Every tensor, in the source's stable, documented order.
    fn tensors(&self) -> &[TensorMeta];

    /// The stored bytes of one tensor, exactly `meta.nbytes()` long.
    fn bytes(&self, name: &str) -> Result<Cow<'_, [u8]>>;

    /// Hints what the caller will do with `name`'s stored bytes next (see [`Access`]), so a
    /// mapped source can start reading them early or drop their pages. Never required for
    /// correctness.
    fn advise(&self, _name: &str, _access: Access) {}

    /// Where `name`'s stored bytes lie in a file, when they are stored there as they are
    /// (`None` for a built tensor, or a source that does not say). Reading that range gives
    /// exactly what [`TensorSource::bytes`] gives.
    fn stored(&self, _name: &str) -> Option<Stored> {
        None
    }

    /// For a tensor whose values are computed from other stored tensors (a dequantizing
    /// view): rows `rows` of it, flattened to `[rows, row_len]`, as f32, computing only those.
    /// `None` for a tensor stored as its bytes are, whose rows a caller slices from
    /// [`TensorSource::bytes`]. A caller that goes row block by row block asks this first, so
    /// it never holds a computed tensor whole; an empty range only asks whether the tensor is
    /// computed, and must cost nothing.
    fn computed_rows(&self, _name: &str, _rows: Range<usize>) -> Option<Result<Vec<f32>>> {
        None
    }

    /// Metadata of one tensor.
    fn meta(&self, name: &str) -> Option<&TensorMeta> {
        self.tensors().iter().find(|m| m.name == name)
    }

    /// Metadata of one tensor, or [`Error::TensorNotFound`].
    fn require(&self, name: &str) -> Result<&TensorMeta> {
        self.meta(name).ok_or_else(|| Error::TensorNotFound {
            name: name.to_owned(),
        })
    }
}

/// Something that writes tensors whose layout was declared up front.
///
/// Tensors arrive in the declared order; a tensor may arrive in several chunks, which lets a
/// converter hold one row block at a time instead of one tensor. Nothing is visible at the
/// destination until [`TensorSink::finish`] succeeds; dropping an unfinished sink leaves nothing.
pub trait TensorSink {
    /// Appends `chunk` to the tensor `name`.
    fn write(&mut self, name: &str, chunk: &[u8]) -> Result<()>;

    /// Checks every declared tensor was written in full, then makes the output visible.
    fn finish(self: Box<Self>) -> Result<()>;
}

impl<T: TensorSource + ?Sized> TensorSource for &T {
    fn tensors(&self) -> &[TensorMeta] {
        (**self).tensors()
    }
    fn bytes(&self, name: &str) -> Result<Cow<'_, [u8]>> {
        (**self).bytes(name)
    }
    fn advise(&self, name: &str, access: Access) {
        (**self).advise(name, access)
    }
    fn stored(&self, name: &str) -> Option<Stored> {
        (**self).stored(name)
    }
    fn computed_rows(&self, name: &str, rows: Range<usize>) -> Option<Result<Vec<f32>>> {
        (**self).computed_rows(name, rows)
    }
    fn meta(&self, name: &str) -> Option<&TensorMeta> {
        (**self).meta(name)
    }
}

impl<T: TensorSource + ?Sized> TensorSource for Box<T> {
    fn tensors(&self) -> &[TensorMeta] {
        (**self).tensors()
    }
    fn bytes(&self, name: &str) -> Result<Cow<'_, [u8]>> {
        (**self).bytes(name)
    }
    fn advise(&self, name: &str, access: Access) {
        (**self).advise(name, access)
    }
    fn stored(&self, name: &str) -> Option<Stored> {
        (**self).stored(name)
    }
    fn computed_rows(&self, name: &str, rows: Range<usize>) -> Option<Result<Vec<f32>>> {
        (**self).computed_rows(name, rows)
    }
    fn meta(&self, name: &str) -> Option<&TensorMeta> {
        (**self).meta(name)
    }
}
