#!/usr/bin/env python3
"""The pipeline a team would otherwise write, as a benchmark baseline for the soak (scripts/soak).

A DynamoDB Streams consumer in Python with boto3 and pyarrow, written fairly: a thread per shard
(up to --threads at once), GetRecords pages of 1,000, rows with the same columns as the archive
(keys and images as canonical DynamoDB JSON strings), buffered and written as ZSTD Parquet files of
--rows-per-file rows. What it leaves out, and dynamo-archiver does not: leases, checkpoints, shard
lineage, retries with jitter beyond botocore's own, exactly-once file names, hash chains. So the
comparison flatters the baseline.

Prints one JSON line: records, wall seconds, CPU seconds (user + system), peak RSS in MiB.
"""

import argparse
import base64
import concurrent.futures
import json
import os
import resource
import threading
import time

import boto3
import botocore.config
import pyarrow as pa
import pyarrow.parquet as pq


def ddb_json(value):
    """Canonical DynamoDB JSON: sorted keys, binary as base64 (what the archive stores)."""

    def default(o):
        if isinstance(o, (bytes, bytearray)):
            return base64.b64encode(o).decode()
        raise TypeError(type(o))

    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=default)


SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("event_name", pa.string()),
        ("event_time", pa.timestamp("ms", tz="UTC")),
        ("table_name", pa.string()),
        ("stream_arn", pa.string()),
        ("shard_id", pa.string()),
        ("sequence_number", pa.string()),
        ("keys", pa.string()),
        ("new_image", pa.string()),
        ("old_image", pa.string()),
        ("size_bytes", pa.int64()),
        ("stream_view_type", pa.string()),
        ("user_identity", pa.string()),
        ("archived_at", pa.timestamp("ms", tz="UTC")),
    ]
)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--endpoint", required=True)
    p.add_argument("--stream-arn", required=True)
    p.add_argument("--table", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--threads", type=int, default=16)
    p.add_argument("--rows-per-file", type=int, default=100_000)
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)

    config = botocore.config.Config(max_pool_connections=args.threads + 4, retries={"mode": "standard"})
    client = boto3.client(
        "dynamodbstreams",
        endpoint_url=args.endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=config,
    )
    shards, start = [], None
    while True:
        kw = {"StreamArn": args.stream_arn, "Limit": 100}
        if start:
            kw["ExclusiveStartShardId"] = start
        d = client.describe_stream(**kw)["StreamDescription"]
        shards += [s["ShardId"] for s in d["Shards"]]
        start = d.get("LastEvaluatedShardId")
        if not start:
            break

    total = 0
    lock = threading.Lock()

    def consume(shard):
        nonlocal total
        it = client.get_shard_iterator(
            StreamArn=args.stream_arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        rows, files, count = [], 0, 0

        def flush():
            nonlocal rows, files
            if not rows:
                return
            cols = {name: [r[i] for r in rows] for i, name in enumerate(SCHEMA.names)}
            table = pa.table(cols, schema=SCHEMA)
            pq.write_table(table, os.path.join(args.out, f"{shard}_{files}.parquet"), compression="zstd")
            files += 1
            rows = []

        while it:
            page = client.get_records(ShardIterator=it, Limit=1000)
            for r in page["Records"]:
                d = r["dynamodb"]
                rows.append(
                    (
                        r["eventID"],
                        r["eventName"],
                        d["ApproximateCreationDateTime"],
                        args.table,
                        args.stream_arn,
                        shard,
                        d["SequenceNumber"],
                        ddb_json(d["Keys"]),
                        ddb_json(d["NewImage"]) if "NewImage" in d else None,
                        ddb_json(d["OldImage"]) if "OldImage" in d else None,
                        d.get("SizeBytes"),
                        d.get("StreamViewType"),
                        None,
                        int(time.time() * 1000),
                    )
                )
            count += len(page["Records"])
            if len(rows) >= args.rows_per_file:
                flush()
            it = page.get("NextShardIterator")
            if not page["Records"] and it:
                time.sleep(1)  # an open shard at its end: nothing more in this benchmark
                break
        flush()
        with lock:
            total += count

    started = time.time()
    with concurrent.futures.ThreadPoolExecutor(args.threads) as pool:
        list(pool.map(consume, shards))
    wall = time.time() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "records": total,
                "wall_s": round(wall, 2),
                "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
                "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
