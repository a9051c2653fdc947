//! VPC Flow Logs' Parquet delivery, read as the text format it mirrors: a
//! header line of the column names (`account_id` is the text header's
//! `account-id`; the VPC reader knows both) and one space-separated line per
//! row, nulls as `-`. The VPC parser then does all validation, so Parquet
//! and text logs are judged by the same rules and counted the same way.

use std::io::{self, Read};

use bytes::Bytes;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::reader::RowIter;
use parquet::record::Field;

/// Parquet files start (and end) with this.
pub const MAGIC: &[u8] = b"PAR1";

/// Rows of a Parquet file as text lines; a `Read`, so every reader of text
/// input takes it as it is.
pub struct ParquetText {
    rows: RowIter<'static>,
    buf: Vec<u8>,
    pos: usize,
    done: bool,
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("not a readable Parquet file: {e}"))
}

impl ParquetText {
    /// Parquet needs its footer first, so the whole file is in memory.
    pub fn new(data: Vec<u8>) -> io::Result<ParquetText> {
        let size = data.len() as u64;
        crate::parquet_pages::check_footer(&data).map_err(invalid)?;
        let bytes = Bytes::from(data);
        let reader = guard(|| SerializedFileReader::new(bytes.clone()).map_err(invalid))?;
        // parquet 60 asserts on column chunks at a negative offset or of a
        // negative size (`ColumnChunkMetaData::byte_range`, a panic `guard`
        // would catch, found by the `parquet` fuzz target): refuse them here
        // with a reason, as well as chunks that end past the file.
        for (g, rg) in reader.metadata().row_groups().iter().enumerate() {
            for c in rg.columns() {
                let start = c.dictionary_page_offset().unwrap_or_else(|| c.data_page_offset());
                let len = c.compressed_size();
                let inside = u64::try_from(start)
                    .ok()
                    .zip(u64::try_from(len).ok())
                    .is_some_and(|(s, l)| s.checked_add(l).is_some_and(|end| end <= size));
                if !inside {
                    return Err(invalid(format!(
                        "row group {g}, column {}: a chunk of {len} bytes at offset {start} lies outside the {size}-byte file",
                        c.column_path()
                    )));
                }
                // Inside: `start` and `len` are non-negative and end in the file.
                let (s, l) = (start as usize, len as usize);
                crate::parquet_pages::check_chunk(&bytes[s..s + l])
                    .map_err(|e| invalid(format!("row group {g}, column {}: {e}", c.column_path())))?;
            }
        }
        let schema = reader.metadata().file_metadata().schema_descr();
        let mut buf = Vec::new();
        for (i, c) in schema.columns().iter().enumerate() {
            if i > 0 {
                buf.push(b' ');
            }
            push_clean(&mut buf, c.name());
        }
        buf.push(b'\n');
        let rows = RowIter::from_file_into(Box::new(reader));
        Ok(ParquetText { rows, buf, pos: 0, done: false })
    }

    fn refill(&mut self) -> io::Result<()> {
        self.buf.clear();
        self.pos = 0;
        while self.buf.len() < 1 << 16 {
            let rows = &mut self.rows;
            let next = guard(|| Ok(rows.next()));
            let Some(row) = next.inspect_err(|_| self.done = true)? else {
                self.done = true;
                break;
            };
            let row = row.map_err(invalid)?;
            for (i, (_, f)) in row.get_column_iter().enumerate() {
                if i > 0 {
                    self.buf.push(b' ');
                }
                write_field(&mut self.buf, f);
            }
            self.buf.push(b'\n');
        }
        Ok(())
    }
}

/// Runs a step of the Parquet decoder, turning a panic into an error: the
/// decoder is a dependency and the file may be hostile; one bad file must
/// fail alone, not take the process down.
fn guard<T>(f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err(invalid("the decoder failed on malformed data")))
}

/// A string value with whitespace replaced, so no value can split a line or
/// shift the columns after it; an empty value is the format's `-`.
fn push_clean(buf: &mut Vec<u8>, s: &str) {
    if s.is_empty() {
        buf.push(b'-');
    }
    buf.extend(s.bytes().map(|b| if b.is_ascii_whitespace() { b'_' } else { b }));
}

fn write_field(buf: &mut Vec<u8>, f: &Field) {
    use std::io::Write as _;
    let _ = match f {
        Field::Null => {
            buf.push(b'-');
            Ok(())
        }
        Field::Str(s) => {
            push_clean(buf, s);
            Ok(())
        }
        Field::Bytes(b) => {
            push_clean(buf, &String::from_utf8_lossy(b.data()));
            Ok(())
        }
        Field::Byte(v) => write!(buf, "{v}"),
        Field::Short(v) => write!(buf, "{v}"),
        Field::Int(v) => write!(buf, "{v}"),
        Field::Long(v) => write!(buf, "{v}"),
        Field::UByte(v) => write!(buf, "{v}"),
        Field::UShort(v) => write!(buf, "{v}"),
        Field::UInt(v) => write!(buf, "{v}"),
        Field::ULong(v) => write!(buf, "{v}"),
        // Timestamps become epoch seconds, as the text format writes `start`/`end`.
        Field::TimestampMillis(v) => write!(buf, "{}", v.div_euclid(1000)),
        Field::TimestampMicros(v) => write!(buf, "{}", v.div_euclid(1_000_000)),
        other => {
            push_clean(buf, &other.to_string());
            Ok(())
        }
    };
}

impl std::fmt::Debug for ParquetText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetText").field("buffered", &(self.buf.len() - self.pos)).field("done", &self.done).finish()
    }
}

impl Read for ParquetText {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            if self.done {
                return Ok(0);
            }
            self.refill()?;
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
