"""`gatekeeper review`: the faces waiting for a reviewer, and identifying them by eye."""

from __future__ import annotations

from typing import Any

import click

from gatekeeper.cli.common import _actor, _emit, _now, _runtime, cli_unit, plural


@click.group("review")
def review() -> None:
    """Faces that sent a photo to review: list them, and resolve each by eye."""


@review.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per face per line.")
@click.pass_context
def review_list(ctx: click.Context, as_json: bool) -> None:
    """List the faces waiting for a reviewer, by photo id and face number (from 1, as on the photo page).

    A face waits when its photo's latest verdict is review and the face is why: an uncertain
    match (with its possible match), a possible or too small face, or an unknown face under
    GATEKEEPER_UNKNOWN_FACES=review. Boxes are left, top, right, bottom in pixels of the upright photo;
    `original` (JSON) is the photo's key in the private originals store, where the reviewer looks at it.
    """
    from consent_db.session import unit_of_work
    from gatekeeper.photos import review as review_service
    from gatekeeper.staff.roles import Role

    runtime = _runtime(ctx)
    with unit_of_work(runtime.sessions) as session:
        # Whoever runs the command line holds the whole instance: they see what an admin sees.
        items = review_service.open_reviews(session, viewer=Role.ADMIN)
    for item in items:
        if as_json:
            _emit(
                {
                    "photo": item.photo_id,
                    "decision": item.decision_id,
                    "channel": item.channel,
                    "face": item.number,
                    "box": list(item.box),
                    "outcome": item.outcome,
                    "reasons": list(item.reasons),
                    "candidate": item.candidate,
                    "distance": item.distance,
                    "original": item.original_key,
                }
            )
            continue
        candidate = (
            f", possible match: {item.candidate_name} ({item.candidate}, {item.distance:.2f})"
            if item.candidate
            else ""
        )
        box = " ".join(map(str, item.box))
        click.echo(
            f"photo {item.photo_id} face {item.number} [{box}] {item.channel}: "
            f"{item.outcome} ({', '.join(item.reasons)}){candidate}"
        )
    if not as_json:
        click.echo(f"{plural(len(items), 'face')} waiting for review", err=True)


@review.command("resolve")
@click.argument("photo_id", type=int)
@click.argument("face", type=int)
@click.option("--person", "person", help="The face is this person (external id): their consent decides.")
@click.option("--stranger", is_flag=True, help="Someone not enrolled: the face stays unknown and blocks.")
@click.option(
    "--not-a-face", "not_a_face", is_flag=True, help="Not a face: it plays no part in the decision."
)
@click.option("--reason", required=True, help="Why (kept in the audit log).")
@click.option(
    "--decision", "decision_id", type=int, help="Refuse unless this is still the photo's latest decision."
)
@click.option("--json", "as_json", is_flag=True, help="Print the new decision as one JSON object.")
@click.pass_context
def review_resolve(
    ctx: click.Context,
    photo_id: int,
    face: int,
    person: str | None,
    stranger: bool,
    not_a_face: bool,
    reason: str,
    decision_id: int | None,
    as_json: bool,
) -> None:
    """Resolve FACE of photo PHOTO_ID by eye (numbers as `review list` shows them) and print the new verdict.

    Exactly one of --person ID, --stranger, --not-a-face. The photo is decided again by today's
    consent, as a new decision: an identified person without consent for the channel still blocks.
    A template is made from the face only when the person's biometric consent allows it.
    """
    from gatekeeper.photos import review as review_service

    chosen = [
        name
        for name, given in (
            ("person", person is not None),
            ("stranger", stranger),
            ("not_a_face", not_a_face),
        )
        if given
    ]
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --person ID, --stranger, --not-a-face")
    if face < 1:
        raise click.UsageError("faces are numbered from 1, as `review list` shows them")
    runtime = _runtime(ctx)
    with cli_unit(runtime) as session:
        result = review_service.resolve_face(
            session,
            photo_id,
            face - 1,  # the service counts positions from 0
            chosen[0],
            person_external_id=person,
            reason=reason,
            decision_id=decision_id,
            settings=runtime.settings,
            engine=runtime.faces,
            originals=runtime.originals,
            now=_now(),
            actor=_actor(),
        )
    if as_json:
        _emit(_result_json(result))
        return
    reasons = f" ({', '.join(result.reasons)})" if result.reasons else ""
    click.echo(f"photo {result.photo_id}: {result.verdict.upper()}{reasons} (decision {result.decision_id})")
    for f in result.faces:
        who = f" {f.person}" if f.person else ""
        why = f" ({', '.join(f.reasons)})" if f.reasons else ""
        by = f", reviewed: {f.review}" if f.review else ""
        click.echo(f"  face {f.position + 1}: {f.outcome}{who}{why}{by}")
    if result.template_id is not None:
        click.echo("the face was added as a template (biometric consent allows it)")
    elif result.template_note:
        click.echo(f"no template made: {result.template_note}", err=True)


def _result_json(result: Any) -> dict[str, Any]:
    return {
        "photo": result.photo_id,
        "decision": result.decision_id,
        "previous_decision": result.previous_decision_id,
        "verdict": result.verdict,
        "reasons": list(result.reasons),
        "faces": [
            {
                "face": f.position + 1,
                "box": list(f.box),
                "person": f.person,
                "outcome": f.outcome,
                "reasons": list(f.reasons),
                "review": f.review,
            }
            for f in result.faces
        ],
        "template_added": result.template_id is not None,
    }
