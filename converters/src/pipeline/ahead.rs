//! Read-ahead: a thread asks the source to start reading ([`Access::Soon`]) the tensors the
//! maker needs next, up to [`READ_AHEAD`] source bytes past the end of the one being made, so
//! the disk reads while the CPUs compute and the maker's page faults find their pages cached.
//!
//! Tensors the direct reader reads (`read.rs`) are not asked for.
//!
//! Asking allocates the page-cache pages on the asking thread, which is why it has a thread of
//! its own rather than delaying the maker. Staying a bounded distance ahead keeps a model larger
//! than the page cache from evicting what was read ahead before it is used.

use std::ops::Range;
use std::sync::mpsc::Receiver;

use wharf_core::{Access, TensorSource};

use super::Planned;

/// Source bytes asked for past the end of the tensor being made.
pub(super) const READ_AHEAD: u64 = 64 << 20;

/// The read-ahead's position in the plan, kept by the maker: which entries have been asked
/// for. Asking is batched (at least half of [`READ_AHEAD`] at a time, unless the plan ends) so
/// the read-ahead thread wakes a few times per 64 MiB, not once per tensor.
pub(super) struct ReadAhead {
    /// Source bytes read by `plan[..=k]`, at `k`; an entry that reuses the sources of the entry
    /// before it (an MLX weight's scales and biases) adds nothing.
    ends: Vec<u64>,
    /// The first entry not yet asked for.
    next: usize,
}

impl ReadAhead {
    /// Nothing asked for yet.
    pub fn new(src: &dyn TensorSource, plan: &[Planned]) -> Self {
        let mut total = 0u64;
        let ends = plan
            .iter()
            .enumerate()
            .map(|(k, p)| {
                if !reuses_previous(plan, k) {
                    let metas = p.from.iter().filter_map(|n| src.meta(n));
                    total += metas.filter_map(|m| m.nbytes().ok()).sum::<u64>();
                }
                total
            })
            .collect();
        ReadAhead { ends, next: 0 }
    }

    /// The entries to ask for as the maker starts `plan[i]`: none while what was asked for
    /// reaches at least half of [`READ_AHEAD`] past the end of `plan[i]`'s sources; otherwise
    /// every entry not yet asked for that starts less than [`READ_AHEAD`] past it (`plan[i]`
    /// itself included).
    pub fn due(&mut self, i: usize) -> Range<usize> {
        let first = self.next;
        let Some(&end) = self.ends.get(i) else {
            return first..first;
        };
        if self.start(self.next) >= end.saturating_add(READ_AHEAD / 2) {
            return first..first;
        }
        let limit = end.saturating_add(READ_AHEAD);
        while self.next < self.ends.len() && self.start(self.next) < limit {
            self.next += 1;
        }
        first..self.next
    }

    /// Source bytes read before `plan[k]`.
    fn start(&self, k: usize) -> u64 {
        k.checked_sub(1)
            .and_then(|b| self.ends.get(b))
            .copied()
            .unwrap_or(0)
    }
}

/// Whether `plan[k]` is made from the same sources as the entry before it.
fn reuses_previous(plan: &[Planned], k: usize) -> bool {
    k > 0 && plan[k - 1].from == plan[k].from
}

/// The read-ahead thread's loop: asks for the sources of each range of entries it is sent, in
/// order, until the maker is done.
pub(super) fn run(
    src: &dyn TensorSource,
    plan: &[Planned],
    read: &[bool],
    due: Receiver<Range<usize>>,
) {
    for k in due.iter().flatten() {
        if !reuses_previous(plan, k) && !read.get(k).copied().unwrap_or(false) {
            plan[k]
                .from
                .iter()
                .for_each(|n| src.advise(n, Access::Soon));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use wharf_core::{DType, TensorMeta};

    /// Entries with BF16 sources of `mib` MiB each (`None`: reuses the previous sources).
    fn plan(mib: &[Option<u64>]) -> (Vec<TensorMeta>, Vec<Planned>) {
        let mut metas = Vec::new();
        let mut plan: Vec<Planned> = Vec::new();
        for (k, size) in mib.iter().enumerate() {
            let from = match size {
                Some(m) => {
                    let name = format!("src{k}");
                    metas.push(TensorMeta::new(&name, DType::BF16, vec![m << 19]));
                    name
                }
                None => plan.last().map(|p| p.from[0].clone()).unwrap_or_default(),
            };
            let out = TensorMeta::new(format!("out{k}"), DType::BF16, vec![1]);
            plan.push(Planned::simple(out, from));
        }
        (metas, plan)
    }

    /// Metadata only; records the tensors asked for.
    struct Metas(Vec<TensorMeta>, Mutex<Vec<String>>);

    impl TensorSource for Metas {
        fn tensors(&self) -> &[TensorMeta] {
            &self.0
        }
        fn bytes(&self, _: &str) -> wharf_core::Result<std::borrow::Cow<'_, [u8]>> {
            Ok(std::borrow::Cow::Borrowed(&[]))
        }
        fn advise(&self, name: &str, access: Access) {
            assert_eq!(access, Access::Soon);
            self.1.lock().unwrap().push(name.to_owned());
        }
    }

    #[test]
    fn asks_a_bounded_distance_ahead_in_batches() {
        // 200 MiB, then 8 MiB entries, each followed by one that reuses its sources.
        let mut sizes = vec![Some(200), None];
        for _ in 0..20 {
            sizes.extend([Some(8), None]);
        }
        let (metas, plan) = plan(&sizes);
        let mut ahead = ReadAhead::new(&Metas(metas, Mutex::default()), &plan);
        // The 200 MiB entry and the 8 MiB ones starting below 264 MiB: at 200, 208, ..., 256.
        assert_eq!(ahead.due(0), 0..17);
        // Asked up to 264 MiB: while that is at least 32 MiB past the entry being made, no more.
        for i in 1..10 {
            assert_eq!(ahead.due(i), 17..17, "entry {i}");
        }
        // Entry 10 ends at 240 MiB, 24 MiB short of what was asked: up to 304 MiB.
        assert_eq!(ahead.due(10), 17..27);
        // The last entry: everything left, once.
        assert_eq!(ahead.due(41), 27..42);
        assert_eq!(ahead.due(41), 42..42);
        assert_eq!(ahead.due(99), 42..42);
    }

    #[test]
    fn the_thread_asks_for_every_source_once_in_plan_order() {
        let (metas, plan) = plan(&[Some(100), None, Some(1), Some(30), None, Some(90)]);
        let src = Metas(metas, Mutex::default());
        let mut ahead = ReadAhead::new(&src, &plan);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            s.spawn(|| run(&src, &plan, &[], rx));
            (0..plan.len()).for_each(|i| tx.send(ahead.due(i)).unwrap());
            drop(tx);
        });
        let asked = src.1.into_inner().unwrap();
        assert_eq!(asked, ["src0", "src2", "src3", "src5"]);
    }
}
