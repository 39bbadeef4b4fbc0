#!/usr/bin/env python3
"""Check that the local AWS stack behaves as the archiver's tests rely on.

Run with the project venv (scripts/local-stack install creates it):

  .local/venv/bin/python scripts/check-local-stack.py
      spawns its own DynamoDB Local and moto through .local/bin/ddb-local and .local/bin/moto-server
      on free ports (as the Rust test harness does) and kills them at the end.

  .local/venv/bin/python scripts/check-local-stack.py --running
      checks the stack started by `scripts/local-stack start` (DDB_PORT, DDB_CONTROL_PORT, MOTO_PORT).
      Careful: `dilate` ages the stream data of EVERY table in that DynamoDB Local (all instances),
      so do not point it at a demo whose streams you still want to read.

What it checks (each line prints ok/FAIL, the last line is "check-local-stack: N passed, N failed"):
  * DynamoDB Local listens on 127.0.0.1 only (when spawned here);
  * a table with a NEW_AND_OLD_IMAGES stream has one open shard holding the puts;
  * control `rollover` closes that shard (EndingSequenceNumber) and opens a child (ParentShardId);
  * control `dilate 90000000` (25 h) then gives, as observed on DynamoDB Local 3.3.1:
      - every iterator issued before the dilate: GetRecords -> ExpiredIteratorException;
      - the shard closed by the rollover (closed "25 h ago", past the 24 h shard lifetime):
        still listed by DescribeStream and GetShardIterator still answers, but
        GetRecords -> ResourceNotFoundException ("Invalid ShardId in ShardIterator");
      - the shard that was open (its records are now 25 h old): closed by the 4 h rollover job
        that dilate runs, with a new child; GetRecords on a fresh TRIM_HORIZON iterator ->
        TrimmedDataAccessException (AWS would trim silently, this emulator refuses the read);
      - new writes land in the new child and read back normally;
  * moto: create a bucket, put an object, get it back.
"""

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".local" / "bin"

PASSED = 0
FAILED = 0


def check(cond, what, detail=""):
    global PASSED, FAILED
    if cond:
        PASSED += 1
        print(f"ok    {what}")
    else:
        FAILED += 1
        print(f"FAIL  {what}  {detail}")
    return cond


def error_code(fn, **kwargs):
    """Call fn; return None on success or the AWS error code it raised."""
    try:
        fn(**kwargs)
        return None
    except ClientError as e:
        return e.response.get("Error", {}).get("Code")


def control(port, line):
    """One command on the control port: plain text lines over TCP, not HTTP."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall((line + "\n").encode())
        return s.makefile().readline().strip()


def free_port():
    # Small race between closing and the server binding it; fine for a check script.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, what, deadline_s=30):
    """Poll with a deadline instead of sleeping and hoping."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            if pred():
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise SystemExit(f"check-local-stack: {what} not ready within {deadline_s} s")


def spawn_servers(procs):
    """Start private servers through the launchers, like the Rust harness; return their addresses."""
    if not (BIN / "ddb-local").exists():
        raise SystemExit("run scripts/local-stack install first")
    # -port 0 / --control-port 0: the wrapper takes free ports and names them on its ready line.
    ddb = subprocess.Popen([str(BIN / "ddb-local"), "--port", "0", "--control-port", "0"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    procs.append(ddb)
    ready = None
    end = time.monotonic() + 30
    while time.monotonic() < end:
        line = ddb.stdout.readline()
        if not line:
            break  # exited
        m = re.search(r"ready: dynamodb=(http://\S+) control=127\.0\.0\.1:(\d+)", line)
        if m:
            ready = m
            break
    if not ready:
        raise SystemExit("check-local-stack: ddb-local printed no ready line")
    ddb_url, control_port = ready.group(1), int(ready.group(2))
    # Keep draining its output so the pipe never fills and blocks the server.
    threading.Thread(target=lambda: [None for _ in ddb.stdout], daemon=True).start()

    moto_port = free_port()
    moto = subprocess.Popen([str(BIN / "moto-server"), "--port", str(moto_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(moto)
    moto_url = f"http://127.0.0.1:{moto_port}"
    wait_until(lambda: urllib.request.urlopen(moto_url + "/moto-api/", timeout=1).status == 200, "moto")

    # Loopback only: the launcher's pid IS the server's (it execs), so ss can be asked about it.
    try:
        ss = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
        mine = [l.split()[3] for l in ss.splitlines() if f"pid={ddb.pid}," in l]
        check(len(mine) == 2 and all(a.startswith("127.0.0.1:") for a in mine),
              f"ddb-local (pid {ddb.pid}) listens on loopback only: {mine}")
    except FileNotFoundError:
        print("skip  ss not installed: loopback binding not checked")
    return ddb_url, control_port, moto_url


def shard_summary(shards):
    return [(s["ShardId"][-8:], s.get("ParentShardId", "")[-8:],
             s["SequenceNumberRange"].get("StartingSequenceNumber"),
             s["SequenceNumberRange"].get("EndingSequenceNumber")) for s in shards]


def check_dynamodb(ddb_url, control_port, kw):
    ddb = boto3.client("dynamodb", endpoint_url=ddb_url, **kw)
    streams = boto3.client("dynamodbstreams", endpoint_url=ddb_url, **kw)
    table = f"check-{uuid.uuid4().hex[:8]}"  # unique: safe to rerun against a running stack

    ddb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    ddb.get_waiter("table_exists").wait(TableName=table, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100})
    arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    # The database for this access key + region exists now, so the hooks have something to act on.
    n = control(control_port, "instances")
    check(n.startswith("ok ") and int(n.split()[1]) >= 1, f"control 'instances' -> {n!r}")

    for i in range(3):
        ddb.put_item(TableName=table, Item={"pk": {"S": f"k{i}"}, "n": {"N": str(i)}})

    def describe():
        return streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]

    shards = describe()
    check(len(shards) == 1 and "EndingSequenceNumber" not in shards[0]["SequenceNumberRange"],
          "one open shard before rollover", shard_summary(shards))
    first = shards[0]["ShardId"]
    it = streams.get_shard_iterator(StreamArn=arn, ShardId=first, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    page = streams.get_records(ShardIterator=it)
    check(len(page["Records"]) == 3, f"3 records in the first shard (got {len(page['Records'])})")
    tail_iterator = page["NextShardIterator"]

    # --- rollover -----------------------------------------------------------------------------
    answer = control(control_port, "rollover")
    check(answer == "ok", f"control 'rollover' -> {answer!r}")
    shards = describe()
    by_id = {s["ShardId"]: s for s in shards}
    children = [s for s in shards if s.get("ParentShardId") == first]
    check("EndingSequenceNumber" in by_id[first]["SequenceNumberRange"],
          "old shard closed (EndingSequenceNumber set)", shard_summary(shards))
    check(len(shards) == 2 and len(children) == 1 and "EndingSequenceNumber" not in children[0]["SequenceNumberRange"],
          "one open child with ParentShardId = old shard", shard_summary(shards))
    print(f"      shards after rollover: {shard_summary(shards)}")
    child = children[0]["ShardId"] if children else None

    # The iterator at the old shard's end now reaches the closed end: no NextShardIterator.
    page = streams.get_records(ShardIterator=tail_iterator)
    check(not page["Records"] and "NextShardIterator" not in page,
          "reading on at the closed shard's end: no records, no NextShardIterator")
    for i in range(3, 5):
        ddb.put_item(TableName=table, Item={"pk": {"S": f"k{i}"}, "n": {"N": str(i)}})
    it = streams.get_shard_iterator(StreamArn=arn, ShardId=child, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    page = streams.get_records(ShardIterator=it)
    check(len(page["Records"]) == 2, f"new writes land in the child (got {len(page['Records'])})")
    child_next = page["NextShardIterator"]

    # --- dilate 25 h ---------------------------------------------------------------------------
    answer = control(control_port, "dilate 90000000")
    check(answer == "ok", f"control 'dilate 90000000' -> {answer!r}")
    code = error_code(streams.get_records, ShardIterator=child_next)
    check(code == "ExpiredIteratorException", f"iterator from before the dilate: GetRecords -> {code}")

    shards = describe()
    by_id = {s["ShardId"]: s for s in shards}
    print(f"      shards after dilate:   {shard_summary(shards)}")
    check(first in by_id, "shard closed 25 h ago is still listed by DescribeStream")
    code = error_code(streams.get_shard_iterator, StreamArn=arn, ShardId=first, ShardIteratorType="TRIM_HORIZON")
    check(code is None, f"GetShardIterator on the expired shard -> {code or 'an iterator'}")
    it = streams.get_shard_iterator(StreamArn=arn, ShardId=first, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    code = error_code(streams.get_records, ShardIterator=it)
    check(code == "ResourceNotFoundException", f"expired shard: GetRecords -> {code}")

    check("EndingSequenceNumber" in by_id.get(child, {}).get("SequenceNumberRange", {}),
          "the open child was closed by the 4 h rollover job that dilate runs")
    grandchildren = [s for s in shards if s.get("ParentShardId") == child]
    check(len(grandchildren) == 1, "and got a new open child")
    it = streams.get_shard_iterator(StreamArn=arn, ShardId=child, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    code = error_code(streams.get_records, ShardIterator=it)
    check(code == "TrimmedDataAccessException", f"shard whose records are 25 h old, fresh TRIM_HORIZON: GetRecords -> {code}")

    if grandchildren:
        gc = grandchildren[0]["ShardId"]
        ddb.put_item(TableName=table, Item={"pk": {"S": "after-dilate"}})
        it = streams.get_shard_iterator(StreamArn=arn, ShardId=gc, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        page = streams.get_records(ShardIterator=it)
        check(len(page["Records"]) == 1, f"a write after the dilate reads back from the new child (got {len(page['Records'])})")

    ddb.delete_table(TableName=table)


def check_s3(moto_url, kw):
    # Path-style addressing: moto on 127.0.0.1 has no virtual-host DNS names.
    s3 = boto3.client("s3", endpoint_url=moto_url, config=Config(s3={"addressing_style": "path"}), **kw)
    bucket = f"check-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    body = json.dumps({"hello": "archive"}).encode()
    s3.put_object(Bucket=bucket, Key="probe/one.json", Body=body)
    got = s3.get_object(Bucket=bucket, Key="probe/one.json")["Body"].read()
    check(got == body, f"moto: bucket {bucket}, put + get object round-trips")
    s3.delete_object(Bucket=bucket, Key="probe/one.json")
    s3.delete_bucket(Bucket=bucket)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--running", action="store_true",
                    help="check the stack from `scripts/local-stack start` instead of spawning one")
    args = ap.parse_args()

    # Static test credentials: DynamoDB Local keys its databases by access key + region.
    kw = dict(region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
    procs = []
    try:
        if args.running:
            ddb_url = f"http://127.0.0.1:{os.environ.get('DDB_PORT', '8000')}"
            control_port = int(os.environ.get("DDB_CONTROL_PORT", "8001"))
            moto_url = f"http://127.0.0.1:{os.environ.get('MOTO_PORT', '5000')}"
        else:
            ddb_url, control_port, moto_url = spawn_servers(procs)
        print(f"      DynamoDB Local {ddb_url} (control 127.0.0.1:{control_port}), moto {moto_url}")
        check(control(control_port, "ping") == "ok", "control port answers 'ping'")
        check_dynamodb(ddb_url, control_port, kw)
        check_s3(moto_url, kw)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
    print(f"check-local-stack: {PASSED} passed, {FAILED} failed")
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
