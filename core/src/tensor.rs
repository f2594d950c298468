//! Tensor metadata and checked views of tensor bytes.

use crate::{DType, LayoutError, Shape};

/// A tensor's name, storage type and shape.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TensorMeta {
    /// Name as the checkpoint spells it.
    pub name: String,
    /// Storage type.
    pub dtype: DType,
    /// Shape, outer dimension first.
    pub shape: Shape,
}

impl TensorMeta {
    /// New metadata.
    pub fn new(name: impl Into<String>, dtype: DType, shape: impl Into<Shape>) -> Self {
        TensorMeta {
            name: name.into(),
            dtype,
            shape: shape.into(),
        }
    }

    /// Number of elements.
    pub fn numel(&self) -> Result<u64, LayoutError> {
        self.shape.numel()
    }

    /// Stored size in bytes. Block types need whole blocks in every row.
    pub fn nbytes(&self) -> Result<u64, LayoutError> {
        if self.dtype.layout().elems > 1 && self.shape.rank() > 0 {
            let row = self.dtype.row_bytes(self.shape.row_len())?;
            return row
                .checked_mul(self.shape.rows()?)
                .ok_or(LayoutError::Overflow);
        }
        self.dtype.nbytes(self.numel()?)
    }
}

/// Metadata plus bytes whose length was checked against it.
#[derive(Clone, Copy, Debug)]
pub struct TensorView<'a> {
    meta: &'a TensorMeta,
    bytes: &'a [u8],
}

impl<'a> TensorView<'a> {
    /// A view, if `bytes` has exactly the size `meta` needs.
    pub fn new(meta: &'a TensorMeta, bytes: &'a [u8]) -> Result<Self, crate::Error> {
        let want = meta.nbytes()?;
        if u64::try_from(bytes.len()).ok() != Some(want) {
            return Err(crate::Error::SinkOrder {
                name: meta.name.clone(),
                reason: format!("expected {want} bytes, got {}", bytes.len()),
            });
        }
        Ok(TensorView { meta, bytes })
    }

    /// The metadata.
    pub fn meta(&self) -> &'a TensorMeta {
        self.meta
    }

    /// The bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_rows_must_be_whole() {
        let ok = TensorMeta::new("w", DType::Q4_0, [4, 64]);
        assert_eq!(ok.nbytes().unwrap(), 4 * 36);
        let bad = TensorMeta::new("w", DType::Q4_0, [64, 16]);
        assert!(matches!(bad.nbytes(), Err(LayoutError::PartialRow { .. })));
    }

    #[test]
    fn view_checks_length() {
        let m = TensorMeta::new("w", DType::F32, [2, 2]);
        assert!(TensorView::new(&m, &[0u8; 16]).is_ok());
        assert!(TensorView::new(&m, &[0u8; 15]).is_err());
    }
}
