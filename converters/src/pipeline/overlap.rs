//! Making and writing overlap: a scoped thread makes tensor i+1 (its kernels on rayon) while
//! the caller's thread writes tensor i into the sink, a third asks the source to read ahead of
//! the maker (`ahead.rs`), and a fourth reads the BF16 tensors the maker decodes directly into
//! reused buffers (`read.rs`), so reading, computing and writing no longer wait for one
//! another.
//!
//! The hand-off is a channel with room for one message, so the maker's `Done` for tensor i
//! does not wait for the writer to finish writing i (a rendezvous would, and the two would
//! take turns instead of overlapping). At most two output tensors are in flight (one being
//! written, one being made) plus one piece waiting in the channel, and the source values of the
//! one being made. Bytes reach the sink in plan order, so the output is the same as writing
//! one tensor after another.
//! An error on either side stops both, names its tensor, and leaves the sink unfinished.

use std::borrow::Cow;
use std::ops::{Range, RangeInclusive};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};

use wharf_core::{Access, TensorSink, TensorSource};

use super::ahead::{self, ReadAhead};
use super::make::{Maker, is_raw};
use super::{CHUNK, Encoder, Planned, read};
use crate::error::{Error, ErrorKind, Result, from_core};

/// Written buffers kept for the maker to reuse, at most.
const SPARE_BUFFERS: usize = 4;

/// Largest buffer kept for reuse: a row block's bytes (8 Mi values as f32) with room to spare.
const SPARE_CAPACITY: usize = 40 << 20;

/// What the maker hands the writer, in plan order.
enum Msg<'s> {
    /// The next bytes of the current tensor.
    Bytes(Cow<'s, [u8]>),
    /// The current tensor is complete.
    Done,
    /// Making the current tensor failed (the error names it).
    Failed(Error),
}

/// Writes every planned tensor into `sink`, making the next while the current one is written;
/// source tensors of `direct` bytes are read directly where they can be (`read::SIZES`), and
/// tensors made in row blocks of about `block_values` values (`make::SLICE_VALUES`).
pub(super) fn run(
    src: &dyn TensorSource,
    plan: &[Planned],
    sink: &mut dyn TensorSink,
    progress: &mut dyn FnMut(usize),
    encoder: Option<&dyn Encoder>,
    direct: RangeInclusive<u64>,
    block_values: usize,
) -> Result<()> {
    let (tx, rx) = mpsc::sync_channel(1);
    let (spare_tx, spare_rx) = mpsc::sync_channel(SPARE_BUFFERS);
    let (ahead_tx, ahead_rx) = mpsc::channel();
    let (read_tx, read_rx) = mpsc::channel();
    let raw: Vec<bool> = plan.iter().map(|p| is_raw(src, encoder, p)).collect();
    let ranges = read::schedule(src, plan, &raw, direct);
    let read: Vec<bool> = ranges.iter().map(Option::is_some).collect();
    std::thread::scope(|s| {
        s.spawn(move || read::run(ranges.into_iter().flatten().collect(), read_tx));
        let read = &read;
        s.spawn(move || ahead::run(src, plan, read, ahead_rx));
        let maker = Maker::new(src, encoder, spare_rx, read_rx, block_values);
        let ahead = ReadAhead::new(src, plan);
        // `ahead_tx` is dropped when the maker returns, which ends the read-ahead thread; the
        // maker's end drops `read_rx`, which stops a reader blocked on a hand-over.
        s.spawn(move || make_all(maker, plan, read, &tx, ahead, &ahead_tx));
        // `rx` is dropped when the writer returns, which stops a maker blocked on a send.
        write_all(src, plan, sink, progress, rx, &spare_tx)
    })
}

/// The maker's loop: makes each tensor, and stops at the first error (sent on) or once the
/// writer is gone.
fn make_all<'s>(
    mut maker: Maker<'s, '_>,
    plan: &[Planned],
    read: &[bool],
    tx: &SyncSender<Msg<'s>>,
    mut ahead: ReadAhead,
    read_ahead: &Sender<Range<usize>>,
) {
    for (i, p) in plan.iter().enumerate() {
        let due = ahead.due(i);
        if !due.is_empty() {
            let _ = read_ahead.send(due);
        }
        let mut emit = |b| {
            tx.send(Msg::Bytes(b))
                .map_err(|_| Error::new(ErrorKind::Output("the writer stopped".into())))
        };
        let direct = read.get(i).copied().unwrap_or(false);
        let msg = match maker.make(p, direct, &mut emit) {
            Ok(()) => Msg::Done,
            Err(e) => Msg::Failed(e.in_tensor(&p.meta.name)),
        };
        let failed = matches!(msg, Msg::Failed(_));
        if tx.send(msg).is_err() || failed {
            return;
        }
    }
}

/// The writer's loop, on the caller's thread: writes each tensor's pieces in order, gives
/// owned buffers back, releases sources no later tensor reads next, reports progress.
fn write_all<'s>(
    src: &'s dyn TensorSource,
    plan: &[Planned],
    sink: &mut dyn TensorSink,
    progress: &mut dyn FnMut(usize),
    rx: Receiver<Msg<'s>>,
    spare: &SyncSender<Vec<u8>>,
) -> Result<()> {
    for (i, p) in plan.iter().enumerate() {
        let name = p.meta.name.as_str();
        loop {
            match rx.recv() {
                Ok(Msg::Bytes(bytes)) => {
                    for chunk in bytes.chunks(CHUNK) {
                        let w = sink.write(name, chunk);
                        w.map_err(|e| from_core(e).in_tensor(name))?;
                    }
                    if let Cow::Owned(buf) = bytes {
                        // Kept for reuse only while few and block-sized: a buffer that once held
                        // a whole tensor's scales would otherwise stay that large.
                        if buf.capacity() <= SPARE_CAPACITY {
                            let _ = spare.try_send(buf);
                        }
                    }
                }
                Ok(Msg::Done) => break,
                Ok(Msg::Failed(e)) => return Err(e),
                Err(_) => {
                    let e = Error::new(ErrorKind::Output("the tensor maker stopped".into()));
                    return Err(e.in_tensor(name));
                }
            }
        }
        if plan.get(i + 1).is_none_or(|n| n.from != p.from) {
            p.from.iter().for_each(|n| src.advise(n, Access::Done));
        }
        progress(i);
    }
    Ok(())
}
