"""Table tests for the pure consent decision (DESIGN §4)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from gatekeeper import policy as p
from gatekeeper.policy import Candidate, ConsentFact, FaceInput, KnownName, PersonState, Policy

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
LAST_YEAR = datetime(2025, 9, 1, tzinfo=UTC)
ADULT = date(1990, 1, 1)
POLICY = Policy(accept_distance=0.55, review_distance=0.65, margin=0.08, age_threshold=18)


def grant(channel: str = "website", **kw: object) -> ConsentFact:
    fields: dict[str, object] = {"channel": channel, "action": "grant", "at": LAST_YEAR}
    fields.update(kw)
    return ConsentFact(**fields)  # type: ignore[arg-type]


def withdraw(
    channel: str = "website", at: datetime = NOW - timedelta(days=1), sequence: int = 1
) -> ConsentFact:
    return ConsentFact(channel=channel, action="withdraw", at=at, sequence=sequence)


def person(*records: ConsentFact, dob: date | None = ADULT, **kw: object) -> PersonState:
    return PersonState("ann", dob, records, **kw)  # type: ignore[arg-type]


def face(distance: float = 0.3, who: str = "ann", *others: tuple[str, float]) -> FaceInput:
    cands = [Candidate(who, distance), *(Candidate(n, d) for n, d in others)]
    return FaceInput(candidates=tuple(sorted(cands, key=lambda c: c.distance)))


def decide_one(
    state: PersonState, channel: str = "website", moment: datetime = NOW, pol: Policy = POLICY
) -> p.PhotoVerdict:
    return p.decide([face()], {"ann": state}, channel, moment, pol)


# --- consent rules, one row per reason -------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "channel", "verdict", "reasons"),
    [
        pytest.param(person(grant()), "website", "publishable", (), id="granted-adult-self"),
        pytest.param(person(), "website", "blocked", (p.NO_CONSENT_FOR_CHANNEL,), id="no-records"),
        pytest.param(
            person(grant("social_media")),
            "website",
            "blocked",
            (p.NO_CONSENT_FOR_CHANNEL,),
            id="other-channel",
        ),
        pytest.param(person(grant("social_media")), "social_media", "publishable", (), id="right-channel"),
        pytest.param(
            person(grant()), "print", "blocked", (p.NO_CONSENT_FOR_CHANNEL,), id="website-is-not-print"
        ),
        pytest.param(
            person(grant(), withdraw()), "website", "blocked", (p.CONSENT_WITHDRAWN,), id="withdrawn"
        ),
        pytest.param(
            person(grant(), withdraw(), grant(at=NOW - timedelta(hours=1), sequence=2)),
            "website",
            "publishable",
            (),
            id="re-granted-after-withdrawal",
        ),
        pytest.param(
            person(grant(), withdraw(at=NOW + timedelta(days=1))),
            "website",
            "publishable",
            (),
            id="withdrawal-after-the-moment-not-yet-in-force",
        ),
        pytest.param(
            person(grant(valid_until=NOW - timedelta(days=1))),
            "website",
            "blocked",
            (p.CONSENT_EXPIRED,),
            id="expired",
        ),
        pytest.param(
            person(grant(valid_until=NOW + timedelta(days=1))),
            "website",
            "publishable",
            (),
            id="not-yet-expired",
        ),
        pytest.param(
            person(grant(at=NOW + timedelta(days=2))),
            "website",
            "blocked",
            (p.CONSENT_NOT_YET_VALID,),
            id="granted-in-the-future",
        ),
        pytest.param(
            person(grant(), safeguarding=True), "website", "blocked", (p.SAFEGUARDING,), id="safeguarding"
        ),
        pytest.param(
            person(safeguarding=True),
            "website",
            "blocked",
            (p.SAFEGUARDING, p.NO_CONSENT_FOR_CHANNEL),
            id="safeguarding-and-no-consent",
        ),
        pytest.param(person(grant(), status="erased"), "website", "blocked", (p.PERSON_ERASED,), id="erased"),
        pytest.param(person(grant(), status="left"), "website", "publishable", (), id="left-keeps-consent"),
        pytest.param(
            person(grant(), dob=None), "website", "blocked", (p.DATE_OF_BIRTH_UNKNOWN,), id="self-no-dob"
        ),
        pytest.param(
            person(grant(granted_by="parent"), dob=None), "website", "publishable", (), id="parent-no-dob"
        ),
        # Sub-channels fall under their parent; a withdrawal of the parent covers them.
        pytest.param(
            person(grant("social_media")), "social_media:instagram", "publishable", (), id="parent-covers-sub"
        ),
        pytest.param(
            person(grant("social_media:instagram")),
            "social_media",
            "blocked",
            (p.NO_CONSENT_FOR_CHANNEL,),
            id="sub-does-not-cover-parent",
        ),
        pytest.param(
            person(grant("social_media:instagram")),
            "social_media:tiktok",
            "blocked",
            (p.NO_CONSENT_FOR_CHANNEL,),
            id="sub-does-not-cover-sibling",
        ),
        pytest.param(
            person(grant("social_media:instagram"), withdraw("social_media")),
            "social_media:instagram",
            "blocked",
            (p.CONSENT_WITHDRAWN,),
            id="parent-withdrawal-covers-sub",
        ),
        pytest.param(
            person(grant("social_media"), withdraw("social_media:instagram")),
            "social_media:facebook",
            "publishable",
            (),
            id="sub-withdrawal-leaves-sibling",
        ),
    ],
)
def test_consent_rules_give_the_expected_verdict(
    state: PersonState, channel: str, verdict: str, reasons: tuple[str, ...]
) -> None:
    result = decide_one(state, channel)
    assert result.verdict == verdict
    assert result.reasons == reasons


def test_expiry_exactly_at_the_boundary_blocks() -> None:
    state = person(grant(valid_until=NOW))
    assert decide_one(state).reasons == (p.CONSENT_EXPIRED,)
    assert decide_one(state, moment=NOW - timedelta(microseconds=1)).verdict == "publishable"


def test_consent_granted_exactly_at_the_moment_is_in_force() -> None:
    assert decide_one(person(grant(at=NOW))).verdict == "publishable"


def test_same_moment_records_are_ordered_by_sequence() -> None:
    at = NOW - timedelta(days=1)
    later_withdrawal = person(grant(at=at, sequence=1), withdraw(at=at, sequence=2))
    later_grant = person(withdraw(at=at, sequence=1), grant(at=at, sequence=2))
    assert decide_one(later_withdrawal).reasons == (p.CONSENT_WITHDRAWN,)
    assert decide_one(later_grant).verdict == "publishable"


# --- the age rule ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("threshold", "age_at_grant", "granted_by", "verdict"),
    [
        (18, 16, "self", "blocked"),
        (18, 16, "parent", "publishable"),
        (18, 16, "guardian", "publishable"),
        (18, 18, "self", "publishable"),
        (18, 17, "self", "blocked"),
        (16, 16, "self", "publishable"),
        (16, 15, "self", "blocked"),
        (13, 13, "self", "publishable"),
        (13, 12, "self", "blocked"),
        (13, 12, "parent", "publishable"),
    ],
)
def test_age_threshold_requires_a_guardian_below_it(
    threshold: int, age_at_grant: int, granted_by: str, verdict: str
) -> None:
    granted = datetime(2025, 9, 1, tzinfo=UTC)
    dob = date(granted.year - age_at_grant, granted.month, granted.day)
    state = person(grant(granted_by=granted_by, at=granted), dob=dob)
    result = decide_one(state, pol=Policy(age_threshold=threshold))
    assert result.verdict == verdict
    if verdict == "blocked":
        assert result.reasons == (p.GUARDIAN_CONSENT_REQUIRED,)


def test_age_is_judged_when_consent_was_granted_not_today() -> None:
    # Self-consent given at 17 stays invalid after the 18th birthday: they must consent again.
    granted = datetime(2025, 9, 1, tzinfo=UTC)
    dob = date(2008, 3, 1)  # 17 at grant, 18 at NOW
    assert p.age_on(dob, NOW.date()) == 18
    result = decide_one(person(grant(at=granted), dob=dob))
    assert result.reasons == (p.GUARDIAN_CONSENT_REQUIRED,)


def test_the_day_before_a_birthday_is_still_the_younger_age() -> None:
    assert p.age_on(date(2010, 6, 16), date(2028, 6, 15)) == 17
    assert p.age_on(date(2010, 6, 15), date(2028, 6, 15)) == 18
    assert p.age_on(date(2008, 2, 29), date(2026, 2, 28)) == 17


# --- identification --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("face_input", "outcome", "reasons", "person_id"),
    [
        pytest.param(face(0.30), "consented", (), "ann", id="close"),
        pytest.param(face(0.55), "consented", (), "ann", id="exactly-accept"),
        pytest.param(face(0.56), "uncertain", (p.UNCERTAIN_MATCH,), "ann", id="between-accept-and-review"),
        pytest.param(face(0.65), "uncertain", (p.UNCERTAIN_MATCH,), "ann", id="exactly-review"),
        pytest.param(face(0.66), "unknown", (p.UNKNOWN_FACE,), None, id="beyond-review"),
        pytest.param(FaceInput(), "unknown", (p.UNKNOWN_FACE,), None, id="no-templates-at-all"),
        pytest.param(
            face(0.40, "ann", ("cat", 0.45)), "uncertain", (p.UNCERTAIN_MATCH,), "ann", id="margin-too-small"
        ),
        pytest.param(face(0.40, "ann", ("bob", 0.49)), "consented", (), "ann", id="margin-clear"),
        pytest.param(
            face(0.40, "ann", ("ann", 0.41)), "consented", (), "ann", id="same-person-second-template"
        ),
        pytest.param(FaceInput(too_small=True), "uncertain", (p.FACE_TOO_SMALL,), None, id="too-small"),
    ],
)
def test_identification_thresholds(
    face_input: FaceInput, outcome: str, reasons: tuple[str, ...], person_id: str | None
) -> None:
    people = {"ann": person(grant()), "bob": PersonState("bob", ADULT, (grant(),))}
    result = p.decide([face_input], people, "website", NOW, POLICY).faces[0]
    assert (result.outcome, result.reasons, result.person) == (outcome, reasons, person_id)


def test_a_template_without_a_person_record_fails_closed() -> None:
    result = p.decide([face(0.2, "ghost")], {}, "website", NOW, POLICY)
    assert result.verdict == "blocked"
    assert result.faces[0].outcome == "no_consent"


# --- the photo -------------------------------------------------------------------------------------


def test_a_photo_with_no_face_is_publishable() -> None:
    result = p.decide([], {}, "website", NOW, POLICY)
    assert (result.verdict, result.reasons, result.faces) == ("publishable", (), ())


def test_one_unconsented_face_blocks_a_group_photo() -> None:
    people = {"ann": person(grant()), "bob": PersonState("bob", ADULT, ())}
    faces = [face(0.3, "ann"), face(0.3, "bob"), FaceInput()]
    result = p.decide(faces, people, "website", NOW, POLICY)
    assert result.verdict == "blocked"
    assert [f.outcome for f in result.faces] == ["consented", "no_consent", "unknown"]
    assert result.reasons == (p.NO_CONSENT_FOR_CHANNEL, p.UNKNOWN_FACE)


def test_an_uncertain_face_among_consented_faces_sends_the_photo_to_review() -> None:
    people = {"ann": person(grant())}
    result = p.decide([face(0.3), face(0.6)], people, "website", NOW, POLICY)
    assert result.verdict == "review"
    assert result.reasons == (p.UNCERTAIN_MATCH,)


def test_blocked_wins_over_review() -> None:
    people = {"ann": person(grant())}
    result = p.decide([face(0.6), FaceInput()], people, "website", NOW, POLICY)
    assert result.verdict == "blocked"
    assert result.reasons == (p.UNCERTAIN_MATCH, p.UNKNOWN_FACE)


def test_reasons_are_listed_once_each() -> None:
    result = p.decide([FaceInput(), FaceInput()], {}, "website", NOW, POLICY)
    assert result.reasons == (p.UNKNOWN_FACE,)


def test_unreadable_is_blocked_with_its_reason() -> None:
    assert p.unreadable().verdict == "blocked"
    assert p.unreadable().reasons == (p.UNREADABLE_IMAGE,)


def test_every_reason_code_is_unique_and_snake_case() -> None:
    assert len(set(p.REASON_CODES)) == len(p.REASON_CODES)
    assert all(code.replace("_", "").isalpha() and code.islower() for code in p.REASON_CODES)


# --- possible faces, work limits, covering ---------------------------------------------------------


def test_a_possible_face_sends_the_photo_to_review() -> None:
    result = p.decide([face(), FaceInput(possible=True)], {"ann": person(grant())}, "website", NOW, POLICY)
    assert (result.verdict, result.reasons) == ("review", (p.POSSIBLE_FACE,))
    assert result.faces[1].outcome == "uncertain"


@pytest.mark.parametrize("limit", [p.TOO_MANY_FACES, p.TIME_LIMIT])
def test_a_work_limit_is_never_publishable(limit: str) -> None:
    consented = p.decide([face()], {"ann": person(grant())}, "website", NOW, POLICY, limit=limit)
    assert (consented.verdict, consented.reasons) == ("review", (limit,))
    blocked = p.decide([FaceInput()], {}, "website", NOW, POLICY, limit=limit)
    assert (blocked.verdict, blocked.reasons) == ("blocked", (p.UNKNOWN_FACE, limit))


COVER = Policy(cover_channels=frozenset({"social_media"}))


def test_covering_publishes_with_unconsented_faces_covered() -> None:
    people = {"ann": person(grant("social_media")), "bob": PersonState("bob", ADULT, ())}
    faces = [face(0.3, "ann"), face(0.3, "bob"), FaceInput()]
    result = p.decide(faces, people, "social_media:instagram", NOW, COVER)
    assert (result.verdict, result.reasons) == ("publishable", (p.FACES_COVERED,))
    assert [f.covered for f in result.faces] == [False, True, True]
    assert [f.outcome for f in result.faces] == ["consented", "no_consent", "unknown"]


def test_covering_is_only_for_the_channels_that_allow_it() -> None:
    result = p.decide([FaceInput()], {}, "website", NOW, COVER)
    assert (result.verdict, result.reasons) == ("blocked", (p.UNKNOWN_FACE,))
    assert not result.faces[0].covered


def test_a_safeguarding_flag_is_never_covered_only_blocked() -> None:
    people = {"ann": person(grant("social_media"), safeguarding=True)}
    result = p.decide([face()], people, "social_media", NOW, COVER)
    assert (result.verdict, result.reasons) == ("blocked", (p.SAFEGUARDING,))


def test_uncertain_faces_still_go_to_a_human_when_covering() -> None:
    result = p.decide(
        [face(0.6), FaceInput()], {"ann": person(grant("social_media"))}, "social_media", NOW, COVER
    )
    assert (result.verdict, result.reasons) == ("review", (p.UNCERTAIN_MATCH, p.FACES_COVERED))


# --- names -----------------------------------------------------------------------------------------

KNOWN = [KnownName("1", "Sam Smith"), KnownName("2", "Alex Jones"), KnownName("3", "Mary-Jane O'Neil")]
CAPTION = "Well done Sam Smith and Alex Jones! Sam's relay team beat Mary-Jane O'Neil's."


@pytest.mark.parametrize(
    ("allowed", "expected", "removed"),
    [
        pytest.param({}, "Well done! Relay team beat.", 4, id="nobody-may-be-named"),
        pytest.param({"1": "yes"}, "Well done Sam Smith! Sam's relay team beat.", 2, id="full-name"),
        pytest.param({"1": "first_name"}, "Well done Sam! Sam's relay team beat.", 2, id="first-name-only"),
        pytest.param(
            {"1": "first_name", "2": "yes"},
            "Well done Sam and Alex Jones! Sam's relay team beat.",
            1,
            id="mixed",
        ),
        pytest.param({"1": "no"}, "Well done! Relay team beat.", 4, id="named-no"),
    ],
)
def test_names_stay_only_as_far_as_consented(allowed: dict[str, str], expected: str, removed: int) -> None:
    result = p.scrub_names(CAPTION, KNOWN, allowed)  # type: ignore[arg-type]
    assert (result.text, result.removed) == (expected, removed)


@pytest.mark.parametrize(
    "text",
    [
        "SAM SMITH on the podium",
        "sam smith on the podium",
        "Sam  Smith on the podium",
        "Smith on the podium",
        "Sam on the podium",
    ],
)
def test_names_are_found_in_any_case_spacing_or_part(text: str) -> None:
    assert p.scrub_names(text, KNOWN, {}).text == "On the podium"


PUPILS = [
    KnownName("1", "Amy Pond"),
    KnownName("2", "Rory Williams"),
    KnownName("3", "Kit Harington"),
    KnownName("4", "Rose Leslie"),
]


@pytest.mark.parametrize(
    ("caption", "named", "expected"),
    [
        # Lists of names are joined again around the names that stay.
        ("Amy Pond and Rory Williams at sports day", "1", "Amy Pond at sports day"),
        ("Rory Williams and Amy Pond at sports day", "1", "Amy Pond at sports day"),
        ("Amy Pond & Rory Williams on the podium", "1", "Amy Pond on the podium"),
        ("Kit and Rory at sports day", "3", "Kit at sports day"),
        ("Amy Pond, Rory Williams and Kit Harington at sports day", "1", "Amy Pond at sports day"),
        ("Amy, Rory, Kit and Rose won the relay", "134", "Amy, Kit and Rose won the relay"),
        (
            "Amy Pond, Kit Harington, and Rory Williams at the fair",
            "13",
            "Amy Pond and Kit Harington at the fair",
        ),
        ("Rory, Amy, Kit and the choir", "1", "Amy and the choir"),
        (
            "Year 7 sports day: Rory Williams, Amy Pond and Kit Harington.",
            "1",
            "Year 7 sports day: Amy Pond.",
        ),
        ("Amy, Rory at the fair", "1", "Amy at the fair"),
        # Nobody left: the words that only joined the names go too, and the sentence keeps its capital.
        ("Rory and Kit at sports day.", "", "At sports day."),
        ("Rory Williams and the choir", "", "The choir"),
        ("Barack Obama, Rory and Kit at sports day", "", "Barack Obama at sports day"),
        ("Our team and Rory at sports day", "", "Our team at sports day"),
        # Dangling "with", "of", "to" and brackets.
        ("Amy Pond with Rory Williams at sports day", "1", "Amy Pond at sports day"),
        ("Rory Williams with Amy Pond", "1", "Amy Pond"),
        ("Amy (with Rory) at the fair", "1", "Amy at the fair"),
        ("Photo of Rory Williams at sports day", "", "Photo at sports day"),
        ("Congratulations to Rory Williams!", "", "Congratulations!"),
        ("Well done Rory!", "", "Well done!"),
        ("With Rory at the fair", "", "At the fair"),
        # A possessive goes with the name; the phrase it began keeps its capital.
        ("Rory Williams's science project", "", "Science project"),
        ("Rory's and Amy's paintings", "1", "Amy's paintings"),
    ],
)
def test_scrubbed_captions_read_as_sentences(caption: str, named: str, expected: str) -> None:
    allowed = {person: "yes" for person in named}
    assert p.scrub_names(caption, PUPILS, allowed).text == expected  # type: ignore[arg-type]


def test_names_inside_other_words_are_left_alone() -> None:
    result = p.scrub_names("Samantha's blacksmith samples", KNOWN, {})
    assert (result.text, result.removed) == ("Samantha's blacksmith samples", 0)


def test_a_caption_without_known_names_is_unchanged() -> None:
    text = "Year 7  sports day , 2026"
    assert p.scrub_names(text, KNOWN, {}) == p.ScrubbedText(text, 0)


def test_naming_follows_the_consent_record_for_the_channel() -> None:
    people = {
        "ann": person(grant(named="first_name"), grant("print", named="yes")),
        "bob": PersonState("bob", ADULT, ()),
    }
    verdict = p.decide([face(0.3, "ann"), face(0.3, "bob")], people, "website", NOW, POLICY)
    assert p.naming_allowed(verdict, people, "website", NOW) == {"ann": "first_name"}
    assert p.naming_allowed(verdict, people, "print", NOW) == {"ann": "yes"}
