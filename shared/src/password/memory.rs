//! Argon2's working memory (19 MiB): mapped once per process and reused by every hash.
//!
//! Allocated per hash, as `argon2`'s own `hash_password` does, the memory comes fresh from the
//! kernel every time, and faulting in its 4,864 pages cost ~11 ms of a ~25 ms hash on the
//! bench machine, more than the hashing itself. Kept, a warm function hashes in ~14 ms.
//! The mapping asks for transparent huge pages (`MADV_HUGEPAGE`): where the kernel grants them
//! (`/sys/kernel/mm/transparent_hugepage/enabled` is `always` or `madvise`) even the first hash
//! of a process faults ten 2 MiB pages instead, so a cold start hashes about as fast as a warm
//! function; where it does not, the advice is ignored and only the reuse remains.
//! After every hash the memory is zeroed, so its 19 MiB of password-derived blocks do not
//! outlive the hash (as freed heap memory would); `argon2`'s own small stack temporaries are
//! not covered.

use std::io;
use std::ptr::NonNull;
use std::sync::Mutex;

use argon2::Block;

const HUGE_PAGE: usize = 2 << 20;

/// Mappings kept between hashes: a Lambda environment hashes one request at a time; the local
/// gateway may hash a few at once (the extra ones are unmapped after use).
const KEEP: usize = 2;

static KEPT: Kept = Kept(Mutex::new(Vec::new()));

/// Runs `f` on `blocks` blocks of zeroed memory, mapped once and kept for the next call.
pub fn with_blocks<T>(blocks: usize, f: impl FnOnce(&mut [Block]) -> T) -> io::Result<T> {
    KEPT.with_blocks(blocks, f)
}

/// Mappings between uses.
struct Kept(Mutex<Vec<Memory>>);

impl Kept {
    fn with_blocks<T>(&self, blocks: usize, f: impl FnOnce(&mut [Block]) -> T) -> io::Result<T> {
        let kept = self
            .0
            .lock()
            .ok()
            .and_then(|mut kept| kept.pop())
            .filter(|memory| memory.len == blocks);
        let mut memory = match kept {
            Some(memory) => memory,
            None => Memory::map(blocks)?,
        };
        let result = f(memory.blocks());
        memory.zero();
        if let Ok(mut kept) = self.0.lock()
            && kept.len() < KEEP
        {
            kept.push(memory);
        }
        Ok(result)
    }
}

/// An anonymous private mapping holding `len` blocks from a 2 MiB boundary.
struct Memory {
    map: NonNull<libc::c_void>,
    map_len: usize,
    blocks: NonNull<Block>,
    len: usize,
}

// SAFETY: a `Memory` owns its mapping; no other pointer into it exists, so moving it to
// another thread moves the only access.
unsafe impl Send for Memory {}

impl Memory {
    fn map(len: usize) -> io::Result<Self> {
        let too_big = || io::Error::new(io::ErrorKind::OutOfMemory, "argon2 memory size");
        let bytes = len
            .checked_mul(size_of::<Block>())
            .filter(|&b| b > 0)
            .ok_or_else(too_big)?;
        let rounded = bytes
            .checked_next_multiple_of(HUGE_PAGE)
            .ok_or_else(too_big)?;
        // One huge page more than needed, so that a 2 MiB boundary to start from lies inside.
        let map_len = rounded.checked_add(HUGE_PAGE).ok_or_else(too_big)?;
        // SAFETY: a new anonymous private mapping without an address hint: it aliases nothing.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let map = NonNull::new(map).ok_or_else(io::Error::last_os_error)?;
        let offset = (map.as_ptr() as usize).next_multiple_of(HUGE_PAGE) - map.as_ptr() as usize;
        // SAFETY: `offset < HUGE_PAGE` and `offset + rounded <= map_len`: inside the mapping.
        let start = unsafe { map.byte_add(offset) };
        #[cfg(target_os = "linux")]
        {
            // SAFETY: advice on a page-aligned range inside the mapping; it changes no
            // contents. Refused (no THP in this kernel), the memory just stays in 4 KiB pages.
            let _ = unsafe { libc::madvise(start.as_ptr(), rounded, libc::MADV_HUGEPAGE) };
        }
        Ok(Self {
            map,
            map_len,
            blocks: start.cast(),
            len,
        })
    }

    fn blocks(&mut self) -> &mut [Block] {
        // SAFETY: `len` blocks from `blocks` lie inside the mapping, which is readable and
        // writable, aligned to 2 MiB (more than a `Block` needs), and holds only valid `Block`s
        // (the kernel zero-fills it; a `Block` is plain `u64`s). `&mut self` makes the slice
        // the only access for its lifetime.
        unsafe { std::slice::from_raw_parts_mut(self.blocks.as_ptr(), self.len) }
    }

    /// One `memset`, even in unoptimised builds (`make run`, tests).
    fn zero(&mut self) {
        // SAFETY: writes `len` blocks' bytes inside the mapping (see `blocks`); all-zero bytes
        // are a valid `Block`.
        unsafe { std::ptr::write_bytes(self.blocks.as_ptr(), 0, self.len) }
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping `map` created; no slice of it outlives `self`.
        unsafe {
            libc::munmap(self.map.as_ptr(), self.map_len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_zero(blocks: &[Block]) -> bool {
        blocks.iter().all(|b| b.as_ref().iter().all(|w| *w == 0))
    }

    #[test]
    fn memory_is_zeroed_between_uses_and_kept_for_the_next() {
        let kept = Kept(Mutex::new(Vec::new()));
        let len = 3000;
        let first = kept
            .with_blocks(len, |blocks| {
                assert_eq!(blocks.len(), len);
                assert!(all_zero(blocks), "fresh from the kernel");
                blocks[len - 1].as_mut()[127] = 0xdead_beef;
                blocks.as_ptr() as usize
            })
            .unwrap();
        assert_eq!(first % HUGE_PAGE, 0, "starts on a 2 MiB boundary");
        let second = kept
            .with_blocks(len, |blocks| {
                assert!(all_zero(blocks), "zeroed after use");
                blocks.as_ptr() as usize
            })
            .unwrap();
        assert_eq!(first, second, "the same mapping again");
        let other = kept.with_blocks(10, |blocks| blocks.len()).unwrap();
        assert_eq!(other, 10, "another size gets its own mapping");
    }

    #[test]
    fn no_more_than_keep_mappings_are_kept() {
        let kept = Kept(Mutex::new(Vec::new()));
        // Hold KEEP + 1 at once (nested, as concurrent hashes would), then count what stays.
        kept.with_blocks(4, |_| {
            kept.with_blocks(4, |_| kept.with_blocks(4, |_| ()).unwrap())
                .unwrap()
        })
        .unwrap();
        assert_eq!(kept.0.lock().unwrap().len(), KEEP);
    }
}
