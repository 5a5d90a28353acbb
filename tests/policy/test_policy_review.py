"""Table tests for a reviewer's identification by eye in the pure decision: who, never whether."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from gatekeeper import policy as p
from gatekeeper.policy import Candidate, ConsentFact, FaceInput, PersonState, Policy, Review

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
EARLIER = datetime(2025, 9, 1, tzinfo=UTC)
CHILD = date(2014, 5, 5)  # 12 at NOW
ADULT = date(1990, 1, 1)

PARENT_YES = ConsentFact("website", "grant", EARLIER, granted_by="parent")
# A learner whose parent refused face matching: never matched, consented to the website.
KIM = PersonState("kim", CHILD, (PARENT_YES,), matchable=False)
# An adult with consent for social media only.
LEE = PersonState("lee", ADULT, (ConsentFact("social_media", "grant", EARLIER),))
ANN = PersonState("ann", ADULT, (ConsentFact("website", "grant", EARLIER),))
SAM = PersonState("sam", ADULT, (ConsentFact("website", "grant", EARLIER),), safeguarding=True)
WITHDRAWN = PersonState(
    "wyn",
    ADULT,
    (
        ConsentFact("website", "grant", EARLIER),
        ConsentFact("website", "withdraw", NOW - timedelta(days=1)),
    ),
)
PEOPLE = {s.person: s for s in (KIM, LEE, ANN, SAM, WITHDRAWN)}

ANN_MATCHED = FaceInput((Candidate("ann", 0.3),))
UNKNOWN = FaceInput(())
POSSIBLE = FaceInput(possible=True)
TOO_SMALL = FaceInput(too_small=True)
# Nearest to ann, too far to be sure: an uncertain match.
UNSURE = FaceInput((Candidate("ann", 0.6),))


def seen_as(face: FaceInput, resolution: str, person: str | None = None) -> FaceInput:
    return FaceInput(face.candidates, face.too_small, face.possible, Review(resolution, person))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("faces", "pol", "verdict", "reasons"),
    [
        pytest.param(
            [ANN_MATCHED, seen_as(UNKNOWN, "person", "kim")],
            Policy(unknown_faces="review"),
            "publishable",
            (),
            id="unmatchable-learner-identified-with-consent",
        ),
        pytest.param(
            [seen_as(UNKNOWN, "person", "lee")],
            Policy(unknown_faces="review"),
            "blocked",
            (p.NO_CONSENT_FOR_CHANNEL,),
            id="identified-without-consent-for-the-channel-blocks",
        ),
        pytest.param(
            [seen_as(UNKNOWN, "person", "wyn")],
            Policy(),
            "blocked",
            (p.CONSENT_WITHDRAWN,),
            id="identified-after-withdrawal-blocks",
        ),
        pytest.param(
            [seen_as(UNKNOWN, "person", "sam")],
            Policy(cover_channels=frozenset({"website"})),
            "blocked",
            (p.SAFEGUARDING,),
            id="identified-safeguarding-is-never-covered",
        ),
        pytest.param(
            [seen_as(UNKNOWN, "person", "nobody")],
            Policy(),
            "blocked",
            (p.NO_CONSENT_FOR_CHANNEL,),
            id="identified-as-a-missing-record-fails-closed",
        ),
        pytest.param(
            [seen_as(UNSURE, "person", "lee")],
            Policy(),
            "blocked",
            (p.NO_CONSENT_FOR_CHANNEL,),
            id="the-reviewer-not-the-nearest-candidate-decides-who",
        ),
        pytest.param(
            [ANN_MATCHED, seen_as(UNKNOWN, "stranger")],
            Policy(unknown_faces="review"),
            "blocked",
            (p.UNKNOWN_FACE,),
            id="a-stranger-blocks-even-where-unknown-faces-go-to-review",
        ),
        pytest.param(
            [ANN_MATCHED, seen_as(UNKNOWN, "stranger")],
            Policy(unknown_faces="review", cover_channels=frozenset({"website"})),
            "publishable",
            (p.FACES_COVERED,),
            id="a-stranger-is-covered-on-a-covering-channel",
        ),
        pytest.param(
            [ANN_MATCHED, seen_as(POSSIBLE, "not_a_face")],
            Policy(),
            "publishable",
            (),
            id="not-a-face-plays-no-part",
        ),
        pytest.param(
            [seen_as(TOO_SMALL, "not_a_face"), UNKNOWN],
            Policy(unknown_faces="review"),
            "review",
            (p.UNKNOWN_FACE,),
            id="other-faces-still-wait-for-review",
        ),
        pytest.param(
            [seen_as(POSSIBLE, "not_a_face")],
            Policy(),
            "publishable",
            (),
            id="a-photo-left-without-faces-is-publishable",
        ),
        pytest.param(
            [seen_as(UNKNOWN, "person", "kim"), ANN_MATCHED],
            Policy(matching_enabled=False),
            "review",
            (p.MATCHING_DISABLED,),
            id="identified-by-eye-before-a-dpia-the-unmatched-rest-waits",
        ),
        pytest.param(
            [seen_as(UNKNOWN, "person", "lee")],
            Policy(matching_enabled=False),
            "blocked",
            (p.NO_CONSENT_FOR_CHANNEL,),
            id="identified-by-eye-before-a-dpia-consent-still-decides",
        ),
    ],
)
def test_a_reviewer_identifies_and_the_consent_rules_decide(
    faces: list[FaceInput], pol: Policy, verdict: str, reasons: tuple[str, ...]
) -> None:
    result = p.decide(faces, PEOPLE, "website", NOW, pol)
    assert (result.verdict, result.reasons) == (verdict, reasons)


def test_a_reviewed_face_is_marked_and_carries_no_distance() -> None:
    result = p.decide([seen_as(UNSURE, "person", "ann"), ANN_MATCHED], PEOPLE, "website", NOW, Policy())
    reviewed, matched = result.faces
    assert (reviewed.outcome, reviewed.person, reviewed.distance, reviewed.reviewed) == (
        "consented",
        "ann",
        None,
        True,
    )
    assert (matched.distance, matched.reviewed) == (0.3, False)
    dropped = p.decide([seen_as(POSSIBLE, "not_a_face")], PEOPLE, "website", NOW, Policy()).faces[0]
    assert (dropped.outcome, dropped.reasons, dropped.reviewed) == ("not_a_face", (), True)


def test_the_people_a_face_may_be_include_the_one_a_reviewer_named() -> None:
    assert seen_as(UNSURE, "person", "lee").people == ("ann", "lee")
    assert seen_as(UNSURE, "stranger").people == ("ann",)


@pytest.mark.parametrize(
    ("resolution", "person"), [("person", None), ("stranger", "ann"), ("not_a_face", "ann")]
)
def test_a_review_names_a_person_exactly_when_it_says_person(resolution: str, person: str | None) -> None:
    with pytest.raises(ValueError, match="names a person exactly"):
        Review(resolution, person)  # type: ignore[arg-type]
