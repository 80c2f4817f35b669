"""`substrate drift`: is a live database exactly what its recorded Alembic revision builds?

The expected state is built, not read from a file: a scratch database on the same server (or
``--scratch-url``) is migrated to the live database's recorded revision by the tree's own
``alembic upgrade`` (``substrate.review.scratch``), both are snapshotted
(``substrate.review.schema_snapshot``) and compared per class, object by object. The live
database's default privileges are replayed in the scratch database first (run drift as the role
that runs the migrations, so the objects are created by the same role there). A finding names
its class, its object and what differs:

- ``missing``: the revision creates it, the database lacks it;
- ``unexpected``: an object of the package's naming that no revision creates;
- ``changed``: present in both, different (each differing field, expected and found).

An object's parts (a dropped table's columns, an unexpected function's privileges, a changed
view's columns) are folded into that object's finding, so one act of drift is one finding.

Not drift, by design, and reported as information instead:
- the values of owned config keys: gates are operational state (a governable gate may be open
  for a bounded window in production); their keys and descriptions are compared, their values
  are not. Gate safety is ``substrate verify``'s job (``fn_iu_gate_verify_closed``);
- config keys under the package's prefixes that no revision creates: ``dot_config`` is IU Core's
  configuration table, and IU Core keeps its own settings there;
- IU Core's roles' data access to ``dot_config`` (``substrate.review.shared``): its guard keeps
  the gates safe whoever writes;
- objects outside the package's naming (other tables of a shared database, IU Core's own
  ``fn_iu_*`` functions): never read at all.

Catalog rows are compared like every other class: with the rows the seed revisions put in the
scratch database (``make check-seeds`` locks those revisions to the registry in ``seeds/``).

Exit 0 clean, 1 drift, 2 could not check (no database or none reachable, no Alembic revision, a
revision this tree does not know, a role that may not create the scratch database).
"""

from __future__ import annotations

import difflib
import json
import sys
from dataclasses import dataclass, field

from substrate import connect
from substrate.review import schema_snapshot, shared
from substrate.review.schema_snapshot import SECTIONS, Item, Ref, Snapshot
from substrate.review.tree import Tree, UnknownRevision

KINDS = ("missing", "unexpected", "changed")


class CannotCheck(RuntimeError):
    """Drift could not be checked; the message says why."""


@dataclass
class Finding:
    section: str
    key: str
    kind: str
    fields: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (expected, found)
    includes: list[str] = field(default_factory=list)  # folded parts: "columns public.t.c"
    notes: list[str] = field(default_factory=list)

    @property
    def ref(self) -> Ref:
        return (self.section, self.key)

    def details(self) -> list[str]:
        out = []
        for name, (want, have) in self.fields.items():
            if name == "privileges":
                wanted, held = set(want.split(", ")) - {""}, set(have.split(", ")) - {""}
                lacks, extra = sorted(wanted - held), sorted(held - wanted)
                out.append("privileges: " + "; ".join(
                    ([f"lacks {', '.join(lacks)}"] if lacks else [])
                    + ([f"also has {', '.join(extra)}"] if extra else [])))
            elif "\n" in want or "\n" in have:
                out.append(f"{name}:")
                diff = difflib.unified_diff(want.splitlines(), have.splitlines(), "expected",
                                            "found", n=1, lineterm="")
                out.extend("  " + line for line in list(diff)[2:])
            else:
                out.append(f"{name}: expected {want or '(none)'}, found {have or '(none)'}")
        if self.includes:
            parts: dict[str, int] = {}
            for part in self.includes:
                section = part.split(" ", 2)[1]
                parts[section] = parts.get(section, 0) + 1
            out.append("with its " + ", ".join(f"{section} ({n})" for section, n in parts.items()))
        return out + self.notes

    def as_dict(self) -> dict:
        return {
            "class": self.section,
            "object": self.key,
            "kind": self.kind,
            "differences": {name: {"expected": want, "found": have}
                            for name, (want, have) in self.fields.items()},
            "includes": self.includes,
            "notes": self.notes,
        }


def _changed_fields(have: Item, want: Item) -> dict[str, tuple[str, str]]:
    names = list(want.fields) + [name for name in have.fields if name not in want.fields]
    changed = {name: (want.fields.get(name, ""), have.fields.get(name, ""))
               for name in names if want.fields.get(name) != have.fields.get(name)}
    if not changed and have.text != want.text:
        changed = {"definition": (want.text, have.text)}
    return changed


def _fold(findings: list[Finding], live: Snapshot, want: Snapshot) -> list[Finding]:
    """Fold each part into the highest missing/unexpected (or changed view) object above it."""
    by_ref = {finding.ref: finding for finding in findings}

    def item(ref: Ref) -> Item | None:
        section, key = ref
        return live[section].get(key) or want[section].get(key)

    def absorbs(ref: Ref) -> bool:
        owner = by_ref.get(ref)
        return owner is not None and (owner.kind != "changed" or owner.section == "views")

    kept = []
    for finding in findings:
        root, current = None, item(finding.ref)
        seen = set()
        while current is not None and current.parent and current.parent not in seen:
            seen.add(current.parent)
            if absorbs(current.parent):
                root = current.parent
            current = item(current.parent)
        if root is None:
            kept.append(finding)
        else:
            by_ref[root].includes.append(f"{finding.kind} {finding.section} {finding.key}")
    return kept


def compare(live: Snapshot, want: Snapshot) -> tuple[list[Finding], list[str]]:
    """(findings, information): how ``live`` differs from ``want``, class by class."""
    findings: list[Finding] = []
    information: list[str] = []
    for section in SECTIONS:
        have_items, want_items = live[section], want[section]
        for key in sorted(set(want_items) - set(have_items)):
            findings.append(Finding(section, key, "missing"))
        for key in sorted(set(have_items) - set(want_items)):
            if section == "config":
                information.append(
                    f"config key {key} = {have_items[key].fields['value']!r} is not created by "
                    "any revision (dot_config is shared with IU Core; not drift)")
                continue
            if section == "privileges" and shared.is_shared_grant(
                    key, have_items[key].fields["privileges"]):
                information.append(shared.describe(key, have_items[key].fields["privileges"])
                                   + "; not drift")
                continue
            findings.append(Finding(section, key, "unexpected"))
        for key in sorted(set(have_items) & set(want_items)):
            changed = _changed_fields(have_items[key], want_items[key])
            if section == "config" and "value" in changed:
                want_value, have_value = changed.pop("value")
                information.append(
                    f"config {key} = {have_value!r} (the migrations set {want_value!r}): gate "
                    "values are operational state, not drift; `substrate verify` judges gate "
                    "safety")
            if changed:
                findings.append(Finding(section, key, "changed", changed))
    return _fold(findings, live, want), information


@dataclass
class Report:
    database: str
    revision: str
    head: str
    findings: list[Finding]
    information: list[str]

    @property
    def exit_code(self) -> int:
        return 1 if self.findings else 0

    def counts(self) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        for finding in self.findings:
            per = counts.setdefault(finding.section, dict.fromkeys(KINDS, 0))
            per[finding.kind] += 1
        return counts

    def as_dict(self) -> dict:
        return {
            "database": self.database,
            "revision": self.revision,
            "head": self.head,
            "exit": self.exit_code,
            "drift": bool(self.findings),
            "counts": self.counts(),
            "findings": [finding.as_dict() for finding in self.findings],
            "information": self.information,
        }

    def text(self) -> str:
        lines = [f"substrate drift: {self.database} at {self.revision} "
                 f"(expected state: a scratch database migrated to {self.revision})"]
        for finding in self.findings:
            lines.append(f"  {finding.kind:<10} {finding.section:<11} {finding.key}")
            lines += [f"      {detail}" for detail in finding.details()]
        if self.information:
            lines.append("information (not drift):")
            lines += [f"  {note}" for note in self.information]
        if self.findings:
            per = "; ".join(
                f"{section} " + ", ".join(f"{n} {kind}" for kind, n in kinds.items() if n)
                for section, kinds in self.counts().items())
            lines.append(f"drift: {len(self.findings)} finding(s): {per}")
        else:
            lines.append("drift: none")
        return "\n".join(lines)


def check(url: str, tree: Tree | None = None, scratch_url: str | None = None) -> Report:
    """Compare the database at ``url`` with its recorded revision; CannotCheck when it can't."""
    import psycopg

    from substrate.review import scratch

    tree = tree or Tree()
    try:
        conn = connect.connect(url, application_name="substrate drift",
                               statement_default=connect.REVIEW)
    except connect.CannotConnect as error:
        raise CannotCheck(str(error)) from None
    with conn:
        try:
            revision = schema_snapshot.revision(conn)
            if revision is None:
                raise CannotCheck(
                    "no public.alembic_version: Alembic has never run here (an existing IU Core "
                    "database is adopted with `alembic stamp 0001_baseline`)")
            try:
                tree.applied(revision)
            except UnknownRevision as error:
                raise CannotCheck(
                    f"the database is at revision {error}, which this tree does not have "
                    "(deployed from a newer checkout?)") from None
            live = schema_snapshot.collect(conn)
            notes: list[str] = []
            try:
                want = scratch.build(scratch_url or url, revision, tree,
                                     prepare=scratch.default_privileges(conn), notes=notes)
            except scratch.CannotBuild as error:
                raise CannotCheck(str(error)) from None
            findings, information = compare(live, want)
            information += notes
            head = tree.head()
        except psycopg.Error as error:
            raise CannotCheck(f"cannot read the database: {error}") from error
        return Report(_display(url), revision, head, findings, information)


def _display(url: str) -> str:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    return f"{parsed.database} on {parsed.host or 'localhost'}:{parsed.port or 5432}"


def register(parser) -> None:
    parser.add_argument("--url", help="the database (default: $DATABASE_URL)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--scratch-url", help="a server (and role with CREATEDB) to build the "
                                              "expected state on (default: --url's server)")
    parser.add_argument("--alembic-ini", help="the Alembic tree (default: the project's)")
    parser.set_defaults(handler=_main)


def _main(args) -> int:
    try:
        report = check(connect.resolve_url(args.url), Tree(args.alembic_ini), args.scratch_url)
    except (CannotCheck, connect.CannotConnect) as error:
        if args.json:
            print(json.dumps({"exit": connect.EXIT_CANNOT_CHECK, "error": str(error)}, indent=2))
        print(f"substrate drift: cannot check: {error}", file=sys.stderr)
        return connect.EXIT_CANNOT_CHECK
    print(json.dumps(report.as_dict(), indent=2) if args.json else report.text())
    return report.exit_code
