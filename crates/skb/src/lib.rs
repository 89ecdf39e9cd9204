//! Socket buffers from one producer to one consumer, alias-free by type.
//!
//! The target's e1000 driver copies each received frame, in its interrupt
//! handler, into a socket buffer; the node's main loop hands socket buffers
//! to the stack and frees them. [`pool`] makes a fixed set of buffers and
//! returns the only two handles to them:
//!
//! - [`Producer`] (the interrupt handler): [`Producer::buffer`] lends the
//!   free buffer released last (still in cache; [`pool_with`] and
//!   [`Reuse::OldestReleased`]: the oldest, the buffers cycling in order),
//!   [`Producer::commit`] publishes it with a length;
//! - [`Consumer`] (the stack): [`Consumer::front`] lends the oldest
//!   published buffer as an [`Skb`], [`Skb::release`] frees it.
//!
//! Neither handle is `Clone`, and every loan borrows its handle mutably, so
//! at most one producer loan and one consumer loan exist at any time. The
//! producer only ever lends a buffer on its own free list (never a
//! published one), the consumer only the published one at `head`, and
//! each index moves only by its own handle: two `&mut` to one buffer
//! cannot be made, which the borrow checker (not a comment) enforces:
//!
//! ```
//! let (mut producer, mut consumer) = mint_skb::pool(4, 64);
//! producer.buffer().expect("a free buffer")[..3].copy_from_slice(b"abc");
//! assert!(producer.commit(3));
//! let skb = consumer.front().expect("published");
//! assert_eq!(skb.frame(), b"abc");
//! skb.release();
//! assert!(consumer.front().is_none());
//! ```
//!
//! The consumer keeps its own reading of the producer's index, so it is
//! not `Sync` (it moves to a thread whole, as `Send`):
//!
//! ```compile_fail
//! fn shared_between_threads<T: Sync>(_: &T) {}
//! let (_producer, consumer) = mint_skb::pool(4, 64);
//! shared_between_threads(&consumer);
//! ```
//!
//! ```compile_fail
//! let (_producer, mut consumer) = mint_skb::pool(4, 64);
//! let first = consumer.front();
//! let second = consumer.front(); // error: `consumer` is already borrowed
//! drop((first, second));
//! ```
//!
//! The handles may live on different cores or threads (Acquire/Release on
//! the indices order the bytes); in mint both live on the target's single
//! core, the producer in interrupt context.
//!
//! The `unsafe` (turning a buffer's `UnsafeCell`s into a loan, and `Sync`
//! for the shared state) is confined to two `unsafe fn` accessors, their
//! four callers, and one impl below.

#![no_std]
#![deny(unsafe_code)]

extern crate alloc;
#[cfg(test)]
extern crate std;

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use core::cell::{Cell, UnsafeCell};
use core::marker::PhantomData;
use core::sync::atomic::{AtomicUsize, Ordering};

/// An index on a cache line (pair) of its own: the producer's and the
/// consumer's are written on different cores, and sharing a line would
/// move it between them on every frame for nothing.
#[repr(align(128))]
struct Line(AtomicUsize);

impl core::ops::Deref for Line {
    type Target = AtomicUsize;
    fn deref(&self) -> &AtomicUsize {
        &self.0
    }
}

/// What both handles share.
///
/// Buffers and ring places are apart: the published ring carries buffer
/// numbers, and a released buffer goes back to the producer through a
/// second ring, onto the producer's own list of free buffers. The
/// producer lends the front of that list, by default the buffer released last: its
/// lines are still in this core's cache, so the driver's copy into it
/// writes cached lines instead of taking each one from memory (a pool of
/// 512 x 16 KiB cycled in order is 8 MiB, several times a core's L2).
struct Shared {
    /// The buffers, back to back from the first page boundary of each of
    /// a few slabs (about 1 MiB each: a kernel heap need not find the
    /// whole pool in one piece): a buffer of a page-multiple size starts
    /// on a page. The stack copies payloads out of them with the
    /// platform's memcpy, whose `rep movsb` runs 10-20 times slower on
    /// some CPUs (AMD Zen 3) when the destination is 1-63 bytes past the
    /// source modulo 4 KiB; buffers wherever the allocator put them would
    /// hit that by chance.
    slabs: Box<[Slab]>,
    /// Buffers per slab (the last may hold fewer).
    per_slab: usize,
    /// Buffers, and each one's size.
    count: usize,
    size: usize,
    /// Published ring: the buffer in each place, and its frame's length.
    ring_buffer: Box<[AtomicUsize]>,
    ring_len: Box<[AtomicUsize]>,
    /// The oldest published place (moved by the consumer only).
    head: Line,
    /// The next place to publish (moved by the producer only).
    tail: Line,
    /// Released buffers, oldest first, for the producer to take back.
    returned: Box<[AtomicUsize]>,
    /// The next place of `returned` to fill (moved by the consumer only;
    /// the producer keeps where it took up to).
    returned_tail: Line,
}

// SAFETY: every buffer number is in exactly one of three places at any
// time: the producer's free list, the published ring between `head` and
// `tail`, or the returned ring between the producer's `taken` and
// `returned_tail`. The numbers move free list -> published (the
// producer's `commit`, Release on `tail`) -> returned (the consumer's
// `release`, Release on `returned_tail`) -> free list (the producer, after
// an Acquire of `returned_tail`), and nothing else makes or copies one. A
// buffer's bytes are reached only through a `Producer` loan (the front of
// its own free list) or a `Consumer` loan (the
// buffer at `head`, published: before a value of `tail` the consumer
// itself read with Acquire, kept in its `seen_tail`, which is why the
// `Consumer` is not `Sync`), so the two loans never cover the same
// buffer, and the Release/Acquire pairs order each side's accesses after
// the other's. There is exactly one of each handle (`pool` makes them,
// neither is Clone) and each loan borrows its handle mutably.
#[allow(unsafe_code)]
unsafe impl Sync for Shared {}

impl Shared {
    fn count(&self) -> usize {
        self.count
    }

    /// Buffer `index`'s cells.
    fn cells(&self, index: usize) -> &[UnsafeCell<u8>] {
        let slab = &self.slabs[index / self.per_slab];
        &slab.cells[slab.start + (index % self.per_slab) * self.size..][..self.size]
    }

    /// The bytes of buffer `index`, writable.
    ///
    /// # Safety
    /// The caller is the one handle that may reach buffer `index` now (the
    /// protocol in the `Sync` comment above: the producer for the front of
    /// its free list, the consumer for the buffer at `head` while it is
    /// published) and keeps that handle borrowed mutably for as long as the
    /// loan lives, so no other reference to these bytes can exist.
    #[allow(clippy::mut_from_ref, unsafe_code)]
    unsafe fn buffer_mut(&self, index: usize) -> &mut [u8] {
        let cells = self.cells(index);
        // SAFETY: the caller's contract: this is the only reference to
        // these bytes; the pointer comes from a shared borrow of their
        // cells (which allows writing through it) and covers them exactly.
        unsafe { core::slice::from_raw_parts_mut(UnsafeCell::raw_get(cells.as_ptr()), cells.len()) }
    }

    /// The bytes of buffer `index`, read-only.
    ///
    /// # Safety
    /// The caller is the consumer (or its loan of this buffer), buffer
    /// `index` is at `head` and published, and the caller stays borrowed
    /// (shared) while the returned slice lives, which keeps its mutable
    /// loans away.
    #[allow(unsafe_code)]
    unsafe fn buffer_ref(&self, index: usize) -> &[u8] {
        let cells = self.cells(index);
        // SAFETY: the caller's contract: no mutable reference exists; the
        // pointer covers exactly these cells.
        unsafe { core::slice::from_raw_parts(UnsafeCell::raw_get(cells.as_ptr()), cells.len()) }
    }

    /// The buffer and frame length at the consumer's `head`, if published.
    /// `seen_tail` is the consumer's last reading of `tail`: read again
    /// (Acquire) only when `head` has caught up with it, so the line the
    /// producer writes on every frame is not taken on every frame.
    fn front(&self, seen_tail: &Cell<usize>) -> Option<(usize, usize)> {
        let head = self.head.load(Ordering::Relaxed);
        if head == seen_tail.get() {
            let tail = self.tail.load(Ordering::Acquire);
            seen_tail.set(tail);
            if head == tail {
                return None;
            }
        }
        let place = head % self.count();
        Some((
            self.ring_buffer[place].load(Ordering::Relaxed),
            self.ring_len[place].load(Ordering::Relaxed),
        ))
    }
}

/// Writes one byte of every page of `b`: a host allocator hands out zeroed
/// memory as pages mapped on first touch, which would put a page fault
/// into the driver's first copy into each buffer (a kernel heap's memory
/// is mapped already; there this costs one store per page, once). The
/// value goes through `black_box`, so the store of a zero into memory the
/// allocator zeroed is not optimised away.
fn prefault(b: &mut [UnsafeCell<u8>]) {
    for page in b.chunks_mut(PAGE) {
        *page[0].get_mut() = core::hint::black_box(0);
    }
}

const PAGE: usize = 4096;
/// About how much one slab of buffers holds.
const SLAB_BYTES: usize = 1 << 20;

/// One allocation holding buffers from its first page boundary on.
struct Slab {
    cells: Box<[UnsafeCell<u8>]>,
    start: usize,
}

impl Slab {
    /// Room for `bytes` from a page boundary, every page touched.
    fn new(bytes: usize) -> Slab {
        let total = bytes
            .checked_add(PAGE - 1)
            .expect("a socket buffer slab larger than the address space");
        let mut cells: Box<[UnsafeCell<u8>]> = (0..total).map(|_| UnsafeCell::new(0)).collect();
        let start = cells.as_ptr().align_offset(PAGE).min(PAGE - 1);
        prefault(&mut cells[start..]);
        Slab { cells, start }
    }
}

/// Which free buffer the producer lends next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reuse {
    /// The one released last, still in cache (the driver's pool).
    LastReleased,
    /// The one released first: the buffers cycle in order, as a NIC's
    /// ring buffers do (the benchmark's queue floor over the ring's
    /// buffers).
    OldestReleased,
}

/// A pool of `count` buffers of `size` bytes, and its only two handles;
/// the producer lends the buffer released last ([`Reuse::LastReleased`]).
///
/// # Panics
/// When `count` is 0.
pub fn pool(count: usize, size: usize) -> (Producer, Consumer) {
    pool_with(count, size, Reuse::LastReleased)
}

/// As [`pool`], with the free buffers lent in `reuse` order.
///
/// # Panics
/// When `count` is 0.
pub fn pool_with(count: usize, size: usize, reuse: Reuse) -> (Producer, Consumer) {
    assert!(count > 0, "a socket buffer pool needs at least one buffer");
    let per_slab = (SLAB_BYTES / size.max(1)).clamp(1, count);
    let slabs: Box<[Slab]> = (0..count.div_ceil(per_slab))
        .map(|k| {
            let buffers = per_slab.min(count - k * per_slab);
            Slab::new(
                buffers
                    .checked_mul(size)
                    .expect("a socket buffer slab larger than the address space"),
            )
        })
        .collect();
    let places = || (0..count).map(|_| AtomicUsize::new(0)).collect();
    let shared = Arc::new(Shared {
        slabs,
        per_slab,
        count,
        size,
        ring_buffer: places(),
        ring_len: places(),
        head: Line(AtomicUsize::new(0)),
        tail: Line(AtomicUsize::new(0)),
        returned: places(),
        returned_tail: Line(AtomicUsize::new(0)),
    });
    (
        Producer {
            shared: shared.clone(),
            // Buffer 0 lent first either way.
            free: (0..count).collect(),
            reuse,
            taken: 0,
            lent: false,
        },
        Consumer {
            shared,
            seen_tail: Cell::new(0),
        },
    )
}

/// The filling side (the driver's interrupt handler).
pub struct Producer {
    shared: Arc<Shared>,
    /// Free buffers, the next one to lend at the front.
    free: VecDeque<usize>,
    /// Where a buffer taken back goes: to the front (lent next) or the back.
    reuse: Reuse,
    /// How far into the returned ring the producer has taken buffers back.
    taken: usize,
    /// A buffer is lent and not yet committed (asking again lends it again).
    lent: bool,
}

impl Producer {
    /// Takes the buffers released since the last call back among the free
    /// ones, oldest first: each to the front (the one released last is lent
    /// next) or to the back (lent after those already free).
    fn take_back(&mut self) {
        let s = &self.shared;
        let end = s.returned_tail.load(Ordering::Acquire);
        while self.taken != end {
            let index = s.returned[self.taken % s.count()].load(Ordering::Relaxed);
            match self.reuse {
                Reuse::LastReleased => self.free.push_front(index),
                Reuse::OldestReleased => self.free.push_back(index),
            }
            self.taken = self.taken.wrapping_add(1);
        }
    }

    /// Buffers free to fill now (the consumer may free more meanwhile).
    pub fn free(&self) -> usize {
        let back = self
            .shared
            .returned_tail
            .load(Ordering::Acquire)
            .wrapping_sub(self.taken);
        self.free.len() + back
    }

    /// Lends the next free buffer (all of it): the one released last (or
    /// first, with [`Reuse::OldestReleased`]), or `None` when every buffer
    /// is published and not yet released. Asking
    /// again before [`commit`](Self::commit) lends the same buffer.
    pub fn buffer(&mut self) -> Option<&mut [u8]> {
        // The one released last may have come back since: look each time.
        // Oldest first, the buffers already here go before any released
        // since, so `returned_tail` (a line the consumer writes on every
        // release) is read only when they run out.
        if !self.lent && (self.reuse == Reuse::LastReleased || self.free.is_empty()) {
            self.take_back();
        }
        let &index = self.free.front()?;
        self.lent = true;
        // SAFETY: `index` is on the producer's free list (not published,
        // not lent to the consumer), the producer is the only handle that
        // reaches that list, and the loan borrows `self` mutably.
        #[allow(unsafe_code)]
        Some(unsafe { self.shared.buffer_mut(index) })
    }

    /// Publishes the buffer last lent by [`buffer`](Self::buffer) with its
    /// first `len` bytes (at most the buffer's size) as a frame. Returns
    /// `false`, publishing nothing, when no buffer is lent (none was asked
    /// for since the last commit, or none was free).
    pub fn commit(&mut self, len: usize) -> bool {
        // Nothing lent (no buffer asked for, or none was free): nothing
        // filled to publish.
        if !self.lent {
            return false;
        }
        let Some(index) = self.free.pop_front() else {
            return false;
        };
        self.lent = false;
        let s = &self.shared;
        let tail = s.tail.load(Ordering::Relaxed);
        // At most `count` buffers exist, so the published ring has room.
        let place = tail % s.count();
        s.ring_buffer[place].store(index, Ordering::Relaxed);
        s.ring_len[place].store(len, Ordering::Relaxed);
        s.tail.store(tail.wrapping_add(1), Ordering::Release);
        true
    }
}

/// The draining side (the stack).
pub struct Consumer {
    shared: Arc<Shared>,
    /// `tail` as this side last read it (Acquire): the places before it
    /// are published.
    seen_tail: Cell<usize>,
}

impl Consumer {
    /// Lends the oldest published buffer, if any; it stays published (and
    /// is lent again) until [`Skb::release`].
    pub fn front(&mut self) -> Option<Skb<'_>> {
        let s = &*self.shared;
        let (index, len) = s.front(&self.seen_tail)?;
        Some(Skb {
            shared: s,
            index,
            len: len.min(s.size),
            _loan: PhantomData,
        })
    }

    /// The oldest published frame, read-only, without lending it.
    pub fn peek(&self) -> Option<&[u8]> {
        let s = &*self.shared;
        let (index, len) = s.front(&self.seen_tail)?;
        // SAFETY: buffer `index` is at `head` and published, and the loan
        // borrows the consumer, so none of its mutable loans lives.
        #[allow(unsafe_code)]
        let bytes = unsafe { s.buffer_ref(index) };
        Some(&bytes[..len.min(bytes.len())])
    }

    /// Whether no published buffer is waiting.
    pub fn is_empty(&self) -> bool {
        self.shared.front(&self.seen_tail).is_none()
    }

    /// Releases every published buffer; returns how many.
    pub fn clear(&mut self) -> usize {
        let mut n = 0;
        while let Some(skb) = self.front() {
            skb.release();
            n += 1;
        }
        n
    }
}

/// A published frame, lent by [`Consumer::front`].
///
/// It holds the buffer's number, not a reference into it: once
/// [`release`](Skb::release) hands the buffer back, the producer may write
/// it while `release` still runs, and no reference of the consumer's may
/// cover those bytes then.
pub struct Skb<'a> {
    shared: &'a Shared,
    index: usize,
    len: usize,
    /// The loan: `Consumer::front` borrows the consumer mutably for it.
    _loan: PhantomData<&'a mut [u8]>,
}

impl Skb<'_> {
    /// The frame.
    pub fn frame(&self) -> &[u8] {
        // SAFETY: the buffer is at `head` and published until `release`,
        // which consumes this loan; the loan borrows the consumer mutably
        // (no other loan of it exists) and this borrows the loan, so no
        // mutable reference to these bytes lives meanwhile.
        #[allow(unsafe_code)]
        let bytes = unsafe { self.shared.buffer_ref(self.index) };
        &bytes[..self.len]
    }

    /// The frame, writable (a stack may work in place).
    pub fn frame_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `frame`; borrowing the loan mutably keeps every
        // other reference to these bytes away.
        #[allow(unsafe_code)]
        let bytes = unsafe { self.shared.buffer_mut(self.index) };
        &mut bytes[..self.len]
    }

    /// Frees the buffer for the producer. Dropping an `Skb` without
    /// releasing it keeps the frame at the front.
    pub fn release(self) {
        let s = self.shared;
        // Only the consumer moves head and returned_tail; this loan
        // borrows it mutably. The buffer leaves the published ring before
        // it enters the returned one.
        s.head.store(
            s.head.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Release,
        );
        let at = s.returned_tail.load(Ordering::Relaxed);
        s.returned[at % s.count()].store(self.index, Ordering::Relaxed);
        s.returned_tail.store(at.wrapping_add(1), Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn fill(p: &mut Producer, tag: u8, len: usize) -> bool {
        match p.buffer() {
            Some(b) => {
                b[..len].fill(tag);
                p.commit(len)
            }
            None => false,
        }
    }

    #[test]
    fn a_full_pool_lends_nothing_more_and_no_buffer_twice() {
        let (mut p, mut c) = pool(3, 16);
        assert!(c.is_empty());
        assert!(c.front().is_none());
        for tag in 1..=3 {
            assert_eq!(p.free(), usize::from(4 - tag));
            assert!(fill(&mut p, tag, usize::from(tag)));
        }
        assert_eq!(p.free(), 0);
        // Every buffer is published: the producer gets none of them back.
        assert!(p.buffer().is_none());
        assert!(!p.commit(1), "commit with no free buffer publishes nothing");
        // The consumer sees each frame once, in order, until released.
        for tag in 1..=3u8 {
            assert_eq!(c.peek().expect("published")[0], tag);
            let skb = c.front().expect("published");
            assert_eq!(skb.frame(), &[tag; 16][..usize::from(tag)]);
            // Not released: still at the front.
            let skb = c.front().expect("still at the front");
            assert_eq!(skb.frame()[0], tag);
            skb.release();
            // Exactly one buffer came free.
            assert_eq!(p.free(), 1);
            assert!(p.buffer().is_some());
            assert!(fill(&mut p, 10 + tag, 4));
            assert!(p.buffer().is_none());
        }
        for tag in 11..=13u8 {
            let skb = c.front().expect("refilled");
            assert_eq!(skb.frame(), &[tag; 4]);
            skb.release();
        }
        assert!(c.is_empty());
        assert_eq!(c.clear(), 0);
    }

    #[test]
    fn a_commit_without_a_loan_publishes_nothing() {
        let (mut p, c) = pool(2, 8);
        assert!(!p.commit(4));
        assert!(c.is_empty());
        p.buffer().expect("free")[0] = 1;
        assert!(p.commit(1));
        assert!(!p.commit(1), "the loan was published already");
        assert_eq!(p.free(), 1);
    }

    #[test]
    fn asking_twice_before_commit_lends_the_same_free_buffer() {
        for reuse in [Reuse::LastReleased, Reuse::OldestReleased] {
            let (mut p, mut c) = pool_with(2, 8, reuse);
            p.buffer().expect("free")[0] = 7;
            // A release in between changes nothing for the lent buffer.
            assert!(p.commit(1));
            p.buffer().expect("free")[0] = 8;
            c.front().expect("published").release();
            assert_eq!(p.buffer().expect("same buffer")[0], 8, "{reuse:?}");
            assert!(p.commit(1));
            assert_eq!(c.front().expect("published").frame(), &[8]);
        }
    }

    #[test]
    fn the_buffer_released_last_is_lent_next() {
        let (mut p, mut c) = pool(8, 64);
        let first = p.buffer().expect("free").as_ptr();
        assert!(fill(&mut p, 1, 4));
        let second = p.buffer().expect("free").as_ptr();
        assert_ne!(first, second);
        assert!(fill(&mut p, 2, 4));
        c.front().expect("published").release();
        c.front().expect("published").release();
        // Both released, the second last: it is lent first, then the first.
        assert_eq!(p.buffer().expect("free").as_ptr(), second);
        assert!(fill(&mut p, 3, 4));
        assert_eq!(p.buffer().expect("free").as_ptr(), first);
        // Steady state of one frame at a time: always the same buffer.
        for tag in 4..20 {
            assert!(fill(&mut p, tag, 4));
            let skb = c.front().expect("published");
            assert_eq!(skb.frame()[0], if tag == 4 { 3 } else { tag - 1 });
            skb.release();
        }
        assert_eq!(p.free(), 7);
    }

    proptest::proptest! {
        /// Any interleaving of fills and releases, against a model queue:
        /// every frame arrives once, in order, with its own bytes, and the
        /// free count is the pool less what is published.
        #[test]
        fn any_interleaving_keeps_every_frame_whole_and_in_order(
            count in 1usize..6,
            ops in proptest::collection::vec(proptest::bool::ANY, 0..200),
        ) {
            let (mut p, mut c) = pool(count, 32);
            let mut model = std::collections::VecDeque::new();
            let mut next = 0u8;
            for fill_one in ops {
                if fill_one {
                    let filled = fill(&mut p, next, 1 + usize::from(next) % 31);
                    proptest::prop_assert_eq!(filled, model.len() < count);
                    if filled {
                        model.push_back(next);
                        next = next.wrapping_add(1);
                    }
                } else {
                    match (c.front(), model.pop_front()) {
                        (Some(skb), Some(tag)) => {
                            let len = 1 + usize::from(tag) % 31;
                            proptest::prop_assert_eq!(skb.frame(), &[tag; 32][..len]);
                            skb.release();
                        }
                        (None, None) => {}
                        (got, want) => proptest::prop_assert!(
                            false,
                            "front {:?}, model {want:?}",
                            got.map(|s| s.frame().to_vec())
                        ),
                    }
                }
                proptest::prop_assert_eq!(p.free(), count - model.len());
            }
        }
    }

    #[test]
    fn buffers_of_a_page_multiple_start_on_pages() {
        // 70 of 16 KiB: two slabs (64 a slab), every buffer on a page.
        let (mut p, mut c) = pool(70, 16384);
        for tag in 0..70u8 {
            let b = p.buffer().expect("free");
            assert_eq!(b.len(), 16384);
            assert_eq!(b.as_ptr() as usize % 4096, 0, "buffer {tag}");
            b.fill(tag);
            assert!(p.commit(16384));
        }
        // None overlapping another.
        for tag in 0..70u8 {
            let skb = c.front().expect("published");
            assert!(skb.frame().iter().all(|&x| x == tag), "buffer {tag}");
            skb.release();
        }
    }

    #[test]
    fn lengths_are_capped_at_the_buffer_size() {
        let (mut p, mut c) = pool(1, 8);
        p.buffer().expect("free");
        assert!(p.commit(100));
        assert_eq!(c.front().expect("published").frame().len(), 8);
        assert_eq!(c.clear(), 1);
    }

    #[test]
    fn reuse_order_decides_which_free_buffer_is_lent() {
        // Each frame released at once: the last released is the one just
        // used; the oldest released cycles through all of them.
        let lent = |reuse| {
            let (mut p, mut c) = pool_with(3, 64, reuse);
            let mut order = std::vec::Vec::new();
            for _ in 0..5 {
                order.push(p.buffer().expect("a free buffer").as_ptr() as usize);
                assert!(p.commit(8));
                c.front().expect("published").release();
            }
            order
        };
        let last = lent(Reuse::LastReleased);
        assert!(last.iter().all(|&b| b == last[0]), "{last:?}");
        let oldest = lent(Reuse::OldestReleased);
        assert_eq!(oldest[3], oldest[0]);
        assert_eq!(oldest[4], oldest[1]);
        assert!(oldest[0] != oldest[1] && oldest[1] != oldest[2] && oldest[0] != oldest[2]);
        assert_eq!(oldest[0], last[0], "buffer 0 first either way");
    }

    #[test]
    fn producer_and_consumer_on_two_threads_never_share_a_buffer() {
        // Each frame is filled with its number; a buffer lent to both sides
        // at once would show a frame with mixed or wrong bytes.
        const FRAMES: u32 = 20_000;
        for reuse in [Reuse::LastReleased, Reuse::OldestReleased] {
            two_threads(FRAMES, reuse);
        }
    }

    fn two_threads(frames: u32, reuse: Reuse) {
        let (mut p, mut c) = pool_with(4, 64, reuse);
        let producer = std::thread::spawn(move || {
            let mut n = 0u32;
            while n < frames {
                if let Some(b) = p.buffer() {
                    let len = 4 + (n as usize % 60);
                    for chunk in b[..len - len % 4].chunks_exact_mut(4) {
                        chunk.copy_from_slice(&n.to_le_bytes());
                    }
                    assert!(p.commit(len - len % 4));
                    n += 1;
                } else {
                    std::thread::yield_now();
                }
            }
        });
        let mut seen = Vec::new();
        while seen.len() < frames as usize {
            let Some(skb) = c.front() else {
                std::thread::yield_now();
                continue;
            };
            let n = u32::from_le_bytes(skb.frame()[..4].try_into().unwrap());
            assert!(
                skb.frame()
                    .chunks_exact(4)
                    .all(|w| w == n.to_le_bytes().as_slice()),
                "frame {n} holds another frame's bytes"
            );
            seen.push(n);
            skb.release();
        }
        producer.join().unwrap();
        assert!(
            seen.iter().copied().eq(0..frames),
            "frames lost or reordered ({reuse:?})"
        );
    }
}
