#!/usr/bin/env python3
"""The checker's own test: scripts/check_policy.py fails when a server-side guard of
infra/dynamo-archiver.yaml is removed or weakened, and names the guard.

Run by scripts/check-infra after check_policy.py, with the infra venv's python (cfn-lint reads the
template): `.local/infra-venv/bin/python scripts/test_check_policy.py`. About ten seconds.

- In memory: the real template, read and expanded as check_policy.py reads it, passes the guard
  check; then each mutation below (a guard statement deleted, an action dropped, the resource
  narrowed, a condition loosened or dropped, an exemption added, ...) is applied to a copy, and
  the check must fail naming that guard.
- End to end: for each of the three denies, a copy of the template file with that statement cut
  out is given to `check_policy.py --template`, which must exit non-zero and name the guard:
  that exit status is what makes scripts/check-infra fail.
"""

from __future__ import annotations

import copy
import re
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
sys.path.insert(0, str(SCRIPTS))

import check_policy as cp  # noqa: E402

TEMPLATE = cp.ROOT / "infra" / "dynamo-archiver.yaml"
# The guard statements of the template: (Sid, where, guard name).
GUARD_STATEMENTS = [
    ("DenyWritesWithoutIfNoneMatch", "bucket", "create-only writes"),
    ("DenyObjectDeletes", "bucket", "no object deletes"),
    ("DenyKeyDeletionAndPolicyChange", "key", "key kept"),
]


def load() -> dict:
    errors: list[str] = []
    tpl = cp.load_template(TEMPLATE, errors)
    if errors or not tpl:
        raise RuntimeError(f"cannot read {TEMPLATE}: {errors}")
    return tpl


def statements(tpl: dict, where: str) -> list[dict]:
    res = tpl["Resources"]
    if where == "key":
        return res["ArchiveKey"]["Properties"]["KeyPolicy"]["Statement"]
    return res["ArchiveBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]


def statement(tpl: dict, sid: str) -> dict:
    for where in ("bucket", "key"):
        for s in statements(tpl, where):
            if s.get("Sid") == sid:
                return s
    raise KeyError(sid)


def remove(sid: str):
    def mutate(tpl):
        for where in ("bucket", "key"):
            stmts = statements(tpl, where)
            stmts[:] = [s for s in stmts if s.get("Sid") != sid]
    return mutate


def edit(sid: str, change):
    def mutate(tpl):
        change(statement(tpl, sid))
    return mutate


def drop_action(action: str):
    def change(s):
        s["Action"] = [a for a in cp.as_list(s["Action"]) if a != action]
    return change


def set_key(key: str, value):
    def change(s):
        s[key] = value
    return change


def del_condition_key(op: str):
    def change(s):
        del s["Condition"][op]
    return change


def exempt_everyone_but(arn: str):
    # The break-glass exception replaced by a fixed role: the parameter no longer decides.
    def change(s):
        s["Condition"] = {"ArnNotEquals": {"aws:PrincipalArn": arn}}
    return change


def add_exemption(s):
    # A second way out: any role of the account, whatever BreakGlassRoleArn says.
    s["Condition"] = {
        "Fn::If": [
            "HasBreakGlassRole",
            {"ArnNotEquals": {"aws:PrincipalArn": {"Ref": "BreakGlassRoleArn"}}, "ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/ops-*"}},
            {"ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/ops-*"}},
        ]
    }


def no_bypass(tpl):
    del tpl["Resources"]["ArchiveKey"]["Properties"]["BypassPolicyLockoutSafetyCheck"]


# (what is done, the mutation, the guard that must be named, a phrase the report must contain)
MUTATIONS = [
    ("create-only deny removed", remove("DenyWritesWithoutIfNoneMatch"), "create-only writes", "no Deny statement names s3:PutObject"),
    ("create-only deny made an Allow", edit("DenyWritesWithoutIfNoneMatch", set_key("Effect", "Allow")), "create-only writes", "s3:PutObject"),
    (
        "create-only deny without the multipart exemption",
        edit("DenyWritesWithoutIfNoneMatch", del_condition_key("Bool")),
        "create-only writes",
        "multipart uploads would fail",
    ),
    (
        "create-only deny no longer tests If-None-Match",
        edit("DenyWritesWithoutIfNoneMatch", del_condition_key("Null")),
        "create-only writes",
        "s3:if-none-match",
    ),
    (
        "create-only deny on the Parquet prefix only",
        edit("DenyWritesWithoutIfNoneMatch", set_key("Resource", {"Fn::Sub": "${ArchiveBucket.Arn}/${ArchivePrefix}/*"})),
        "create-only writes",
        "does not cover ${ArchiveBucket.Arn}/firehose-overflow/",
    ),
    (
        "create-only deny for one principal",
        edit("DenyWritesWithoutIfNoneMatch", set_key("Principal", {"AWS": {"Fn::GetAtt": ["WorkerTaskRole", "Arn"]}})),
        "create-only writes",
        "Principal",
    ),
    (
        "create-only deny with a break-glass exemption",
        edit("DenyWritesWithoutIfNoneMatch", lambda s: s["Condition"].update({"ArnNotEquals": {"aws:PrincipalArn": {"Ref": "BreakGlassRoleArn"}}})),
        "create-only writes",
        "narrows it",
    ),
    ("delete deny removed", remove("DenyObjectDeletes"), "no object deletes", "no Deny statement names s3:DeleteObject"),
    ("delete deny without DeleteObjectVersion", edit("DenyObjectDeletes", drop_action("s3:DeleteObjectVersion")), "no object deletes", "s3:DeleteObjectVersion"),
    ("delete deny without DeleteObject", edit("DenyObjectDeletes", drop_action("s3:DeleteObject")), "no object deletes", "s3:DeleteObject "),
    (
        "delete deny exempting a fixed role",
        edit("DenyObjectDeletes", exempt_everyone_but("arn:aws:iam::111122223333:role/admin")),
        "no object deletes",
        "every principal",
    ),
    ("delete deny with a second exemption", edit("DenyObjectDeletes", add_exemption), "no object deletes", "ArnNotLike"),
    (
        "delete deny under a prefix that misses the overflow objects",
        edit("DenyObjectDeletes", set_key("Resource", [{"Fn::Sub": "${ArchiveBucket.Arn}/${ArchivePrefix}/*"}, {"Fn::Sub": "${ArchiveBucket.Arn}/firehose/*"}])),
        "no object deletes",
        "firehose-overflow",
    ),
    ("key deny removed", remove("DenyKeyDeletionAndPolicyChange"), "key kept", "no Deny statement names kms:ScheduleKeyDeletion"),
    ("key deny without PutKeyPolicy", edit("DenyKeyDeletionAndPolicyChange", drop_action("kms:PutKeyPolicy")), "key kept", "kms:PutKeyPolicy"),
    ("key deny without DisableKey", edit("DenyKeyDeletionAndPolicyChange", drop_action("kms:DisableKey")), "key kept", "kms:DisableKey"),
    ("key deny without ScheduleKeyDeletion", edit("DenyKeyDeletionAndPolicyChange", drop_action("kms:ScheduleKeyDeletion")), "key kept", "kms:ScheduleKeyDeletion"),
    (
        "key deny exempting a fixed role",
        edit("DenyKeyDeletionAndPolicyChange", exempt_everyone_but("arn:aws:iam::111122223333:role/admin")),
        "key kept",
        "every principal",
    ),
    ("key deny with a second exemption", edit("DenyKeyDeletionAndPolicyChange", add_exemption), "key kept", "ArnNotLike"),
    ("key policy without the lockout bypass", no_bypass, "key kept", "BypassPolicyLockoutSafetyCheck"),
]


class GuardCheck(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tpl = load()

    def test_the_template_passes(self):
        self.assertEqual(cp.guard_problems(self.tpl), [])

    def test_every_guard_statement_is_in_the_template(self):
        # The mutations below find the statements by Sid: a renamed statement must be renamed here.
        for sid, _, _ in GUARD_STATEMENTS:
            statement(self.tpl, sid)

    def test_equivalent_rewrites_pass(self):
        # The check reads what a statement does, not how it is spelled.
        tpl = copy.deepcopy(self.tpl)
        stmts = statements(tpl, "bucket")
        deletes = statement(tpl, "DenyObjectDeletes")
        deletes["Principal"] = {"AWS": "*"}
        deletes["Action"] = ["s3:DeleteObject"]
        deletes["Resource"] = {"Fn::Sub": "arn:${AWS::Partition}:s3:::${ArchiveBucket}/*"}
        versions = copy.deepcopy(deletes)
        versions["Sid"], versions["Action"] = "DenyVersionDeletes", "s3:deleteobjectversion"
        stmts.append(versions)
        writes = statement(tpl, "DenyWritesWithoutIfNoneMatch")
        writes["Action"] = ["s3:PutObject", "s3:PutObjectAcl"]
        writes["Condition"] = {"Bool": {"s3:ObjectCreationOperation": True}, "Null": {"s3:if-none-match": ["true"]}}
        self.assertEqual(cp.guard_problems(tpl), [])

    def test_each_mutation_fails_naming_its_guard(self):
        for what, mutate, guard, phrase in MUTATIONS:
            with self.subTest(what):
                tpl = copy.deepcopy(self.tpl)
                mutate(tpl)
                problems = cp.guard_problems(tpl)
                report = "\n".join(problems)
                self.assertTrue(problems, f"{what}: the guard check passed")
                self.assertIn(f"guard '{guard}'", report, f"{what}: the report does not name the guard")
                self.assertIn(phrase, report, f"{what}: the report does not say why")
                others = {g.name for g in cp.GUARDS} - {guard}
                for other in others:
                    self.assertNotIn(f"guard '{other}'", report, f"{what}: an untouched guard was reported")


def cut_statement(text: str, sid: str) -> str:
    """The template text without the YAML list item `- Sid: <sid>` (up to the next item or the
    end of the list)."""
    lines = text.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if re.match(rf"^\s*- Sid: {re.escape(sid)}\s*$", line))
    indent = len(lines[start]) - len(lines[start].lstrip())
    end = start + 1
    while end < len(lines) and (not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) > indent):
        end += 1
    return "".join(lines[:start] + lines[end:])


class CheckPolicyExitStatus(unittest.TestCase):
    """What scripts/check-infra runs, on a template file without one of the denies."""

    def test_check_policy_fails_without_each_deny(self):
        text = TEMPLATE.read_text()
        with tempfile.TemporaryDirectory() as tmp:
            for sid, _, guard in GUARD_STATEMENTS:
                with self.subTest(sid):
                    cut = cut_statement(text, sid)
                    self.assertNotIn(f"Sid: {sid}\n", cut)
                    self.assertGreater(len(text.splitlines()) - len(cut.splitlines()), 5, f"{sid}: too little cut")
                    path = Path(tmp) / f"without-{sid}.yaml"
                    path.write_text(cut)
                    run = subprocess.run(
                        [sys.executable, str(SCRIPTS / "check_policy.py"), "--template", str(path)],
                        capture_output=True,
                        text=True,
                        timeout=120,
                    )
                    self.assertNotEqual(run.returncode, 0, f"check_policy.py passed without {sid}:\n{run.stdout}")
                    self.assertIn(f"guard '{guard}' is missing or weakened", run.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=1)
