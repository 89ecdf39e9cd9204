//! Volatile access to memory that another agent may change at any time.
//!
//! mint's DMA window lies in the shared region: the support node (playing
//! the NIC) writes frames into it while the target's driver reads them, and
//! neither may trust the other to keep to the protocol. Plain Rust accesses
//! (`copy_nonoverlapping`, slices) to such memory are wrong twice over: the
//! compiler may assume nobody else changes it (and so merge, repeat or
//! invent accesses), and a `&[u8]`/`&mut [u8]` over it promises exclusivity
//! or immutability that a peer breaks. This crate is the one abstraction
//! the node kernel uses for those bytes, modelled on rust-vmm's `vm-memory`
//! `VolatileSlice`:
//!
//! - [`VolatileSlice`] is a raw base and length, never a Rust reference to
//!   the bytes. Its only constructor that takes raw memory is `unsafe`
//!   ([`VolatileSlice::new`]), and states what the caller guarantees;
//!   [`VolatileSlice::from_mut`] is the safe one for memory this program
//!   owns (tests, host tools).
//! - It offers bounds-checked copies to and from ordinary `&[u8]` /
//!   `&mut [u8]` ([`copy_from`](VolatileSlice::copy_from),
//!   [`copy_to`](VolatileSlice::copy_to)), single-byte reads and writes,
//!   and bounds-checked sub-slices; an access outside the slice returns
//!   [`OutOfBounds`] and touches nothing.
//! - Copies are fast: aligned 16-byte (SSE) volatile accesses over the
//!   middle of the range, a 64-bit one to reach and to leave 16-byte
//!   alignment, byte accesses only for the unaligned head and tail (a
//!   per-byte volatile copy of a 16 KiB frame would cost 16384 accesses;
//!   this costs at most about 1030). From 8 KiB, with feature `avx` and
//!   where the OS enabled AVX, aligned 32-byte accesses over the middle
//!   instead. Only host builds enable the feature (the native benchmark's
//!   CLI): the node kernel's graph leaves it off, so no YMM access is even
//!   compiled into code whose interrupt handlers save no YMM state (the
//!   run-time check, `has_avx`, would also say no there). `core::intrinsics::volatile_copy_memory`
//!   would be the obvious tool but is nightly-only.
//! - A write can be prepared: [`VolatileSlice::prefetch_for_write`] takes
//!   the lines for writing ahead of a copy.
//!
//! What it does not do: volatile accesses are not atomic and not ordered.
//! A peer racing a copy can leave torn or mixed data behind (mint's
//! payload CRC catches that); ordering between the bytes and the flag that
//! publishes them (an RX descriptor's DD bit) is the job of the atomics
//! that carry that flag (Release on write-back, Acquire on load).
//!
//! Why a crate of its own: `mint-e1000` and `mint-abi` are
//! `#![forbid(unsafe_code)]`, and the kernel cannot be unit-tested on the
//! host; here the `unsafe` is confined to [`VolatileSlice::new`], its two
//! safe wrappers, the prefetches, six private accessors, the AVX check
//! (`has_avx`: XGETBV) and the two 32-byte runs (feature `avx`), and the copy logic is
//! tested on the host against a plain copy.

#![no_std]
#![deny(unsafe_code)]

#[cfg(test)]
extern crate std;

use core::marker::PhantomData;

/// Starts bringing the cache line that holds `value` into this core's
/// cache for reading (`prefetcht0`): a hint, with no effect on memory.
pub fn prefetch_read<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads and writes nothing and never faults; the
    // address is a live reference's besides.
    #[allow(unsafe_code)]
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
            (value as *const T).cast(),
        )
    };
}

/// Starts taking the cache line that holds `value` for writing: a hint,
/// with no effect on memory.
pub fn prefetch_write<T>(value: &T) {
    prefetch_line_for_write((value as *const T).cast());
}

/// Whether this CPU has `prefetchw` (CPUID 0x8000_0001 ECX bit 8,
/// PRFCHW / 3DNowPrefetch), as [`cpu_flag`] keeps it.
#[cfg(target_arch = "x86_64")]
static PRFCHW: core::sync::atomic::AtomicU8 = core::sync::atomic::AtomicU8::new(0);

/// A CPU property asked once: `probe`'s answer kept in `known` (0 not
/// asked yet, 1 no, 2 yes). Racing first callers ask twice and agree.
#[cfg(target_arch = "x86_64")]
fn cpu_flag(known: &core::sync::atomic::AtomicU8, probe: fn() -> bool) -> bool {
    use core::sync::atomic::Ordering;
    match known.load(Ordering::Relaxed) {
        0 => {
            let has = probe();
            known.store(if has { 2 } else { 1 }, Ordering::Relaxed);
            has
        }
        v => v == 2,
    }
}

/// `prefetchw` of the line holding `p` where the CPU has it, else a read
/// prefetch (`_MM_HINT_ET0` alone would not do: the compiler emits
/// `prefetchw` for it only when built with `prfchw`, which neither the
/// kernel nor a portable host binary is).
fn prefetch_line_for_write(p: *const i8) {
    #[cfg(target_arch = "x86_64")]
    {
        let has = cpu_flag(&PRFCHW, || {
            let ext = core::arch::x86_64::__cpuid(0x8000_0000).eax;
            ext >= 0x8000_0001 && core::arch::x86_64::__cpuid(0x8000_0001).ecx & (1 << 8) != 0
        });
        if has {
            // SAFETY: `prefetchw` (present: CPUID said so) reads and
            // writes nothing architecturally and never faults, whatever
            // the address; it touches no register, stack or flag.
            #[allow(unsafe_code)]
            unsafe {
                core::arch::asm!("prefetchw [{0}]", in(reg) p, options(nostack, preserves_flags, readonly));
            }
        } else {
            // SAFETY: as in `prefetch_read`.
            #[allow(unsafe_code)]
            unsafe {
                core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p)
            };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// An access that does not lie within a [`VolatileSlice`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfBounds {
    /// Start of the refused access, from the start of the slice.
    pub offset: usize,
    /// Length of the refused access.
    pub len: usize,
    /// Length of the slice.
    pub size: usize,
}

impl core::fmt::Display for OutOfBounds {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "access of {} bytes at offset {} outside a volatile slice of {} bytes",
            self.len, self.offset, self.size
        )
    }
}

impl core::error::Error for OutOfBounds {}

/// `len` bytes at `base` that another agent may read or write at any time;
/// every access is bounds-checked and volatile. See the crate docs.
#[derive(Clone, Copy, Debug)]
pub struct VolatileSlice<'a> {
    base: *mut u8,
    len: usize,
    /// Borrows the memory for `'a` as something shared and mutable.
    _memory: PhantomData<&'a core::cell::UnsafeCell<u8>>,
}

const WORD: usize = core::mem::size_of::<u64>();
/// A copy's access below `WIDER_FROM`, or without AVX: one SSE register
/// (baseline on x86-64, and enabled in mint's kernel).
const WIDE: usize = 16;

/// A copy's widest access where the CPU and the OS allow it: one AVX
/// register. Stores wait for their lines in the store buffer, an entry
/// each: 32 bytes an entry keeps twice the lines of a copy in flight as
/// 16 do, which is what a copy into lines another core holds waits on.
#[cfg(all(target_arch = "x86_64", feature = "avx"))]
const WIDER: usize = 32;

/// The shortest copy that uses [`WIDER`] accesses. Alternated A/Bs on an
/// Intel Xeon (far CPUs, docs/EVALUATION.md) measured 32-byte copies
/// faster from 8 KiB on (lossless 86 against 77 Gbps at 8 KiB, 95
/// against 82 at 12 KiB; a 16 KiB send 1.40 against 1.51 us) and slower
/// below (18 against 20 Gbps at 1 KiB, 68 against 70-76 at 4 KiB).
#[cfg(any(feature = "avx", test))]
const WIDER_FROM: usize = 8192;

/// Whether 32-byte AVX accesses may be used: CPUID says AVX and OSXSAVE,
/// and XCR0 has the SSE and AVX state enabled, which an OS does when it
/// saves that state across whatever may interrupt a copy (a host OS
/// does). Compiled only with feature `avx`, which mint's kernel leaves
/// off (it sets neither CR4.OSXSAVE nor XCR0, and its interrupt handlers
/// save no YMM state). Kept by [`cpu_flag`].
#[cfg(all(target_arch = "x86_64", feature = "avx"))]
static AVX: core::sync::atomic::AtomicU8 = core::sync::atomic::AtomicU8::new(0);

#[cfg(all(target_arch = "x86_64", feature = "avx"))]
fn has_avx() -> bool {
    cpu_flag(&AVX, || {
        let ecx = core::arch::x86_64::__cpuid(1).ecx;
        let (osxsave, avx) = (ecx & (1 << 27) != 0, ecx & (1 << 28) != 0);
        // XGETBV exists once the OS has set CR4.OSXSAVE (CPUID's bit).
        osxsave && avx && {
            // SAFETY: XGETBV with ECX = 0 reads XCR0; it is defined
            // (no #UD) because CR4.OSXSAVE is set (CPUID.1:ECX[27]),
            // which only a CPU with XSAVE (the intrinsic's target
            // feature) allows.
            #[allow(unsafe_code)]
            let xcr0 = unsafe { core::arch::x86_64::_xgetbv(0) };
            xcr0 & 0b110 == 0b110
        }
    })
}

/// The native-endian word of 8 bytes.
fn word_of(bytes: &[u8]) -> u64 {
    let mut w = [0u8; WORD];
    w.copy_from_slice(bytes);
    u64::from_ne_bytes(w)
}

impl<'a> VolatileSlice<'a> {
    /// A slice over `len` bytes at `base`.
    ///
    /// # Safety
    /// For all of `'a`, `base..base + len` must be mapped, readable and
    /// writable, must not wrap the address space, and must not be reached
    /// by this program through any Rust reference to plain data over it
    /// (`&[u8]`, `&mut [u8]`, `&T` of a non-atomic `T`): only through
    /// volatile accesses (this type's) or atomics laid over it. Other
    /// agents (another node, a device) may change it at any time.
    #[allow(unsafe_code)]
    pub const unsafe fn new(base: *mut u8, len: usize) -> VolatileSlice<'a> {
        VolatileSlice {
            base,
            len,
            _memory: PhantomData,
        }
    }

    /// A slice over memory this program owns exclusively for `'a`.
    pub fn from_mut(bytes: &'a mut [u8]) -> VolatileSlice<'a> {
        let (base, len) = (bytes.as_mut_ptr(), bytes.len());
        // SAFETY: the exclusive borrow keeps every other reference to these
        // bytes away for 'a, and a live `&mut [u8]` is mapped, writable and
        // does not wrap.
        #[allow(unsafe_code)]
        unsafe {
            VolatileSlice::new(base, len)
        }
    }

    /// A slice over memory laid out as 64-bit atomics (shared memory a
    /// program reaches only through atomics, as the native benchmark's
    /// copy of the shared region): atomics are interior-mutable and no
    /// plain reference to their bytes can exist, so volatile accesses
    /// beside the atomic ones are what [`VolatileSlice::new`] asks for.
    /// The volatile copies are not atomic: between two threads of this
    /// program they must be ordered by something else (the debug NIC's
    /// descriptor Release/Acquire and RDT hand a buffer from one side to
    /// the other), or a racing copy is a data race.
    pub fn from_atomics(words: &'a [core::sync::atomic::AtomicU64]) -> VolatileSlice<'a> {
        let (base, len) = (words.as_ptr() as *mut u8, core::mem::size_of_val(words));
        // SAFETY: `words` is borrowed for 'a, so it stays mapped, readable
        // and, being atomics (an `UnsafeCell` each), writable through a
        // shared borrow; a live slice does not wrap; and nothing can hold a
        // plain `&[u8]` or `&mut [u8]` over atomics.
        #[allow(unsafe_code)]
        unsafe {
            VolatileSlice::new(base, len)
        }
    }

    /// Starts taking the cache lines of `offset..offset + len` for writing
    /// (`prefetchw`), so a copy into them soon after finds them here; an
    /// out-of-bounds range is ignored. A hint: no effect on the bytes.
    pub fn prefetch_for_write(&self, offset: usize, len: usize) {
        if len == 0 || self.check(offset, len).is_err() {
            return;
        }
        // Every line the range touches: from the line of its first byte,
        // 64 bytes at a time, to the line of its last.
        let first = self.addr(offset) & !63;
        let last = self.addr(offset + len - 1);
        let mut line = first;
        while line <= last {
            prefetch_line_for_write(line as *const i8);
            line += 64;
        }
    }

    /// Length in bytes.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether the slice has no bytes.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first byte's address. Reaching memory through it is the
    /// caller's `unsafe` business (e.g. laying atomics over a descriptor
    /// ring); this type's accessors never need it.
    pub const fn as_ptr(&self) -> *mut u8 {
        self.base
    }

    /// Checks `offset..offset + len` against the slice.
    fn check(&self, offset: usize, len: usize) -> Result<(), OutOfBounds> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(OutOfBounds {
                offset,
                len,
                size: self.len,
            }),
        }
    }

    /// The `len` bytes at `offset`, as a slice of their own.
    pub fn subslice(&self, offset: usize, len: usize) -> Result<VolatileSlice<'a>, OutOfBounds> {
        self.check(offset, len)?;
        Ok(VolatileSlice {
            base: self.base.wrapping_add(offset),
            len,
            _memory: PhantomData,
        })
    }

    /// Reads the byte at `offset`.
    pub fn read_u8(&self, offset: usize) -> Result<u8, OutOfBounds> {
        self.check(offset, 1)?;
        Ok(self.load_u8(offset))
    }

    /// Writes the byte at `offset`.
    pub fn write_u8(&self, offset: usize, value: u8) -> Result<(), OutOfBounds> {
        self.check(offset, 1)?;
        self.store_u8(offset, value);
        Ok(())
    }

    /// Copies `src` to `offset..offset + src.len()`, or nothing if that is
    /// not within the slice.
    pub fn copy_from(&self, offset: usize, src: &[u8]) -> Result<(), OutOfBounds> {
        self.check(offset, src.len())?;
        let (head, words, tail) = self.split(offset, src.len());
        let (src_head, rest) = src.split_at(head);
        let (src_words, src_tail) = rest.split_at(words * WORD);
        for (i, &b) in src_head.iter().enumerate() {
            self.store_u8(offset + i, b);
        }
        let mut at = offset + head;
        let mut src_words = src_words;
        // One word to a 16-byte boundary, then 16 bytes a store (a store
        // buffer entry per 16 bytes, not 8: twice the lines in flight when
        // the stores wait for their lines), then the last word.
        if !self.addr(at).is_multiple_of(WIDE) && src_words.len() >= WIDE + WORD {
            let (w, rest) = src_words.split_at(WORD);
            self.store_u64(at, word_of(w));
            at += WORD;
            src_words = rest;
        }
        #[cfg(all(target_arch = "x86_64", feature = "avx"))]
        if src.len() >= WIDER_FROM && has_avx() {
            // To a 32-byte boundary with one 16-byte store, then 32 at a time.
            if self.addr(at).is_multiple_of(WIDE) && !self.addr(at).is_multiple_of(WIDER) {
                let (w, rest) = src_words.split_at(WIDE);
                self.store_wide(at, w);
                at += WIDE;
                src_words = rest;
            }
            if self.addr(at).is_multiple_of(WIDER) {
                let wider = src_words.len() / WIDER * WIDER;
                // SAFETY: `at..at + wider` lies within the slice (`check`
                // covered the whole copy), starts 32-byte aligned, and is
                // reached only through volatile accesses (see `load_u8`);
                // AVX is usable (`has_avx`).
                #[allow(unsafe_code)]
                unsafe {
                    store_wider_run(self.base.wrapping_add(at), &src_words[..wider])
                };
                at += wider;
                src_words = &src_words[wider..];
            }
        }
        let wide = src_words.len() / WIDE * WIDE;
        if self.addr(at).is_multiple_of(WIDE) {
            for chunk in src_words[..wide].chunks_exact(WIDE) {
                self.store_wide(at, chunk);
                at += WIDE;
            }
            src_words = &src_words[wide..];
        }
        for chunk in src_words.chunks_exact(WORD) {
            self.store_u64(at, word_of(chunk));
            at += WORD;
        }
        for (i, &b) in src_tail.iter().enumerate().take(tail) {
            self.store_u8(at + i, b);
        }
        Ok(())
    }

    /// Copies `offset..offset + dst.len()` into `dst`, or nothing if that
    /// is not within the slice.
    pub fn copy_to(&self, offset: usize, dst: &mut [u8]) -> Result<(), OutOfBounds> {
        self.check(offset, dst.len())?;
        #[cfg(all(target_arch = "x86_64", feature = "avx"))]
        let total = dst.len();
        let (head, words, tail) = self.split(offset, dst.len());
        let (dst_head, rest) = dst.split_at_mut(head);
        let (dst_words, dst_tail) = rest.split_at_mut(words * WORD);
        for (i, b) in dst_head.iter_mut().enumerate() {
            *b = self.load_u8(offset + i);
        }
        let mut at = offset + head;
        let mut dst_words = dst_words;
        // As `copy_from`: 16 bytes a load where aligned.
        if !self.addr(at).is_multiple_of(WIDE) && dst_words.len() >= WIDE + WORD {
            let (w, rest) = dst_words.split_at_mut(WORD);
            w.copy_from_slice(&self.load_u64(at).to_ne_bytes());
            at += WORD;
            dst_words = rest;
        }
        #[cfg(all(target_arch = "x86_64", feature = "avx"))]
        if total >= WIDER_FROM && has_avx() {
            if self.addr(at).is_multiple_of(WIDE) && !self.addr(at).is_multiple_of(WIDER) {
                let (w, rest) = dst_words.split_at_mut(WIDE);
                self.load_wide(at, w);
                at += WIDE;
                dst_words = rest;
            }
            if self.addr(at).is_multiple_of(WIDER) {
                let wider = dst_words.len() / WIDER * WIDER;
                let (body, rest) = dst_words.split_at_mut(wider);
                // SAFETY: as in `copy_from`'s run: in the slice, 32-byte
                // aligned, volatile only; AVX is usable.
                #[allow(unsafe_code)]
                unsafe {
                    load_wider_run(self.base.wrapping_add(at), body)
                };
                at += wider;
                dst_words = rest;
            }
        }
        let wide = dst_words.len() / WIDE * WIDE;
        if self.addr(at).is_multiple_of(WIDE) {
            let (body, rest) = dst_words.split_at_mut(wide);
            for chunk in body.chunks_exact_mut(WIDE) {
                self.load_wide(at, chunk);
                at += WIDE;
            }
            dst_words = rest;
        }
        for chunk in dst_words.chunks_exact_mut(WORD) {
            chunk.copy_from_slice(&self.load_u64(at).to_ne_bytes());
            at += WORD;
        }
        for (i, b) in dst_tail.iter_mut().enumerate().take(tail) {
            *b = self.load_u8(at + i);
        }
        Ok(())
    }

    /// Splits `offset..offset + len` (checked) into a byte head up to the
    /// first 8-byte aligned address, whole aligned words, and a byte tail.
    fn split(&self, offset: usize, len: usize) -> (usize, usize, usize) {
        let addr = (self.base as usize).wrapping_add(offset);
        let head = addr.wrapping_neg() % WORD;
        let head = head.min(len);
        let words = (len - head) / WORD;
        (head, words, len - head - words * WORD)
    }

    // The only accesses to the memory. Each is called with a range that
    // `check` (through the public callers) proved lies within the slice.

    fn load_u8(&self, offset: usize) -> u8 {
        debug_assert!(offset < self.len);
        // SAFETY: `offset < len` (checked by every caller), so the byte lies
        // in the memory `new`'s contract makes readable for 'a and reached
        // only through volatile/atomic accesses.
        #[allow(unsafe_code)]
        unsafe {
            self.base.add(offset).read_volatile()
        }
    }

    fn store_u8(&self, offset: usize, value: u8) {
        debug_assert!(offset < self.len);
        // SAFETY: as in `load_u8`; the memory is writable.
        #[allow(unsafe_code)]
        unsafe {
            self.base.add(offset).write_volatile(value)
        }
    }

    /// The address of byte `offset`.
    fn addr(&self, offset: usize) -> usize {
        (self.base as usize).wrapping_add(offset)
    }

    /// 16 bytes at the 16-byte aligned `offset` into `out` (16 bytes), one
    /// volatile vector load.
    fn load_wide(&self, offset: usize, out: &mut [u8]) {
        debug_assert!(offset + WIDE <= self.len && out.len() == WIDE);
        let p = self.base.wrapping_add(offset);
        debug_assert!((p as usize).is_multiple_of(WIDE));
        #[cfg(target_arch = "x86_64")]
        {
            use core::arch::x86_64::{__m128i, _mm_storeu_si128};
            // SAFETY: the 16 bytes lie within the slice (callers checked
            // the whole copy) at a 16-byte aligned address (`__m128i`'s
            // alignment); see `load_u8`. `out` is 16 writable bytes of
            // our own, and the unaligned store needs no alignment.
            #[allow(unsafe_code)]
            unsafe {
                let v = (p as *const __m128i).read_volatile();
                _mm_storeu_si128(out.as_mut_ptr() as *mut __m128i, v);
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            out[..WORD].copy_from_slice(&self.load_u64(offset).to_ne_bytes());
            out[WORD..].copy_from_slice(&self.load_u64(offset + WORD).to_ne_bytes());
        }
    }

    /// `data` (16 bytes) to the 16-byte aligned `offset`, one volatile
    /// vector store.
    fn store_wide(&self, offset: usize, data: &[u8]) {
        debug_assert!(offset + WIDE <= self.len && data.len() == WIDE);
        let p = self.base.wrapping_add(offset);
        debug_assert!((p as usize).is_multiple_of(WIDE));
        #[cfg(target_arch = "x86_64")]
        {
            use core::arch::x86_64::{__m128i, _mm_loadu_si128};
            // SAFETY: as in `load_wide`; the memory is writable, and
            // `data` is 16 readable bytes.
            #[allow(unsafe_code)]
            unsafe {
                let v = _mm_loadu_si128(data.as_ptr() as *const __m128i);
                (p as *mut __m128i).write_volatile(v);
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            self.store_u64(offset, word_of(&data[..WORD]));
            self.store_u64(offset + WORD, word_of(&data[WORD..]));
        }
    }

    fn load_u64(&self, offset: usize) -> u64 {
        debug_assert!(offset + WORD <= self.len);
        let p = self.base.wrapping_add(offset) as *const u64;
        debug_assert!(p.is_aligned());
        // SAFETY: the 8 bytes lie within the slice (callers checked the
        // whole copy, `split` keeps words inside it) and `split` starts
        // words at 8-byte aligned addresses; see `load_u8`.
        #[allow(unsafe_code)]
        unsafe {
            p.read_volatile()
        }
    }

    fn store_u64(&self, offset: usize, value: u64) {
        debug_assert!(offset + WORD <= self.len);
        let p = self.base.wrapping_add(offset) as *mut u64;
        debug_assert!(p.is_aligned());
        // SAFETY: as in `load_u64`; the memory is writable.
        #[allow(unsafe_code)]
        unsafe {
            p.write_volatile(value)
        }
    }
}

/// Stores `src` (a multiple of 32 bytes) to `dst` with 32-byte volatile
/// AVX stores.
///
/// # Safety
/// `dst..dst + src.len()` is writable memory reached only through volatile
/// accesses, `dst` is 32-byte aligned, and AVX is usable (`has_avx`).
#[cfg(all(target_arch = "x86_64", feature = "avx"))]
#[target_feature(enable = "avx")]
#[allow(unsafe_code)]
unsafe fn store_wider_run(dst: *mut u8, src: &[u8]) {
    use core::arch::x86_64::{__m256i, _mm256_loadu_si256};
    for (k, chunk) in src.chunks_exact(WIDER).enumerate() {
        // SAFETY: the caller's contract covers `dst + 32k..+32`, aligned;
        // `chunk` is 32 readable bytes (an unaligned load).
        unsafe {
            let v = _mm256_loadu_si256(chunk.as_ptr() as *const __m256i);
            (dst.add(k * WIDER) as *mut __m256i).write_volatile(v);
        }
    }
}

/// Loads 32-byte volatile AVX words from `src` into `dst` (a multiple of
/// 32 bytes).
///
/// # Safety
/// As [`store_wider_run`], for reading.
#[cfg(all(target_arch = "x86_64", feature = "avx"))]
#[target_feature(enable = "avx")]
#[allow(unsafe_code)]
unsafe fn load_wider_run(src: *const u8, dst: &mut [u8]) {
    use core::arch::x86_64::{__m256i, _mm256_storeu_si256};
    for (k, chunk) in dst.chunks_exact_mut(WIDER).enumerate() {
        // SAFETY: the caller's contract covers `src + 32k..+32`, aligned;
        // `chunk` is 32 writable bytes of our own.
        unsafe {
            let v = (src.add(k * WIDER) as *const __m256i).read_volatile();
            _mm256_storeu_si256(chunk.as_mut_ptr() as *mut __m256i, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::vec;
    use std::vec::Vec;

    /// Bytes 0, 1, 2, ... (mod 251, so words differ from their neighbours).
    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn bounds_are_checked_and_nothing_is_touched_outside() {
        let mut mem = [0xAAu8; 64];
        let s = VolatileSlice::from_mut(&mut mem[8..40]);
        assert_eq!(s.len(), 32);
        assert!(s.copy_from(0, &[1; 32]).is_ok());
        assert!(s.copy_from(31, &[2; 1]).is_ok());
        let err = s.copy_from(31, &[3; 2]).unwrap_err();
        assert_eq!(
            err,
            OutOfBounds {
                offset: 31,
                len: 2,
                size: 32
            }
        );
        assert!(
            s.copy_from(usize::MAX, &[3; 2]).is_err(),
            "offset + len wraps"
        );
        assert!(s.copy_to(33, &mut []).is_err());
        assert!(s.copy_to(32, &mut []).is_ok(), "empty access at the end");
        assert!(s.read_u8(32).is_err());
        assert!(s.write_u8(32, 9).is_err());
        assert!(s.subslice(16, 17).is_err());
        assert!(s.subslice(usize::MAX, 2).is_err());
        let sub = s.subslice(16, 16).unwrap();
        assert!(sub.copy_from(1, &[0; 16]).is_err());
        assert_eq!(sub.read_u8(14), Ok(1));
        assert_eq!(
            sub.read_u8(15),
            Ok(2),
            "the sub-slice ends where the slice does"
        );
        assert_eq!(s.read_u8(31), Ok(2));
        assert!(mem[..8].iter().all(|&b| b == 0xAA), "below the slice");
        assert!(mem[40..].iter().all(|&b| b == 0xAA), "above the slice");
    }

    #[test]
    fn unaligned_copies_match_a_plain_copy() {
        // Every start offset within four words and every length up to ten:
        // heads, tails, both, copies shorter than one word, and the word
        // before and after the 16-byte accesses.
        for offset in 0..32 {
            for len in 0..=80 {
                let src = pattern(len);
                let mut mem = vec![0u8; 112];
                let s = VolatileSlice::from_mut(&mut mem);
                s.copy_from(offset, &src).unwrap();
                let mut back = vec![0xFFu8; len];
                s.copy_to(offset, &mut back).unwrap();
                assert_eq!(back, src, "offset {offset} len {len}");
                let mut expected = vec![0u8; 112];
                expected[offset..offset + len].copy_from_slice(&src);
                assert_eq!(mem, expected, "offset {offset} len {len}");
            }
        }
    }

    #[test]
    fn atomics_are_copied_into_and_out_of_like_bytes() {
        use core::sync::atomic::{AtomicU64, Ordering};
        let words: Vec<AtomicU64> = (0..8).map(|_| AtomicU64::new(0)).collect();
        let s = VolatileSlice::from_atomics(&words);
        assert_eq!(s.len(), 64);
        s.copy_from(8, &pattern(40)).unwrap();
        assert_eq!(
            words[1].load(Ordering::Relaxed),
            u64::from_ne_bytes([0, 1, 2, 3, 4, 5, 6, 7])
        );
        let mut back = vec![0u8; 40];
        s.copy_to(8, &mut back).unwrap();
        assert_eq!(back, pattern(40));
        // A hint in bounds or out of them changes nothing.
        s.prefetch_for_write(0, 64);
        s.prefetch_for_write(60, 8);
        assert_eq!(words[0].load(Ordering::Relaxed), 0);
    }

    #[test]
    fn copies_of_the_wider_accesses_match_a_plain_copy() {
        // From WIDER_FROM on, 32-byte accesses where the CPU has AVX: every
        // start offset within two of them, lengths around the threshold.
        for offset in 0..64 {
            for len in [WIDER_FROM - 1, WIDER_FROM, WIDER_FROM + 1, WIDER_FROM + 45] {
                let src = pattern(len);
                let mut mem = vec![0u8; WIDER_FROM + 128];
                let s = VolatileSlice::from_mut(&mut mem);
                s.copy_from(offset, &src).unwrap();
                let mut back = vec![0xFFu8; len];
                s.copy_to(offset, &mut back).unwrap();
                assert_eq!(back, src, "offset {offset} len {len}");
                let mut expected = vec![0u8; WIDER_FROM + 128];
                expected[offset..offset + len].copy_from_slice(&src);
                assert_eq!(mem, expected, "offset {offset} len {len}");
            }
        }
    }

    #[test]
    #[cfg(all(target_arch = "x86_64", feature = "avx"))]
    fn avx_is_used_where_the_os_enabled_it() {
        assert_eq!(has_avx(), std::arch::is_x86_feature_detected!("avx"));
    }

    #[test]
    fn a_jumbo_frame_round_trips() {
        let src = pattern(16384);
        let mut mem = vec![0u8; 16384 + 3];
        let s = VolatileSlice::from_mut(&mut mem);
        s.copy_from(3, &src).unwrap();
        let mut back = vec![0u8; 16384];
        s.copy_to(3, &mut back).unwrap();
        assert_eq!(back, src);
    }

    proptest! {
        /// Any copy in, any copy out, at any offsets: what a plain copy
        /// of the same bytes into the same memory would give.
        #[test]
        fn copies_agree_with_plain_copies(
            size in 0usize..300,
            data in prop::collection::vec(any::<u8>(), 0..300),
            at in 0usize..300,
            read_at in 0usize..300,
            read_len in 0usize..300,
        ) {
            let mut mem = pattern(size);
            let mut plain = mem.clone();
            let s = VolatileSlice::from_mut(&mut mem);
            let fits = at + data.len() <= size;
            prop_assert_eq!(s.copy_from(at, &data).is_ok(), fits);
            if fits {
                plain[at..at + data.len()].copy_from_slice(&data);
            }
            let mut out = vec![0u8; read_len];
            let fits = read_at + read_len <= size;
            prop_assert_eq!(s.copy_to(read_at, &mut out).is_ok(), fits);
            if fits {
                prop_assert_eq!(&out[..], &plain[read_at..read_at + read_len]);
            } else {
                prop_assert!(out.iter().all(|&b| b == 0), "a refused copy wrote");
            }
            prop_assert_eq!(mem, plain);
        }
    }
}
