//! Runtime CPU dispatch for hot loops, shared by the quantizers and the reference pass.

/// Defines `$vis fn $name(args) -> ret` running `$body` compiled for AVX2 when the CPU has it
/// and for the baseline target otherwise. `$body` must be `#[inline(always)]` so that each build
/// gets its own copy.
///
/// Only AVX2 is enabled, never FMA, so a body of plain lane loops with no reassociation gives the
/// same bits in both builds; each user tests its dispatched entry point against the baseline
/// build of its body.
#[macro_export]
macro_rules! avx2_dispatch {
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
