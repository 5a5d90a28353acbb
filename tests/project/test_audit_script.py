"""scripts/audit_report.py, the judge of scripts/audit: run as a subprocess on pip-audit's reports.

The reports are written by pip-audit's own JSON formatter from its own result classes, as the
`pip-audit --format json --output FILE` in scripts/audit writes them; the crash is a real pip-audit
run with that script's options. Nothing here uses the network.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.version import Version
from pip_audit._format import JsonFormat
from pip_audit._service import (
    Dependency,
    ResolvedDependency,
    SkippedDependency,
    VulnerabilityResult,
)
from pip_audit._service.interface import VulnerabilityID

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "audit_report.py"
# The options scripts/audit gives pip-audit (its requirements file and output file come after).
PIP_AUDIT_OPTIONS = [
    "--no-deps",
    "--disable-pip",
    "--vulnerability-service",
    "pypi",
    "--progress-spinner",
    "off",
    "--format",
    "json",
]
WARNING = "NOTHING WAS CHECKED"


def resolved(name: str, version: str) -> ResolvedDependency:
    return ResolvedDependency(name=name, version=Version(version))


def skipped(name: str, version: str) -> SkippedDependency:
    """A release skipped the way pip-audit's PyPI service skips it when PyPI answers 404."""
    return SkippedDependency(
        name=name,
        skip_reason=f"Dependency not found on PyPI and could not be audited: {name.lower()} ({version})",
    )


def vulnerability(vuln_id: str, fixed: list[str], aliases: set[str]) -> VulnerabilityResult:
    return VulnerabilityResult(
        id=VulnerabilityID(vuln_id),
        description="A description of the flaw.",
        fix_versions=[Version(v) for v in fixed],
        aliases={VulnerabilityID(a) for a in aliases},
    )


def write_report(path: Path, result: dict[Dependency, list[VulnerabilityResult]]) -> Path:
    """What `pip-audit --format json --output PATH` writes (descriptions and aliases: on, its default)."""
    path.write_text(JsonFormat(output_desc=True, output_aliases=True).format(result, []) + "\n")
    return path


def judge(tmp_path: Path, report: Path, status: int, stderr: str = "") -> subprocess.CompletedProcess[str]:
    stderr_file = tmp_path / "stderr"
    stderr_file.write_text(stderr)
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(report), str(status), str(stderr_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("status", [1, 0], ids=["pip-audit-exit-1", "pip-audit-exit-0"])
def test_a_known_vulnerability_fails_and_names_package_id_and_fixed_release(
    tmp_path: Path, status: int
) -> None:
    report = write_report(
        tmp_path / "audit.json",
        {
            resolved("Jinja2", "3.1.2"): [
                vulnerability("GHSA-h5c8-rqwp-cp95", ["3.1.3"], {"CVE-2024-22195"}),
                vulnerability("GHSA-0000-0000-0000", [], set()),
            ],
            resolved("requests", "2.32.4"): [],
            skipped("Flask", "3.1.0"): [],
        },
    )
    assert json.loads(report.read_text())["dependencies"][0]["vulns"][0]["fix_versions"] == ["3.1.3"]

    run = judge(tmp_path, report, status)

    assert run.returncode == 1, run
    lines = run.stdout.splitlines()
    assert "audit: jinja2 3.1.2: GHSA-h5c8-rqwp-cp95 (fixed in 3.1.3)" in lines
    assert "audit: jinja2 3.1.2: GHSA-0000-0000-0000 (fixed in no fixed release yet)" in lines
    assert "audit: 1 locked releases skipped by pip-audit, not audited: flask" in lines
    assert lines[-1] == "audit: 2 of 3 locked releases audited, 2 known vulnerabilities"
    assert WARNING not in run.stderr


def test_a_clean_report_passes(tmp_path: Path) -> None:
    report = write_report(
        tmp_path / "audit.json",
        {resolved("Jinja2", "3.1.6"): [], resolved("requests", "2.32.4"): []},
    )

    run = judge(tmp_path, report, 0, stderr="No known vulnerabilities found\n")

    assert run.returncode == 0, run
    assert run.stdout.splitlines() == ["audit: 2 of 2 locked releases audited, 0 known vulnerabilities"]
    assert run.stderr == ""


def test_some_releases_skipped_are_listed_and_pass_without_the_warning(tmp_path: Path) -> None:
    report = write_report(
        tmp_path / "audit.json",
        {resolved("Jinja2", "3.1.6"): [], skipped("private-tool", "1.0"): []},
    )

    run = judge(tmp_path, report, 0)

    assert run.returncode == 0, run
    assert "audit: 1 locked releases skipped by pip-audit, not audited: private-tool" in run.stdout
    assert "audit: 1 of 2 locked releases audited, 0 known vulnerabilities" in run.stdout
    assert WARNING not in run.stderr


def test_nothing_audited_passes_but_warns_that_nothing_was_checked(tmp_path: Path) -> None:
    report = write_report(
        tmp_path / "audit.json",
        {skipped("Jinja2", "3.1.6"): [], skipped("requests", "2.32.4"): []},
    )

    run = judge(tmp_path, report, 0, stderr="No known vulnerabilities found\n")

    assert run.returncode == 0, run
    assert "audit: 0 of 2 locked releases audited, 0 known vulnerabilities" in run.stdout
    warning = run.stderr.strip()
    assert warning.startswith("audit: WARNING: none of the 2 locked releases could be audited")
    assert "advisory service was unreachable" in warning
    assert "Dependency not found on PyPI and could not be audited: jinja2 (3.1.6)" in warning
    assert WARNING in warning


def test_pip_audit_crashing_before_its_report_fails_with_its_stderr(tmp_path: Path) -> None:
    # A real pip-audit run with scripts/audit's options: an unpinned requirement stops it before it
    # asks any service, so it writes no report.
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("requests>=2\n")
    report = tmp_path / "audit.json"
    crash = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip_audit",
            "--requirement",
            str(requirements),
            *PIP_AUDIT_OPTIONS,
            "--output",
            str(report),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert crash.returncode == 1, crash
    assert not report.exists()

    run = judge(tmp_path, report, crash.returncode, stderr=crash.stderr)

    assert run.returncode == 1, run
    assert "requirement requests is not pinned to an exact version" in run.stderr
    assert run.stderr.strip().splitlines()[-1] == "audit: pip-audit failed (exit 1) before it reported"
    assert run.stdout == ""


def test_a_non_zero_exit_with_a_clean_report_fails(tmp_path: Path) -> None:
    report = write_report(tmp_path / "audit.json", {resolved("Jinja2", "3.1.6"): []})

    run = judge(tmp_path, report, 2, stderr="something went wrong\n")

    assert run.returncode == 1, run
    assert "something went wrong" in run.stderr
    assert "audit: pip-audit exited 2 although its report lists no vulnerability" in run.stderr


@pytest.mark.parametrize(
    "content",
    ['{"dependencies": [{"name": "jinja2", "vers', '{"fixes": []}', "[]"],
    ids=["truncated", "no-dependencies", "not-an-object"],
)
def test_a_report_that_is_not_pip_audits_json_fails(tmp_path: Path, content: str) -> None:
    report = tmp_path / "audit.json"
    report.write_text(content)

    run = judge(tmp_path, report, 0, stderr="pip-audit said this\n")

    assert run.returncode == 1, run
    assert "pip-audit said this" in run.stderr
    assert f"audit: pip-audit (exit 0) wrote no usable report to {report}" in run.stderr


def test_a_report_without_any_release_fails(tmp_path: Path) -> None:
    report = write_report(tmp_path / "audit.json", {})

    run = judge(tmp_path, report, 0)

    assert run.returncode == 1, run
    assert "the export of uv.lock gave nothing to audit" in run.stderr


def test_wrong_arguments_print_the_usage(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path / "audit.json")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 2
    assert run.stderr.startswith("usage: audit_report.py REPORT EXIT_STATUS STDERR_FILE")


def test_scripts_audit_runs_this_judge_with_the_options_tested_here() -> None:
    audit = (ROOT / "scripts" / "audit").read_text()
    assert 'python "$ROOT/scripts/audit_report.py" "$tmp/audit.json" "$status" "$tmp/stderr"' in audit
    assert " ".join(PIP_AUDIT_OPTIONS) in " ".join(audit.replace("\\\n", " ").split())
