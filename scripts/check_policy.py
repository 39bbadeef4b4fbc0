#!/usr/bin/env python3
"""Every AWS operation the binary calls is allowed by its task role, and nothing beyond is granted.

Run by scripts/check-infra (with .local/infra-venv/bin/python, which has cfn-lint). Exit status 0
when the grants of the worker role and of the backfill role in infra/dynamo-archiver.yaml are
exactly what the Rust sources call and the server-side guards are whole, 1 otherwise, with a
report either way.

How it works
------------
1. **Call sites.** Every `.rs` file under src/ is read with comments, string contents and
   `#[cfg(test)]` items blanked out. A call `<receiver>.<op>()` whose receiver ends in a name bound
   to an SDK client (`client: aws_sdk_s3::Client`, the `Clients` fields `dynamodb`, `streams`,
   `s3`, `firehose`, ...) is an SDK operation of that client's service. An operation missing from
   OPERATIONS below is an error (its IAM action must be looked up and written down), and so is a
   `.send()` in a function where no operation can be seen (a client the check cannot name).
2. **Which command calls what.** Modules are linked by the paths they name (`crate::sink::s3`,
   `super::aggregate`, `s3::S3Sink` for a child module, ...). The worker role gets every call site
   in a module reachable from `src/cmd/run.rs`; the backfill role every call site reachable from
   `src/cmd/backfill.rs` and `src/cmd/import_export.rs` (both commands run with that role).
   Modules reached only from the operator's commands (`verify`, `history`, `snapshot`, `restore`,
   `leases`, `schema`) need no role in the template: they run with the operator's own credentials.
3. **What the call touches.** TARGETS says which resource a module's calls of a service touch
   (the lease table from src/leases, the archived tables from src/stream, src/backfill and the
   start-up permission check src/pipeline/preflight.rs, the archive from src/archive and
   src/sink, the export from src/export, the delivery stream from src/sink/firehose).
   OPERATIONS maps (service, operation) to IAM actions on a resource *role* (table, stream, bucket,
   objects, key, delivery_stream); together they give (action, resource kind) pairs such as
   (`s3:PutObject`, `archive_objects`).
4. **What is granted.** The template is read with cfn-lint's own loader (it understands `!Ref`,
   `!Sub`, ...) and expanded with cfn-lint's `AWS::LanguageExtensions` transform (the per-table
   `Fn::ForEach` loops) for two sample tables. For each SCENARIO (parameter values: parquet or
   Firehose output, with or without an export bucket and key) conditions and `Fn::If` are
   resolved, and each Allow statement of each policy attached to the role is turned into
   (action, resource kind) pairs; RESOURCE_KINDS classifies the resource expressions.
5. **Template consistency** (same run): every Glue table's columns equal schemas/archive-v1.json
   (Firehose tables: schemas/firehose-glue-v1.json), and every `ARCHIVER_*` variable a task definition
   sets is an option of the command that container runs (src/config/), so no setting is
   silently ignored. PENDING_OPTIONS lists variables whose option is still being written.
6. **The verdict**, per role and scenario: a required pair not granted, a granted pair nothing
   calls, a wildcard action, `Resource: "*"` (outside STAR_REQUIRED), `NotAction`/`NotResource`,
   an attached managed policy, or a resource the check cannot classify: each is a failure. The
   same wildcard rules are applied to every other identity policy in the template.
7. **Server-side guards** (GUARDS): the archive bucket's policy denies, to every principal,
   s3:PutObject without If-None-Match (exempting CreateMultipartUpload and UploadPart with
   s3:ObjectCreationOperation, as AWS documents) and s3:DeleteObject/s3:DeleteObjectVersion, over
   every object Athena reads (GUARDED_OBJECTS); ArchiveKey's policy denies kms:ScheduleKeyDeletion,
   kms:DisableKey and kms:PutKeyPolicy. The last two exempt exactly the BreakGlassRoleArn role
   when one is given, nobody otherwise. A guard missing, or weakened (fewer actions, a narrower
   resource or principal, an extra condition, an exemption), fails and is named in the report.
   scripts/test_check_policy.py proves that it does.

Usage: scripts/check_policy.py [--template infra/dynamo-archiver.yaml] [--src src] [--expand-to PATH]
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# ---------------------------------------------------------------------------------------------
# The tables a reviewer reads: operations, targets, roles, scenarios.
# ---------------------------------------------------------------------------------------------

# (service, SDK operation) -> [(IAM action, resource role)]. The service is the crate suffix of
# the client (`aws_sdk_<service>::Client`). Actions: the Service Authorization Reference,
# https://docs.aws.amazon.com/service-authorization/latest/reference/reference_policies_actions-resources-contextkeys.html
OPERATIONS: dict[tuple[str, str], list[tuple[str, str]]] = {
    # --- DynamoDB (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazondynamodb.html)
    ("dynamodb", "describe_table"): [("dynamodb:DescribeTable", "table")],
    ("dynamodb", "create_table"): [("dynamodb:CreateTable", "table")],
    ("dynamodb", "scan"): [("dynamodb:Scan", "table")],
    ("dynamodb", "query"): [("dynamodb:Query", "table")],
    ("dynamodb", "get_item"): [("dynamodb:GetItem", "table")],
    ("dynamodb", "put_item"): [("dynamodb:PutItem", "table")],
    ("dynamodb", "update_item"): [("dynamodb:UpdateItem", "table")],
    ("dynamodb", "delete_item"): [("dynamodb:DeleteItem", "table")],
    ("dynamodb", "batch_get_item"): [("dynamodb:BatchGetItem", "table")],
    ("dynamodb", "batch_write_item"): [("dynamodb:BatchWriteItem", "table")],
    # --- DynamoDB Streams: its own endpoint and SDK crate, but `dynamodb:` IAM actions on the
    # stream ARN (`arn:...:table/<name>/stream/<label>`).
    ("dynamodbstreams", "describe_stream"): [("dynamodb:DescribeStream", "stream")],
    ("dynamodbstreams", "get_shard_iterator"): [("dynamodb:GetShardIterator", "stream")],
    ("dynamodbstreams", "get_records"): [("dynamodb:GetRecords", "stream")],
    # ListStreams has no resource-level permissions: it would need Resource "*" (STAR_REQUIRED).
    ("dynamodbstreams", "list_streams"): [("dynamodb:ListStreams", "*")],
    # --- S3 (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazons3.html)
    # HeadBucket is authorised by s3:ListBucket; ListObjectsV2 too.
    ("s3", "head_bucket"): [("s3:ListBucket", "bucket")],
    ("s3", "list_objects_v2"): [("s3:ListBucket", "bucket")],
    # HeadObject is authorised by s3:GetObject. It returns metadata only, so no KMS call.
    ("s3", "head_object"): [("s3:GetObject", "objects")],
    # Reading an SSE-KMS object makes S3 decrypt its data key with the caller's permissions.
    ("s3", "get_object"): [("s3:GetObject", "objects"), ("kms:Decrypt", "key")],
    # Writing SSE-KMS (the bucket default and --sse-kms-key): S3 asks KMS for a data key.
    ("s3", "put_object"): [("s3:PutObject", "objects"), ("kms:GenerateDataKey", "key")],
    # Multipart uploads are authorised by s3:PutObject; with SSE-KMS they need kms:Decrypt as
    # well, because S3 decrypts the upload's data key for every part and for the completion:
    # https://docs.aws.amazon.com/AmazonS3/latest/userguide/mpuoverview.html#mpuAndPermissions
    ("s3", "create_multipart_upload"): [
        ("s3:PutObject", "objects"),
        ("kms:GenerateDataKey", "key"),
        ("kms:Decrypt", "key"),
    ],
    ("s3", "upload_part"): [("s3:PutObject", "objects"), ("kms:Decrypt", "key")],
    ("s3", "complete_multipart_upload"): [("s3:PutObject", "objects"), ("kms:Decrypt", "key")],
    ("s3", "abort_multipart_upload"): [("s3:AbortMultipartUpload", "objects")],
    # --- Firehose (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazondatafirehose.html)
    # A delivery stream encrypted with a customer managed key needs no KMS permission of the
    # producer: Firehose uses the grant it made when the encryption was turned on.
    ("firehose", "describe_delivery_stream"): [("firehose:DescribeDeliveryStream", "delivery_stream")],
    ("firehose", "put_record_batch"): [("firehose:PutRecordBatch", "delivery_stream")],
    ("firehose", "put_record"): [("firehose:PutRecord", "delivery_stream")],
    # --- STS: GetCallerIdentity needs no permission (it cannot be denied); `restore` calls it
    # with the operator's credentials, for its audit record.
    ("sts", "get_caller_identity"): [("sts:GetCallerIdentity", "*")],
}

# Methods of an SDK client that are not AWS operations (no request is sent).
NOT_OPERATIONS = {"clone", "config", "as_ref", "to_owned"}

# (module path prefix, service) -> the resource group the calls touch. The longest matching
# prefix wins. A call site no entry covers is an error: say what it touches here.
TARGETS: list[tuple[str, str, str]] = [
    ("src/leases/", "dynamodb", "lease"),          # the lease table (store.rs is its only user)
    ("src/stream/", "dynamodb", "source"),         # DescribeTable of each archived table
    ("src/stream/", "dynamodbstreams", "source"),  # the archived tables' streams
    # The start-up permission check: one page of one shard of each archived table's stream.
    ("src/pipeline/preflight.rs", "dynamodbstreams", "source"),
    ("src/backfill/", "dynamodb", "source"),       # DescribeTable and Scan of --table
    ("src/sink/", "s3", "archive"),                # the archive (or Firehose's overflow prefix)
    ("src/archive/", "s3", "archive"),             # the same, where the S3 writer now lives
    ("src/sink/firehose.rs", "firehose", "firehose"),
    ("src/export/", "s3", "export"),               # a DynamoDB Export read by import-export
    ("src/export/", "dynamodb", "source"),         # DescribeTable of --table (key names)
    # Shared wrappers: their calls touch what their callers' calls would (CALLER below).
    ("src/dynamo.rs", "dynamodb", "caller"),       # DescribeTable: source tables, the lease table
]

# The group of a shared wrapper's call sites: for each task role, the groups of the modules in the
# role's reach that use the wrapper (the lease table's module makes DescribeTable a lease-table
# call, the stream and backfill modules make it a source-table call).
CALLER = "caller"

# (group, resource role) -> resource kind, and the feature that makes it needed (None: always).
KINDS: dict[tuple[str, str], tuple[str, str | None]] = {
    ("lease", "table"): ("lease_table", None),
    ("source", "table"): ("source_table", None),
    ("source", "stream"): ("source_stream", None),
    ("archive", "bucket"): ("archive_bucket", None),
    ("archive", "objects"): ("archive_objects", None),
    ("archive", "key"): ("archive_key", None),
    ("export", "objects"): ("export_objects", "export"),
    # The export bucket is only read object by object (no listing): see ExportSource::read_optional
    # for why a missing checksum file still comes back as absent without s3:ListBucket.
    ("export", "bucket"): ("export_bucket", "export"),
    ("export", "key"): ("export_key", "export_kms"),
    ("firehose", "delivery_stream"): ("delivery_stream", "firehose"),
}

# The task roles and the commands that run with them (their entry modules).
ROLES: dict[str, list[str]] = {
    "WorkerTaskRole": ["src/cmd/run.rs"],
    "BackfillTaskRole": ["src/cmd/backfill.rs", "src/cmd/import_export.rs"],
}

# Parameter values the template is checked with, and the features they turn on.
SAMPLE_TABLES = ["users", "orders-v2"]
SCENARIOS: list[tuple[str, dict[str, str], set[str]]] = [
    ("parquet", {"OutputMode": "parquet", "ExportBucketName": "", "ExportKmsKeyArn": ""}, set()),
    (
        "parquet, export bucket and key",
        {
            "OutputMode": "parquet",
            "ExportBucketName": "my-exports",
            "ExportKmsKeyArn": "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        },
        {"export", "export_kms"},
    ),
    ("firehose", {"OutputMode": "firehose", "ExportBucketName": "", "ExportKmsKeyArn": ""}, {"firehose"}),
]

# How a (canonical) resource expression of the template is recognised. Canonical form: Ref and
# GetAtt become ${Name} / ${Name.Attr}, Fn::Sub strings are kept, Fn::Join is joined.
_T = "(?:" + "|".join(re.escape(t) for t in SAMPLE_TABLES) + ")"
_DDB = r"arn:\$\{AWS::Partition\}:dynamodb:\$\{AWS::Region\}:\$\{AWS::AccountId\}:table/"
RESOURCE_KINDS: list[tuple[str, str]] = [
    ("source_table", rf"^{_DDB}{_T}$"),
    # A stream's label changes each time the stream is re-enabled, so the ARN ends in /stream/*.
    ("source_stream", rf"^{_DDB}{_T}/stream/\*$"),
    ("lease_table", r"^\$\{LeaseTable\.Arn\}$"),
    ("archive_bucket", r"^\$\{ArchiveBucket\.Arn\}$"),
    # The Parquet prefix, or in Firehose mode the overflow prefix: both under the archive bucket.
    ("archive_objects", r"^\$\{ArchiveBucket\.Arn\}/\$\{ArchivePrefix\}/\*$"),
    ("archive_objects", r"^\$\{ArchiveBucket\.Arn\}/firehose-overflow/\*$"),
    ("archive_key", r"^\$\{ArchiveKey\.Arn\}$"),
    ("export_objects", r"^arn:\$\{AWS::Partition\}:s3:::\$\{ExportBucketName\}/\$\{ExportPrefix\}\*$"),
    ("export_key", r"^\$\{ExportKmsKeyArn\}$"),
    ("delivery_stream", r"^\$\{DeliveryStream\.Arn\}$"),
]

# Actions AWS authorises only with Resource "*" (no resource-level permissions), per role, with
# the reason. Anything else with "*" fails.
STAR_REQUIRED: dict[tuple[str, str], str] = {
    ("TaskExecutionRole", "ecr:GetAuthorizationToken"): "ECR's GetAuthorizationToken has no resource-level permissions (AWS requires Resource *)",
}

# Container name in a task definition -> the clap argument structs (src/config/) of the
# commands it runs; every ARCHIVER_* variable it sets must be an option of each of them.
CONTAINER_COMMANDS: dict[str, list[str]] = {
    "worker": ["RunArgs"],
    "backfill": ["BackfillArgs", "ImportExportArgs"],
}
# Variables the template sets ahead of their option (reported, not failed); drop an entry once
# the option exists (the check says when).
PENDING_OPTIONS: dict[str, str] = {}
# The schema files the Glue tables must match: the Parquet archive's, and the Firehose JSON
# lines' (schema v1 plus `overflow_object`, src/encode/json_line.rs; its test keeps the file true).
ARCHIVE_SCHEMA = ROOT / "schemas" / "archive-v1.json"
FIREHOSE_SCHEMA = ROOT / "schemas" / "firehose-glue-v1.json"

# ---------------------------------------------------------------------------------------------
# Rust sources
# ---------------------------------------------------------------------------------------------


def blank_comments_and_strings(text: str) -> str:
    """Comments and the contents of string and char literals become spaces (newlines kept), so
    that code-looking text inside them is never taken for code. Raw strings are handled."""
    out = list(text)
    i, n = 0, len(text)

    def blank(a: int, b: int) -> None:
        for k in range(a, b):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            blank(i, j)
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            blank(i, j)
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'r(#*)"', text[i:])
            hashes = m.group(1)
            start = i + len(m.group(0))
            end = text.find('"' + hashes, start)
            end = n if end < 0 else end
            blank(start, end)
            i = end + 1 + len(hashes)
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            blank(i + 1, j)
            i = j + 1
        elif c == "'":
            # A char literal ('a', '\n', '\u{1F600}') or a lifetime ('a); only the former is blanked.
            m = re.match(r"'(\\u\{[0-9a-fA-F]+\}|\\.|[^\\'])'", text[i:])
            if m:
                blank(i + 1, i + len(m.group(0)) - 1)
                i += len(m.group(0))
            else:
                i += 1
        else:
            i += 1
    return "".join(out)


def matching_brace(text: str, open_at: int) -> int:
    """Index just past the `}` matching the `{` at open_at (comments and strings already blank)."""
    depth = 0
    for k in range(open_at, len(text)):
        if text[k] == "{":
            depth += 1
        elif text[k] == "}":
            depth -= 1
            if depth == 0:
                return k + 1
    return len(text)


def strip_cfg_test(text: str) -> tuple[str, set[str]]:
    """Blanks every `#[cfg(test)]` item; returns the text and the names of `#[cfg(test)] mod x;`."""
    excluded_mods: set[str] = set()
    out = list(text)
    for m in re.finditer(r"#\s*\[\s*cfg\s*\(\s*test\s*\)\s*\]", text):
        j = m.end()
        semi, brace = text.find(";", j), text.find("{", j)
        if semi >= 0 and (brace < 0 or semi < brace):
            mm = re.search(r"\bmod\s+(\w+)\s*;", text[m.start(): semi + 1])
            if mm:
                excluded_mods.add(mm.group(1))
            end = semi + 1
        elif brace >= 0:
            end = matching_brace(text, brace)
        else:
            continue
        for k in range(m.start(), end):
            if out[k] != "\n":
                out[k] = " "
    return "".join(out), excluded_mods


@dataclass
class RustFile:
    path: str                 # relative to the repository, e.g. src/sink/s3.rs
    module: tuple[str, ...]   # ("crate", "sink", "s3")
    code: str                 # comments, strings and #[cfg(test)] items blanked
    child_mods: set[str] = field(default_factory=set)
    # `mod x;` without `pub`: part of this module (its impl blocks extend this module's types,
    # e.g. leases::table's `impl LeaseStore`), so reaching this module reaches it.
    private_mods: set[str] = field(default_factory=set)


def module_of(rel: str) -> tuple[str, ...]:
    parts = list(Path(rel).with_suffix("").parts)[1:]  # drop "src"
    if parts in (["lib"], ["main"]):
        return ("crate",) if parts == ["lib"] else ("crate", "<main>")
    if parts[-1] == "mod":
        parts = parts[:-1]
    return ("crate", *parts)


def load_rust(src: Path) -> dict[tuple[str, ...], RustFile]:
    files: dict[tuple[str, ...], RustFile] = {}
    for p in sorted(src.rglob("*.rs")):
        rel = p.relative_to(src.parent).as_posix()
        code = blank_comments_and_strings(p.read_text())
        code, excluded = strip_cfg_test(code)
        mod = module_of(rel)
        kids = set(re.findall(r"\bmod\s+(\w+)\s*;", code)) - excluded
        private = set(re.findall(r"(?m)^\s*mod\s+(\w+)\s*;", code)) - excluded
        files[mod] = RustFile(rel, mod, code, kids, private)
    return files


def expand_use_tree(tree: str) -> list[str]:
    """`crate::{a::B, c::{d, e}}` -> ["crate::a::B", "crate::c::d", "crate::c::e"]."""
    tree = re.sub(r"\s+", "", tree)
    m = re.match(r"^(.*?)\{(.*)\}$", tree)
    if not m:
        return [re.sub(r"as\w+$", "", tree)]
    prefix, inner = m.group(1), m.group(2)
    parts, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    parts.append(cur)
    out = []
    for part in filter(None, parts):
        for sub in expand_use_tree(part):
            out.append(prefix + sub if sub != "self" else prefix.rstrip(":"))
    return out


def referenced_modules(f: RustFile, files: dict[tuple[str, ...], RustFile]) -> set[tuple[str, ...]]:
    """Modules this file names by path (edges of the module graph)."""
    paths: list[str] = []
    for m in re.finditer(r"\buse\s+([^;]+);", f.code):
        paths.extend(expand_use_tree(m.group(1)))
    paths.extend(re.findall(r"(?<![\w:])((?:crate|super|self|dynamo_archiver)(?:\s*::\s*\w+)+)", f.code))
    for kid in f.child_mods:
        paths.extend(kid + "::" + p for p in re.findall(rf"(?<![\w:.]){kid}\s*::\s*((?:\w+\s*::\s*)*\w+)", f.code))
    # `super` is relative to the module the file *is*; for a mod.rs that is the module itself.
    here = f.module if f.module != ("crate", "<main>") else ("crate",)
    out: set[tuple[str, ...]] = {here + (kid,) for kid in f.private_mods if here + (kid,) in files}
    for raw in paths:
        segs = [s for s in re.sub(r"\s+", "", raw).split("::") if s]
        if not segs:
            continue
        if segs[0] == "dynamo_archiver":
            base, rest = ["crate"], segs[1:]
        elif segs[0] == "crate":
            base, rest = ["crate"], segs[1:]
        elif segs[0] in ("super", "self"):
            base = list(here)
            rest = segs
            while rest and rest[0] in ("super", "self"):
                if rest[0] == "super":
                    base = base[:-1]
                rest = rest[1:]
        elif segs[0] in f.child_mods:
            base, rest = list(here), segs
        else:
            continue
        target = tuple(base)
        for seg in rest:
            if target + (seg,) in files:
                target = target + (seg,)
            else:
                break
        if target in files and target != f.module:
            out.add(target)
    return out


# Modules that hold values and call nothing: reaching them does not reach what their types name.
# `config` names every command's domain types (a snapshot format, a progress mode) to convert
# clap's values into them; the worker reaching its own configuration does not make it call
# what `snapshot` or `restore` call.
VALUES_ONLY = ("src/config/",)


def reachable(entries: list[str], files: dict[tuple[str, ...], RustFile]) -> set[tuple[str, ...]]:
    by_path = {f.path: m for m, f in files.items()}
    todo = [by_path[e] for e in entries]
    seen: set[tuple[str, ...]] = set()
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        if files[m].path.startswith(VALUES_ONLY):
            continue
        todo.extend(referenced_modules(files[m], files) - seen)
    return seen


@dataclass(frozen=True)
class CallSite:
    path: str
    line: int
    service: str
    op: str


_CLIENT_TYPE = r"(?:aws_sdk_(\w+)\s*::\s*)Client\b"


def client_names(files: dict[tuple[str, ...], RustFile]) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """Names bound to SDK clients: per file (parameters, fields, typed lets) and crate-wide (the
    struct fields, e.g. `Clients::s3`), each name -> service."""
    per_file: dict[str, dict[str, str]] = {}
    crate_wide: dict[str, set[str]] = {}
    for f in files.values():
        local: dict[str, str] = {}
        for m in re.finditer(r"\b(\w+)\s*:\s*&?\s*(?:mut\s+)?" + _CLIENT_TYPE, f.code):
            local[m.group(1)] = m.group(2)
        for m in re.finditer(r"\blet\s+(?:mut\s+)?(\w+)\s*=\s*" + _CLIENT_TYPE, f.code):
            local[m.group(1)] = m.group(2)
        per_file[f.path] = local
        for m in re.finditer(r"\bpub(?:\([^)]*\))?\s+(\w+)\s*:\s*" + _CLIENT_TYPE, f.code):
            crate_wide.setdefault(m.group(1), set()).add(m.group(2))
    unique = {name: next(iter(s)) for name, s in crate_wide.items() if len(s) == 1}
    return per_file, unique


def functions(code: str) -> list[tuple[str, int, int, str]]:
    """(name, body start, body end, signature) of every fn with a body."""
    out = []
    for m in re.finditer(r"\bfn\s+(\w+)", code):
        brace, semi = code.find("{", m.end()), code.find(";", m.end())
        if brace < 0 or (0 <= semi < brace):
            continue
        out.append((m.group(1), brace, matching_brace(code, brace), code[m.end():brace]))
    return out


def call_sites(files: dict[tuple[str, ...], RustFile], errors: list[str]) -> dict[str, list[CallSite]]:
    per_file_clients, crate_clients = client_names(files)
    builder_fns = set()
    for f in files.values():
        for name, _, _, sig in functions(f.code):
            if re.search(r"->\s*[^{]*(FluentBuilder|Paginator)", sig):
                builder_fns.add(name)
    sites: dict[str, list[CallSite]] = {}
    call = re.compile(r"(?<![\w.])((?:\w+\s*\.\s*)*?(\w+))\s*\.\s*([a-z_][a-z0-9_]*)\s*\(\s*\)")
    for f in files.values():
        local = per_file_clients[f.path]
        found: list[tuple[int, CallSite]] = []
        for m in call.finditer(f.code):
            name, op = m.group(2), m.group(3)
            # A crate-wide name (a struct field such as `Clients::streams`) counts only as a field
            # access (`ctx.clients.streams`): a bare `streams` may be any local variable.
            field_access = "." in m.group(1)
            service = local.get(name) or (crate_clients.get(name) if field_access else None)
            if service is None or op in NOT_OPERATIONS:
                continue
            line = f.code.count("\n", 0, m.start(3)) + 1
            found.append((m.start(3), CallSite(f.path, line, service, op)))
        sites[f.path] = [s for _, s in found]
        # Safety net: every request sent must come from an operation the check saw.
        for name, start, end, _ in functions(f.code):
            body = f.code[start:end]
            if not re.search(r"\.\s*send\s*\(\s*\)", body):
                continue
            inner = [fn for fn in functions(body) if fn[0] != name]
            has_op = any(start <= pos < end for pos, _ in found)
            calls_builder = any(re.search(rf"\b{b}\s*\(", body) for b in builder_fns)
            if not has_op and not calls_builder and not inner:
                line = f.code.count("\n", 0, start) + 1
                errors.append(
                    f"{f.path}:{line}: fn {name} sends a request (.send()) but no SDK operation on a "
                    "known client is visible in it; bind the client with its type "
                    "(`x: aws_sdk_<service>::Client`) or teach check_policy.py the name"
                )
    return sites


def target_of(path: str, service: str) -> str | None:
    best = None
    for prefix, svc, group in TARGETS:
        if svc == service and path.startswith(prefix) and (best is None or len(prefix) > len(best[0])):
            best = (prefix, group)
    return best[1] if best else None


@dataclass(frozen=True)
class Need:
    action: str
    kind: str
    feature: str | None


def caller_groups(
    mods: set[tuple[str, ...]], files: dict[tuple[str, ...], RustFile], sites: dict[str, list[CallSite]]
) -> dict[str, set[str]]:
    """Wrapper path -> the groups of its users among `mods` (see CALLER)."""
    wrappers = [prefix for prefix, _, group in TARGETS if group == CALLER]
    out: dict[str, set[str]] = {}
    for m in mods:
        f = files[m]
        for r in referenced_modules(f, files):
            path = files[r].path
            if not any(path.startswith(w) for w in wrappers):
                continue
            for service in {c.service for c in sites[path]}:
                group = target_of(f.path, service)
                if group is not None and group != CALLER:
                    out.setdefault(path, set()).add(group)
    return out


def needs_of(
    sites: list[CallSite], errors: list[str], callers: dict[str, set[str]] | None = None
) -> dict[Need, list[CallSite]]:
    out: dict[Need, list[CallSite]] = {}
    for s in sites:
        actions = OPERATIONS.get((s.service, s.op))
        if actions is None:
            errors.append(
                f"{s.path}:{s.line}: `{s.op}` of aws_sdk_{s.service} is not in OPERATIONS: add it with "
                "its IAM action(s) (Service Authorization Reference) and grant it in the template"
            )
            continue
        group = target_of(s.path, s.service)
        if group is None:
            errors.append(
                f"{s.path}:{s.line}: a {s.service} call in a module TARGETS does not cover: say "
                "which resource it touches"
            )
            continue
        groups = [group]
        if group == CALLER:
            groups = sorted((callers or {}).get(s.path, set()))
            if not groups:
                errors.append(
                    f"{s.path}:{s.line}: no module of this role that uses the wrapper has a "
                    f"{s.service} entry in TARGETS: say what its calls touch"
                )
                continue
        for group, (action, role) in ((g, a) for g in groups for a in actions):
            if role == "*":
                out.setdefault(Need(action, "*", None), []).append(s)
                continue
            kind = KINDS.get((group, role))
            if kind is None:
                errors.append(f"{s.path}:{s.line}: no resource kind for ({group}, {role}) in KINDS")
                continue
            out.setdefault(Need(action, kind[0], kind[1]), []).append(s)
    return out


# ---------------------------------------------------------------------------------------------
# The template
# ---------------------------------------------------------------------------------------------


def load_template(path: Path, errors: list[str]) -> dict:
    from cfnlint.decode import decode
    from cfnlint.template import Template
    from cfnlint.template.transforms._language_extensions import language_extension

    tpl, matches = decode(str(path))
    if matches:
        for m in matches:
            errors.append(f"{path}: cannot be read: {m}")
        return {}
    tpl = copy.deepcopy(tpl)
    tpl.setdefault("Parameters", {}).setdefault("Tables", {})["Default"] = ",".join(SAMPLE_TABLES)
    cfn = Template(str(path), tpl, ["us-east-1"])
    problems, expanded = language_extension(cfn)
    if problems:
        for m in problems:
            errors.append(f"{path}: Fn::ForEach expansion failed: {m}")
        return {}
    return expanded


def canonical(v) -> str:
    """A resource expression as one string: ${Ref}, ${Res.Attr}, Fn::Sub kept, Fn::Join joined."""
    if isinstance(v, str):
        return v
    if isinstance(v, dict) and len(v) == 1:
        (k, a), = v.items()
        if k == "Ref":
            return "${" + a + "}"
        if k == "Fn::GetAtt":
            return "${" + (a if isinstance(a, str) else ".".join(a)) + "}"
        if k == "Fn::Sub":
            return a if isinstance(a, str) else a[0]
        if k == "Fn::Join":
            return a[0].join(canonical(x) for x in a[1])
    return "<" + repr(v) + ">"


class Resolver:
    """Evaluates Conditions and Fn::If for one set of parameter values."""

    def __init__(self, tpl: dict, params: dict[str, str]):
        self.tpl = tpl
        self.params = {k: str(p.get("Default", "")) for k, p in tpl.get("Parameters", {}).items()}
        self.params.update(params)
        self.cache: dict[str, bool] = {}

    def value(self, v):
        if isinstance(v, dict) and len(v) == 1 and "Ref" in v and v["Ref"] in self.params:
            return self.params[v["Ref"]]
        if isinstance(v, dict) and len(v) == 1 and "Condition" in v:
            return self.condition(v["Condition"])
        return v

    def evaluate(self, expr) -> bool:
        (k, a), = expr.items()
        if k == "Fn::Equals":
            return str(self.value(a[0])) == str(self.value(a[1]))
        if k == "Fn::Not":
            return not self.evaluate_any(a[0])
        if k == "Fn::And":
            return all(self.evaluate_any(x) for x in a)
        if k == "Fn::Or":
            return any(self.evaluate_any(x) for x in a)
        if k == "Condition":
            return self.condition(a)
        raise ValueError(f"cannot evaluate condition {expr!r}")

    def evaluate_any(self, x) -> bool:
        return self.condition(x["Condition"]) if "Condition" in x else self.evaluate(x)

    def condition(self, name: str) -> bool:
        if name not in self.cache:
            self.cache[name] = self.evaluate(self.tpl["Conditions"][name])
        return self.cache[name]

    def resolve(self, v):
        """The value with every Fn::If chosen; AWS::NoValue removed."""
        if isinstance(v, dict):
            if len(v) == 1 and "Fn::If" in v:
                cond, yes, no = v["Fn::If"]
                return self.resolve(yes if self.condition(cond) else no)
            out = {}
            for k, x in v.items():
                r = self.resolve(x)
                if not _is_novalue(r):
                    out[k] = r
            return out
        if isinstance(v, list):
            return [r for r in (self.resolve(x) for x in v) if not _is_novalue(r)]
        return v

    def exists(self, res: dict) -> bool:
        c = res.get("Condition")
        return c is None or self.condition(c)


def _is_novalue(v) -> bool:
    return isinstance(v, dict) and v == {"Ref": "AWS::NoValue"}


def as_list(v) -> list:
    return v if isinstance(v, list) else [v]


@dataclass(frozen=True)
class Grant:
    action: str
    kind: str
    source: str  # logical id / statement, for the report


def role_policies(tpl: dict, r: Resolver, role: str) -> list[tuple[str, dict]]:
    """(where, policy document) of every identity policy attached to `role` in this scenario."""
    res = tpl.get("Resources", {})
    out = []
    role_res = res.get(role)
    if role_res is None or not r.exists(role_res):
        return out
    props = r.resolve(role_res.get("Properties", {}))
    for p in props.get("Policies", []):
        out.append((f"{role}/{p.get('PolicyName')}", p.get("PolicyDocument", {})))
    for lid, x in res.items():
        if not r.exists(x) or x.get("Type") not in ("AWS::IAM::Policy", "AWS::IAM::RolePolicy", "AWS::IAM::ManagedPolicy"):
            continue
        p = r.resolve(x.get("Properties", {}))
        roles = as_list(p.get("Roles", [])) + ([p["RoleName"]] if "RoleName" in p else [])
        if {"Ref": role} in roles:
            out.append((lid, p.get("PolicyDocument", {})))
    return out


def wildcard_problems(where: str, role: str, stmt: dict) -> list[str]:
    out = []
    if "NotAction" in stmt or "NotResource" in stmt:
        out.append(f"{where}: NotAction/NotResource in an Allow statement grants everything else")
    actions = as_list(stmt.get("Action", []))
    for a in actions:
        if not isinstance(a, str) or "*" in a or "?" in a:
            out.append(f"{where}: wildcard action {a!r}")
    for res in as_list(stmt.get("Resource", [])):
        if canonical(res) == "*":
            for a in actions:
                if (role, a) not in STAR_REQUIRED:
                    out.append(f"{where}: {a} on Resource \"*\" (not a documented STAR_REQUIRED case)")
    return out


def grants_of(tpl: dict, r: Resolver, role: str, errors: list[str]) -> set[Grant]:
    out: set[Grant] = set()
    res = tpl["Resources"].get(role, {})
    managed = r.resolve(res.get("Properties", {})).get("ManagedPolicyArns", [])
    if managed:
        errors.append(f"{role}: attached managed policies {managed} cannot be checked; write the grants inline")
    for where, doc in role_policies(tpl, r, role):
        for i, stmt in enumerate(as_list(doc.get("Statement", []))):
            if stmt.get("Effect") != "Allow":
                continue
            label = f"{where}#{stmt.get('Sid', i)}"
            errors.extend(wildcard_problems(label, role, stmt))
            for res_expr in as_list(stmt.get("Resource", [])):
                text = canonical(res_expr)
                kind = "*" if text == "*" else next((k for k, rx in RESOURCE_KINDS if re.match(rx, text)), None)
                if kind is None:
                    errors.append(f"{label}: resource {text} matches no RESOURCE_KINDS entry")
                    continue
                for a in as_list(stmt.get("Action", [])):
                    out.add(Grant(a, kind, label))
    return out


def other_policies_problems(tpl: dict, r: Resolver) -> list[str]:
    """Wildcard rules for every identity policy of a role that is not a task role."""
    out = []
    for lid, x in tpl.get("Resources", {}).items():
        if x.get("Type") == "AWS::IAM::Role" and lid not in ROLES and r.exists(x):
            for where, doc in role_policies(tpl, r, lid):
                for i, stmt in enumerate(as_list(doc.get("Statement", []))):
                    if stmt.get("Effect") == "Allow":
                        out.extend(wildcard_problems(f"{where}#{stmt.get('Sid', i)}", lid, stmt))
    return out


# ---------------------------------------------------------------------------------------------
# Template consistency: Glue columns and task environment
# ---------------------------------------------------------------------------------------------


def glue_problems(tpl: dict) -> list[str]:
    archive = json.loads(ARCHIVE_SCHEMA.read_text())
    firehose = json.loads(FIREHOSE_SCHEMA.read_text())
    expected = {
        "archive": (
            ARCHIVE_SCHEMA.name,
            [(c["name"], c["type"]) for c in archive["columns"]],
            [(c["name"], c["type"]) for c in archive["partition_keys"]],
        ),
        "firehose": (
            FIREHOSE_SCHEMA.name,
            [(c["Name"], c["Type"]) for c in firehose["Columns"]],
            [(c["Name"], c["Type"]) for c in firehose.get("PartitionKeys", [])],
        ),
    }
    out, seen = [], 0
    for lid, res in tpl.get("Resources", {}).items():
        if res.get("Type") != "AWS::Glue::Table":
            continue
        seen += 1
        ti = res["Properties"]["TableInput"]
        cols = [(c["Name"], c["Type"]) for c in ti["StorageDescriptor"]["Columns"]]
        kind = "firehose" if lid == "FirehoseSchemaTable" or lid.startswith("FirehoseGlueTable") else "archive"
        name, want_cols, want_parts = expected[kind]
        if cols != want_cols:
            out.append(f"{lid}: columns {cols} differ from {name} {want_cols}")
        parts = [(c["Name"], c["Type"]) for c in ti.get("PartitionKeys", [])]
        # The conversion schema is never queried, so it needs no partitions.
        if lid != "FirehoseSchemaTable" and parts != want_parts:
            out.append(f"{lid}: partition keys {parts} differ from {name} {want_parts}")
    if not seen:
        out.append("no AWS::Glue::Table in the template")
    return out


def cli_env_vars(config_dir: Path) -> dict[str, set[str]]:
    """clap argument struct -> the environment variables of its options (flattened structs too),
    from every file of src/config/ (each command's arguments sit in its own file)."""
    code = "\n".join(
        blank_comments_and_strings_keep(p.read_text()) for p in sorted(config_dir.glob("*.rs"))
    )
    structs: dict[str, tuple[set[str], set[str]]] = {}
    for m in re.finditer(r"\bpub\s+struct\s+(\w+)\s*\{", code):
        body = code[m.end(): matching_brace(code, m.end() - 1)]
        envs = set(re.findall(r'env\s*=\s*"(ARCHIVER_\w+)"', body))
        flat = set(re.findall(r"#\[command\(flatten\)\]\s*pub\s+\w+\s*:\s*(\w+)", body))
        structs[m.group(1)] = (envs, flat)

    def resolve(name: str, depth: int = 0) -> set[str]:
        envs, flat = structs.get(name, (set(), set()))
        out = set(envs)
        if depth < 5:
            for f in flat:
                out |= resolve(f, depth + 1)
        return out

    return {name: resolve(name) for name in structs}


def blank_comments_and_strings_keep(text: str) -> str:
    """Comments blanked, string literals kept (the env names are strings)."""
    return re.sub(r"//[^\n]*", "", text)


def env_problems(tpl: dict, config_dir: Path, notes: list[str]) -> list[str]:
    options = cli_env_vars(config_dir)
    out = []
    for name, params, _ in SCENARIOS:
        r = Resolver(tpl, params)
        for lid, res in tpl.get("Resources", {}).items():
            if res.get("Type") != "AWS::ECS::TaskDefinition" or not r.exists(res):
                continue
            for c in r.resolve(res["Properties"]).get("ContainerDefinitions", []):
                structs = CONTAINER_COMMANDS.get(c.get("Name"))
                if structs is None:
                    out.append(f"{lid}: container {c.get('Name')!r} is not in CONTAINER_COMMANDS")
                    continue
                for var in (e["Name"] for e in c.get("Environment", [])):
                    if not var.startswith("ARCHIVER_"):
                        continue
                    for st in structs:
                        known = var in options.get(st, set())
                        if known and var in PENDING_OPTIONS:
                            notes.append(f"{var} is now an option of {st}: remove it from PENDING_OPTIONS")
                        elif not known and var in PENDING_OPTIONS:
                            notes.append(f"{lid}/{c['Name']}: {var} is not yet an option of {st} ({PENDING_OPTIONS[var]}); the binary ignores it until then")
                        elif not known:
                            out.append(f"[{name}] {lid}/{c['Name']}: {var} is no option of {st} (src/config/): the binary would ignore it")
    return out


# ---------------------------------------------------------------------------------------------
# Server-side guards: the denies that protect the archive from every principal
# ---------------------------------------------------------------------------------------------

# A sample break-glass role; the guards are checked without one (everyone denied) and with it.
BREAK_GLASS_SAMPLE = "arn:aws:iam::111122223333:role/archive-break-glass"
GUARD_SCENARIOS: list[tuple[str, dict[str, str]]] = [
    (f"{mode}, {'a' if bg else 'no'} break-glass role", {"OutputMode": mode, "BreakGlassRoleArn": bg})
    for mode in ("parquet", "firehose")
    for bg in ("", BREAK_GLASS_SAMPLE)
]

# Objects a guard must cover (canonical ARNs): everything of the archive bucket that Athena or
# `verify` reads. The Parquet archive, the Firehose overflow objects and the Firehose replicas.
GUARDED_OBJECTS = [
    "${ArchiveBucket.Arn}/${ArchivePrefix}/users/dt=2026-11-22/shardId-00000001_1_2.parquet",
    "${ArchiveBucket.Arn}/firehose-overflow/users/0123.json",
    "${ArchiveBucket.Arn}/firehose/users/dt=2026-11-22/changes-1.parquet",
    "${ArchiveBucket.Arn}/firehose-errors/format-conversion-failed/dt=2026-11-22/x",
]
# In a key policy, "*" is the key itself.
THE_KEY = ["*"]

# The condition of the create-only deny, as AWS documents it: deny the object-creating requests
# (PutObject, CompleteMultipartUpload, CopyObject) that lack If-None-Match. Without the second key
# the deny would also hit CreateMultipartUpload and UploadPart, which cannot carry the header:
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes-enforce.html
CREATE_ONLY_CONDITION = {"Null": {"s3:if-none-match": "true"}, "Bool": {"s3:objectcreationoperation": "true"}}


@dataclass(frozen=True)
class Guard:
    name: str                 # how failures name it
    holder: str               # "bucket policy" or "key policy"
    actions: tuple[str, ...]  # each must be denied
    covers: tuple[str, ...]   # resources the deny must cover
    exception: str            # "none": no principal exempt; "break-glass": BreakGlassRoleArn only
    why: str


GUARDS = [
    Guard(
        "create-only writes",
        "bucket policy",
        ("s3:PutObject",),
        tuple(GUARDED_OBJECTS),
        "none",
        "without it a principal could add a version over an archive key, and readers take the newest",
    ),
    Guard(
        "no object deletes",
        "bucket policy",
        ("s3:DeleteObject", "s3:DeleteObjectVersion"),
        tuple(GUARDED_OBJECTS),
        "break-glass",
        "a delete marker hides an object from Athena and `verify` although COMPLIANCE keeps it",
    ),
    Guard(
        "key kept",
        "key policy",
        ("kms:ScheduleKeyDeletion", "kms:DisableKey", "kms:PutKeyPolicy"),
        tuple(THE_KEY),
        "break-glass",
        "a deleted or disabled key makes the whole locked archive unreadable",
    ),
]


def _glob(pattern: str) -> re.Pattern:
    """An IAM wildcard pattern (`*`, `?`) as a regex over the whole string."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern) + r"\Z", re.S)


def _matches_any(patterns: list, value: str, case_insensitive: bool = False) -> bool:
    fold = str.lower if case_insensitive else (lambda s: s)
    return any(isinstance(p, (str, dict)) and _glob(fold(_bucket_arn(canonical(p)))).match(fold(value)) for p in patterns)


def _bucket_arn(text: str) -> str:
    """The archive bucket's ARN written out from its name counts as ${ArchiveBucket.Arn}."""
    return re.sub(r"^arn:(?:\$\{AWS::Partition\}|aws):s3:::\$\{ArchiveBucket\}", "${ArchiveBucket.Arn}", text)


def _norm_condition(cond) -> dict:
    """Condition block with keys lower-cased (IAM compares condition keys case-insensitively) and
    single values unwrapped: {"Null": {"s3:if-none-match": "true"}}."""
    out: dict = {}
    for op, kv in (cond or {}).items():
        if not isinstance(kv, dict):
            out[op] = kv
            continue
        vals = {}
        for k, v in kv.items():
            v = v[0] if isinstance(v, list) and len(v) == 1 else v
            vals[str(k).lower()] = str(v).lower() if isinstance(v, bool) else (canonical(v) if isinstance(v, dict) else v)
        out[op] = vals
    return out


def _is_everyone(principal) -> bool:
    if principal == "*":
        return True
    if isinstance(principal, dict) and set(principal) == {"AWS"}:
        return as_list(principal["AWS"]) == ["*"]
    return False


def statement_defects(stmt: dict, guard: Guard, action: str, params: dict[str, str]) -> list[str]:
    """Why `stmt` is not (or not wholly) the guard's deny of `action`; empty when it is."""
    out = []
    for bad in ("NotPrincipal", "NotAction", "NotResource"):
        if bad in stmt:
            out.append(f"uses {bad}")
    if not _is_everyone(stmt.get("Principal")):
        out.append(f"Principal is {stmt.get('Principal')!r}, not \"*\" (every principal)")
    resources = as_list(stmt.get("Resource", []))
    uncovered = [obj for obj in guard.covers if not _matches_any(resources, obj)]
    if uncovered:
        out.append(f"Resource {[canonical(x) for x in resources]} does not cover {', '.join(uncovered)}")
    cond = _norm_condition(stmt.get("Condition"))
    if guard.exception == "none":
        if cond != CREATE_ONLY_CONDITION:
            if "s3:objectcreationoperation" not in cond.get("Bool", {}):
                out.append(
                    "its condition lacks Bool s3:ObjectCreationOperation \"true\": it would also deny "
                    "CreateMultipartUpload and UploadPart, which cannot carry If-None-Match, so the "
                    "archiver's multipart uploads would fail"
                )
            out.append(f"its condition is {cond}, not exactly {CREATE_ONLY_CONDITION} (anything else narrows it)")
    else:
        role = params.get("BreakGlassRoleArn", "")

        def value(v):
            return role if v == "${BreakGlassRoleArn}" else v

        exempts = [
            (op, kv) for op, kv in cond.items()
            if op in ("ArnNotEquals", "StringNotEquals") and isinstance(kv, dict) and set(kv) == {"aws:principalarn"}
        ]
        only_the_role = len(cond) == 1 and len(exempts) == 1 and value(exempts[0][1]["aws:principalarn"]) == role
        if role and not only_the_role:
            out.append(
                f"its condition is {cond}; with BreakGlassRoleArn={role} it must be exactly "
                "ArnNotEquals {aws:PrincipalArn: BreakGlassRoleArn} (only that role exempt)"
            )
        if not role and cond and not only_the_role:
            out.append(f"its condition is {cond}; with BreakGlassRoleArn empty the deny must hold for every principal")
    return out


def guard_statements(tpl: dict, r: Resolver, holder: str, errors: list[str]) -> tuple[str, list[dict]]:
    res = tpl.get("Resources", {})
    if holder == "key policy":
        key = res.get("ArchiveKey")
        if key is None or key.get("Type") != "AWS::KMS::Key" or not r.exists(key):
            errors.append("ArchiveKey (AWS::KMS::Key) is missing")
            return "ArchiveKey's key policy", []
        props = r.resolve(key.get("Properties", {}))
        if props.get("BypassPolicyLockoutSafetyCheck") not in (True, "true", "True"):
            errors.append(
                "guard 'key kept': ArchiveKey's policy denies kms:PutKeyPolicy to the principal that "
                "deploys the stack, so it needs BypassPolicyLockoutSafetyCheck: true or KMS refuses it"
            )
        return "ArchiveKey's key policy", as_list(props.get("KeyPolicy", {}).get("Statement", []))
    stmts, where = [], []
    for lid, x in res.items():
        if x.get("Type") == "AWS::S3::BucketPolicy" and x.get("Properties", {}).get("Bucket") == {"Ref": "ArchiveBucket"}:
            if x.get("Condition"):
                errors.append(f"{lid}: the archive bucket's policy has a Condition ({x['Condition']}): the guards must always exist")
            if r.exists(x):
                where.append(lid)
                stmts.extend(as_list(r.resolve(x.get("Properties", {})).get("PolicyDocument", {}).get("Statement", [])))
    return "/".join(where) or "no AWS::S3::BucketPolicy of ArchiveBucket", stmts


def guard_problems(tpl: dict) -> list[str]:
    """Each guard's deny exists, whole, in every scenario; a failure names the guard."""
    general: list[str] = []
    found: dict[str, list[str]] = {}  # problem -> the scenarios it shows in
    for scenario, params in GUARD_SCENARIOS:
        r = Resolver(tpl, params)
        for guard in GUARDS:
            where, stmts = guard_statements(tpl, r, guard.holder, general)
            for action in guard.actions:
                denying = [
                    s for s in stmts
                    if s.get("Effect") == "Deny" and _matches_any(as_list(s.get("Action", [])), action, case_insensitive=True)
                ]
                defects = {s.get("Sid", f"#{i}"): statement_defects(s, guard, action, params) for i, s in enumerate(denying)}
                if any(not d for d in defects.values()):
                    continue
                # Reported once per action, with what each statement naming the action lacks. One
                # that covers it only by a wildcard (DenyInsecureTransport: s3:* over plain HTTP) is
                # a different deny, and only mentioned.
                named = {
                    s.get("Sid", f"#{i}"): d for (i, s), d in zip(enumerate(denying), defects.values())
                    if action.lower() in (str(a).lower() for a in as_list(s.get("Action", [])))
                }
                seen = " ".join(f"{sid}: {'; '.join(d)}." for sid, d in named.items())
                if not named:
                    wild = [sid for sid in defects if sid not in named]
                    seen = f"no Deny statement names {action}" + (
                        f" ({', '.join(wild)} cover{'s' if len(wild) == 1 else ''} it by a wildcard, with other conditions)" if wild else ""
                    )
                problem = (
                    f"guard '{guard.name}' is missing or weakened: no statement of {where} denies "
                    f"{action} as it must ({guard.why}). {seen}"
                )
                found.setdefault(problem, []).append(scenario)
    scenarios_all = len(GUARD_SCENARIOS)
    return list(dict.fromkeys(general)) + [
        f"[{'all scenarios' if len(sc) == scenarios_all else '; '.join(sc)}] {p}" for p, sc in found.items()
    ]


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--template", default=str(ROOT / "infra" / "dynamo-archiver.yaml"))
    ap.add_argument("--src", default=str(ROOT / "src"))
    ap.add_argument(
        "--expand-to",
        metavar="PATH",
        help="also write the template with its Fn::ForEach loops expanded (sample tables) as JSON, "
        "for checkov, which skips Fn::ForEach",
    )
    args = ap.parse_args()

    errors: list[str] = []
    files = load_rust(Path(args.src))
    sites = call_sites(files, errors)
    tpl = load_template(Path(args.template), errors)
    if not tpl:
        return report_and_exit(errors)
    if args.expand_to:
        expanded = {k: v for k, v in tpl.items() if k != "Transform"}
        Path(args.expand_to).write_text(json.dumps(expanded, indent=1))

    notes: list[str] = []
    errors.extend(glue_problems(tpl))
    errors.extend(guard_problems(tpl))
    errors.extend(env_problems(tpl, Path(args.src) / "config", notes))

    print("AWS operations called by the binary, by task role (from src/, module reachability):")
    role_needs: dict[str, dict[Need, list[CallSite]]] = {}
    role_mods = {role: reachable(entries, files) for role, entries in ROLES.items()}
    for role, entries in ROLES.items():
        role_sites = [s for m in sorted(role_mods[role]) for s in sites[files[m].path]]
        role_needs[role] = needs_of(role_sites, errors, caller_groups(role_mods[role], files, sites))
        print(f"\n  {role} (commands: {', '.join(Path(e).stem.replace('_', '-') for e in entries)})")
        for need, where in sorted(role_needs[role].items(), key=lambda kv: (kv[0].action, kv[0].kind)):
            ops = sorted({f"{s.op} ({s.path}:{s.line})" for s in where})
            feat = f"  [only with {need.feature}]" if need.feature else ""
            print(f"    {need.action:<32} {need.kind:<16}{feat}")
            for o in ops:
                print(f"        {o}")
    operator_only = {
        f.path for m, f in files.items() if sites[f.path] and not any(m in mods for mods in role_mods.values())
    }
    if operator_only:
        print("\n  Call sites reached only by operator commands (no task role needed):", ", ".join(sorted(operator_only)))

    for name, params, features in SCENARIOS:
        r = Resolver(tpl, params)
        print(f"\nScenario: {name}")
        errors.extend(f"[{name}] {e}" for e in other_policies_problems(tpl, r))
        for role in ROLES:
            granted = grants_of(tpl, r, role, scenario_errors := [])
            errors.extend(f"[{name}] {e}" for e in scenario_errors)
            needed = {(n.action, n.kind): n for n in role_needs[role] if n.feature is None or n.feature in features}
            have: dict[tuple[str, str], list[str]] = {}
            for g in granted:
                have.setdefault((g.action, g.kind), []).append(g.source)
            missing = sorted(set(needed) - set(have))
            extra = sorted(set(have) - set(needed))
            print(f"  {role}: {len(needed)} (action, resource) pairs called, {len(have)} granted")
            for a, k in missing:
                where = ", ".join(sorted({f"{s.op} {s.path}:{s.line}" for s in role_needs[role][needed[(a, k)]]}))
                errors.append(f"[{name}] {role}: {a} on {k} is called ({where}) but not granted")
            for a, k in extra:
                errors.append(f"[{name}] {role}: {a} on {k} is granted ({', '.join(sorted(have[(a, k)]))}) but nothing calls it")
    print(f"\nAlso checked: Glue columns against {ARCHIVE_SCHEMA.name} and {FIREHOSE_SCHEMA.name}, task environment against src/config/,")
    print(f"and the server-side guards ({len(GUARD_SCENARIOS)} scenarios, without and with a break-glass role):")
    for g in GUARDS:
        print(f"  {g.name + ':':<20} Deny of {', '.join(g.actions)} in the {g.holder}")
    for n in sorted(set(notes)):
        print(f"  note: {n}")
    return report_and_exit(errors)


def report_and_exit(errors: list[str]) -> int:
    print()
    errors = list(dict.fromkeys(errors))  # a shared module's problem is found once per role
    if errors:
        print(f"check_policy: {len(errors)} problem(s):")
        for e in errors:
            print(f"  - {e}")
        return 1
    print("check_policy: OK: every operation called is granted, nothing else is, and the server-side guards are whole.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
