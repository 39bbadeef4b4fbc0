#!/usr/bin/env python3
"""The demo's driver (run by scripts/demo, with the local stack's environment set).

Seeds the `users` table, runs `dynamo-archiver run` until /metrics says every stream record is
in a durable file, stops it with SIGTERM (as ECS would), then prints what landed and queries the
archive with DuckDB, as an analyst would.
"""

import argparse
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent
HTTP = "127.0.0.1:9464"


def metric(name: str) -> float:
    try:
        text = urllib.request.urlopen(f"http://{HTTP}/metrics", timeout=2).read().decode()
    except OSError:
        return 0.0
    return sum(float(m.group(1)) for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--archive", default=str(ROOT / "demo-archive"))
    args = ap.parse_args()
    archive = pathlib.Path(args.archive)
    shutil.rmtree(archive, ignore_errors=True)

    print(f"demo: seeding table `users` with {args.items} items and a mix of updates and deletes", flush=True)
    seed = subprocess.run(
        [sys.executable, str(ROOT / "scripts/seed_demo.py"), "--items", str(args.items), "--recreate"],
        check=True, capture_output=True, text=True,
    )
    counts = json.loads(seed.stdout.strip().splitlines()[-1])
    expected = counts["inserts"] + counts["updates"] + counts["deletes"]
    print(f"demo: the stream holds {expected} records ({counts['inserts']} INSERT, "
          f"{counts['updates']} MODIFY, {counts['deletes']} REMOVE)", flush=True)

    lease_table = f"demo-leases-{int(time.time())}"
    cmd = [args.binary, "run", "--table", "users", "--archive", str(archive),
           "--flush-interval", "2s", "--http", HTTP, "--log-format", "text",
           "--lease-table", lease_table]
    print("demo: $ " + " ".join(cmd), flush=True)
    started = time.monotonic()
    worker = subprocess.Popen(cmd)
    deadline = started + 300
    while metric("archiver_records_written_total") < expected:
        if worker.poll() is not None:
            print(f"demo: the archiver exited early with status {worker.returncode}", file=sys.stderr)
            return 1
        if time.monotonic() > deadline:
            print("demo: the archiver did not catch up within 300 s", file=sys.stderr)
            worker.kill()
            return 1
        time.sleep(0.5)
    caught_up = time.monotonic() - started
    worker.send_signal(signal.SIGTERM)
    status = worker.wait(timeout=30)

    files = sorted(archive.rglob("*.parquet"))
    size = sum(f.stat().st_size for f in files)
    print(f"\ndemo: caught up in {caught_up:.1f} s; the archiver exited with status {status} after SIGTERM")
    print(f"demo: {len(files)} Parquet files, {size / 1024:.0f} KiB, under {archive}/users/dt=*/")

    import duckdb
    con = duckdb.connect()
    con.execute(f"CREATE VIEW users_changes AS SELECT * FROM read_parquet('{archive}/users/dt=*/*.parquet', hive_partitioning = true, union_by_name = true)")
    print("\ndemo: SELECT event_name, count(*) FROM users_changes GROUP BY 1 ORDER BY 1;")
    for name, n in con.execute("SELECT event_name, count(*) FROM users_changes GROUP BY 1 ORDER BY 1").fetchall():
        print(f"  {name:<8} {n}")
    print("\ndemo: the five most recently changed users, newest image, straight from DynamoDB JSON:")
    rows = con.execute("""
        SELECT json_extract_string(keys, '$.userid.N') AS userid,
               event_name,
               json_extract_string(coalesce(new_image, old_image), '$.name.S') AS name,
               json_extract_string(coalesce(new_image, old_image), '$.email.S') AS email,
               dt
        FROM users_changes
        ORDER BY CAST(sequence_number AS HUGEINT) DESC
        LIMIT 5""").fetchall()
    for r in rows:
        print("  " + " | ".join(str(x) for x in r))
    total = con.execute("SELECT count(*), count(DISTINCT event_id) FROM users_changes").fetchone()
    ok = total[0] == expected and total[1] == expected and status == 0
    print(f"\ndemo: {total[0]} rows archived for {expected} stream records, {total[1]} distinct event ids: "
          + ("complete, no duplicates" if ok else "MISMATCH"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
