"""Judge pip-audit's JSON report for scripts/audit.

Usage: audit_report.py REPORT EXIT_STATUS STDERR_FILE

REPORT is the file pip-audit wrote with `--format json --output REPORT`, EXIT_STATUS its exit status
and STDERR_FILE what it wrote to stderr. Prints one line per known vulnerability (package, version,
advisory id, fixed releases), the releases pip-audit skipped, and a summary.

Exit 1 on any known vulnerability, or when pip-audit failed: no report, a report that is not
pip-audit's JSON, or a non-zero exit with no vulnerability in the report (its stderr is shown).
Exit 0 otherwise, also when no release could be audited at all (the advisory service unreachable):
CI still runs on a machine without it, but a warning on stderr says that nothing was checked.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

USAGE = "usage: audit_report.py REPORT EXIT_STATUS STDERR_FILE"


def fail(message: str, stderr: str) -> int:
    """Show pip-audit's own stderr, then why the audit failed; exit status 1."""
    if stderr:
        sys.stderr.write(stderr if stderr.endswith("\n") else stderr + "\n")
    print(f"audit: {message}", file=sys.stderr)
    return 1


def load_dependencies(report: Path) -> list[dict[str, Any]]:
    """The `dependencies` of a pip-audit JSON report; ValueError if it is not one."""
    try:
        data = json.loads(report.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read it as JSON ({e})") from e
    dependencies = data.get("dependencies") if isinstance(data, dict) else None
    if not isinstance(dependencies, list) or not all(
        isinstance(d, dict) and isinstance(d.get("name"), str) for d in dependencies
    ):
        raise ValueError('it has no "dependencies" list of named packages')
    return dependencies


def judge(report: Path, status: int, stderr: str) -> int:
    if not report.is_file() or report.stat().st_size == 0:
        return fail(f"pip-audit failed (exit {status}) before it reported", stderr)
    try:
        dependencies = load_dependencies(report)
    except ValueError as e:
        return fail(f"pip-audit (exit {status}) wrote no usable report to {report}: {e}", stderr)

    found = [(d, v) for d in dependencies for v in d.get("vulns") or []]
    skipped = [d for d in dependencies if "skip_reason" in d]
    audited = len(dependencies) - len(skipped)
    for dep, vuln in found:
        fixed = ", ".join(vuln.get("fix_versions") or []) or "no fixed release yet"
        print(f"audit: {dep['name']} {dep.get('version', '?')}: {vuln['id']} (fixed in {fixed})")
    if skipped:
        names = ", ".join(f"{d['name']} {d.get('version', '')}".strip() for d in skipped)
        print(f"audit: {len(skipped)} locked releases skipped by pip-audit, not audited: {names}")
    print(
        f"audit: {audited} of {len(dependencies)} locked releases audited, "
        f"{len(found)} known vulnerabilities",
        flush=True,
    )
    if found:
        return 1
    if status != 0:
        return fail(f"pip-audit exited {status} although its report lists no vulnerability", stderr)
    if not dependencies:
        return fail("the report lists no locked release: the export of uv.lock gave nothing to audit", "")
    if audited == 0:
        print(
            f"audit: WARNING: none of the {len(dependencies)} locked releases could be audited: the "
            "advisory service was unreachable or answered nothing "
            f"(pip-audit: {skipped[0]['skip_reason']}). NOTHING WAS CHECKED for known vulnerabilities.",
            file=sys.stderr,
        )
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 3 or not argv[1].lstrip("-").isdigit():
        print(USAGE, file=sys.stderr)
        return 2
    report, status, stderr_file = Path(argv[0]), int(argv[1]), Path(argv[2])
    stderr = stderr_file.read_text(errors="replace") if stderr_file.is_file() else ""
    return judge(report, status, stderr)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
