//! Reading the sample: which files, which rows of them, and only the columns the inference needs.
//!
//! Files are chosen spread over the table's days and over its files (one per day first, then an
//! even stride), at most [`MAX_FILES`] of them. Their footers say how many rows each holds; the
//! wanted rows are shared out so that no file gives more than the others (water-filling), and
//! within a file they come from row groups spread over it. Of each chosen row group only the
//! `keys`, `new_image` and `old_image` column chunks are read (one ranged read: they are adjacent
//! in the file), never the rest of the file.

use super::infer::Sample;
use crate::archive::layout::{dt_of_key, parse_key, ArchiveKey};
use crate::archive::{ArchiveSink, SinkError};
use crate::encode::parquet::meta;
use crate::types::TableName;
use bytes::{Buf, Bytes};
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection,
    RowSelector,
};
use parquet::arrow::ProjectionMask;
use parquet::file::metadata::ParquetMetaData;
use parquet::file::reader::{ChunkReader, Length};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Most files read for one sample: each costs two reads (footer, column chunks), 8 at a time.
pub const MAX_FILES: usize = 256;
/// Fewer rows than this from one file is not worth its two reads.
const MIN_ROWS_PER_FILE: u64 = 400;
/// Files read at once.
const READS_IN_FLIGHT: usize = 8;
/// The columns the inference reads.
const COLUMNS: [&str; 3] = ["keys", "new_image", "old_image"];

#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error("no archive files for table `{table}` under {location}; check --archive and --table (the archiver writes <archive>/<table>/dt=<day>/*.parquet)")]
    NoFiles { table: String, location: String },
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("cannot read {key}: {message}; check the archive with `dynamo-archiver verify`")]
    BadFile { key: String, message: String },
}

/// What was read, for the DDL's comments.
#[derive(Debug, Clone, Default)]
pub struct SampleReport {
    pub sample: Sample,
    pub files_total: usize,
    pub files_read: usize,
    /// The first and last `dt` of the files read.
    pub days: Option<(String, String)>,
    pub days_read: usize,
    /// The last `dt` of the table (of every file, not only those read).
    pub last_day: Option<String>,
    pub lineage: LineageCheck,
}

/// Whether shard ids order lineage: every child created after its parent (see design.md).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineageCheck {
    /// Distinct (child, parent) pairs seen in the footers read.
    pub pairs: BTreeSet<(String, String)>,
    /// Pairs whose child's id does not carry a later creation time than its parent's.
    pub violations: Vec<(String, String)>,
}

impl LineageCheck {
    pub fn add(&mut self, child: &str, parents: &str) {
        for parent in parents.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let pair = (child.to_owned(), parent.to_owned());
            if self.pairs.insert(pair.clone()) {
                let ordered = matches!(
                    (shard_created(child), shard_created(parent)),
                    (Some(c), Some(p)) if c > p
                );
                if !ordered {
                    self.violations.push(pair);
                }
            }
        }
    }
}

/// The creation time in a shard id `shardId-<20 digits>-<hex>`, as the views read it.
pub fn shard_created(shard: &str) -> Option<u128> {
    let part = shard.split('-').nth(1)?;
    (!part.is_empty() && part.len() <= 38 && part.bytes().all(|b| b.is_ascii_digit()))
        .then(|| part.parse().ok())
        .flatten()
}

/// Reads a sample of about `rows` rows of `table`.
pub async fn read(
    sink: &ArchiveSink,
    table: &TableName,
    location: String,
    rows: u64,
) -> Result<SampleReport, SampleError> {
    let keys: Vec<String> = sink
        .list_tree(&format!("{table}/"))
        .await?
        .into_iter()
        .filter(|k| ArchiveKey::holds_rows(k))
        .collect();
    if keys.is_empty() {
        return Err(SampleError::NoFiles {
            table: table.to_string(),
            location,
        });
    }
    let max_files = rows.div_ceil(MIN_ROWS_PER_FILE).clamp(1, MAX_FILES as u64) as usize;
    let picked: Vec<String> = pick_files(&keys, max_files)
        .into_iter()
        .map(|i| keys[i].clone())
        .collect();
    let footers = in_parallel(picked.clone(), {
        let sink = sink.clone();
        move |key| {
            let sink = sink.clone();
            async move { Ok::<_, SampleError>(Arc::new(sink.parquet_footer(&key).await?)) }
        }
    })
    .await?;
    let available: Vec<u64> = footers
        .iter()
        .map(|f| f.file_metadata().num_rows().max(0) as u64)
        .collect();
    let quotas = quotas(&available, rows);
    let mut report = SampleReport {
        files_total: keys.len(),
        last_day: keys
            .iter()
            .filter_map(|k| dt_of_key(k))
            .max()
            .map(str::to_owned),
        ..Default::default()
    };
    let mut days = BTreeSet::new();
    let mut work = Vec::new();
    for ((key, footer), quota) in picked.into_iter().zip(footers).zip(quotas) {
        if let ArchiveKey::Stream { shard, .. } = parse_key(&key) {
            let meta = crate::archive::footer_metadata(&footer);
            if let Some(parents) = meta.get(meta::PARENT_SHARD_ID) {
                report.lineage.add(shard.as_str(), parents);
            }
        }
        if quota > 0 {
            days.extend(dt_of_key(&key).map(str::to_owned));
            work.push((key, footer, quota));
        }
    }
    report.files_read = work.len();
    report.days_read = days.len();
    report.days = days.first().cloned().zip(days.last().cloned());
    let samples = in_parallel(work, {
        let sink = sink.clone();
        move |(key, footer, quota)| {
            let sink = sink.clone();
            async move { sample_file(&sink, key, footer, quota).await }
        }
    })
    .await?;
    for s in samples {
        report.sample.merge(s);
    }
    Ok(report)
}

/// Runs `f` on every input, [`READS_IN_FLIGHT`] at a time; results in input order.
async fn in_parallel<I, O, F, Fut>(inputs: Vec<I>, f: F) -> Result<Vec<O>, SampleError>
where
    I: Send + 'static,
    O: Send + 'static,
    F: Fn(I) -> Fut,
    Fut: std::future::Future<Output = Result<O, SampleError>> + Send + 'static,
{
    let mut out: Vec<Option<O>> = (0..inputs.len()).map(|_| None).collect();
    let mut tasks = tokio::task::JoinSet::new();
    let mut queue = inputs.into_iter().enumerate();
    loop {
        while tasks.len() < READS_IN_FLIGHT {
            let Some((i, input)) = queue.next() else {
                break;
            };
            let fut = f(input);
            tasks.spawn(async move { (i, fut.await) });
        }
        let Some(joined) = tasks.join_next().await else {
            break;
        };
        let (i, result) = joined.expect("sample tasks do not panic");
        out[i] = Some(result?);
    }
    Ok(out.into_iter().flatten().collect())
}

/// Reads `quota` rows' `keys` and images of one file.
async fn sample_file(
    sink: &ArchiveSink,
    key: String,
    footer: Arc<ParquetMetaData>,
    quota: u64,
) -> Result<Sample, SampleError> {
    let bad = {
        let key = key.clone();
        move |message: String| SampleError::BadFile {
            key: key.clone(),
            message,
        }
    };
    let schema = footer.file_metadata().schema_descr();
    let leaves: Vec<usize> = COLUMNS
        .iter()
        .map(|name| {
            (0..schema.num_columns())
                .find(|i| schema.column(*i).name() == *name)
                .ok_or_else(|| bad(format!("it has no `{name}` column")))
        })
        .collect::<Result<_, _>>()?;
    let group_rows: Vec<u64> = footer
        .row_groups()
        .iter()
        .map(|g| g.num_rows().max(0) as u64)
        .collect();
    let groups = pick_row_groups(&group_rows, quota);
    let mut parts = Vec::new();
    for g in &groups {
        let rg = footer.row_group(*g);
        let ranges: Vec<(u64, u64)> = leaves.iter().map(|i| rg.column(*i).byte_range()).collect();
        let start = ranges.iter().map(|r| r.0).min().unwrap_or(0);
        let end = ranges.iter().map(|r| r.0 + r.1).max().unwrap_or(0);
        let bytes = sink.read_range(&key, start, end - start).await?;
        parts.push((start, Bytes::from(bytes)));
    }
    let per_group = quota.div_ceil(groups.len().max(1) as u64);
    tokio::task::spawn_blocking(move || {
        decode(footer, parts, &groups, &group_rows, &leaves, per_group).map_err(bad)
    })
    .await
    .expect("decoding does not panic")
}

fn decode(
    footer: Arc<ParquetMetaData>,
    parts: Vec<(u64, Bytes)>,
    groups: &[usize],
    group_rows: &[u64],
    leaves: &[usize],
    per_group: u64,
) -> Result<Sample, String> {
    let text = |e: &dyn std::fmt::Display| e.to_string();
    let mask = ProjectionMask::leaves(footer.file_metadata().schema_descr(), leaves.to_vec());
    let metadata =
        ArrowReaderMetadata::try_new(footer, ArrowReaderOptions::new()).map_err(|e| text(&e))?;
    let mut selectors = Vec::new();
    for g in groups {
        let take = per_group.min(group_rows[*g]) as usize;
        selectors.push(RowSelector::select(take));
        selectors.push(RowSelector::skip(group_rows[*g] as usize - take));
    }
    let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(Sparse { parts }, metadata)
        .with_projection(mask)
        .with_row_groups(groups.to_vec())
        .with_row_selection(RowSelection::from(selectors))
        .build()
        .map_err(|e| text(&e))?;
    let mut sample = Sample::default();
    for batch in reader {
        let batch = crate::encode::read::Rows::from(batch.map_err(|e| text(&e))?);
        let (keys, new, old) = (
            batch.text("keys")?,
            batch.text("new_image")?,
            batch.text("old_image")?,
        );
        use arrow_array::Array;
        for i in 0..batch.len() {
            sample.rows += 1;
            if !keys.is_null(i) {
                sample.add_keys(keys.value(i));
            }
            for images in [new, old] {
                if !images.is_null(i) {
                    sample.add_image(images.value(i));
                }
            }
        }
    }
    Ok(sample)
}

/// A file of which only some byte ranges were read: the column chunks the reader asks for.
struct Sparse {
    parts: Vec<(u64, Bytes)>,
}

impl Sparse {
    fn slice(&self, start: u64, len: Option<usize>) -> parquet::errors::Result<Bytes> {
        for (offset, bytes) in &self.parts {
            let end = offset + bytes.len() as u64;
            if (*offset..end).contains(&start) {
                let from = (start - offset) as usize;
                let to = len.map_or(bytes.len(), |l| from + l);
                if to <= bytes.len() {
                    return Ok(bytes.slice(from..to));
                }
            }
        }
        Err(parquet::errors::ParquetError::General(format!(
            "byte {start} was not read (only the sampled column chunks are)"
        )))
    }
}

impl Length for Sparse {
    fn len(&self) -> u64 {
        self.parts
            .iter()
            .map(|(o, b)| o + b.len() as u64)
            .max()
            .unwrap_or(0)
    }
}

impl ChunkReader for Sparse {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        Ok(self.slice(start, None)?.reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        self.slice(start, Some(length))
    }
}

/// `n` indexes out of `0..len`, evenly spread (the middle of `n` equal stretches).
fn spread(len: usize, n: usize) -> Vec<usize> {
    let n = n.min(len);
    (0..n).map(|i| (2 * i + 1) * len / (2 * n)).collect()
}

/// Which of `keys` (sorted, so grouped by day) to read, at most `max`: one file of each day
/// first (of evenly spread days, if there are more days than `max`), then an even stride over
/// the rest. Indexes, ascending.
pub fn pick_files(keys: &[String], max: usize) -> Vec<usize> {
    if keys.len() <= max {
        return (0..keys.len()).collect();
    }
    // (first index, count) of each day's files.
    let mut days: Vec<(usize, usize)> = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        match days.last_mut() {
            Some((first, n)) if dt_of_key(&keys[*first]) == dt_of_key(k) => *n += 1,
            _ => days.push((i, 1)),
        }
    }
    let mut picked: BTreeSet<usize> = spread(days.len(), max)
        .into_iter()
        .map(|d| days[d].0 + days[d].1 / 2)
        .collect();
    let rest: Vec<usize> = (0..keys.len()).filter(|i| !picked.contains(i)).collect();
    let more = max - picked.len();
    picked.extend(spread(rest.len(), more).into_iter().map(|i| rest[i]));
    picked.into_iter().collect()
}

/// How many rows to read of each file, given what each holds: `want` in all (or everything, if
/// there is less), no file giving more than needed to make up for the smaller ones.
pub fn quotas(available: &[u64], want: u64) -> Vec<u64> {
    let total: u64 = available.iter().sum();
    if total <= want {
        return available.to_vec();
    }
    let filled = |level: u64| available.iter().map(|a| (*a).min(level)).sum::<u64>();
    // The lowest level at which the files give `want` rows.
    let (mut lo, mut hi) = (0u64, available.iter().copied().max().unwrap_or(0));
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if filled(mid) >= want {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    available.iter().map(|a| (*a).min(lo)).collect()
}

/// The fewest row groups, evenly spread over the file, that hold `quota` rows (all of them if
/// the file has fewer). Indexes, ascending.
pub fn pick_row_groups(group_rows: &[u64], quota: u64) -> Vec<usize> {
    for n in 1..=group_rows.len() {
        let picked = spread(group_rows.len(), n);
        let per_group = quota.div_ceil(n as u64);
        if picked
            .iter()
            .map(|g| group_rows[*g].min(per_group))
            .sum::<u64>()
            >= quota
        {
            return picked;
        }
    }
    (0..group_rows.len()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(per_day: &[(&str, usize)]) -> Vec<String> {
        let mut out = Vec::new();
        for (day, n) in per_day {
            for i in 0..*n {
                out.push(format!(
                    "t/dt={day}/shardId-00000001700000000000-ab_{i:021}.parquet"
                ));
            }
        }
        out.sort();
        out
    }

    fn days_of(keys: &[String], picked: &[usize]) -> BTreeSet<String> {
        picked
            .iter()
            .filter_map(|i| dt_of_key(&keys[*i]).map(str::to_owned))
            .collect()
    }

    #[test]
    fn files_are_spread_over_days_and_files() {
        // (files per day, max, expected picks, expected distinct days)
        let k = keys(&[("2026-01-01", 100), ("2026-01-02", 1), ("2026-01-03", 50)]);
        let picked = pick_files(&k, 10);
        assert_eq!(picked.len(), 10);
        assert_eq!(
            days_of(&k, &picked).len(),
            3,
            "every day, even one with one file"
        );
        let unique: BTreeSet<_> = picked.iter().collect();
        assert_eq!(unique.len(), 10);
        assert!(picked.windows(2).all(|w| w[0] < w[1]));

        // More days than files to read: evenly spread days, one file each.
        let many: Vec<(String, usize)> = (1..=28).map(|d| (format!("2026-02-{d:02}"), 3)).collect();
        let refs: Vec<(&str, usize)> = many.iter().map(|(d, n)| (d.as_str(), *n)).collect();
        let k = keys(&refs);
        let picked = pick_files(&k, 7);
        let days = days_of(&k, &picked);
        assert_eq!(days.len(), 7);
        assert!(
            days.contains("2026-02-03") && days.contains("2026-02-27"),
            "{days:?}"
        );

        // Few files: all of them.
        let k = keys(&[("2026-01-01", 3)]);
        assert_eq!(pick_files(&k, 10), vec![0, 1, 2]);
    }

    #[test]
    fn quotas_fill_from_the_smallest_files() {
        let cases: &[(&[u64], u64, &[u64])] = &[
            (&[10, 10, 10], 100, &[10, 10, 10]),
            (&[1000, 1000, 1000, 1000], 100, &[25, 25, 25, 25]),
            (&[5, 1000, 1000], 105, &[5, 50, 50]),
            (&[0, 7, 1_000_000], 20, &[0, 7, 13]),
            (&[], 100, &[]),
        ];
        for (available, want, expected) in cases {
            let q = quotas(available, *want);
            assert_eq!(&q, expected, "{available:?} want {want}");
            assert!(q.iter().sum::<u64>() >= (*want).min(available.iter().sum()));
        }
    }

    #[test]
    fn row_groups_are_spread_and_few() {
        let cases: &[(&[u64], u64, &[usize])] = &[
            (&[1000; 8], 500, &[4]),
            (&[1000; 8], 1500, &[2, 6]),
            (&[1000; 8], 100_000, &[0, 1, 2, 3, 4, 5, 6, 7]),
            (&[10, 10, 1000], 30, &[0, 1, 2]),
            (&[], 10, &[]),
        ];
        for (rows, quota, want) in cases {
            assert_eq!(&pick_row_groups(rows, *quota), want, "{rows:?} {quota}");
        }
    }

    #[test]
    fn lineage_pairs_are_checked_once() {
        let mut l = LineageCheck::default();
        l.add(
            "shardId-00000001700000000500-aa",
            "shardId-00000001700000000000-bb",
        );
        l.add(
            "shardId-00000001700000000500-aa",
            "shardId-00000001700000000000-bb",
        );
        assert_eq!((l.pairs.len(), l.violations.len()), (1, 0));
        l.add(
            "shardId-00000001600000000000-cc",
            "shardId-00000001700000000000-bb",
        );
        l.add("odd-shard", "shardId-00000001700000000000-bb");
        l.add("shardId-00000001800000000000-dd", "");
        assert_eq!(l.pairs.len(), 3);
        assert_eq!(
            l.violations.len(),
            2,
            "a child created earlier, an id without a time"
        );
        assert_eq!(
            shard_created("shardId-00000001795298946005-5e8f77b4"),
            Some(1795298946005)
        );
        assert_eq!(shard_created("shardId--x"), None);
    }
}
