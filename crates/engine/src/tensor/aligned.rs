//! A heap buffer aligned to 64 bytes (a cache line, and what SIMD kernels and ONNX Runtime
//! prefer), handed to `Bytes` as its owner so that replies and model inputs share it.

use bytes::Bytes;
use std::alloc::{alloc, alloc_zeroed, dealloc, Layout};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};

pub const ALIGN: usize = 64;

/// Bytes of tensor data held in these buffers (stored tensors, and those of runs in flight),
/// for INFO memory's `used_memory_tensors`.
pub static TENSOR_BYTES: AtomicUsize = AtomicUsize::new(0);

pub struct AlignedBuf {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the buffer is uniquely owned plain bytes.
unsafe impl Send for AlignedBuf {}
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    fn layout(len: usize) -> Layout {
        Layout::from_size_align(len.max(1), ALIGN).expect("valid layout")
    }

    /// A zero-filled buffer of `len` bytes.
    pub fn zeroed(len: usize) -> AlignedBuf {
        let layout = Self::layout(len);
        // SAFETY: the layout has non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        let ptr = NonNull::new(ptr).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        TENSOR_BYTES.fetch_add(len, Ordering::Relaxed);
        AlignedBuf { ptr, len }
    }

    /// A buffer for `fill` to write in full, in order (no zeroing pass: for large tensors that
    /// would touch every page twice). Only `fill` sees it before it is complete.
    pub fn filled(len: usize, fill: impl FnOnce(&mut Writer<'_>)) -> AlignedBuf {
        let layout = Self::layout(len);
        // SAFETY: the layout has non-zero size.
        let ptr = unsafe { alloc(layout) };
        let ptr = NonNull::new(ptr).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        TENSOR_BYTES.fetch_add(len, Ordering::Relaxed);
        let mut buf = AlignedBuf { ptr, len };
        let mut w = Writer {
            buf: &mut buf,
            at: 0,
        };
        fill(&mut w);
        let written = w.at;
        assert_eq!(written, len, "aligned buffer filled in full");
        buf
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: ptr is valid for len initialised bytes.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: ptr is valid for len bytes and uniquely borrowed.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// Hands the buffer to a `Bytes`, which keeps it (aligned) until the last handle drops.
    pub fn into_bytes(self) -> Bytes {
        Bytes::from_owner(self)
    }
}

/// Appends bytes to an [`AlignedBuf`] being filled; it cannot write past the end.
pub struct Writer<'a> {
    buf: &'a mut AlignedBuf,
    at: usize,
}

impl Writer<'_> {
    pub fn put(&mut self, bytes: &[u8]) {
        assert!(
            self.at + bytes.len() <= self.buf.len,
            "write past the end of an aligned buffer"
        );
        // SAFETY: in bounds (checked above); the source cannot overlap a fresh allocation.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.buf.ptr.as_ptr().add(self.at),
                bytes.len(),
            )
        };
        self.at += bytes.len();
    }
}

impl AsRef<[u8]> for AlignedBuf {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        TENSOR_BYTES.fetch_sub(self.len, Ordering::Relaxed);
        // SAFETY: allocated in `zeroed` with the same layout.
        unsafe { dealloc(self.ptr.as_ptr(), Self::layout(self.len)) }
    }
}
