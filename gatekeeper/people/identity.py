"""Who a face is, as each viewer may be told it: one rule for every page, answer, export and log.

A face carries a person only when the matcher identified it with confidence (its outcome is
`consented` or `no_consent`) or a reviewer identified it by eye. The nearest template of an unknown
face is nobody, and the candidate of an uncertain match is not who the face is: it may be named only
to a role with `Permission.SEE_POSSIBLE_MATCHES` (reviewers, consent admins and admins), only while
they review the face, and only as a possible match. Every surface (web pages, the API, the command
line, exports, the audit log, the review queue) asks `face_identity`.

Why a face cannot be published is told by the same kind of rule: that a safeguarding flag blocks
it only to a role with `Permission.SEE_SAFEGUARDING` (consent admins and admins); every other
viewer reads `cannot_be_published` (`masked_reasons`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from consent_db.models import Face
from gatekeeper.policy import SAFEGUARDING, FaceVerdict
from gatekeeper.staff.roles import Permission, may

# Outcomes the matcher gives only to a face it identified with confidence.
MATCHED_OUTCOMES = frozenset({"consented", "no_consent"})
# The viewer of records written by the system itself (the audit log, `gate --json`): no role.
SYSTEM = "system"
# The reason every other role reads in place of a safeguarding flag.
CANNOT_BE_PUBLISHED = "cannot_be_published"

Context = Literal["record", "review"]
K = TypeVar("K", int, str)


@dataclass(frozen=True)
class FaceIdentity(Generic[K]):
    """What a face says about who it is: the person (with how), or a possible match for reviewers."""

    person: K | None = None
    how: Literal["matched", "identified"] | None = None
    possible: K | None = None

    @property
    def confirmed(self) -> bool:
        """True when the face is this person (matched with confidence or identified by a reviewer)."""
        return self.person is not None


def face_identity(
    *,
    outcome: str,
    candidate: K | None,
    review_resolution: str | None,
    reviewed_person: K | None,
    viewer: str,
    context: Context = "record",
) -> FaceIdentity[K]:
    """The identity a face carries for `viewer` (a role, or SYSTEM) in `context`.

    `candidate` is the matcher's nearest person, `outcome` the face's outcome; a reviewer's
    resolution, when there is one, decides alone.
    """
    if review_resolution is not None:
        if review_resolution == "person" and reviewed_person is not None:
            return FaceIdentity(reviewed_person, "identified")
        return FaceIdentity()
    if candidate is None:
        return FaceIdentity()
    if outcome in MATCHED_OUTCOMES:
        return FaceIdentity(candidate, "matched")
    if outcome == "uncertain" and context == "review" and may(viewer, Permission.SEE_POSSIBLE_MATCHES):
        return FaceIdentity(possible=candidate)
    return FaceIdentity()


def stored_identity(
    face: Face, *, viewer: str, context: Context = "record", outcome: str | None = None
) -> FaceIdentity[int]:
    """`face_identity` of a recorded face (person ids); `outcome` overrides the recorded one when the
    face was decided again since."""
    return face_identity(
        outcome=outcome if outcome is not None else face.outcome,
        candidate=face.person_id,
        review_resolution=face.review_resolution,
        reviewed_person=face.reviewed_person_id,
        viewer=viewer,
        context=context,
    )


def confirmed_person(face: Face) -> int | None:
    """The person a recorded face is (matched with confidence or identified by a reviewer), or None."""
    return stored_identity(face, viewer=SYSTEM).person


def verdict_identity(verdict: FaceVerdict, *, viewer: str, context: Context = "record") -> FaceIdentity[str]:
    """`face_identity` of a face as the consent decision just gave it (person keys)."""
    if verdict.reviewed:
        resolution = "person" if verdict.person is not None else "stranger"
        return face_identity(
            outcome=verdict.outcome,
            candidate=None,
            review_resolution=resolution,
            reviewed_person=verdict.person,
            viewer=viewer,
            context=context,
        )
    return face_identity(
        outcome=verdict.outcome,
        candidate=verdict.person,
        review_resolution=None,
        reviewed_person=None,
        viewer=viewer,
        context=context,
    )


def sees_safeguarding(role: str) -> bool:
    """True when `role` may learn that a face is blocked by a safeguarding flag."""
    return may(role, Permission.SEE_SAFEGUARDING)


def masked_reasons(reasons: Iterable[str], role: str) -> tuple[str, ...]:
    """Reason codes as `role` may see them, each once: `safeguarding` reads `cannot_be_published`
    to every role without `Permission.SEE_SAFEGUARDING`."""
    see = sees_safeguarding(role)
    out: list[str] = []
    for reason in reasons:
        if reason == SAFEGUARDING and not see:
            reason = CANNOT_BE_PUBLISHED
        if reason not in out:
            out.append(reason)
    return tuple(out)
