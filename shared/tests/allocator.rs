//! mimalloc's purge delay is the option `return_freed_memory_at_once` sets: in a fresh process
//! (no other test here) the option at `MI_OPTION_PURGE_DELAY` has the purge delay's documented
//! default in mimalloc v3's `options.c`, 1000 ms, which its neighbours (14: 1, 16: 0) do
//! not have; after the call it is 0.

use libmimalloc_sys::mi_option_get;
use pipeline::MI_OPTION_PURGE_DELAY;

#[test]
fn the_purge_delay_is_the_option_set_and_becomes_zero() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: reads integer options.
        let (before, own, after) = unsafe {
            (
                mi_option_get(MI_OPTION_PURGE_DELAY - 1),
                mi_option_get(MI_OPTION_PURGE_DELAY),
                mi_option_get(MI_OPTION_PURGE_DELAY + 1),
            )
        };
        assert_eq!(own, 1000, "mimalloc v3's default purge delay is 1000 ms");
        assert_ne!(before, own);
        assert_ne!(after, own);
    }
    pipeline::return_freed_memory_at_once();
    // SAFETY: as above.
    assert_eq!(unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) }, 0);
}
