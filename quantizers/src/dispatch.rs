//! Runtime CPU dispatch for the hot loops: the same `#[inline(always)]` body compiled for AVX2
//! when the CPU has it, and for the baseline target otherwise (the pattern of
//! `reference/src/qdot`). Only AVX2 is enabled — never FMA — and the bodies are plain lane
//! loops with no reassociation, so both builds give the same bits; each user tests its
//! dispatched entry point against the baseline build of its body.

/// Defines `$vis fn $name(args) -> ret` running `$body` compiled for AVX2 when the CPU has it
/// and for the baseline target otherwise. `$body` must be `#[inline(always)]`.
macro_rules! dispatch {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($a:ident: $t:ty),*) -> $r:ty = $body:path;) => {
        $(#[$m])*
        $vis fn $name($($a: $t),*) -> $r {
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                #[target_feature(enable = "avx2")]
                fn avx2($($a: $t),*) -> $r {
                    $body($($a),*)
                }
                // SAFETY: the CPU supports AVX2, checked on the line above; `avx2` is safe
                // code otherwise.
                #[allow(unsafe_code)]
                return unsafe { avx2($($a),*) };
            }
            $body($($a),*)
        }
    };
}
pub(crate) use dispatch;
