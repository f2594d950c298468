//! Recognising each logical weight's stored tensors by name and dtype, and checking every
//! companion's shape before anything is decoded.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use wharf_core::{DType, TensorMeta, TensorSource};
use wharf_quantizers::fp8::{Fp8Format, block_grid};
use wharf_quantizers::int4::CtParams;

use super::config::QuantConfig;
use super::{CtFp8Strategy, LogicalTensor, Storage};
use crate::error::{Error, ErrorKind, Result, from_core};

/// Suffixes of tensors that only make sense next to a quantized weight.
const COMPANIONS: [&str; 10] = [
    "_scale_inv",
    ".weight_scale",
    ".weight_zero_point",
    ".weight_shape",
    ".weight_g_idx",
    ".input_scale",
    ".qzeros",
    ".g_idx",
    ".scales",
    ".biases",
];

/// A companion problem: missing, mis-shaped or orphaned.
pub(super) fn bad(name: &str, msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::Malformed {
        what: "quantized weight",
        detail: msg.into(),
    })
    .in_tensor(name)
}

struct Ctx<'a> {
    src: &'a dyn TensorSource,
    metas: BTreeMap<&'a str, &'a TensorMeta>,
    cfg: QuantConfig,
}

impl<'a> Ctx<'a> {
    fn get(&self, name: &str) -> Option<&'a TensorMeta> {
        self.metas.get(name).copied()
    }

    fn need(&self, owner: &str, name: &str) -> Result<&'a TensorMeta> {
        self.get(name)
            .ok_or_else(|| bad(owner, format!("companion `{name}` is missing")))
    }
}

fn dims(m: &TensorMeta) -> Vec<usize> {
    m.shape.dims().iter().map(|&d| d as usize).collect()
}

fn expect_shape(owner: &str, m: &TensorMeta, want: &[usize]) -> Result<()> {
    if dims(m) == want {
        return Ok(());
    }
    Err(bad(
        owner,
        format!("`{}` has shape {:?}, expected {want:?}", m.name, dims(m)),
    ))
}

fn expect_dtype(owner: &str, m: &TensorMeta, ok: &[DType]) -> Result<()> {
    if ok.contains(&m.dtype) {
        return Ok(());
    }
    Err(bad(owner, format!("`{}` is {}", m.name, m.dtype)))
}

const FLOATS: [DType; 3] = [DType::F32, DType::BF16, DType::F16];

/// The logical tensors of `src`, in the order of their main stored tensor.
pub(super) fn detect(src: &dyn TensorSource, config: Option<&Value>) -> Result<Vec<LogicalTensor>> {
    let cfg = QuantConfig::parse(config)?;
    let metas = src.tensors().iter().map(|m| (m.name.as_str(), m)).collect();
    let ctx = Ctx { src, metas, cfg };
    let mut found = Vec::new();
    let mut claimed = BTreeSet::new();
    for m in src.tensors() {
        if let Some((logical, storage)) = recognise(&ctx, m)? {
            for n in super::stored_names(&m.name, &storage) {
                claimed.insert(n.to_owned());
            }
            claim_extras(&ctx, &storage, &mut claimed);
            found.push((
                m.name.clone(),
                LogicalTensor {
                    meta: logical,
                    storage,
                },
            ));
        }
    }
    let quantized = !found.is_empty() || ctx.cfg.declared;
    let mut by_main: BTreeMap<String, LogicalTensor> = found.into_iter().collect();
    let mut out = Vec::new();
    for m in src.tensors() {
        if let Some(t) = by_main.remove(&m.name) {
            out.push(t);
        } else if !claimed.contains(&m.name) {
            if quantized && COMPANIONS.iter().any(|s| m.name.ends_with(s)) {
                return Err(bad(
                    &m.name,
                    "companion tensor without its quantized weight",
                ));
            }
            let meta = m.clone();
            out.push(LogicalTensor {
                meta,
                storage: Storage::Dense,
            });
        }
    }
    Ok(out)
}

/// Stored tensors a storage owns but does not decode (activation scales, shapes, `g_idx`).
fn claim_extras(ctx: &Ctx<'_>, storage: &Storage, claimed: &mut BTreeSet<String>) {
    let base = match storage {
        Storage::CtFp8 { weight, .. } => weight.strip_suffix(".weight"),
        Storage::CtPacked { packed, .. } => packed.strip_suffix(".weight_packed"),
        _ => None,
    };
    if let Some(base) = base {
        for s in [".input_scale", ".weight_shape"] {
            let n = format!("{base}{s}");
            if ctx.get(&n).is_some() {
                claimed.insert(n);
            }
        }
    }
}

/// The logical meta and storage if `m` is the main tensor of a quantized weight.
fn recognise(ctx: &Ctx<'_>, m: &TensorMeta) -> Result<Option<(TensorMeta, Storage)>> {
    if let Some(format) = Fp8Format::from_dtype(m.dtype) {
        return fp8(ctx, m, format).map(Some);
    }
    if let Some(base) = m.name.strip_suffix(".weight_packed") {
        return ct_packed(ctx, m, base).map(Some);
    }
    if let Some(base) = m.name.strip_suffix(".qweight") {
        return gptq(ctx, m, base).map(Some);
    }
    if let Some(base) = m.name.strip_suffix(".weight")
        && m.dtype == DType::U32
        && ctx.get(&format!("{base}.scales")).is_some()
    {
        return mlx(ctx, m, base).map(Some);
    }
    Ok(None)
}

fn logical(name: String, shape: Vec<usize>) -> TensorMeta {
    TensorMeta::new(
        name,
        DType::F32,
        shape.into_iter().map(|d| d as u64).collect::<Vec<_>>(),
    )
}

fn matrix(m: &TensorMeta) -> Result<(usize, usize)> {
    match dims(m)[..] {
        [r, c] => Ok((r, c)),
        _ => Err(bad(
            &m.name,
            format!("expected a matrix, got {:?}", dims(m)),
        )),
    }
}

/// DeepSeek (`_scale_inv`) or compressed-tensors (`weight_scale`) FP8.
fn fp8(ctx: &Ctx<'_>, m: &TensorMeta, format: Fp8Format) -> Result<(TensorMeta, Storage)> {
    let (rows, cols) = matrix(m)?;
    let inv = format!("{}_scale_inv", m.name);
    if let Some(s) = ctx.get(&inv) {
        let block = ctx.cfg.block.unwrap_or((128, 128));
        expect_dtype(&m.name, s, &FLOATS)?;
        let (gr, gc) = block_grid(rows, cols, block);
        expect_shape(&m.name, s, &[gr, gc])?;
        let storage = Storage::DeepseekFp8 {
            weight: m.name.clone(),
            scale_inv: inv,
            block,
            format,
        };
        return Ok((logical(m.name.clone(), vec![rows, cols]), storage));
    }
    let scale = format!("{}_scale", m.name);
    let s = ctx
        .get(&scale)
        .ok_or_else(|| bad(&m.name, format!("FP8 weight without `{inv}` or `{scale}`")))?;
    expect_dtype(&m.name, s, &FLOATS)?;
    let strategy = ct_strategy(ctx, m, s, rows, cols)?;
    let storage = Storage::CtFp8 {
        weight: m.name.clone(),
        scale,
        strategy,
        format,
    };
    Ok((logical(m.name.clone(), vec![rows, cols]), storage))
}

/// Per tensor (`[1]`/`[]`), per channel (`[rows, 1]`) or block (config `block_structure`).
fn ct_strategy(
    ctx: &Ctx<'_>,
    m: &TensorMeta,
    s: &TensorMeta,
    rows: usize,
    cols: usize,
) -> Result<CtFp8Strategy> {
    let sd = dims(s);
    if let Some(block) = ctx.cfg.block {
        let (gr, gc) = block_grid(rows, cols, block);
        expect_shape(&m.name, s, &[gr, gc])?;
        return Ok(CtFp8Strategy::Block(block.0, block.1));
    }
    match sd[..] {
        [] | [1] => Ok(CtFp8Strategy::Tensor),
        [r, 1] if r == rows => Ok(CtFp8Strategy::Channel),
        _ => Err(bad(
            &m.name,
            format!(
                "`{}` shape {sd:?} is neither per tensor nor per channel",
                s.name
            ),
        )),
    }
}

/// compressed-tensors `pack-quantized`.
fn ct_packed(ctx: &Ctx<'_>, m: &TensorMeta, base: &str) -> Result<(TensorMeta, Storage)> {
    let name = format!("{base}.weight");
    let bits = ctx.cfg.int_bits.unwrap_or(4);
    let [rows, cols] = weight_shape(ctx, &m.name, &format!("{base}.weight_shape"))?;
    let pf = (32 / bits) as usize;
    expect_dtype(&m.name, m, &[DType::I32])?;
    expect_shape(&m.name, m, &[rows, cols.div_ceil(pf)])?;
    let scale = format!("{base}.weight_scale");
    let s = ctx.need(&m.name, &scale)?;
    expect_dtype(&m.name, s, &FLOATS)?;
    let groups = match dims(s)[..] {
        [r, g] if r == rows && g > 0 && cols.is_multiple_of(g) => g,
        _ => return Err(bad(&m.name, format!("`{scale}` shape {:?}", dims(s)))),
    };
    let zp = format!("{base}.weight_zero_point");
    let zero_point = match ctx.get(&zp) {
        Some(z) => {
            expect_dtype(&m.name, z, &[DType::I32])?;
            expect_shape(&m.name, z, &[rows.div_ceil(pf), groups])?;
            Some(zp)
        }
        None => None,
    };
    if ctx.get(&format!("{base}.weight_g_idx")).is_some() {
        return Err(bad(
            &m.name,
            "activation-ordered `weight_g_idx` is not read yet",
        ));
    }
    let params = CtParams {
        bits,
        group: cols / groups,
        symmetric: zero_point.is_none(),
        compute: s.dtype,
    };
    let storage = Storage::CtPacked {
        packed: m.name.clone(),
        scale,
        zero_point,
        params,
    };
    Ok((logical(name, vec![rows, cols]), storage))
}

/// The `[rows, cols]` a `weight_shape` tensor holds.
fn weight_shape(ctx: &Ctx<'_>, owner: &str, name: &str) -> Result<[usize; 2]> {
    let m = ctx.need(owner, name)?;
    expect_dtype(owner, m, &[DType::I32, DType::I64])?;
    expect_shape(owner, m, &[2])?;
    let bytes = ctx.src.bytes(name).map_err(from_core)?;
    let mut v = [0f32; 2];
    wharf_core::cast::decode_f32(m.dtype, &bytes, &mut v)
        .map_err(|e| bad(owner, format!("`{name}`: {e}")))?;
    if v.iter().any(|x| !(0.0..16_777_216.0).contains(x)) {
        return Err(bad(owner, format!("`{name}` holds {v:?}")));
    }
    Ok([v[0] as usize, v[1] as usize])
}

/// GPTQ: `qweight [K/pf, N]`, `qzeros [G, N/pf]`, `scales [G, N]`, `g_idx [K]`.
fn gptq(ctx: &Ctx<'_>, m: &TensorMeta, base: &str) -> Result<(TensorMeta, Storage)> {
    let Some((group, format)) = ctx.cfg.gptq else {
        return Err(bad(&m.name, "`qweight` without a GPTQ quantization_config"));
    };
    let bits = ctx.cfg.int_bits.unwrap_or(4);
    let pf = (32 / bits) as usize;
    expect_dtype(&m.name, m, &[DType::I32])?;
    let (kp, n) = matrix(m)?;
    let k = kp * pf;
    let (qzeros, scales) = (format!("{base}.qzeros"), format!("{base}.scales"));
    let s = ctx.need(&m.name, &scales)?;
    expect_dtype(&m.name, s, &FLOATS)?;
    let groups = match dims(s)[..] {
        [g, nn] if nn == n && g > 0 => g,
        _ => return Err(bad(&m.name, format!("`{scales}` shape {:?}", dims(s)))),
    };
    let z = ctx.need(&m.name, &qzeros)?;
    expect_dtype(&m.name, z, &[DType::I32])?;
    expect_shape(&m.name, z, &[groups, n / pf])?;
    let gi = format!("{base}.g_idx");
    let g_idx = match ctx.get(&gi) {
        Some(g) => {
            expect_dtype(&m.name, g, &[DType::I32])?;
            expect_shape(&m.name, g, &[k])?;
            Some(gi)
        }
        None => {
            let want = group.map_or(1, |g| k.div_ceil(g));
            if want != groups {
                return Err(bad(
                    &m.name,
                    format!("{groups} scale groups, expected {want}"),
                ));
            }
            None
        }
    };
    let storage = Storage::Gptq {
        qweight: m.name.clone(),
        qzeros,
        scales,
        g_idx,
        bits,
        group,
        format,
    };
    Ok((logical(format!("{base}.weight"), vec![n, k]), storage))
}

/// MLX affine: `weight u32 [..., out, in*bits/32]`, `scales`/`biases [..., out, in/group]`.
fn mlx(ctx: &Ctx<'_>, m: &TensorMeta, base: &str) -> Result<(TensorMeta, Storage)> {
    let params = match ctx.cfg.mlx_params(base) {
        Some(Some(p)) => p,
        Some(None) => return Err(bad(&m.name, "packed, but config marks it unquantized")),
        None => {
            return Err(bad(
                &m.name,
                "MLX-packed weight without a `quantization` config",
            ));
        }
    };
    let (scales, biases) = (format!("{base}.scales"), format!("{base}.biases"));
    let s = ctx.need(&m.name, &scales)?;
    let b = ctx.get(&biases).ok_or_else(|| {
        bad(
            &m.name,
            format!("`{biases}` missing (only affine mode is read)"),
        )
    })?;
    let mut shape = dims(m);
    let Some(words) = shape.pop().filter(|_| !shape.is_empty()) else {
        return Err(bad(&m.name, "MLX weight must have at least 2 dimensions"));
    };
    let cols = words * 32 / params.bits() as usize;
    if words * 32 % params.bits() as usize != 0 || !cols.is_multiple_of(params.group()) {
        return Err(bad(
            &m.name,
            format!("{words} words do not hold whole groups"),
        ));
    }
    let mut sshape = shape.clone();
    sshape.push(cols / params.group());
    for c in [s, b] {
        expect_dtype(&m.name, c, &FLOATS)?;
        expect_shape(&m.name, c, &sshape)?;
    }
    if s.dtype != b.dtype {
        return Err(bad(&m.name, "scales and biases differ in dtype"));
    }
    shape.push(cols);
    let storage = Storage::Mlx {
        weight: m.name.clone(),
        scales,
        biases,
        params,
    };
    Ok((logical(m.name.clone(), shape), storage))
}
