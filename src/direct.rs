//! Files written around the page cache (`O_DIRECT` on Linux). A run writes its outputs and its
//! parse cache once and reads little of them back (the flat `bi/` copies read the partitions'
//! column chunks once); written through the page cache, every 4 KiB of them took a fresh page of
//! memory first, and on the bench machine (a VM whose host takes back freed guest memory) a fresh
//! page costs ~2-3 µs: writing was ~5% of a 10M-line run's CPU.
//! Written directly, the bytes go from this process's buffer to the device. The whole blocks go
//! directly, the last partial block through the page cache; where the file system refuses
//! `O_DIRECT` (at open or at a write) the file is written the ordinary way.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

/// The alignment `O_DIRECT` asks of buffers, offsets and lengths (a page covers every device's
/// logical block).
const BLOCK: usize = 4096;
/// Bytes gathered before each direct write.
const CHUNK: usize = 1 << 20;

/// A new file written directly; [`DirectFile::finish`] writes what is left and returns the file.
pub struct DirectFile {
    file: File,
    /// `chunk + BLOCK` bytes, of which `chunk` from `start` are block-aligned.
    buf: Vec<u8>,
    start: usize,
    len: usize,
    /// Bytes gathered before each direct write: [`CHUNK`], or less for a small file.
    chunk: usize,
    direct: bool,
}

impl DirectFile {
    /// Creates (or truncates) `path`.
    pub fn create(path: &Path) -> io::Result<DirectFile> {
        DirectFile::with_chunk(path, CHUNK)
    }

    /// `chunk`: a multiple of [`BLOCK`].
    fn with_chunk(path: &Path, chunk: usize) -> io::Result<DirectFile> {
        let (file, direct) = open(path)?;
        let buf = vec![0u8; chunk + BLOCK];
        let start = buf.as_ptr().align_offset(BLOCK);
        Ok(DirectFile { file, buf, start, len: 0, chunk, direct })
    }

    /// Writes the whole blocks gathered so far, keeping the partial block's bytes.
    fn write_blocks(&mut self) -> io::Result<()> {
        let whole = if self.direct { self.len / BLOCK * BLOCK } else { self.len };
        let mut done = 0;
        while done < whole {
            match self.file.write(&self.buf[self.start + done..self.start + whole]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // Accepted at open, refused at a write (some file systems decide per write, and
                // a short write leaves the rest unaligned): the rest goes the ordinary way.
                Err(e) if self.direct && e.raw_os_error() == Some(libc::EINVAL) => self.stop_direct()?,
                Err(e) => return Err(e),
            }
        }
        self.buf.copy_within(self.start + whole..self.start + self.len, self.start);
        self.len -= whole;
        Ok(())
    }

    /// Writes the rest (the last partial block through the page cache) and returns the file.
    pub fn finish(mut self) -> io::Result<File> {
        self.write_blocks()?;
        if self.len > 0 && self.direct {
            self.stop_direct()?;
        }
        self.write_blocks()?;
        Ok(self.file)
    }

    /// Writes the ordinary way from here on (clears `O_DIRECT` on the open file).
    fn stop_direct(&mut self) -> io::Result<()> {
        self.direct = false;
        clear_direct(&self.file)
    }
}

impl Write for DirectFile {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(self.chunk - self.len);
        self.buf[self.start + self.len..self.start + self.len + n].copy_from_slice(&data[..n]);
        self.len += n;
        if self.len == self.chunk {
            self.write_blocks()?;
        }
        Ok(n)
    }

    /// Writes the whole blocks; up to a block's bytes wait for more data or [`DirectFile::finish`].
    fn flush(&mut self) -> io::Result<()> {
        self.write_blocks()
    }
}

/// Writes `pieces` one after the other to a new file at `path`, directly; less than a block
/// the ordinary way (it would go through the page cache anyway).
pub fn write(path: &Path, pieces: &[&[u8]]) -> io::Result<()> {
    let len: usize = pieces.iter().map(|p| p.len()).sum();
    if len < BLOCK {
        return std::fs::write(path, pieces.concat());
    }
    let mut f = DirectFile::with_chunk(path, len.next_multiple_of(BLOCK).min(CHUNK))?;
    pieces.iter().try_for_each(|p| f.write_all(p))?;
    f.finish().map(drop)
}

#[cfg(target_os = "linux")]
fn open(path: &Path) -> io::Result<(File, bool)> {
    use std::os::unix::fs::OpenOptionsExt;
    let options = || {
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create(true).truncate(true);
        o
    };
    match options().custom_flags(libc::O_DIRECT).open(path) {
        Ok(f) => Ok((f, true)),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => options().open(path).map(|f| (f, false)),
        Err(e) => Err(e),
    }
}

#[cfg(not(target_os = "linux"))]
fn open(path: &Path) -> io::Result<(File, bool)> {
    File::create(path).map(|f| (f, false))
}

#[cfg(target_os = "linux")]
fn clear_direct(file: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: F_GETFL and F_SETFL read and set this open file's status flags; no pointers.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_DIRECT) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn clear_direct(_: &File) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes that differ at every offset, so a block written twice or skipped shows.
    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 4093) as u8).collect()
    }

    #[test]
    fn files_hold_exactly_the_bytes_written_in_any_pieces() {
        let dir = tempfile::tempdir().unwrap();
        let sizes = [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, CHUNK - 1, CHUNK, CHUNK + BLOCK + 3, 3 * CHUNK + 17];
        for (k, &n) in sizes.iter().enumerate() {
            let bytes = pattern(n);
            for piece in [1 << 30, 4095, 65_537] {
                let path = dir.path().join(format!("{k}-{piece}"));
                let mut f = DirectFile::create(&path).unwrap();
                for (i, p) in bytes.chunks(piece).enumerate() {
                    f.write_all(p).unwrap();
                    if i % 3 == 1 {
                        f.flush().unwrap();
                    }
                }
                f.finish().unwrap();
                assert!(std::fs::read(&path).unwrap() == bytes, "{n} bytes in pieces of {piece}");
            }
        }
        // Whole buffers, each through a chunk sized to it, in one piece or three.
        for (k, &n) in sizes.iter().enumerate() {
            let (bytes, path) = (pattern(n), dir.path().join(format!("whole-{k}")));
            write(&path, &[&bytes]).unwrap();
            assert!(std::fs::read(&path).unwrap() == bytes, "{n} bytes at once");
            let (a, rest) = bytes.split_at(n / 3);
            let (b, c) = rest.split_at(rest.len() / 2);
            write(&path, &[a, b, c]).unwrap();
            assert!(std::fs::read(&path).unwrap() == bytes, "{n} bytes in three pieces");
        }
    }

    /// On ext4 and XFS, which honour `O_DIRECT` (others may take the flag and still buffer, as
    /// btrfs does for compressed files), the whole blocks never enter the page cache: of a 4 MiB
    /// file only the last, partial block's page is resident.
    #[cfg(target_os = "linux")]
    #[test]
    fn whole_blocks_bypass_the_page_cache_on_ext4_and_xfs() {
        use std::os::fd::AsRawFd;
        const EXT4: libc::c_long = 0xEF53;
        const XFS: libc::c_long = 0x5846_5342;
        let dir = tempfile::tempdir().unwrap();
        let c_dir = std::ffi::CString::new(dir.path().as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: statfs fills the zeroed struct for a NUL-terminated path.
        let fs_type = unsafe {
            let mut st: libc::statfs = std::mem::zeroed();
            assert_eq!(libc::statfs(c_dir.as_ptr(), &mut st), 0);
            st.f_type as libc::c_long
        };
        if ![EXT4, XFS].contains(&fs_type) {
            eprintln!("{}: file system {fs_type:#x}, not ext4 or XFS; nothing to check", dir.path().display());
            return;
        }
        let path = dir.path().join("out");
        let mut f = DirectFile::create(&path).unwrap();
        assert!(f.direct, "ext4 and XFS take O_DIRECT");
        let n = 4 * CHUNK + 100;
        f.write_all(&pattern(n)).unwrap();
        f.finish().unwrap();
        let file = File::open(&path).unwrap();
        let pages = n.div_ceil(BLOCK);
        let mut resident = vec![0u8; pages];
        // SAFETY: maps the file read-only for the length written, asks which of its pages are
        // resident (one byte per page into `resident`, which has one per page), and unmaps it.
        let rc = unsafe {
            let map = libc::mmap(std::ptr::null_mut(), n, libc::PROT_READ, libc::MAP_SHARED, file.as_raw_fd(), 0);
            assert_ne!(map, libc::MAP_FAILED);
            let rc = libc::mincore(map, n, resident.as_mut_ptr());
            libc::munmap(map, n);
            rc
        };
        assert_eq!(rc, 0);
        let cached = resident.iter().filter(|&&r| r & 1 == 1).count();
        assert!(cached <= 1, "{cached} of {pages} pages in the page cache");
        assert!(std::fs::read(&path).unwrap() == pattern(n));
    }
}
