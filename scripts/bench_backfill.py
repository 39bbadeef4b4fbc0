"""Seeds `bench_backfill` in DynamoDB Local and times `dynamo-archiver backfill` on it.

Run through scripts/bench-backfill, which starts the local stack and builds the release binary.
"""
import os
import shutil
import subprocess
import tempfile
import time

import boto3

ITEMS = int(os.environ.get("ITEMS", "100000"))
SEGMENTS = os.environ.get("SEGMENTS", "1 4 8").split()
TABLE = "bench_backfill"


def seed(ddb):
    names = ddb.list_tables()["TableNames"]
    if TABLE in names:
        if ddb.describe_table(TableName=TABLE)["Table"]["ItemCount"] == ITEMS:
            return
        ddb.delete_table(TableName=TABLE)
    ddb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "userid", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "userid", "AttributeType": "N"}],
        BillingMode="PAY_PER_REQUEST",
    )
    table = boto3.resource("dynamodb").Table(TABLE)
    started = time.time()
    with table.batch_writer() as b:
        for i in range(ITEMS):
            b.put_item(Item={
                "userid": i,
                "name": f"User Number {i}",
                "email": f"user{i}@example.com",
                "balance": f"{1_000_000 + i * 7}.{i % 100:02}",
                "tags": {"gold", "newsletter", "beta"},
                "address": {"street": f"{i % 1000} Long Street Name Avenue", "city": "Springfield"},
                "notes": "x" * (400 + i % 200),
            })
    print(f"seeded {ITEMS:,} items in {time.time() - started:.0f} s", flush=True)


def main():
    ddb = boto3.client("dynamodb")
    seed(ddb)
    size = ddb.describe_table(TableName=TABLE)["Table"]["TableSizeBytes"]
    print(f"table: {ITEMS:,} items, {size / 1e6:.1f} MB; machine: {os.cpu_count()} cores")
    for segments in SEGMENTS:
        archive = tempfile.mkdtemp(prefix="bench-backfill-")
        started = time.time()
        child = subprocess.Popen(
            ["target/release/dynamo-archiver", "backfill", "--table", TABLE, "--archive", archive,
             "--segments", segments, "--progress", "off", "--log-format", "text"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        out = child.stdout.read()
        # wait4: this child's own CPU time and peak RSS (not earlier children's, like cargo's).
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            raise SystemExit(f"backfill failed with exit status {child.returncode}")
        wall = time.time() - started
        cpu = usage.ru_utime + usage.ru_stime
        rss = usage.ru_maxrss / 1024
        print(f"segments {segments:>2}: {ITEMS / wall:,.0f} items/s ({wall:.1f} s wall); archiver CPU "
              f"{cpu:.1f} s = {ITEMS / cpu:,.0f} items per CPU-second; peak RSS {rss:.0f} MiB")
        print("   ", out.strip().splitlines()[-1][:200], flush=True)
        shutil.rmtree(archive)


if __name__ == "__main__":
    main()
