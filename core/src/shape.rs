//! Tensor shapes, outer dimension first (PyTorch order, whatever the file stores).

use std::fmt;

use crate::LayoutError;

/// Dimensions, outer first: a `[out, in]` weight is `Shape(vec![out, in])`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Shape(pub Vec<u64>);

impl Shape {
    /// A shape from its dimensions, outer first.
    pub fn new(dims: impl Into<Vec<u64>>) -> Self {
        Shape(dims.into())
    }

    /// Dimensions, outer first.
    pub fn dims(&self) -> &[u64] {
        &self.0
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// Number of elements, checked (a scalar has one).
    pub fn numel(&self) -> Result<u64, LayoutError> {
        self.0
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .ok_or(LayoutError::Overflow)
    }

    /// Innermost dimension (the row length); 1 for a scalar.
    pub fn row_len(&self) -> u64 {
        self.0.last().copied().unwrap_or(1)
    }

    /// Number of rows: the product of all but the innermost dimension.
    pub fn rows(&self) -> Result<u64, LayoutError> {
        match self.0.split_last() {
            None => Ok(1),
            Some((_, outer)) => outer
                .iter()
                .try_fold(1u64, |acc, &d| acc.checked_mul(d))
                .ok_or(LayoutError::Overflow),
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

impl From<Vec<u64>> for Shape {
    fn from(v: Vec<u64>) -> Self {
        Shape(v)
    }
}

impl<const N: usize> From<[u64; N]> for Shape {
    fn from(v: [u64; N]) -> Self {
        Shape(v.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numel_and_rows() {
        let s = Shape::new([3, 4, 5]);
        assert_eq!(s.numel().unwrap(), 60);
        assert_eq!(s.rows().unwrap(), 12);
        assert_eq!(s.row_len(), 5);
        assert_eq!(Shape::new([]).numel().unwrap(), 1);
        assert_eq!(Shape::new([0, 4096]).numel().unwrap(), 0);
        assert_eq!(s.to_string(), "[3, 4, 5]");
    }

    #[test]
    fn overflow_is_an_error() {
        assert_eq!(
            Shape::new([1 << 32, 1 << 32, 16]).numel(),
            Err(LayoutError::Overflow)
        );
    }
}
