"""Generates an archive of ITEMS items and times `dynamo-archiver restore` of it into DynamoDB
Local. Run through scripts/bench-restore, which builds the release binary.

The archive is what the archiver writes for a table whose stream began before a backfill: the
backfill's SNAPSHOT rows (one finished scan) and one stream shard (TRIM_HORIZON) with a change
of every hundredth item after the scan, so the state mixes both sources.
"""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time

import boto3
import pyarrow as pa
import pyarrow.parquet as pq

ITEMS = int(os.environ.get("ITEMS", "1000000"))
PARALLEL = os.environ.get("PARALLEL", "4").split()
TABLE = "bench"
SCAN = "20261118T000001Z"
SCAN_MS = 1_794_960_001_000  # 2026-11-18T00:00:01Z
ARN = "arn:aws:dynamodb:us-east-1:1:table/bench/stream/2026-11-18T00:00:00.000"
SHARD = "shardId-00001794960000000-0000abcd"
ROWS_PER_FILE = 100_000
SCHEMA = pa.schema([
    ("event_id", pa.string()), ("event_name", pa.string()),
    ("event_time", pa.timestamp("ms", tz="UTC")), ("table_name", pa.string()),
    ("stream_arn", pa.string()), ("shard_id", pa.string()), ("sequence_number", pa.string()),
    ("keys", pa.string()), ("new_image", pa.string()), ("old_image", pa.string()),
    ("size_bytes", pa.int64()), ("stream_view_type", pa.string()), ("user_identity", pa.string()),
    ("archived_at", pa.timestamp("ms", tz="UTC")),
])


def dumps(v):
    return json.dumps(v, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def image(i, version):
    return dumps({"id": {"N": str(i)}, "name": {"S": f"user {i} " + "x" * 180},
                  "balance": {"N": f"{1_000_000 + i * 7}.{i % 100:02}"},
                  "tags": {"SS": ["beta", "gold"]}, "v": {"N": str(version)}})


def write(path, cols, meta):
    t = pa.table(cols, schema=SCHEMA)
    t = t.replace_schema_metadata({**(t.schema.metadata or {}), **meta})
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pq.write_table(t, path, compression="zstd")


def generate(root):
    base = os.path.join(root, TABLE)
    os.makedirs(os.path.join(base, "_backfill"))
    started = {"scan_id": SCAN, "table": TABLE, "segments": 1, "consistent_read": False,
               "started_at": "2026-11-18T00:00:01Z", "item_count_estimate": ITEMS,
               "table_size_bytes": 0, "archiver_version": "bench"}
    with open(os.path.join(base, "_backfill", f"{SCAN}.started.json"), "w") as f:
        json.dump(started, f)
    with open(os.path.join(base, "_backfill", f"{SCAN}.finished.json"), "w") as f:
        json.dump({**started, "items": ITEMS, "files": 0, "finished_at": "2026-11-18T00:10:00Z"}, f)
    ts = pa.timestamp("ms", tz="UTC")
    for n, start in enumerate(range(0, ITEMS, ROWS_PER_FILE)):
        idx = range(start, min(ITEMS, start + ROWS_PER_FILE))
        k = len(idx)
        cols = [
            [f"snapshot-{SCAN}-{i:032x}" for i in idx], ["SNAPSHOT"] * k,
            pa.array([SCAN_MS + 1000] * k, ts), [TABLE] * k, [None] * k, [None] * k, [None] * k,
            [dumps({"id": {"N": str(i)}}) for i in idx], [image(i, 0) for i in idx], [None] * k,
            pa.array([None] * k, pa.int64()), [None] * k, [None] * k, pa.array([SCAN_MS] * k, ts),
        ]
        write(os.path.join(base, "dt=2026-11-18", f"snapshot-{SCAN}-000000-{n:06d}.parquet"), cols,
              {"table_name": TABLE, "layout_version": "2"})
    changed = list(range(0, ITEMS, 100))
    k = len(changed)
    seqs = [f"{1000 + j:021d}" for j in range(k)]
    cols = [
        [f"change-{i}" for i in changed], ["MODIFY"] * k,
        pa.array([SCAN_MS + 3_600_000 + j for j in range(k)], ts), [TABLE] * k, [ARN] * k,
        [SHARD] * k, seqs, [dumps({"id": {"N": str(i)}}) for i in changed],
        [image(i, 1) for i in changed], [image(i, 0) for i in changed],
        pa.array([300] * k, pa.int64()), ["NEW_AND_OLD_IMAGES"] * k, [None] * k,
        pa.array([SCAN_MS + 3_700_000] * k, ts),
    ]
    write(os.path.join(base, "dt=2026-11-18", f"{SHARD}_{seqs[0]}.parquet"), cols,
          {"table_name": TABLE, "stream_arn": ARN, "shard_id": SHARD, "parent_shard_id": "",
           "start_position": "TRIM_HORIZON", "first_sequence_number": seqs[0],
           "last_sequence_number": seqs[-1], "layout_version": "2"})


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    work = tempfile.mkdtemp(prefix="bench-restore-")
    archive = os.path.join(work, "archive")
    began = time.time()
    generate(archive)
    print(f"archive: {ITEMS:,} items generated in {time.time() - began:.0f} s; "
          f"machine: {os.cpu_count()} cores", flush=True)
    port, control = free_port(), free_port()
    env = {**os.environ, "DDB_LOCAL_HEAP": os.environ.get("DDB_LOCAL_HEAP", "3g")}
    ddb_local = subprocess.Popen([".local/bin/ddb-local", "--port", str(port), "--control-port",
                                  str(control)], env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
    try:
        endpoint = f"http://127.0.0.1:{port}"
        ddb = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1",
                           aws_access_key_id="bench", aws_secret_access_key="bench")
        for _ in range(200):
            try:
                ddb.list_tables()
                break
            except Exception:
                time.sleep(0.2)
        run_env = {"PATH": os.environ["PATH"], "AWS_ACCESS_KEY_ID": "bench",
                   "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1",
                   "AWS_ENDPOINT_URL_DYNAMODB": endpoint, "AWS_EC2_METADATA_DISABLED": "true",
                   "AWS_ENDPOINT_URL_STS": "http://127.0.0.1:1"}
        for parallel in PARALLEL:
            target = f"bench-restored-{parallel}"
            started = time.time()
            child = subprocess.Popen(
                ["target/release/dynamo-archiver", "restore", "--archive", archive, "--table",
                 TABLE, "--as-of", "2026-11-19T00:00:00Z", "--to-table", target, "--create",
                 "--parallel", parallel, "--spool-dir", os.path.join(work, "spool"),
                 "--progress", "off", "--log-format", "text"],
                env=run_env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            out = child.stdout.read()
            _, status, usage = os.wait4(child.pid, 0)
            if os.waitstatus_to_exitcode(status) != 0:
                raise SystemExit(f"restore failed: {out}")
            wall = time.time() - started
            cpu = usage.ru_utime + usage.ru_stime
            # DynamoDB Local keeps ItemCount exact (AWS refreshes it every ~6 hours); a COUNT Scan
            # of a million items takes DynamoDB Local longer than the restore itself.
            count = ddb.describe_table(TableName=target)["Table"]["ItemCount"]
            if count != ITEMS:
                raise SystemExit(f"{target} holds {count} items, not {ITEMS}")
            print(f"--parallel {parallel}: {ITEMS / wall:,.0f} items/s ({wall:.1f} s wall); "
                  f"archiver CPU {cpu:.1f} s = {ITEMS / cpu:,.0f} items per CPU-second; "
                  f"peak RSS {usage.ru_maxrss / 1024:.0f} MiB", flush=True)
            print("   ", out.strip().splitlines()[-1][:300], flush=True)
    finally:
        ddb_local.kill()
        ddb_local.wait()
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
