"""Table tests for the UK rules in the pure decision: POFA biometric consent, coming of age, lawful
basis, leavers, the DPIA switch and unknown faces (docs/uk-rules.md)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from gatekeeper import policy as p
from gatekeeper.policy import BiometricRecord, Candidate, ConsentFact, FaceInput, PersonState, Policy

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
EARLIER = datetime(2025, 9, 1, tzinfo=UTC)
CHILD = date(2014, 5, 5)  # 12 at NOW
ADULT = date(1990, 1, 1)


def bio(
    action: str, by: str = "parent", name: str | None = "Mum", at: datetime = EARLIER, seq: int = 0
) -> BiometricRecord:
    return BiometricRecord(action=action, by=by, at=at, by_name=name, sequence=seq)  # type: ignore[arg-type]


MUM_YES = bio("grant", "parent", "Mum")
DAD_YES = bio("grant", "parent", "Dad")
DAD_NO = bio("object", "parent", "Dad", at=EARLIER + timedelta(days=1))
MUM_WITHDRAWS = bio("withdraw", "parent", "Mum", at=EARLIER + timedelta(days=2))
CHILD_REFUSES = bio("refuse", "self", None, at=EARLIER + timedelta(days=3))
SELF_YES = bio("grant", "self", None)
GUARDIAN_YES = bio("grant", "guardian", "Aunt")


# --- biometric consent (POFA 2012 ss. 26-28; UK GDPR art. 9) ---------------------------------------


@pytest.mark.parametrize(
    ("dob", "records", "rules", "reasons"),
    [
        pytest.param(CHILD, (MUM_YES,), "pofa", (), id="one-parent-consents"),
        pytest.param(CHILD, (GUARDIAN_YES,), "pofa", (), id="a-guardian-consents"),
        pytest.param(CHILD, (MUM_YES, DAD_YES), "pofa", (), id="both-parents-consent"),
        pytest.param(CHILD, (MUM_YES, DAD_NO), "pofa", (p.BIOMETRIC_OBJECTION,), id="parents-disagree"),
        pytest.param(
            CHILD,
            (DAD_NO,),
            "pofa",
            (p.BIOMETRIC_OBJECTION, p.PARENT_BIOMETRIC_CONSENT_REQUIRED),
            id="objection-only",
        ),
        pytest.param(CHILD, (), "pofa", (p.PARENT_BIOMETRIC_CONSENT_REQUIRED,), id="nobody-answered"),
        pytest.param(
            CHILD, (SELF_YES,), "pofa", (p.PARENT_BIOMETRIC_CONSENT_REQUIRED,), id="child-alone-is-not-enough"
        ),
        pytest.param(CHILD, (MUM_YES, CHILD_REFUSES), "pofa", (p.BIOMETRIC_REFUSED,), id="child-refuses"),
        pytest.param(
            CHILD,
            (MUM_YES, MUM_WITHDRAWS),
            "pofa",
            (p.PARENT_BIOMETRIC_CONSENT_REQUIRED,),
            id="parent-withdraws",
        ),
        pytest.param(CHILD, (MUM_YES, DAD_YES, MUM_WITHDRAWS), "pofa", (), id="other-parent-still-consents"),
        pytest.param(
            CHILD,
            (DAD_NO, bio("grant", "parent", "Dad", at=EARLIER + timedelta(days=5)), MUM_YES),
            "pofa",
            (),
            id="objection-taken-back-by-a-later-grant",
        ),
        pytest.param(None, (MUM_YES,), "pofa", (), id="unknown-age-treated-as-child"),
        pytest.param(
            None, (SELF_YES,), "pofa", (p.PARENT_BIOMETRIC_CONSENT_REQUIRED,), id="unknown-age-own-not-enough"
        ),
        pytest.param(ADULT, (SELF_YES,), "pofa", (), id="adult-own-consent"),
        pytest.param(
            ADULT, (MUM_YES,), "pofa", (p.BIOMETRIC_CONSENT_REQUIRED,), id="adult-parent-does-not-count"
        ),
        pytest.param(
            ADULT,
            (SELF_YES, CHILD_REFUSES),
            "pofa",
            (p.BIOMETRIC_REFUSED, p.BIOMETRIC_CONSENT_REQUIRED),
            id="adult-refuses",
        ),
        pytest.param(CHILD, (SELF_YES,), "gdpr", (), id="gdpr-own-consent"),
        pytest.param(
            CHILD, (MUM_YES,), "gdpr", (p.BIOMETRIC_CONSENT_REQUIRED,), id="gdpr-parent-does-not-count"
        ),
        pytest.param(
            ADULT, (SELF_YES, DAD_NO), "gdpr", (p.BIOMETRIC_OBJECTION,), id="gdpr-objection-still-wins"
        ),
    ],
)
def test_biometric_consent_most_restrictive_answer_wins(
    dob: date | None, records: tuple[BiometricRecord, ...], rules: str, reasons: tuple[str, ...]
) -> None:
    assert p.biometric_reasons(dob, records, NOW, rules) == reasons  # type: ignore[arg-type]


def test_a_refusal_at_any_age_stops_matching_and_a_future_answer_does_not_count_yet() -> None:
    for dob in (date(2020, 1, 1), date(2009, 1, 1), ADULT):
        assert p.BIOMETRIC_REFUSED in p.biometric_reasons(
            dob, (MUM_YES, SELF_YES, CHILD_REFUSES), NOW, "pofa"
        )
    future_objection = bio("object", "parent", "Dad", at=NOW + timedelta(days=1))
    assert p.biometric_reasons(CHILD, (MUM_YES, future_objection), NOW, "pofa") == ()


def test_pofa_stops_requiring_a_parent_on_the_eighteenth_birthday() -> None:
    dob = date(2008, 6, 15)
    assert p.biometric_reasons(dob, (MUM_YES,), NOW - timedelta(days=1), "pofa") == ()
    assert p.biometric_reasons(dob, (MUM_YES,), NOW, "pofa") == (p.BIOMETRIC_CONSENT_REQUIRED,)
    assert p.biometric_reasons(dob, (MUM_YES, SELF_YES), NOW, "pofa") == ()


# --- coming of age ---------------------------------------------------------------------------------

POLICY = Policy(age_threshold=18, reconsent_grace_days=30)


def parent_grant(at: datetime = EARLIER) -> ConsentFact:
    return ConsentFact("website", "grant", at, granted_by="parent")


@pytest.mark.parametrize(
    ("moment", "reasons"),
    [
        pytest.param(datetime(2026, 3, 1, tzinfo=UTC), (), id="before-the-birthday"),
        pytest.param(datetime(2026, 3, 2, tzinfo=UTC), (), id="on-the-birthday"),
        pytest.param(datetime(2026, 3, 31, 23, 59, tzinfo=UTC), (), id="last-day-of-grace"),
        pytest.param(datetime(2026, 4, 1, tzinfo=UTC), (p.RECONSENT_REQUIRED,), id="grace-over"),
        pytest.param(NOW, (p.RECONSENT_REQUIRED,), id="long-after"),
    ],
)
def test_a_parents_consent_lapses_after_the_threshold_birthday_and_the_grace_period(
    moment: datetime, reasons: tuple[str, ...]
) -> None:
    state = PersonState("ann", date(2008, 3, 2), (parent_grant(),))
    assert p.consent_reasons(state, "website", moment, POLICY) == reasons


def test_the_learners_own_consent_after_coming_of_age_replaces_the_parents() -> None:
    own = ConsentFact("website", "grant", datetime(2026, 3, 10, tzinfo=UTC), granted_by="self")
    state = PersonState("ann", date(2008, 3, 2), (parent_grant(), own))
    assert p.consent_reasons(state, "website", NOW, POLICY) == ()


@pytest.mark.parametrize(
    ("threshold", "grace", "due"),
    [
        (18, 30, date(2026, 4, 1)),
        (16, 30, date(2024, 4, 1)),
        (18, 0, date(2026, 3, 2)),
        (13, 7, date(2021, 3, 9)),
    ],
)
def test_reconsent_is_due_grace_days_after_the_threshold_birthday(
    threshold: int, grace: int, due: date
) -> None:
    state = PersonState("ann", date(2008, 3, 2))
    pol = Policy(age_threshold=threshold, reconsent_grace_days=grace)
    assert p.reconsent_due(state, pol) == datetime(due.year, due.month, due.day, tzinfo=UTC)


def test_a_leap_day_birthday_comes_of_age_on_the_first_of_march() -> None:
    assert p.coming_of_age(date(2008, 2, 29), 18) == date(2026, 3, 1)
    assert p.coming_of_age(date(2008, 2, 29), 16) == date(2024, 2, 29)


def test_no_date_of_birth_means_no_lapse_date() -> None:
    assert p.reconsent_due(PersonState("ann", None), POLICY) is None


# --- lawful basis per channel ----------------------------------------------------------------------

BASES = Policy(lawful_bases=(("internal", "public_task"), ("social_media", "legitimate_interests")))


@pytest.mark.parametrize(
    ("channel", "basis", "recorded_as"),
    [
        ("website", "consent", "withdraw"),
        ("internal", "public_task", "object"),
        ("social_media", "legitimate_interests", "object"),
        ("social_media:instagram", "legitimate_interests", "object"),
    ],
)
def test_each_channel_has_a_lawful_basis_and_an_objection_is_recorded_by_it(
    channel: str, basis: str, recorded_as: str
) -> None:
    assert BASES.lawful_basis(channel) == basis
    assert p.objection_action(channel, BASES) == recorded_as


@pytest.mark.parametrize(
    ("records", "reasons"),
    [
        ((ConsentFact("internal", "grant", EARLIER),), ()),
        (
            (ConsentFact("internal", "grant", EARLIER), ConsentFact("internal", "object", NOW)),
            (p.OBJECTED,),
        ),
        (
            (ConsentFact("social_media", "grant", EARLIER), ConsentFact("social_media", "object", NOW)),
            (p.OBJECTED,),
        ),
        ((ConsentFact("internal", "object", EARLIER), ConsentFact("internal", "grant", NOW)), ()),
    ],
)
def test_an_objection_blocks_exactly_as_a_withdrawal_does(
    records: tuple[ConsentFact, ...], reasons: tuple[str, ...]
) -> None:
    channel = records[0].channel
    state = PersonState("ann", ADULT, records)
    assert p.consent_reasons(state, channel, NOW, BASES) == reasons
    face = FaceInput((Candidate("ann", 0.3),))
    verdict = p.decide([face], {"ann": state}, channel, NOW, BASES)
    assert verdict.verdict == ("blocked" if reasons else "publishable")


# --- leavers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("left_on", "survives", "reasons"),
    [
        (None, False, ()),
        (NOW.date(), False, ()),  # consent holds through the leaving day
        (NOW.date() - timedelta(days=1), False, (p.PERSON_LEFT,)),
        (NOW.date() - timedelta(days=1), True, ()),
        (NOW.date() + timedelta(days=30), False, ()),
    ],
)
def test_consent_ends_on_leaving_unless_it_says_otherwise(
    left_on: date | None, survives: bool, reasons: tuple[str, ...]
) -> None:
    record = ConsentFact("website", "grant", EARLIER, survives_leaving=survives)
    state = PersonState("ann", ADULT, (record,), status="left" if left_on else "active", left_on=left_on)
    assert p.consent_reasons(state, "website", NOW, Policy()) == reasons


def test_a_leaver_is_still_identified_so_nobody_else_takes_their_place() -> None:
    state = PersonState(
        "ann", ADULT, (ConsentFact("website", "grant", EARLIER),), status="left", left_on=date(2026, 1, 1)
    )
    face = FaceInput((Candidate("ann", 0.3), Candidate("bob", 0.5)))
    verdict = p.decide([face], {"ann": state}, "website", NOW, Policy())
    assert (verdict.faces[0].person, verdict.faces[0].outcome, verdict.reasons) == (
        "ann",
        "no_consent",
        (p.PERSON_LEFT,),
    )


# --- the DPIA switch and unknown faces -------------------------------------------------------------

KNOWN = {"ann": PersonState("ann", ADULT, (ConsentFact("website", "grant", EARLIER),))}
ANN = FaceInput((Candidate("ann", 0.3),))
STRANGER = FaceInput(())


@pytest.mark.parametrize(
    ("pol", "faces", "verdict", "reasons"),
    [
        (Policy(), [ANN], "publishable", ()),
        (Policy(matching_enabled=False), [ANN], "review", (p.MATCHING_DISABLED,)),
        (Policy(matching_enabled=False), [STRANGER, ANN], "review", (p.MATCHING_DISABLED,)),
        (Policy(matching_enabled=False), [], "publishable", ()),
        (Policy(), [ANN, STRANGER], "blocked", (p.UNKNOWN_FACE,)),
        (Policy(unknown_faces="review"), [ANN, STRANGER], "review", (p.UNKNOWN_FACE,)),
        (
            Policy(unknown_faces="review"),
            [STRANGER, FaceInput((Candidate("bob", 0.3),))],
            "blocked",
            (p.UNKNOWN_FACE, p.NO_CONSENT_FOR_CHANNEL),
        ),
        (
            Policy(unknown_faces="review", cover_channels=frozenset({"website"})),
            [ANN, STRANGER],
            "publishable",
            (p.FACES_COVERED,),
        ),
    ],
)
def test_the_dpia_switch_and_the_unknown_faces_setting(
    pol: Policy, faces: list[FaceInput], verdict: str, reasons: tuple[str, ...]
) -> None:
    result = p.decide(faces, KNOWN, "website", NOW, pol)
    assert (result.verdict, result.reasons) == (verdict, reasons)
    if not pol.matching_enabled:
        assert all(f.person is None for f in result.faces)


def test_a_face_nearest_to_someone_who_may_not_be_matched_is_unknown_not_the_runner_up() -> None:
    ann = PersonState("ann", ADULT, (ConsentFact("website", "grant", EARLIER),), matchable=False)
    bob = PersonState("bob", ADULT, (ConsentFact("website", "grant", EARLIER),))
    face = FaceInput((Candidate("ann", 0.3), Candidate("bob", 0.5)))
    result = p.decide([face], {"ann": ann, "bob": bob}, "website", NOW, Policy())
    assert (result.verdict, result.reasons, result.faces[0].person) == ("blocked", (p.UNKNOWN_FACE,), None)
    reviewed = p.decide([face], {"ann": ann, "bob": bob}, "website", NOW, Policy(unknown_faces="review"))
    assert reviewed.verdict == "review"
