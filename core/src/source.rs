//! The streaming boundary between formats: fallible tensor sources and sinks.

use std::borrow::Cow;

use crate::{Error, Result, TensorMeta};

/// Something that holds named tensors: a checkpoint file, a sharded folder, a converted view.
///
/// `bytes` borrows when the storage is memory-mapped and owns when the tensor had to be built
/// (a dequantized or re-laid-out tensor). Either way only the asked-for tensor is in memory.
pub trait TensorSource: Send + Sync {
    /// Every tensor, in the source's stable, documented order.
    fn tensors(&self) -> &[TensorMeta];

    /// The stored bytes of one tensor, exactly `meta.nbytes()` long.
    fn bytes(&self, name: &str) -> Result<Cow<'_, [u8]>>;

    /// Hints that the caller is done with `name` for now, so mapped pages can be dropped from
    /// this process's resident set. Never required for correctness.
    fn release(&self, _name: &str) {}

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
    fn release(&self, name: &str) {
        (**self).release(name)
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
    fn release(&self, name: &str) {
        (**self).release(name)
    }
    fn meta(&self, name: &str) -> Option<&TensorMeta> {
        (**self).meta(name)
    }
}
