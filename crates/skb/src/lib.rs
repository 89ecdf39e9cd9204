//! Socket buffers from one producer to one consumer, alias-free by type.
//!
//! The target's e1000 driver copies each received frame, in its interrupt
//! handler, into a socket buffer; the node's main loop hands socket buffers
//! to the stack and frees them. [`pool`] makes a fixed set of buffers and
//! returns the only two handles to them:
//!
//! - [`Producer`] (the interrupt handler): [`Producer::buffer`] lends the
//!   next free buffer, [`Producer::commit`] publishes it with a length;
//! - [`Consumer`] (the stack): [`Consumer::front`] lends the oldest
//!   published buffer as an [`Skb`], [`Skb::release`] frees it.
//!
//! Neither handle is `Clone`, and every loan borrows its handle mutably, so
//! at most one producer loan and one consumer loan exist at any time. The
//! producer only ever lends the slot at `tail` (never a published one), the
//! consumer only the slot at `head` (always a published one), and each
//! index moves only by its own handle: two `&mut` to one buffer cannot be
//! made, which the borrow checker (not a comment) enforces:
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
//! The `unsafe` (turning a slot's `UnsafeCell` into a loan, and `Sync` for
//! the shared state) is confined to two `unsafe fn` accessors, their three
//! callers, and one impl below.

#![no_std]
#![deny(unsafe_code)]

extern crate alloc;
#[cfg(test)]
extern crate std;

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::UnsafeCell;
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
struct Shared {
    buffers: Box<[UnsafeCell<Box<[u8]>>]>,
    lens: Box<[AtomicUsize]>,
    /// The oldest published slot (moved by the consumer only).
    head: Line,
    /// The next slot to publish (moved by the producer only).
    tail: Line,
}

// SAFETY: a slot's bytes are reached only through a `Producer` loan (slot
// `tail`, which is not published: `tail - head < slots` was checked) or a
// `Consumer` loan (slot `head`, published: `head != tail`). Only the
// producer moves `tail`, only the consumer moves `head`, each with Release
// after its last access to the slot and read by the other with Acquire, so
// the two loans never cover the same slot and their accesses are ordered.
// There is exactly one of each handle (`pool` makes them, neither is
// Clone) and each loan borrows its handle mutably.
#[allow(unsafe_code)]
unsafe impl Sync for Shared {}

impl Shared {
    fn slots(&self) -> usize {
        self.buffers.len()
    }

    /// The bytes of slot `index`, writable.
    ///
    /// # Safety
    /// The caller is the one handle that may reach slot `index` now (the
    /// protocol in the `Sync` comment above: the producer for slot `tail`
    /// while it is free, the consumer for slot `head` while it is
    /// published) and keeps that handle borrowed mutably for as long as the
    /// loan lives, so no other reference to these bytes can exist.
    #[allow(clippy::mut_from_ref, unsafe_code)]
    unsafe fn slot_mut(&self, index: usize) -> &mut [u8] {
        // SAFETY: the caller's contract: this is the only reference.
        unsafe { &mut *self.buffers[index].get() }
    }

    /// The bytes of slot `index`, read-only.
    ///
    /// # Safety
    /// The caller is the consumer, slot `index` is published, and the
    /// consumer stays borrowed (shared) while the loan lives, which keeps
    /// its mutable loans away.
    #[allow(unsafe_code)]
    unsafe fn slot_ref(&self, index: usize) -> &[u8] {
        // SAFETY: the caller's contract: no mutable reference exists.
        unsafe { &*self.buffers[index].get() }
    }
}

/// Writes one byte of every page of `b`: a host allocator hands out zeroed
/// memory as pages mapped on first touch, which would put a page fault
/// into the driver's first copy into each buffer (a kernel heap's memory
/// is mapped already; there this costs one store per page, once). The
/// value goes through `black_box`, so the store of a zero into memory the
/// allocator zeroed is not optimised away.
fn prefault(b: &mut [u8]) {
    for page in b.chunks_mut(4096) {
        page[0] = core::hint::black_box(0);
    }
}

/// A pool of `slots` buffers of `size` bytes, and its only two handles.
///
/// # Panics
/// When `slots` is 0.
pub fn pool(slots: usize, size: usize) -> (Producer, Consumer) {
    assert!(slots > 0, "a socket buffer pool needs at least one buffer");
    let buffers: Vec<UnsafeCell<Box<[u8]>>> = (0..slots)
        .map(|_| {
            let mut b = vec![0u8; size].into_boxed_slice();
            prefault(&mut b);
            UnsafeCell::new(b)
        })
        .collect();
    let shared = Arc::new(Shared {
        buffers: buffers.into_boxed_slice(),
        lens: (0..slots).map(|_| AtomicUsize::new(0)).collect(),
        head: Line(AtomicUsize::new(0)),
        tail: Line(AtomicUsize::new(0)),
    });
    (
        Producer {
            shared: shared.clone(),
        },
        Consumer { shared },
    )
}

/// The filling side (the driver's interrupt handler).
pub struct Producer {
    shared: Arc<Shared>,
}

impl Producer {
    /// The free slot to fill next, if there is one.
    fn free_slot(&self) -> Option<usize> {
        let s = &self.shared;
        let tail = s.tail.load(Ordering::Relaxed);
        let head = s.head.load(Ordering::Acquire);
        (tail.wrapping_sub(head) < s.slots()).then(|| tail % s.slots())
    }

    /// Buffers free to fill now (the consumer may free more meanwhile).
    pub fn free(&self) -> usize {
        let s = &self.shared;
        let tail = s.tail.load(Ordering::Relaxed);
        let head = s.head.load(Ordering::Acquire);
        s.slots().saturating_sub(tail.wrapping_sub(head))
    }

    /// Lends the next free buffer (all of it), or `None` when every buffer
    /// is published and not yet released. Asking again before
    /// [`commit`](Self::commit) lends the same buffer.
    pub fn buffer(&mut self) -> Option<&mut [u8]> {
        let slot = self.free_slot()?;
        // SAFETY: slot `tail` is free (checked), the producer is the only
        // handle that reaches free slots, and the loan borrows `self`
        // mutably.
        #[allow(unsafe_code)]
        Some(unsafe { self.shared.slot_mut(slot) })
    }

    /// Publishes the buffer last lent by [`buffer`](Self::buffer) with its
    /// first `len` bytes (at most the buffer's size) as a frame. Returns
    /// `false`, publishing nothing, when no buffer is free.
    pub fn commit(&mut self, len: usize) -> bool {
        let Some(slot) = self.free_slot() else {
            return false;
        };
        let s = &self.shared;
        s.lens[slot].store(len, Ordering::Relaxed);
        s.tail.store(
            s.tail.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Release,
        );
        true
    }
}

/// The draining side (the stack).
pub struct Consumer {
    shared: Arc<Shared>,
}

impl Consumer {
    /// Lends the oldest published buffer, if any; it stays published (and
    /// is lent again) until [`Skb::release`].
    pub fn front(&mut self) -> Option<Skb<'_>> {
        let s = &self.shared;
        let head = s.head.load(Ordering::Relaxed);
        if head == s.tail.load(Ordering::Acquire) {
            return None;
        }
        let slot = head % s.slots();
        let len = s.lens[slot].load(Ordering::Relaxed);
        // SAFETY: slot `head` is published (head != tail), the consumer is
        // the only handle that reaches published slots, and the loan
        // borrows `self` mutably.
        #[allow(unsafe_code)]
        let bytes = unsafe { s.slot_mut(slot) };
        let len = len.min(bytes.len());
        Some(Skb {
            head: &s.head,
            frame: &mut bytes[..len],
        })
    }

    /// The oldest published frame, read-only, without lending it.
    pub fn peek(&self) -> Option<&[u8]> {
        let s = &*self.shared;
        let head = s.head.load(Ordering::Relaxed);
        if head == s.tail.load(Ordering::Acquire) {
            return None;
        }
        let slot = head % s.slots();
        let len = s.lens[slot].load(Ordering::Relaxed);
        // SAFETY: slot `head` is published (head != tail), and the loan
        // borrows the consumer, so none of its mutable loans lives.
        #[allow(unsafe_code)]
        let bytes = unsafe { s.slot_ref(slot) };
        Some(&bytes[..len.min(bytes.len())])
    }

    /// Whether no published buffer is waiting.
    pub fn is_empty(&self) -> bool {
        let s = &self.shared;
        s.head.load(Ordering::Relaxed) == s.tail.load(Ordering::Acquire)
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
pub struct Skb<'a> {
    head: &'a AtomicUsize,
    frame: &'a mut [u8],
}

impl Skb<'_> {
    /// The frame.
    pub fn frame(&self) -> &[u8] {
        self.frame
    }

    /// The frame, writable (a stack may work in place).
    pub fn frame_mut(&mut self) -> &mut [u8] {
        self.frame
    }

    /// Frees the buffer for the producer. Dropping an `Skb` without
    /// releasing it keeps the frame at the front.
    pub fn release(self) {
        // Only the consumer moves head; this loan borrows it mutably.
        self.head.store(
            self.head.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Release,
        );
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
    fn asking_twice_before_commit_lends_the_same_free_buffer() {
        let (mut p, mut c) = pool(2, 8);
        p.buffer().expect("free")[0] = 7;
        assert_eq!(p.buffer().expect("same buffer")[0], 7);
        assert!(p.commit(1));
        assert_eq!(c.front().expect("published").frame(), &[7]);
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
    fn producer_and_consumer_on_two_threads_never_share_a_buffer() {
        // Each frame is filled with its number; a buffer lent to both sides
        // at once would show a frame with mixed or wrong bytes.
        const FRAMES: u32 = 20_000;
        let (mut p, mut c) = pool(4, 64);
        let producer = std::thread::spawn(move || {
            let mut n = 0u32;
            while n < FRAMES {
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
        while seen.len() < FRAMES as usize {
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
            seen.iter().copied().eq(0..FRAMES),
            "frames lost or reordered"
        );
    }
}
