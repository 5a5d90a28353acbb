"""The `gatekeeper` command: import people, manage consent, gate photos, strip metadata.

This module is the root group; each command (or group of commands) lives in a module of its own,
which imports only `cli.common` and `cli.files` of the command line, never another command module.
"""

from __future__ import annotations

import click

from gatekeeper.cli import (
    audit,
    consent,
    db,
    dpia,
    gate,
    jobs,
    keys,
    outbox,
    people,
    publishing,
    retention,
    review,
    scan,
    staff,
    strip,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Consent Gatekeeper: no photo leaves without consent for every face in it.

    Settings come from GATEKEEPER_* environment variables (see the README); by default everything
    lives in the repository's instance/ folder (a SQLite file and local folders), wherever the
    command is started. Relative paths are relative to the current folder.
    """


main.add_command(people.people)
main.add_command(consent.consent)
main.add_command(gate.gate)
main.add_command(strip.strip)
main.add_command(audit.audit_group)
main.add_command(dpia.dpia)
main.add_command(review.review)
main.add_command(staff.serve)
main.add_command(staff.users)
main.add_command(keys.keys)
main.add_command(publishing.publish)
main.add_command(publishing.publications)
main.add_command(publishing.takedowns)
main.add_command(jobs.worker)
main.add_command(jobs.jobs)
main.add_command(outbox.outbox)
main.add_command(db.db)
main.add_command(retention.purge)
main.add_command(retention.photos)
main.add_command(scan.scan)
