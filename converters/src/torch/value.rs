//! The values the data-only pickle machine builds, and the allow-list of globals.
//!
//! The allow-list is the set of callables `torch.save` of a state dict references (see
//! pytorch `torch/serialization.py` `_save` / `persistent_id`, and the stricter
//! `torch/_weights_only_unpickler.py`). Globals are matched by their exact full name: there is
//! no attribute traversal, no module import, nothing is called.

use wharf_core::DType;

use crate::limits::PICKLE_MAX_DEPTH;

/// A global the machine accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Global {
    /// `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])`.
    RebuildTensorV2,
    /// `torch._utils._rebuild_parameter(data, requires_grad, hooks)`.
    RebuildParameter,
    /// `collections.OrderedDict`, called with no arguments.
    OrderedDict,
    /// A typed storage class such as `torch.FloatStorage`; only valid inside a persistent id.
    Storage(DType),
}

/// Resolves `module.name` against the allow-list; `None` means refuse.
pub fn resolve(module: &str, name: &str) -> Option<Global> {
    match (module, name) {
        ("torch._utils", "_rebuild_tensor_v2") => Some(Global::RebuildTensorV2),
        ("torch._utils", "_rebuild_parameter") => Some(Global::RebuildParameter),
        ("collections", "OrderedDict") => Some(Global::OrderedDict),
        ("torch", n) => storage_dtype(n).map(Global::Storage),
        _ => None,
    }
}

/// The legacy typed-storage class names torch pickles (`torch/storage.py`
/// `_dtype_to_storage_type_map`).
fn storage_dtype(name: &str) -> Option<DType> {
    Some(match name {
        "DoubleStorage" => DType::F64,
        "FloatStorage" => DType::F32,
        "HalfStorage" => DType::F16,
        "BFloat16Storage" => DType::BF16,
        "LongStorage" => DType::I64,
        "IntStorage" => DType::I32,
        "ShortStorage" => DType::I16,
        "CharStorage" => DType::I8,
        "ByteStorage" => DType::U8,
        "BoolStorage" => DType::Bool,
        "UInt16Storage" => DType::U16,
        "UInt32Storage" => DType::U32,
        "UInt64Storage" => DType::U64,
        "Float8_e4m3fnStorage" => DType::F8E4M3,
        "Float8_e5m2Storage" => DType::F8E5M2,
        _ => return None,
    })
}

/// A storage named by a persistent id: `('storage', StorageClass, key, location, numel)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageRef {
    /// Element type of the storage class.
    pub dtype: DType,
    /// The record key: the entry `<top>/data/<key>` holds the bytes.
    pub key: String,
    /// Elements in the storage.
    pub numel: u64,
}

/// A tensor view into a storage, as `_rebuild_tensor_v2` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorRef {
    /// The storage.
    pub storage: StorageRef,
    /// First element of the view, in elements.
    pub offset: u64,
    /// Shape, outer first.
    pub shape: Vec<u64>,
    /// Strides in elements.
    pub stride: Vec<i64>,
}

/// A pickle value. Containers carry their nesting depth so that depth stays bounded without
/// recursion (dropping a deep value is recursive, so depth must never grow past the cap).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An integer that fits i64.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
    /// A tuple and its depth.
    Tuple(Vec<Value>, u16),
    /// A list and its depth.
    List(Vec<Value>, u16),
    /// A dict (insertion order kept) and its depth.
    Dict(Vec<(Value, Value)>, u16),
    /// An allow-listed global.
    Global(Global),
    /// A storage reference from BINPERSID.
    Storage(StorageRef),
    /// A rebuilt tensor.
    Tensor(TensorRef),
}

impl Value {
    /// Nesting depth: 0 for scalars.
    pub fn depth(&self) -> u16 {
        match self {
            Value::Tuple(_, d) | Value::List(_, d) | Value::Dict(_, d) => *d,
            _ => 0,
        }
    }

    /// Values in this one, itself included, for the node budget.
    pub fn nodes(&self) -> u64 {
        let mut n = 0u64;
        let mut todo = vec![self];
        while let Some(v) = todo.pop() {
            n = n.saturating_add(1);
            match v {
                Value::Tuple(items, _) | Value::List(items, _) => todo.extend(items.iter()),
                Value::Dict(items, _) => {
                    for (k, v) in items {
                        todo.push(k);
                        todo.push(v);
                    }
                }
                _ => {}
            }
        }
        n
    }

    /// A short description for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Tuple(..) => "tuple",
            Value::List(..) => "list",
            Value::Dict(..) => "dict",
            Value::Global(_) => "global",
            Value::Storage(_) => "storage",
            Value::Tensor(_) => "tensor",
        }
    }
}

/// The depth of a container holding `items`, or `None` past [`PICKLE_MAX_DEPTH`].
pub fn depth_of<'a>(items: impl IntoIterator<Item = &'a Value>) -> Option<u16> {
    let d = items.into_iter().map(Value::depth).max().unwrap_or(0);
    d.checked_add(1).filter(|&d| d <= PICKLE_MAX_DEPTH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_exact_names_resolve() {
        assert_eq!(
            resolve("torch._utils", "_rebuild_tensor_v2"),
            Some(Global::RebuildTensorV2)
        );
        assert_eq!(
            resolve("torch", "BFloat16Storage"),
            Some(Global::Storage(DType::BF16))
        );
        for (m, n) in [
            ("posix", "system"),
            ("builtins", "eval"),
            ("numpy", "prod.os.system"),
            ("torch", "load"),
            ("torch._utils", "_rebuild_tensor_v2.__globals__"),
            ("collections ", "OrderedDict"),
        ] {
            assert_eq!(resolve(m, n), None, "{m}.{n}");
        }
    }
}
