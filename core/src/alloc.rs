//! The allocator of Octo's binaries: mimalloc, with one setting changed.
//!
//! mimalloc because the log, the projections and the codecs allocate many small, short-lived
//! values, and it spends measurably less time on them than the system allocator (`octo-bench
//! rebuild`). Each binary declares it with
//! `#[global_allocator] static ALLOCATOR: octo_core::alloc::Allocator = octo_core::alloc::Allocator;`
//! and calls [`tune`] first thing in `main`.

/// The global allocator type.
pub use mimalloc::MiMalloc as Allocator;

/// `mi_option_purge_delay` in mimalloc v3's `mimalloc.h` (option 15: the Rust binding names the
/// options around it but not this one). `purge_delay_is_option_fifteen` checks it.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Milliseconds memory must stay free before mimalloc returns it to the OS.
pub const PURGE_DELAY_MS: std::ffi::c_long = 60_000;

/// Makes mimalloc return memory to the OS once it has stayed free for [`PURGE_DELAY_MS`], not one
/// second (its default). A server's working set is freed between requests: reading a whole
/// 10,000-message conversation allocates and frees some 30 MB each time, so at one second each
/// purge handed back pages that the next request faulted in again (with transparent huge pages,
/// split and zeroed), and those requests took 1.5 to 7 times the median (`octo-bench hstry`).
#[allow(unsafe_code)]
pub fn tune() {
    // SAFETY: `mi_option_set` only stores the option's value, and any delay is a valid one.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, PURGE_DELAY_MS) };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// mimalloc v3's default purge delay is 1,000 ms, and no other option defaults to that.
    #[test]
    #[allow(unsafe_code)]
    fn purge_delay_is_option_fifteen() {
        // SAFETY: reads an option's value.
        let before = unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) };
        assert_eq!(before, 1_000, "option {PURGE_DELAY} is not the purge delay");
        tune();
        // SAFETY: as above.
        let after = unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) };
        assert_eq!(after, PURGE_DELAY_MS);
    }
}
