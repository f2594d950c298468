//! `wharf quantize SRC -o OUT --scheme fp8-block|ct-fp8-block|fp8-channel|fp8|int4|int4-asym|mlx4|mlx8|mlx<B>g<G>`:
//! an HF folder (shards + index, config with the scheme's quantization block, tokenizer copied)
//! from any source wharf reads; quantized sources are dequantized first.

use std::path::Path;

use anyhow::{Result, bail};
use wharf_converters::AnySource;
use wharf_converters::atomic::{AtomicDir, ensure_not_input};
use wharf_targets::folder;

pub fn run(src_path: &Path, config: Option<&Path>, output: &Path, scheme: &str) -> Result<()> {
    let Some(parsed) = folder::parse_scheme(scheme) else {
        bail!(
            "unknown scheme `{scheme}` (gguf:<TYPE>, fp8, fp8-channel, fp8-block, ct-fp8-block, int4, int4-asym, mlx4, mlx8, mlx<B>g<G>)"
        );
    };
    let src = AnySource::open_with_config(src_path, config)?;
    crate::warn_source(&src);
    ensure_not_input(output, &src.paths())?;
    let job = folder::plan(&src, parsed?)?;
    let out = AtomicDir::create(output)?;
    let dir = out.path().to_path_buf();
    let mut bar = crate::progress::Bar::new("quantizing");
    job.write(
        &dir,
        None,
        &mut |name, bytes| folder::write_file(&dir.join(name), bytes),
        &mut |s| bar.step(s),
    )?;
    drop(bar);
    out.commit()?;
    println!(
        "wrote {} ({} tensors, {scheme})",
        output.display(),
        job.metas().len()
    );
    Ok(())
}
