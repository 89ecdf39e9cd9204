//! The memory functions `core` calls (nothing else supplies them in a
//! freestanding image) and this node's heap.

use core::arch::asm;

use core::alloc::{GlobalAlloc, Layout};

use linked_list_allocator::LockedHeap;

/// The heap, its spin lock taken with interrupts off: interrupt handlers
/// allocate too (a standby node's driver is built in its mailbox
/// interrupt), and one that interrupted the main loop inside the
/// allocator would spin on the lock for good.
struct Heap(LockedHeap);

// SAFETY: every method forwards to `LockedHeap`'s own `GlobalAlloc`
// implementation, unchanged, with interrupts disabled around it.
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        x86_64::instructions::interrupts::without_interrupts(|| unsafe { self.0.alloc(layout) })
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        x86_64::instructions::interrupts::without_interrupts(|| unsafe {
            self.0.dealloc(ptr, layout)
        })
    }
}

#[global_allocator]
static HEAP: Heap = Heap(LockedHeap::empty());

/// Hands `[start, start+len)` to this node's heap.
///
/// # Safety
/// The range must be mapped, writable, unused memory of this node, and
/// `init_heap` must be called once.
pub unsafe fn init_heap(start: u64, len: u64) {
    // SAFETY: guaranteed by the caller.
    x86_64::instructions::interrupts::without_interrupts(|| unsafe {
        HEAP.0.lock().init(start as *mut u8, len as usize)
    });
}

pub fn heap_free() -> usize {
    x86_64::instructions::interrupts::without_interrupts(|| HEAP.0.lock().free())
}

/// # Safety
/// C `memcpy` contract: valid, non-overlapping ranges.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees both ranges; `rep movsb` copies forward.
    unsafe {
        asm!("rep movsb", inout("rcx") n => _, inout("rdi") dst => _, inout("rsi") src => _,
             options(nostack, preserves_flags));
    }
    dst
}

/// # Safety
/// C `memmove` contract: valid ranges, possibly overlapping.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dst as usize) <= (src as usize) || (dst as usize) >= (src as usize + n) {
        // SAFETY: forward copy is correct when dst does not start inside src.
        return unsafe { memcpy(dst, src, n) };
    }
    // SAFETY: backward copy with the direction flag set, restored after.
    unsafe {
        asm!("std", "rep movsb", "cld",
             inout("rcx") n => _, inout("rdi") dst.add(n - 1) => _, inout("rsi") src.add(n - 1) => _,
             options(nostack));
    }
    dst
}

/// # Safety
/// C `memset` contract: a valid destination range.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees the range.
    unsafe {
        asm!("rep stosb", inout("rcx") n => _, inout("rdi") dst => _, in("al") c as u8,
             options(nostack, preserves_flags));
    }
    dst
}

/// # Safety
/// C `memcmp` contract: two valid ranges of `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    for i in 0..n {
        // SAFETY: `i < n` and the caller guarantees both ranges.
        let (x, y) = unsafe { (a.add(i).read_volatile(), b.add(i).read_volatile()) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
    }
    0
}

/// # Safety
/// As `memcmp`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same contract.
    unsafe { memcmp(a, b, n) }
}

/// Grows this node's heap by `by` bytes directly after its current end.
///
/// # Safety
/// The `by` bytes after the heap's end must be mapped, unused memory of
/// this node.
pub unsafe fn extend_heap(by: u64) {
    // SAFETY: guaranteed by the caller.
    x86_64::instructions::interrupts::without_interrupts(|| unsafe {
        HEAP.0.lock().extend(by as usize)
    });
}
