#!/usr/bin/env python3
"""Seed a DynamoDB table with realistic users and a realistic mix of writes, for the demo.

  .local/venv/bin/python scripts/seed_demo.py [--endpoint URL] [--table users] [--items 2000] [--seed 42]

Creates the table if missing (hash key `userid` N, on-demand, stream NEW_AND_OLD_IMAGES), waits
until it is ACTIVE, inserts --items users, then runs a shuffled mix of UpdateItem (about 30% of
the item count) and DeleteItem (about 7.5%) on live items. The last line of stdout is JSON:
  {"inserts": 2000, "updates": 600, "deletes": 150, ...}
Every write changes the item, so the stream gets exactly one record per counted write on a fresh
table: INSERT = inserts, MODIFY = updates, REMOVE = deletes (what the demo's archive should hold).

Deterministic: the same --seed and --items give the same items and the same writes in the same
order (no wall clock, no unseeded randomness). Rerunning on a non-empty table overwrites items
(the stream then shows MODIFY for those puts); use --recreate for a clean table.

Never writes an empty map: DynamoDB Local sends an empty map inside a stream image as a typeless
`{}` that the Rust SDK cannot parse (see shared LOCAL-AWS.md), so every map here has entries and
every item is checked before it is sent.

Uses the low-level client so that numbers travel as exact decimal strings (38 digits survive).
"""

import argparse
import hashlib
import json
import os
import random
import sys
import time
from datetime import datetime, timedelta, timezone

import boto3
from botocore.config import Config
from faker import Faker

# Fixed time window: Faker's relative ranges ("-5y") would depend on today and break determinism.
EPOCH_START = datetime(2019, 1, 1, tzinfo=timezone.utc)
EPOCH_END = datetime(2025, 12, 31, tzinfo=timezone.utc)
# Updates are stamped after every signup, one second apart, in operation order.
UPDATES_START = datetime(2026, 1, 1, tzinfo=timezone.utc)

TAGS = ["vip", "beta", "newsletter", "churn-risk", "mobile", "web", "enterprise", "trial",
        "referral", "support-priority", "gdpr-export", "early-adopter"]
THEMES = ["light", "dark", "system"]
LANGS = ["en-US", "en-GB", "de-DE", "fr-FR", "es-ES", "ja-JP", "pt-BR"]
ORDER_STATUS = ["placed", "paid", "shipped", "delivered", "returned", "cancelled"]
TIERS = ["free", "plus", "pro", "enterprise"]


# --- DynamoDB attribute builders (low-level JSON shapes) -----------------------------------------

def S(v):
    return {"S": v}


def N(v):
    return {"N": str(v)}


def M(d):
    # The guard that matters: an empty map would stall the archiver's shard on DynamoDB Local.
    assert d, "refusing to write an empty map"
    return {"M": d}


def assert_no_empty_maps(value, path="item"):
    """Walk an attribute value tree; fail loudly on any empty map (belt and braces)."""
    if isinstance(value, dict):
        if "M" in value:
            if not value["M"]:
                raise ValueError(f"empty map at {path}")
            for k, v in value["M"].items():
                assert_no_empty_maps(v, f"{path}.{k}")
        elif "L" in value:
            for i, v in enumerate(value["L"]):
                assert_no_empty_maps(v, f"{path}[{i}]")
        elif not any(k in value for k in ("S", "N", "B", "SS", "NS", "BS", "BOOL", "NULL")):
            # a plain top-level item dict: name -> attribute value
            for k, v in value.items():
                assert_no_empty_maps(v, f"{path}.{k}")


def iso(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def money(rng, lo, hi):
    """An exact 2-decimal amount as a string (no float rounding on the way)."""
    cents = rng.randint(lo * 100, hi * 100)
    return f"{cents // 100}.{cents % 100:02d}"


def long_balance(rng):
    """A balance with many significant digits (up to DynamoDB's 38), sometimes negative.

    Archivers that squeeze numbers through f64 lose these digits: that is the point.
    """
    int_digits = rng.randint(1, 20)
    frac_digits = rng.randint(0, 38 - int_digits)
    int_part = str(rng.randint(10 ** (int_digits - 1) if int_digits > 1 else 0, 10 ** int_digits - 1))
    frac = "".join(rng.choice("0123456789") for _ in range(frac_digits)).rstrip("0")
    sign = "-" if rng.random() < 0.05 else ""
    return f"{sign}{int_part}.{frac}" if frac else f"{sign}{int_part}"


def make_order(fake, rng, placed_after):
    placed = fake.date_time_between(start_date=placed_after, end_date=EPOCH_END, tzinfo=timezone.utc)
    return M({
        "order_id": S(f"ord-{fake.uuid4()[:13]}"),
        "placed_at": S(iso(placed)),
        "status": S(rng.choice(ORDER_STATUS)),
        "total": N(money(rng, 3, 900)),
        "item_count": N(rng.randint(1, 12)),
    })


def make_user(userid, fake, rng):
    signup = fake.date_time_between(start_date=EPOCH_START, end_date=EPOCH_END, tzinfo=timezone.utc)
    item = {
        "userid": N(userid),
        "name": S(fake.name()),
        "email": S(fake.unique.email()),
        "address": M({
            "street": S(fake.street_address()),
            "city": S(fake.city()),
            "state": S(fake.state_abbr()),
            "zip": S(fake.zipcode()),
            "country": S("US"),
        }),
        # A string set: never empty (DynamoDB refuses empty sets anyway), order-free.
        "tags": {"SS": sorted(rng.sample(TAGS, rng.randint(1, 4)))},
        "signup_at": S(iso(signup)),
        "signup_ts": N(int(signup.timestamp())),
        "balance": N(long_balance(rng)),
        "tier": S(rng.choice(TIERS)),
        "is_active": {"BOOL": rng.random() < 0.9},
        "login_count": N(rng.randint(0, 5000)),
        "version": N(1),
        "preferences": M({
            "theme": S(rng.choice(THEMES)),
            "language": S(rng.choice(LANGS)),
            "notifications": M({
                "email": {"BOOL": rng.random() < 0.7},
                "sms": {"BOOL": rng.random() < 0.2},
                "push": {"BOOL": rng.random() < 0.5},
            }),
            "timezone": S(fake.timezone()),
        }),
        # A list of maps; a new user may have no orders yet: an empty LIST is fine on every
        # endpoint (checked: DynamoDB Local streams it as {"L":[]}); only empty maps are not.
        "recent_orders": {"L": [make_order(fake, rng, signup) for _ in range(rng.choice([0, 1, 1, 2, 3, 5]))]},
    }
    # Optional attributes, so items do not all share one shape.
    if rng.random() < 0.6:
        # Binary: the SHA-256 of a (fake) avatar, 32 raw bytes.
        item["avatar_hash"] = {"B": hashlib.sha256(f"avatar-{userid}-{fake.uuid4()}".encode()).digest()}
    if rng.random() < 0.3:
        item["nickname"] = S(fake.user_name())
    elif rng.random() < 0.1:
        item["nickname"] = {"NULL": True}
    if rng.random() < 0.15:
        item["phone"] = S(fake.phone_number())
    return item


def make_update(userid, item_state, fake, rng, stamp):
    """One UpdateItem request that always changes the item (so it always emits a MODIFY)."""
    names = {"#v": "version", "#u": "updated_at"}
    values = {":one": N(1), ":now": S(iso(stamp))}
    sets = ["#v = #v + :one", "#u = :now"]
    removes, adds = [], []
    kind = rng.choice(["balance", "email", "address", "tags", "prefs", "order", "avatar", "login"])
    if kind == "balance":
        sets.append("balance = :b")
        values[":b"] = N(long_balance(rng))
    elif kind == "email":
        sets.append("email = :e")
        values[":e"] = S(fake.unique.email())
    elif kind == "address":
        # Replace one field inside the nested map (the map keeps all its other keys).
        sets.append("address.city = :c, address.zip = :z")
        values[":c"] = S(fake.city())
        values[":z"] = S(fake.zipcode())
    elif kind == "tags":
        adds.append("tags :t")
        values[":t"] = {"SS": [rng.choice(TAGS)]}
    elif kind == "prefs":
        sets.append("preferences.theme = :th, preferences.notifications.sms = :sms")
        values[":th"] = S(rng.choice(THEMES))
        values[":sms"] = {"BOOL": rng.random() < 0.5}
    elif kind == "order":
        sets.append("recent_orders = list_append(:o, recent_orders)")
        values[":o"] = {"L": [make_order(fake, rng, EPOCH_START)]}
    elif kind == "avatar":
        if "avatar_hash" in item_state and rng.random() < 0.5:
            removes.append("avatar_hash")
            item_state.discard("avatar_hash")
        else:
            sets.append("avatar_hash = :a")
            values[":a"] = {"B": hashlib.sha256(f"avatar-{userid}-{fake.uuid4()}".encode()).digest()}
            item_state.add("avatar_hash")
    else:
        sets.append("login_count = login_count + :lc, is_active = :act")
        values[":lc"] = N(rng.randint(1, 20))
        values[":act"] = {"BOOL": True}
    expr = "SET " + ", ".join(sets)
    if removes:
        expr += " REMOVE " + ", ".join(removes)
    if adds:
        expr += " ADD " + ", ".join(adds)
    assert_no_empty_maps(values, "update values")
    return kind, {
        "Key": {"userid": N(userid)},
        "UpdateExpression": expr,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
        # Only update live items: an UpdateItem on a missing key would create it (an INSERT).
        "ConditionExpression": "attribute_exists(userid)",
    }


# --- table ---------------------------------------------------------------------------------------

def ensure_table(ddb, table, recreate):
    existing = set()
    for page in ddb.get_paginator("list_tables").paginate():
        existing.update(page["TableNames"])
    if table in existing and recreate:
        print(f"deleting table {table} (--recreate)", file=sys.stderr)
        ddb.delete_table(TableName=table)
        ddb.get_waiter("table_not_exists").wait(TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        existing.discard(table)
    if table not in existing:
        print(f"creating table {table}", file=sys.stderr)
        ddb.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "userid", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "userid", "AttributeType": "N"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
    # Poll until ACTIVE (instant on DynamoDB Local, seconds on AWS), with a deadline.
    deadline = time.monotonic() + 120
    while True:
        desc = ddb.describe_table(TableName=table)["Table"]
        if desc["TableStatus"] == "ACTIVE":
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"table {table} not ACTIVE after 120 s (status {desc['TableStatus']})")
        time.sleep(0.5)
    spec = desc.get("StreamSpecification") or {}
    if not spec.get("StreamEnabled") or spec.get("StreamViewType") != "NEW_AND_OLD_IMAGES":
        raise SystemExit(f"table {table} exists without a NEW_AND_OLD_IMAGES stream ({spec}); use --recreate")
    if desc.get("ItemCount", 0) and not recreate:
        print(f"note: table {table} already has items; puts over them show up as MODIFY", file=sys.stderr)
    return desc["LatestStreamArn"]


def batch_put(ddb, table, items):
    """BatchWriteItem in 25s, resending UnprocessedItems with backoff (throttling on AWS)."""
    for start in range(0, len(items), 25):
        pending = [{"PutRequest": {"Item": it}} for it in items[start:start + 25]]
        attempt = 0
        while pending:
            resp = ddb.batch_write_item(RequestItems={table: pending})
            pending = resp.get("UnprocessedItems", {}).get(table, [])
            if pending:
                attempt += 1
                if attempt > 10:
                    raise SystemExit(f"{len(pending)} items still unprocessed after 10 retries")
                time.sleep(min(0.05 * 2 ** attempt, 2))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--endpoint", default=os.environ.get("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:8000"),
                    help="DynamoDB endpoint (default: $AWS_ENDPOINT_URL_DYNAMODB or http://127.0.0.1:8000)")
    ap.add_argument("--table", default="users")
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--recreate", action="store_true", help="delete and recreate the table first")
    args = ap.parse_args()
    if args.items < 1:
        ap.error("--items must be at least 1")

    # Static test credentials unless the environment says otherwise: DynamoDB Local keeps one
    # database per access key + region, so the archiver must use the same pair to see the table.
    ddb = boto3.client(
        "dynamodb",
        endpoint_url=args.endpoint,
        region_name=os.environ.get("AWS_REGION", os.environ.get("AWS_DEFAULT_REGION", "us-east-1")),
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "test"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
        config=Config(retries={"max_attempts": 10, "mode": "standard"}),
    )
    stream_arn = ensure_table(ddb, args.table, args.recreate)

    # One seeded Faker and one seeded Random drive everything, always consumed in the same order.
    fake = Faker("en_US")
    fake.seed_instance(args.seed)
    rng = random.Random(args.seed)

    t0 = time.monotonic()
    items = [make_user(uid, fake, rng) for uid in range(1, args.items + 1)]
    for it in items:
        assert_no_empty_maps(it)
    batch_put(ddb, args.table, items)
    # What each live item has, as far as updates need to know (avatar present or not).
    state = {int(it["userid"]["N"]): {k for k in it if k == "avatar_hash"} for it in items}
    del items

    # The mix: updates and deletes shuffled together, each on an item that is still alive.
    n_updates = round(args.items * 0.30)
    n_deletes = min(round(args.items * 0.075), args.items - 1)
    ops = ["update"] * n_updates + ["delete"] * n_deletes
    rng.shuffle(ops)
    live = sorted(state)  # sorted list: picking by index is deterministic
    kinds = {}
    stamp = UPDATES_START
    for op in ops:
        idx = rng.randrange(len(live))
        uid = live[idx]
        stamp += timedelta(seconds=1)
        if op == "update":
            kind, req = make_update(uid, state[uid], fake, rng, stamp)
            ddb.update_item(TableName=args.table, **req)
            kinds[kind] = kinds.get(kind, 0) + 1
        else:
            ddb.delete_item(TableName=args.table, Key={"userid": N(uid)},
                            ConditionExpression="attribute_exists(userid)")
            live.pop(idx)
            del state[uid]

    # Human details on stderr; stdout's last line holds only what the seed determines.
    print(f"seeded {args.table} in {time.monotonic() - t0:.1f} s; stream {stream_arn}", file=sys.stderr)
    summary = {
        "inserts": args.items,
        "updates": n_updates,
        "deletes": n_deletes,
        "live_items": len(live),
        "table": args.table,
        "seed": args.seed,
        "update_kinds": dict(sorted(kinds.items())),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
