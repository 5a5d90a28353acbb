"""The decision on faces that are hard to call: two consented people too close to tell apart, and
faces whose encoding cannot be trusted (degraded: occluded, blurred, dim, found by the second look)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from gatekeeper import policy as p
from gatekeeper.policy import Candidate, ConsentFact, FaceInput, PersonState, Policy

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
GRANTED = datetime(2025, 9, 1, tzinfo=UTC)
ADULT = date(1990, 1, 1)
POLICY = Policy(accept_distance=0.55, review_distance=0.65, margin=0.08, age_threshold=18)


def state(key: str, *channels: str, **kw: object) -> PersonState:
    records = tuple(ConsentFact(channel=c, action="grant", at=GRANTED) for c in channels)
    return PersonState(key, ADULT, records, **kw)  # type: ignore[arg-type]


PEOPLE = {
    "ann": state("ann", "website", "print"),
    "bob": state("bob", "website"),  # not print
    "cat": state("cat", "website", "print"),
    "dan": state("dan", "website", "print", matchable=False),
    "eve": state("eve", "website", "print", safeguarding=True),
}


def near(*pairs: tuple[str, float], degraded: bool = False) -> FaceInput:
    return FaceInput(candidates=tuple(Candidate(k, d) for k, d in pairs), degraded=degraded)


@pytest.mark.parametrize(
    ("face", "channel", "verdict", "outcome", "reasons", "also"),
    [
        pytest.param(
            near(("ann", 0.40), ("bob", 0.45)),
            "website",
            "publishable",
            "consented",
            (),
            ("bob",),
            id="two-consented-people-too-close-to-call",
        ),
        pytest.param(
            near(("ann", 0.40), ("bob", 0.45)),
            "print",
            "review",
            "uncertain",
            (p.UNCERTAIN_MATCH,),
            (),
            id="one-of-them-not-consented-on-this-channel",
        ),
        pytest.param(
            near(("bob", 0.40), ("ann", 0.45)),
            "print",
            "review",
            "uncertain",
            (p.UNCERTAIN_MATCH,),
            (),
            id="the-closer-one-not-consented-on-this-channel",
        ),
        pytest.param(
            near(("ann", 0.40), ("dan", 0.45)),
            "website",
            "review",
            "uncertain",
            (p.UNCERTAIN_MATCH,),
            (),
            id="the-other-may-not-be-matched",
        ),
        pytest.param(
            near(("ann", 0.40), ("eve", 0.45)),
            "website",
            "review",
            "uncertain",
            (p.UNCERTAIN_MATCH,),
            (),
            id="the-other-is-safeguarded",
        ),
        pytest.param(
            near(("ann", 0.40), ("ghost", 0.45)),
            "website",
            "review",
            "uncertain",
            (p.UNCERTAIN_MATCH,),
            (),
            id="the-other-has-no-record",
        ),
        pytest.param(
            near(("ann", 0.58), ("bob", 0.60)),
            "website",
            "review",
            "uncertain",
            (p.UNCERTAIN_MATCH,),
            (),
            id="beyond-accept-it-may-be-a-stranger",
        ),
        pytest.param(
            near(("ann", 0.40), ("bob", 0.43), ("cat", 0.46)),
            "website",
            "review",
            "uncertain",
            (p.UNCERTAIN_MATCH,),
            (),
            id="a-crowd-too-close-to-call-someone-further-may-be-too",
        ),
        pytest.param(
            near(("ann", 0.40), ("cat", 0.43), ("bob", 0.60)),
            "print",
            "publishable",
            "consented",
            (),
            ("cat",),
            id="the-third-is-clear-of-the-margin",
        ),
    ],
)
def test_a_face_too_close_to_call_between_consented_people_is_decided_for_the_channel(
    face: FaceInput, channel: str, verdict: str, outcome: str, reasons: tuple[str, ...], also: tuple[str, ...]
) -> None:
    result = p.decide([face], PEOPLE, channel, NOW, POLICY)
    assert (result.verdict, result.faces[0].outcome, result.faces[0].reasons) == (verdict, outcome, reasons)
    assert result.faces[0].also == also
    if outcome == "consented":
        assert result.faces[0].person == face.candidates[0].person


def test_a_face_that_may_be_one_of_several_people_names_none_of_them() -> None:
    named = {
        k: PersonState(k, ADULT, (ConsentFact("website", "grant", GRANTED, named="yes"),))
        for k in ("ann", "bob")
    }
    result = p.decide([near(("ann", 0.40), ("bob", 0.45))], named, "website", NOW, POLICY)
    assert result.verdict == "publishable"
    assert p.naming_allowed(result, named, "website", NOW) == {}
    clear = p.decide([near(("ann", 0.40), ("bob", 0.60))], named, "website", NOW, POLICY)
    assert p.naming_allowed(clear, named, "website", NOW) == {"ann": "yes"}


@pytest.mark.parametrize(
    ("face", "channel", "verdict", "outcome", "reasons"),
    [
        pytest.param(
            near(("ann", 0.30), degraded=True),
            "website",
            "review",
            "uncertain",
            (p.UNRELIABLE_FACE,),
            id="a-confident-match-to-a-consented-person-is-reviewed",
        ),
        pytest.param(
            near(("bob", 0.30), degraded=True),
            "print",
            "blocked",
            "no_consent",
            (p.NO_CONSENT_FOR_CHANNEL, p.UNRELIABLE_FACE),
            id="a-match-to-someone-not-consented-blocks",
        ),
        pytest.param(
            near(("ann", 0.80), degraded=True),
            "website",
            "blocked",
            "unknown",
            (p.UNKNOWN_FACE, p.UNRELIABLE_FACE),
            id="a-confident-stranger-blocks",
        ),
        pytest.param(
            FaceInput(degraded=True),
            "website",
            "blocked",
            "unknown",
            (p.UNKNOWN_FACE, p.UNRELIABLE_FACE),
            id="nobody-enrolled-blocks",
        ),
        pytest.param(
            near(("ann", 0.60), degraded=True),
            "website",
            "review",
            "uncertain",
            (p.UNCERTAIN_MATCH, p.UNRELIABLE_FACE),
            id="between-the-thresholds-is-reviewed",
        ),
        pytest.param(
            near(("ann", 0.40), ("bob", 0.45), degraded=True),
            "website",
            "review",
            "uncertain",
            (p.UNCERTAIN_MATCH, p.UNRELIABLE_FACE),
            id="too-close-to-call-is-not-resolved-when-degraded",
        ),
        pytest.param(
            near(("dan", 0.30), degraded=True),
            "website",
            "blocked",
            "unknown",
            (p.UNKNOWN_FACE, p.UNRELIABLE_FACE),
            id="someone-who-may-not-be-matched-is-unknown",
        ),
    ],
)
def test_a_degraded_face_is_never_trusted_alone(
    face: FaceInput, channel: str, verdict: str, outcome: str, reasons: tuple[str, ...]
) -> None:
    result = p.decide([face], PEOPLE, channel, NOW, POLICY)
    assert (result.verdict, result.faces[0].outcome, result.faces[0].reasons) == (verdict, outcome, reasons)


def test_the_same_face_not_degraded_is_published() -> None:
    result = p.decide([near(("ann", 0.30))], PEOPLE, "website", NOW, POLICY)
    assert (result.verdict, result.faces[0].outcome) == ("publishable", "consented")
