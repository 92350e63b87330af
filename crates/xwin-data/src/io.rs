//! Streaming readers and crash-safe writers for JSON Lines and JSON-array files (optionally
//! gzip-compressed). Records are handed over one at a time; no file is held in memory whole.

use crate::error::{DataError, FieldError, Location, Result};
use serde::de::{DeserializeOwned, DeserializeSeed, SeqAccess, Visitor};
use serde::{Deserializer, Serialize};
use serde_json::Value;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// What to do with a record that does not parse.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Skip bad records (counted and logged) instead of failing on the first one.
    pub skip_bad: bool,
}

/// Counts of a finished read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadReport {
    pub records: usize,
    pub skipped: usize,
    /// The first few skip reasons, for the user.
    pub first_errors: Vec<String>,
}

impl ReadReport {
    fn skip(&mut self, error: DataError) {
        tracing::warn!("skipping bad record: {error}");
        self.skipped += 1;
        if self.first_errors.len() < 10 {
            self.first_errors.push(error.to_string());
        }
    }
}

fn open(path: &Path) -> Result<Box<dyn BufRead>> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    Ok(Box::new(BufReader::with_capacity(1 << 16, reader)))
}

/// `.jsonl`/`.jsonl.gz` are JSON Lines; `.json`/`.json.gz` a JSON array or a single object.
fn is_json_lines(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    name.ends_with(".jsonl") || name.ends_with(".ndjson")
}

/// Calls `f` for each JSON value of the file with its location. A value `f` rejects (or one
/// that is not JSON) fails the read, or is skipped and counted with `skip_bad`.
pub fn for_each_value(
    path: &Path,
    options: ReadOptions,
    mut f: impl FnMut(Value, Location) -> std::result::Result<(), FieldError>,
) -> Result<ReadReport> {
    let mut report = ReadReport::default();
    let mut handle =
        |value: std::result::Result<Value, FieldError>, loc: Location, report: &mut ReadReport| {
            match value.and_then(|v| f(v, loc)) {
                Ok(()) => {
                    report.records += 1;
                    Ok(())
                }
                Err(e) if options.skip_bad => {
                    report.skip(e.at(path, loc));
                    Ok(())
                }
                Err(e) => Err(e.at(path, loc)),
            }
        };
    let mut reader = open(path)?;
    if is_json_lines(path) {
        let mut line = String::new();
        let mut number = 0;
        loop {
            line.clear();
            let n = reader
                .read_line(&mut line)
                .map_err(|e| DataError::io(path, e))?;
            if n == 0 {
                break;
            }
            number += 1;
            if line.trim().is_empty() {
                continue;
            }
            let value = serde_json::from_str::<Value>(&line)
                .map_err(|e| FieldError::new("<record>", format!("invalid JSON: {e}")));
            handle(value, Location::Line(number), &mut report)?;
        }
        return Ok(report);
    }
    // A JSON document: stream the elements of a top-level array, or take a single object.
    let mut first = [0u8; 1];
    loop {
        let buf = reader.fill_buf().map_err(|e| DataError::io(path, e))?;
        match buf.first() {
            Some(b) if b.is_ascii_whitespace() => reader.consume(1),
            Some(b) => {
                first[0] = *b;
                break;
            }
            None => return Ok(report),
        }
    }
    let mut de = serde_json::Deserializer::from_reader(reader);
    if first[0] == b'[' {
        let mut failure: Option<DataError> = None;
        let seed = ArraySeed {
            each: &mut |value: Value, index: usize| {
                if failure.is_none()
                    && let Err(e) = handle(Ok(value), Location::Record(index), &mut report)
                {
                    failure = Some(e);
                }
            },
        };
        seed.deserialize(&mut de).map_err(|e| DataError::Format {
            path: path.to_path_buf(),
            message: format!("not a valid JSON array: {e}"),
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
    } else {
        let value =
            <Value as serde::Deserialize>::deserialize(&mut de).map_err(|e| DataError::Format {
                path: path.to_path_buf(),
                message: format!("invalid JSON: {e}"),
            })?;
        handle(Ok(value), Location::Record(1), &mut report)?;
    }
    Ok(report)
}

/// Visits a JSON array element by element.
struct ArraySeed<'a> {
    each: &'a mut dyn FnMut(Value, usize),
}

impl<'de> DeserializeSeed<'de> for ArraySeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ArraySeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON array of records")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        let mut index = 0;
        while let Some(value) = seq.next_element::<Value>()? {
            index += 1;
            (self.each)(value, index);
        }
        Ok(())
    }
}

/// Deserializes a typed record, naming the offending field on failure.
pub fn from_value<T: DeserializeOwned>(value: Value) -> std::result::Result<T, FieldError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let field = e.path().to_string();
        let field = if field == "." {
            "<record>".to_string()
        } else {
            field
        };
        FieldError::new(field, e.into_inner().to_string())
    })
}

/// Reads every typed record of a file (JSONL or JSON array) and calls `f` with it.
pub fn for_each_record<T: DeserializeOwned>(
    path: &Path,
    options: ReadOptions,
    mut f: impl FnMut(T),
) -> Result<ReadReport> {
    for_each_value(path, options, |value, _| {
        f(from_value(value)?);
        Ok(())
    })
}

/// Reads a whole file of typed records.
pub fn read_records<T: DeserializeOwned>(
    path: &Path,
    options: ReadOptions,
) -> Result<(Vec<T>, ReadReport)> {
    let mut out = Vec::new();
    let report = for_each_record(path, options, |r| out.push(r))?;
    Ok((out, report))
}

/// Append-only JSON Lines writer that survives crashes: each record is one `write` of a full
/// line followed by a flush, and on open a torn last line (from a kill mid-write) is cut off.
pub struct JsonlWriter {
    path: PathBuf,
    file: File,
    written: usize,
}

impl JsonlWriter {
    /// Opens `path` for appending, creating it (and its directory) if needed.
    pub fn append(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(|e| DataError::io(&path, e))?;
        repair_torn_tail(&mut file, &path)?;
        Ok(Self {
            path,
            file,
            written: 0,
        })
    }

    /// Creates or truncates `path`.
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        if path.exists() {
            File::create(path).map_err(|e| DataError::io(path, e))?;
        }
        Self::append(path)
    }

    pub fn write<T: Serialize>(&mut self, record: &T) -> Result<()> {
        let mut line = serde_json::to_vec(record).map_err(|e| DataError::Invalid(e.to_string()))?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .map_err(|e| DataError::io(&self.path, e))?;
        self.file
            .flush()
            .map_err(|e| DataError::io(&self.path, e))?;
        self.written += 1;
        Ok(())
    }

    /// Records written through this writer.
    pub fn written(&self) -> usize {
        self.written
    }

    /// Forces the data to disk (for checkpoints that must survive power loss).
    pub fn sync(&mut self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| DataError::io(&self.path, e))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Truncates a file after its last newline if it does not end with one.
fn repair_torn_tail(file: &mut File, path: &Path) -> Result<()> {
    let len = file.metadata().map_err(|e| DataError::io(path, e))?.len();
    if len == 0 {
        return Ok(());
    }
    let io = |e| DataError::io(path, e);
    let mut pos = len;
    let mut buf = vec![0u8; 4096];
    let mut cut = 0u64;
    'scan: while pos > 0 {
        let start = pos.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(pos - start) as usize];
        file.seek(SeekFrom::Start(start)).map_err(io)?;
        file.read_exact(chunk).map_err(io)?;
        if pos == len && chunk.last() == Some(&b'\n') {
            return Ok(());
        }
        for (i, b) in chunk.iter().enumerate().rev() {
            if *b == b'\n' {
                cut = start + i as u64 + 1;
                break 'scan;
            }
        }
        pos = start;
    }
    tracing::warn!(path = %path.display(), bytes = len - cut, "cutting a torn last line left by an interrupted run");
    file.set_len(cut).map_err(io)?;
    file.seek(SeekFrom::End(0)).map_err(io)?;
    Ok(())
}
