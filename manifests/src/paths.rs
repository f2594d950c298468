//! Which names may appear in a bundle: relative, `/`-separated, normalised, portable.
//!
//! A manifest or zip comes from whoever handed over the bundle, so every name is checked
//! before it is joined to a folder (RELIABILITY.md Z1 and F9).

use crate::error::{Error, Result};

/// Longest accepted name, in bytes.
pub const MAX_NAME: usize = 1024;

/// Accepts `name` when it is a plain relative path inside the bundle.
pub fn check(name: &str) -> Result<()> {
    let bad = |why| {
        Err(Error::UnsafePath {
            name: name.to_owned(),
            why,
        })
    };
    if name.is_empty() {
        return bad("empty name");
    }
    if name.len() > MAX_NAME {
        return bad("name too long");
    }
    if name.chars().any(char::is_control) {
        return bad("control character in name");
    }
    if name.contains('\\') {
        return bad("backslash in name");
    }
    if name.contains(':') {
        return bad("colon in name (drive letter or stream)");
    }
    if name.starts_with('/') {
        return bad("absolute path");
    }
    for part in name.split('/') {
        match part {
            "" => return bad("empty path component"),
            "." => return bad("`.` component"),
            ".." => return bad("`..` component"),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn accepts_plain_relative_names() {
        for ok in ["model.gguf", "a/b.safetensors", "tokenizer.json", "x..y"] {
            check(ok).unwrap();
        }
    }

    #[test]
    fn refuses_escapes() {
        for bad in [
            "",
            "../x",
            "a/../../x",
            "/etc/passwd",
            "C:\\x",
            "a\\..\\x",
            "a//b",
            "./a",
            "a/",
            "a\0b",
            "c:x",
        ] {
            assert!(check(bad).is_err(), "{bad:?} accepted");
        }
    }
}
