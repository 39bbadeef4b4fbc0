"""Generates an archive of RECORDS stream records (16 shards, hash-chained files of 100,000 rows,
as the archiver writes them) and times `verify` and `snapshot` on it with the release binary,
reporting wall time, CPU time and peak RSS (wait4). Run through scripts/bench-audit.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pyarrow as pa
import pyarrow.parquet as pq

RECORDS = int(os.environ.get("RECORDS", "1000000"))
SHARDS = 16
ROWS_PER_FILE = 20_000
KEYS = max(RECORDS // 10, 1)
TABLE = "bench"
START_MS = 1_794_960_000_000  # 2026-11-18T00:00:00Z
FILE_SPAN_MS = 600_000  # each file's rows lie within its own 10 minutes: no file crosses midnight
SCHEMA = pa.schema([
    ("event_id", pa.string()), ("event_name", pa.string()),
    ("event_time", pa.timestamp("ms", tz="UTC")), ("table_name", pa.string()),
    ("stream_arn", pa.string()), ("shard_id", pa.string()), ("sequence_number", pa.string()),
    ("keys", pa.string()), ("new_image", pa.string()), ("old_image", pa.string()),
    ("size_bytes", pa.int64()), ("stream_view_type", pa.string()), ("user_identity", pa.string()),
    ("archived_at", pa.timestamp("ms", tz="UTC")),
])
ARN = "arn:aws:dynamodb:us-east-1:1:table/bench/stream/2026-11-18T00:00:00.000"


def generate(root):
    per_shard = RECORDS // SHARDS
    total_bytes = 0
    file_no = 0
    for s in range(SHARDS):
        shard = f"shardId-{1_795_000_000_000 + s:020d}-{s:08x}"
        prev_sha, prev_key, seq = None, None, 1000
        for start in range(0, per_shard, ROWS_PER_FILE):
            n = min(ROWS_PER_FILE, per_shard - start)
            idx = range(s * per_shard + start, s * per_shard + start + n)
            seqs = [f"{seq + i * 7:021d}" for i in range(n)]
            seq += n * 7
            times = [START_MS + file_no * FILE_SPAN_MS + j for j in range(n)]
            file_no += 1
            dt = time.strftime("%Y-%m-%d", time.gmtime(times[0] / 1000))
            keys = [json.dumps({"id": {"N": str(i % KEYS)}}, separators=(",", ":")) for i in idx]
            names = ["REMOVE" if i % 17 == 0 else "MODIFY" for i in idx]
            image = lambda i: json.dumps({"id": {"N": str(i % KEYS)}, "v": {"N": str(i)},
                                          "name": {"S": f"user {i % KEYS} " + "x" * 200}},
                                         separators=(",", ":"), sort_keys=True)
            new = [None if nm == "REMOVE" else image(i) for nm, i in zip(names, idx)]
            old = [image(i - 1) for i in idx]
            cols = [
                [f"e-{s}-{i}" for i in idx], names, pa.array(times, pa.timestamp("ms", tz="UTC")),
                [TABLE] * n, [ARN] * n, [shard] * n, seqs, keys, new, old, [300] * n,
                ["NEW_AND_OLD_IMAGES"] * n, [None] * n,
                pa.array([START_MS] * n, pa.timestamp("ms", tz="UTC")),
            ]
            t = pa.table(cols, schema=SCHEMA)
            meta = {"table_name": TABLE, "stream_arn": ARN, "shard_id": shard, "parent_shard_id": "",
                    "first_sequence_number": seqs[0], "last_sequence_number": seqs[-1],
                    "record_count": str(n), "schema_version": "1", "archiver_version": "bench"}
            if prev_sha:
                meta["previous_file_sha256"] = prev_sha
                meta["previous_file"] = prev_key
            else:
                meta["start_position"] = "TRIM_HORIZON"
            t = t.replace_schema_metadata(meta)
            key = f"{TABLE}/dt={dt}/{shard}_{seqs[0]}_{seqs[-1]}.parquet"
            path = os.path.join(root, key)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            pq.write_table(t, path, compression="zstd", compression_level=1, row_group_size=50_000)
            data = open(path, "rb").read()
            total_bytes += len(data)
            prev_sha, prev_key = hashlib.sha256(data).hexdigest(), key
    return total_bytes


def timed(args):
    started = time.time()
    child = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return code, out, time.time() - started, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main():
    root = tempfile.mkdtemp(prefix="bench-audit-")
    try:
        started = time.time()
        size = generate(root)
        print(f"generated {RECORDS:,} records ({KEYS:,} keys, {SHARDS} shards) in "
              f"{time.time() - started:.0f} s: {size / 1e6:.0f} MB of Parquet; machine: "
              f"{os.cpu_count()} cores", flush=True)
        binary = "target/release/dynamo-archiver"
        code, out, wall, cpu, rss = timed([binary, "verify", "--archive", root, "--log-format", "text"])
        print(f"verify:   exit {code}; {wall:.1f} s wall, {cpu:.1f} s CPU, {RECORDS / wall:,.0f} records/s, "
              f"peak RSS {rss:.0f} MiB", flush=True)
        if code != 0:
            print(out[:2000])
            sys.exit(1)
        files = RECORDS // ROWS_PER_FILE
        as_of = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime((START_MS + files // 2 * FILE_SPAN_MS) / 1000))
        outdir = os.path.join(root, "out")
        code, out, wall, cpu, rss = timed([binary, "snapshot", "--archive", root, "--table", TABLE,
                                           "--as-of", as_of, "--out", outdir,
                                           "--spool-dir", os.path.join(root, "spool"),
                                           "--log-format", "text"])
        print(f"snapshot: exit {code}; {wall:.1f} s wall, {cpu:.1f} s CPU, {RECORDS / wall:,.0f} records/s, "
              f"peak RSS {rss:.0f} MiB", flush=True)
        print("   ", out.strip()[:300])
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
