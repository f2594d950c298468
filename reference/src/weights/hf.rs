//! Weights of an HF folder (or a lone safetensors file with a separately given description):
//! the logical names are the stored names.

use wharf_converters::AnySource;
use wharf_core::TensorSource;
use wharf_core::model::ModelSpec;

use super::{Weights, decode_rows, matrix_shape};
use crate::Result;

/// An HF checkpoint read in place.
#[derive(Debug)]
pub struct HfWeights {
    source: AnySource,
    spec: ModelSpec,
}

impl HfWeights {
    /// Wraps an opened source and the description of the model it holds.
    pub fn new(source: AnySource, spec: ModelSpec) -> Self {
        HfWeights { source, spec }
    }
}

impl Weights for HfWeights {
    fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    fn shape(&self, name: &str) -> Option<[usize; 2]> {
        self.source.meta(name).and_then(matrix_shape)
    }

    fn read_rows(&self, name: &str, start: usize, out: &mut [f32]) -> Result<()> {
        decode_rows(&self.source, name, start, out)
    }
}
