//! What REDUCE and BINPERSID do in the data-only machine: build descriptions of storages and
//! tensors from the argument layouts pytorch writes (`torch/serialization.py` `persistent_id`,
//! `torch/_utils.py` `_rebuild_tensor_v2` / `_rebuild_parameter`). Nothing is called.

use super::value::{Global, StorageRef, TensorRef, Value};
use crate::error::{Error, ErrorKind, Result, malformed};

fn refuse(what: impl Into<String>) -> Error {
    Error::new(ErrorKind::Unsafe { what: what.into() })
}

/// REDUCE: `f(*args)` for an allow-listed `f`.
pub fn call(f: Value, args: Value) -> Result<Value> {
    let Value::Tuple(args, _) = args else {
        return Err(malformed("pickle", "REDUCE arguments are not a tuple"));
    };
    match f {
        Value::Global(Global::OrderedDict) if args.is_empty() => Ok(Value::Dict(Vec::new(), 1)),
        Value::Global(Global::OrderedDict) => Err(refuse("OrderedDict called with arguments")),
        Value::Global(Global::RebuildTensorV2) => rebuild_tensor(args).map(Value::Tensor),
        Value::Global(Global::RebuildParameter) => rebuild_parameter(args),
        Value::Global(Global::Storage(_)) => Err(refuse("calling a storage class")),
        other => Err(refuse(format!("REDUCE on a {}", other.kind()))),
    }
}

/// BINPERSID: `('storage', StorageClass, key, location, numel)`.
pub fn storage_from_pid(pid: Value) -> Result<StorageRef> {
    let Value::Tuple(items, _) = pid else {
        return Err(refuse(format!("persistent id that is a {}", pid.kind())));
    };
    match items.as_slice() {
        [
            Value::Str(tag),
            Value::Global(Global::Storage(dtype)),
            Value::Str(key),
            Value::Str(_location),
            Value::Int(numel),
        ] if tag == "storage" => {
            check_key(key)?;
            let numel =
                u64::try_from(*numel).map_err(|_| malformed("pickle", "negative storage size"))?;
            Ok(StorageRef {
                dtype: *dtype,
                key: key.clone(),
                numel,
            })
        }
        _ => Err(refuse(
            "persistent id other than ('storage', StorageClass, key, location, numel)",
        )),
    }
}

/// Storage keys torch writes are decimal numbers; anything with a separator or a dot could
/// name another entry (P6).
fn check_key(key: &str) -> Result<()> {
    let ok = !key.is_empty()
        && key.len() <= 64
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::new(ErrorKind::PathEscape(key.to_owned())))
    }
}

/// `_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])`.
fn rebuild_tensor(args: Vec<Value>) -> Result<TensorRef> {
    let mut it = args.into_iter();
    let (Some(storage), Some(offset), Some(size), Some(stride), Some(_grad), Some(hooks)) = (
        it.next(),
        it.next(),
        it.next(),
        it.next(),
        it.next(),
        it.next(),
    ) else {
        return Err(malformed(
            "pickle",
            "_rebuild_tensor_v2 needs 6 or 7 arguments",
        ));
    };
    if it.nth(1).is_some() {
        return Err(malformed(
            "pickle",
            "_rebuild_tensor_v2 takes at most 7 arguments",
        ));
    }
    let Value::Storage(storage) = storage else {
        return Err(malformed("pickle", "_rebuild_tensor_v2 without a storage"));
    };
    if !matches!(hooks, Value::Dict(ref h, _) if h.is_empty()) {
        return Err(refuse("tensor with backward hooks"));
    }
    let offset = match offset {
        Value::Int(o) => u64::try_from(o).map_err(|_| malformed("pickle", "negative offset"))?,
        _ => return Err(malformed("pickle", "tensor offset is not an int")),
    };
    let shape = ints(size, "size")?
        .into_iter()
        .map(|d| u64::try_from(d).map_err(|_| malformed("pickle", "negative dimension")))
        .collect::<Result<Vec<_>>>()?;
    let stride = ints(stride, "stride")?;
    if shape.len() != stride.len() {
        return Err(malformed("pickle", "size and stride differ in length"));
    }
    Ok(TensorRef {
        storage,
        offset,
        shape,
        stride,
    })
}

fn ints(v: Value, what: &str) -> Result<Vec<i64>> {
    let Value::Tuple(items, _) = v else {
        return Err(malformed("pickle", format!("tensor {what} is not a tuple")));
    };
    items
        .into_iter()
        .map(|i| match i {
            Value::Int(i) => Ok(i),
            _ => Err(malformed(
                "pickle",
                format!("tensor {what} holds a non-int"),
            )),
        })
        .collect()
}

/// `_rebuild_parameter(data, requires_grad, backward_hooks)`: the tensor itself.
fn rebuild_parameter(args: Vec<Value>) -> Result<Value> {
    match <[Value; 3]>::try_from(args) {
        Ok([Value::Tensor(t), _, Value::Dict(h, _)]) if h.is_empty() => Ok(Value::Tensor(t)),
        _ => Err(malformed(
            "pickle",
            "_rebuild_parameter(tensor, requires_grad, {}) expected",
        )),
    }
}
