//! Reader for the IDX format of MNIST-like datasets, raw or gzip-compressed.
//!
//! An IDX file is a big-endian header — a magic number `0x0000TTNN` (type `TT`, `0x08` for
//! unsigned bytes; `NN` dimensions) followed by `NN` 32-bit dimensions — and then the data,
//! row-major. Gzip input is recognised by its magic bytes `0x1f 0x8b`, never by the file
//! name.

use std::fs::File;
use std::io::{self, BufReader, Cursor, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use super::DataError;

/// The largest data size (in bytes) a header may announce; larger ones are rejected as absurd.
pub const MAX_BYTES: u64 = 1 << 31;

/// Which IDX array is expected: this fixes the magic number and the number of dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdxKind {
    /// Unsigned-byte images: magic `0x00000803`, dimensions `[count, rows, cols]`.
    Images,
    /// Unsigned-byte labels: magic `0x00000801`, dimensions `[count]`.
    Labels,
}

impl IdxKind {
    /// The magic number of this kind.
    pub fn magic(self) -> u32 {
        0x0800 | self.ndims() as u32
    }

    /// The number of dimensions of this kind.
    pub fn ndims(self) -> usize {
        match self {
            IdxKind::Images => 3,
            IdxKind::Labels => 1,
        }
    }

    /// What the data bytes are, as used in messages ("pixels" or "labels").
    pub fn what(self) -> &'static str {
        match self {
            IdxKind::Images => "pixels",
            IdxKind::Labels => "labels",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            IdxKind::Images => "u8 images, 3 dimensions",
            IdxKind::Labels => "u8 labels, 1 dimension",
        }
    }
}

/// A parsed IDX array of unsigned bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// The dimensions, outermost first (e.g. `[60000, 28, 28]`).
    pub dims: Vec<usize>,
    /// The data, row-major; its length is the product of `dims`.
    pub data: Vec<u8>,
}

/// Wraps `reader` in a gzip decoder if its first two bytes are `0x1f 0x8b`; otherwise returns
/// it unchanged (the peeked bytes are put back in front).
pub fn decompressing_reader<'a, R: Read + 'a>(mut reader: R) -> io::Result<Box<dyn Read + 'a>> {
    let mut head = [0u8; 2];
    let n = read_up_to(&mut reader, &mut head)?;
    let chained = Cursor::new(head[..n].to_vec()).chain(reader);
    if n == 2 && head == [0x1f, 0x8b] {
        Ok(Box::new(MultiGzDecoder::new(chained)))
    } else {
        Ok(Box::new(chained))
    }
}

/// Reads until `buf` is full or the input ends; returns the number of bytes read.
fn read_up_to<R: Read + ?Sized>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// How many bytes after the announced data are read to report trailing garbage; the rest of
/// an oversized (or endless) stream is never inflated.
pub const TRAILING_PROBE: u64 = 1 << 16;

/// An IDX input whose header has been read and checked, its data not yet: callers can compare
/// the dimensions with the companion file or the expected image size before inflating the
/// body (a small gzip can announce and inflate to gigabytes).
pub struct IdxReader<'a> {
    reader: Box<dyn Read + 'a>,
    path: PathBuf,
    kind: IdxKind,
    dims: Vec<usize>,
    size: u64,
}

impl std::fmt::Debug for IdxReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdxReader")
            .field("path", &self.path)
            .field("kind", &self.kind)
            .field("dims", &self.dims)
            .finish_non_exhaustive()
    }
}

impl<'a> IdxReader<'a> {
    /// Reads and checks the header of an IDX array of the given kind from `reader` (raw or
    /// gzip, told apart by the magic bytes). `path` only names the input in error messages.
    ///
    /// Checks the magic number, the number of dimensions, a truncated header and absurd sizes
    /// (more than [`MAX_BYTES`]).
    pub fn new<R: Read + 'a>(reader: R, path: &Path, kind: IdxKind) -> Result<Self, DataError> {
        let io_err = |e| DataError::io(path, e);
        let mut r = decompressing_reader(reader).map_err(io_err)?;

        let header_len = 4 + 4 * kind.ndims() as u64;
        let mut magic = [0u8; 4];
        let n = read_up_to(&mut r, &mut magic).map_err(io_err)?;
        if n < 4 {
            return Err(DataError::TruncatedHeader {
                path: path.into(),
                expected: header_len,
                got: n as u64,
            });
        }
        let found = u32::from_be_bytes(magic);
        if found >> 8 != 0x08 {
            return Err(DataError::BadMagic {
                path: path.into(),
                expected: kind.magic(),
                found,
                what: kind.describe(),
            });
        }
        let ndims = (found & 0xff) as usize;
        if ndims != kind.ndims() {
            return Err(DataError::WrongDims {
                path: path.into(),
                expected: kind.ndims(),
                found: ndims,
            });
        }

        let mut raw_dims = vec![0u8; 4 * ndims];
        let n = read_up_to(&mut r, &mut raw_dims).map_err(io_err)?;
        if n < raw_dims.len() {
            return Err(DataError::TruncatedHeader {
                path: path.into(),
                expected: header_len,
                got: 4 + n as u64,
            });
        }
        let dims32: Vec<u32> = raw_dims
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let size = dims32
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(u64::from(d)))
            .filter(|&s| s <= MAX_BYTES);
        let Some(size) = size else {
            return Err(DataError::TooLarge {
                path: path.into(),
                dims: dims32,
                limit: MAX_BYTES,
            });
        };
        Ok(IdxReader {
            reader: r,
            path: path.into(),
            kind,
            dims: dims32.iter().map(|&d| d as usize).collect(),
            size,
        })
    }

    /// The dimensions the header announces, outermost first.
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// The number of data bytes the header announces.
    pub fn data_len(&self) -> u64 {
        self.size
    }

    /// The file named in error messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the data the header announces, and no more than [`TRAILING_PROBE`] bytes after
    /// it to detect trailing garbage: inflation is capped by the header.
    pub fn read_data(self) -> Result<IdxArray, DataError> {
        let IdxReader {
            mut reader,
            path,
            kind,
            dims,
            size,
        } = self;
        let io_err = |e| DataError::io(&path, e);
        // Grow the buffer as data arrives rather than trusting the header for the allocation.
        let mut data = Vec::with_capacity(size.min(1 << 26) as usize);
        (&mut reader)
            .take(size)
            .read_to_end(&mut data)
            .map_err(io_err)?;
        if (data.len() as u64) < size {
            return Err(DataError::Truncated {
                path,
                what: kind.what(),
                expected: size,
                got: data.len() as u64,
            });
        }
        let extra =
            io::copy(&mut (&mut reader).take(TRAILING_PROBE), &mut io::sink()).map_err(io_err)?;
        if extra > 0 {
            return Err(DataError::TrailingBytes {
                path,
                what: kind.what(),
                expected: size,
                extra,
                at_least: extra == TRAILING_PROBE,
            });
        }
        Ok(IdxArray { dims, data })
    }
}

/// Parses one IDX array of the given kind from `reader` (raw or gzip, told apart by the magic
/// bytes). `path` only names the input in error messages, so in-memory bytes can be parsed
/// too.
///
/// Checks the magic number, the number of dimensions, a truncated header, truncated data,
/// trailing bytes after the data and absurd sizes (more than [`MAX_BYTES`]); see
/// [`IdxReader`] to look at the header before reading the data.
pub fn parse_idx<R: Read>(reader: R, path: &Path, kind: IdxKind) -> Result<IdxArray, DataError> {
    IdxReader::new(reader, path, kind)?.read_data()
}

/// Opens the IDX file at `path` (raw or gzip, whatever its name) and reads its header.
pub fn open_idx_file(path: &Path, kind: IdxKind) -> Result<IdxReader<'static>, DataError> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    IdxReader::new(BufReader::with_capacity(1 << 16, file), path, kind)
}

/// Opens and parses the IDX file at `path` (raw or gzip, whatever its name).
pub fn read_idx_file(path: &Path, kind: IdxKind) -> Result<IdxArray, DataError> {
    open_idx_file(path, kind)?.read_data()
}
