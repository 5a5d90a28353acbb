"""The consent decision: a pure function of plain data and a moment.

No I/O, no clock, no globals: everything the decision needs is passed in, so the same inputs always
give the same verdict and every rule has a table test. Services gather the inputs (faces with their
candidate matches, each candidate's consent records) and record the output.

Reason codes are stable strings; they are part of the JSON output and documented in the README.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Final, Literal, get_args

# --- reason codes ----------------------------------------------------------------------------------

UNKNOWN_FACE: Final = "unknown_face"
UNCERTAIN_MATCH: Final = "uncertain_match"
FACE_TOO_SMALL: Final = "face_too_small"
POSSIBLE_FACE: Final = "possible_face"
TOO_MANY_FACES: Final = "too_many_faces"
TIME_LIMIT: Final = "time_limit"
FACES_COVERED: Final = "faces_covered"
COVER_FAILED: Final = "cover_failed"
CLEAN_COPY_FAILED: Final = "clean_copy_failed"
CONSENT_CHANGED: Final = "consent_changed"
ANALYSIS_TOO_COARSE: Final = "analysis_too_coarse"
NO_CONSENT_FOR_CHANNEL: Final = "no_consent_for_channel"
CONSENT_WITHDRAWN: Final = "consent_withdrawn"
CONSENT_EXPIRED: Final = "consent_expired"
CONSENT_NOT_YET_VALID: Final = "consent_not_yet_valid"
GUARDIAN_CONSENT_REQUIRED: Final = "guardian_consent_required"
DATE_OF_BIRTH_UNKNOWN: Final = "date_of_birth_unknown"
SAFEGUARDING: Final = "safeguarding"
PERSON_ERASED: Final = "person_erased"
UNREADABLE_IMAGE: Final = "unreadable_image"
RECONSENT_REQUIRED: Final = "reconsent_required"
OBJECTED: Final = "objected"
PERSON_LEFT: Final = "person_left"
MATCHING_DISABLED: Final = "matching_disabled"
UNRELIABLE_FACE: Final = "unreliable_face"

REASON_CODES: Final = (
    UNKNOWN_FACE,
    UNCERTAIN_MATCH,
    FACE_TOO_SMALL,
    POSSIBLE_FACE,
    TOO_MANY_FACES,
    TIME_LIMIT,
    FACES_COVERED,
    COVER_FAILED,
    CLEAN_COPY_FAILED,
    CONSENT_CHANGED,
    ANALYSIS_TOO_COARSE,
    NO_CONSENT_FOR_CHANNEL,
    CONSENT_WITHDRAWN,
    CONSENT_EXPIRED,
    CONSENT_NOT_YET_VALID,
    GUARDIAN_CONSENT_REQUIRED,
    DATE_OF_BIRTH_UNKNOWN,
    SAFEGUARDING,
    PERSON_ERASED,
    UNREADABLE_IMAGE,
    RECONSENT_REQUIRED,
    OBJECTED,
    PERSON_LEFT,
    MATCHING_DISABLED,
    UNRELIABLE_FACE,
)

# Why a person's face may not be matched (their templates may not be made or used).
BIOMETRIC_REFUSED: Final = "biometric_refused"
BIOMETRIC_OBJECTION: Final = "biometric_objection"
BIOMETRIC_CONSENT_REQUIRED: Final = "biometric_consent_required"
PARENT_BIOMETRIC_CONSENT_REQUIRED: Final = "parent_biometric_consent_required"
BIOMETRIC_REASON_CODES: Final = (
    BIOMETRIC_REFUSED,
    BIOMETRIC_OBJECTION,
    BIOMETRIC_CONSENT_REQUIRED,
    PARENT_BIOMETRIC_CONSENT_REQUIRED,
    DATE_OF_BIRTH_UNKNOWN,
)
# Work limits: analysis stopped early, so some of the photo was never examined.
LIMIT_REASONS: Final = frozenset({TOO_MANY_FACES, TIME_LIMIT})


class Verdict(StrEnum):
    """The decision about a photo on a channel: it may go out, it may not, or a person must look."""

    PUBLISHABLE = "publishable"
    BLOCKED = "blocked"
    REVIEW = "review"


class PersonStatus(StrEnum):
    """Where a person stands: at the organisation, gone (their last day has passed), or erased."""

    ACTIVE = "active"
    LEFT = "left"
    ERASED = "erased"


Outcome = Literal["consented", "no_consent", "unknown", "uncertain", "not_a_face"]
Action = Literal["grant", "withdraw", "object"]
BiometricAction = Literal["grant", "withdraw", "object", "refuse"]
GrantedBy = Literal["self", "parent", "guardian"]
Named = Literal["yes", "first_name", "no"]
LawfulBasis = Literal["consent", "public_task", "legitimate_interests"]
BiometricRules = Literal["pofa", "gdpr"]
UnknownFaces = Literal["block", "review"]
# A reviewer's word on a face: it is this person, someone not enrolled, or no face at all.
Resolution = Literal["person", "stranger", "not_a_face"]

# The vocabularies, each defined once: the Literal types above are the source, these tuples are what
# parsers, command-line choices and documentation list.
OUTCOMES: Final[tuple[str, ...]] = get_args(Outcome)
ACTIONS: Final[tuple[str, ...]] = get_args(Action)
BIOMETRIC_ACTIONS: Final[tuple[str, ...]] = get_args(BiometricAction)
LAWFUL_BASES: Final[tuple[str, ...]] = get_args(LawfulBasis)
BIOMETRIC_RULES: Final[tuple[str, ...]] = get_args(BiometricRules)
UNKNOWN_FACES: Final[tuple[str, ...]] = get_args(UnknownFaces)
RESOLUTIONS: Final[tuple[str, ...]] = get_args(Resolution)
GRANTED_BY: Final[tuple[str, ...]] = get_args(GrantedBy)
NAMED: Final[tuple[str, ...]] = get_args(Named)

GUARDIANS: Final = frozenset({"parent", "guardian"})
# POFA 2012 s. 26 applies to children, i.e. under-18s, whatever the publication age threshold.
POFA_ADULT_AGE: Final = 18


# --- thresholds: the defaults, defined here once (Settings, Policy and the face engine use them) -------

# Face distances (dlib 128-d, Euclidean), stricter than face_recognition's 0.6: docs/faces.md.
ACCEPT_DISTANCE: Final = 0.55
REVIEW_DISTANCE: Final = 0.65
MARGIN: Final = 0.08
# A face whose shorter side is under this many pixels (of the analysed copy) is never identified.
MIN_FACE_PX: Final = 40
# The smallest face searched for, at any angle, in pixels of the copy that will be published.
MIN_DETECT_PX: Final = 32
# Photos are searched turned by every multiple of this many degrees: at 45° every corpus face from
# 32 px is found at every angle; 90° is about 2.8x cheaper and misses some small faces tilted
# near 45° (docs/faces.md, "Faces at any angle").
PROBE_STEP: Final = 45
PROBE_STEPS: Final = (45, 90)
# Work limits per photo: past either, analysis stops and the photo goes to review.
MAX_FACES: Final = 200
# Searching every 45° costs about 13x an upright search: a 12 MP photo for print takes about 40 s
# on two cores (docs/faces.md).
FACE_TIME_LIMIT_S: Final = 90.0


def smallest_face_found(analysis_scale: float, min_detect_px: int) -> float:
    """The smallest face (px of the full photo) an analysis at `analysis_scale` is sure to have found."""
    return min_detect_px / analysis_scale


def is_fine_enough(
    analysis_scale: float, analysed_min_px: int, output_scale: float, output_min_px: int
) -> bool:
    """Whether an analysis found every face that the copy at `output_scale` must be searched for.

    A photo analysed for a channel with small copies must be analysed again, at the finer scale,
    before it goes to a channel with larger ones.
    """
    needed = smallest_face_found(output_scale, output_min_px)
    return smallest_face_found(analysis_scale, analysed_min_px) <= needed * (1 + 1e-9)


# --- inputs ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Channel:
    """A channel's name, and the sub-channel rule: `parent:sub` (`social_media:instagram`) is a
    sub-channel of `parent`. A sub-channel takes its parent's consent, lawful basis, covering and
    copy size, unless it is given its own."""

    name: str

    @property
    def parent(self) -> str | None:
        """The channel this is a sub-channel of (`social_media`), else None."""
        head, sep, _ = self.name.partition(":")
        return head if sep else None

    @property
    def base(self) -> str:
        """The top-level channel: a sub-channel's parent, else the channel itself."""
        return self.name.partition(":")[0]

    @property
    def sub(self) -> str:
        """A sub-channel's own name (`instagram`), else the empty string."""
        return self.name.partition(":")[2]

    @property
    def is_sub_channel(self) -> bool:
        """True for a well-formed sub-channel name: one colon, with the sub-channel's name after it."""
        return self.parent is not None and bool(self.sub) and ":" not in self.sub

    def covered_by(self, record_channel: str) -> bool:
        """True when a record for `record_channel` applies here: this channel's own, or its parent's."""
        return record_channel == self.name or record_channel == self.parent


@dataclass(frozen=True)
class Policy:
    """The organisation's rules that the decision applies."""

    accept_distance: float = ACCEPT_DISTANCE
    review_distance: float = REVIEW_DISTANCE
    margin: float = MARGIN
    age_threshold: int = 18
    # Channels (and their sub-channels) on which unconsented faces may be covered instead of blocking.
    cover_channels: frozenset[str] = frozenset()
    # Days after reaching the age threshold during which a parent's consent still holds.
    reconsent_grace_days: int = 30
    # Lawful basis of each channel that is not `consent` (a sub-channel takes its parent's).
    lawful_bases: tuple[tuple[str, LawfulBasis], ...] = ()
    # False until a DPIA is recorded (when one is required): no face is matched.
    matching_enabled: bool = True
    # What an unknown face does to a photo: blocks it, or sends it to a reviewer.
    unknown_faces: UnknownFaces = "block"
    biometric_rules: BiometricRules = "pofa"

    def lawful_basis(self, channel: str) -> LawfulBasis:
        """The lawful basis for publishing on `channel` (a sub-channel inherits its parent's)."""
        bases = dict(self.lawful_bases)
        return bases.get(channel) or bases.get(Channel(channel).parent or "", "consent")

    def allows_cover(self, channel: str) -> bool:
        """True when unconsented faces may be covered on `channel`."""
        return channel in self.cover_channels or Channel(channel).parent in self.cover_channels


@dataclass(frozen=True)
class Candidate:
    """One enrolled person a face may be: their best template distance."""

    person: str
    distance: float


@dataclass(frozen=True)
class Review:
    """A reviewer's identification of a face by eye, made without face matching.

    `person`: the face is that person (`person` is their key), whatever the distances say and
    whether or not their face may be matched. `stranger`: someone who is not enrolled, or not
    recognised; the face stays unknown and blocks. `not_a_face`: the detection is not a face and
    plays no part in the decision.
    """

    resolution: Resolution
    person: str | None = None

    def __post_init__(self) -> None:
        if (self.resolution == "person") != (self.person is not None):
            raise ValueError("a review names a person exactly when its resolution is `person`")


@dataclass(frozen=True)
class FaceInput:
    """A detected face: candidates are best-per-person, nearest first.

    Faces that cannot be identified (too small, or only probably a face) have no candidates. A face
    a reviewer has identified carries the `review`, which decides who it is.
    """

    candidates: tuple[Candidate, ...] = ()
    too_small: bool = False
    possible: bool = False
    review: Review | None = None
    # The encoding is unreliable (occluded, blurred, dim, or found only by the second detector): a
    # match to a consented person is not trusted on its own.
    degraded: bool = False

    @property
    def people(self) -> tuple[str, ...]:
        """Every person this face may be: its candidates and the person a reviewer named."""
        named = (self.review.person,) if self.review is not None and self.review.person else ()
        return (*(c.person for c in self.candidates), *named)


@dataclass(frozen=True)
class ConsentFact:
    """One consent record as the decision sees it (a stored one is `consent_db.models.ConsentRecord`):
    a grant, a withdrawal or an objection for one channel.

    `at` is when it takes effect (granted at / withdrawn at); `sequence` orders records that take
    effect at the same moment (the later recorded wins).
    """

    channel: str
    action: Action
    at: datetime
    sequence: int = 0
    granted_by: GrantedBy = "self"
    valid_until: datetime | None = None
    named: Named = "no"
    # A grant that explicitly continues after the person leaves (an alumni consent, say).
    survives_leaving: bool = False


@dataclass(frozen=True)
class BiometricRecord:
    """One answer about face matching from one person: the learner (`self`) or a named parent.

    Each giver's latest answer counts: `grant` is written consent, `withdraw` takes it back,
    `object` is a parent's objection, `refuse` the learner's refusal.
    """

    action: BiometricAction
    by: GrantedBy
    at: datetime
    by_name: str | None = None
    sequence: int = 0


@dataclass(frozen=True)
class PersonState:
    """What the decision needs to know about one enrolled person."""

    person: str
    date_of_birth: date | None
    records: tuple[ConsentFact, ...] = ()
    status: PersonStatus = PersonStatus.ACTIVE
    safeguarding: bool = False
    # The day the person left; their consent ends with it unless a grant says otherwise.
    left_on: date | None = None
    # False when the person's face may not be matched (biometric consent refused, objected to or
    # lapsed): a face nearest to them is treated as unknown, never as them.
    matchable: bool = True


# --- outputs ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaceVerdict:
    """The decision about one face."""

    outcome: Outcome
    person: str | None
    distance: float | None
    reasons: tuple[str, ...]
    covered: bool = False
    # True when a reviewer identified the face (or dismissed it); the distance rules played no part.
    reviewed: bool = False
    # Other enrolled people the face is as close to (within the margin), every one of them consented
    # on the channel: the verdict is the same whoever it is, and they are kept for the record.
    also: tuple[str, ...] = ()

    @property
    def is_publishable(self) -> bool:
        """True when this face may appear on the channel."""
        return self.outcome == "consented"


@dataclass(frozen=True)
class PhotoVerdict:
    """The decision about a photo: its verdict, the reasons (deduplicated, stable order), its faces."""

    verdict: Verdict
    reasons: tuple[str, ...]
    faces: tuple[FaceVerdict, ...]


# --- the decision ----------------------------------------------------------------------------------


def age_on(date_of_birth: date, moment: date) -> int:
    """Whole years of age on a given day."""
    years = moment.year - date_of_birth.year
    if (moment.month, moment.day) < (date_of_birth.month, date_of_birth.day):
        years -= 1
    return years


def current_record(records: Iterable[ConsentFact], channel: str, moment: datetime) -> ConsentFact | None:
    """The record in force for `channel` at `moment`: the latest to take effect, grant or withdrawal."""
    target = Channel(channel)
    applicable = [r for r in records if target.covered_by(r.channel) and r.at <= moment]
    if not applicable:
        return None
    return max(applicable, key=lambda r: (r.at, r.sequence))


def start_of_day(day: date) -> datetime:
    """Midnight UTC at the start of `day`."""
    return datetime.combine(day, time(), tzinfo=UTC)


def end_of_day(day: date) -> datetime:
    """The first moment after `day` (UTC): what lasts through `day` ends here."""
    return start_of_day(day + timedelta(days=1))


def coming_of_age(date_of_birth: date, age: int) -> date:
    """The day a person born on `date_of_birth` reaches `age` (29 February: 1 March)."""
    try:
        return date_of_birth.replace(year=date_of_birth.year + age)
    except ValueError:
        return date(date_of_birth.year + age, 3, 1)


def reconsent_due(state: PersonState, policy: Policy) -> datetime | None:
    """When a parent's or guardian's consent for this person lapses; None when it never does."""
    if state.date_of_birth is None:
        return None
    reached = coming_of_age(state.date_of_birth, policy.age_threshold)
    return start_of_day(reached + timedelta(days=policy.reconsent_grace_days))


def answers_for(date_of_birth: date | None, day: date, policy: Policy) -> Literal["self", "guardians"]:
    """Who may answer for a person's publication consent on `day`: their parents or guardians below
    the age threshold (or when the age is unknown, where the person's own answer would not count),
    the person themselves from it."""
    if date_of_birth is None or age_on(date_of_birth, day) < policy.age_threshold:
        return "guardians"
    return "self"


def biometric_answer_counts(
    by: GrantedBy, date_of_birth: date | None, day: date, rules: BiometricRules
) -> bool:
    """Whether a biometric grant from `by` can allow matching the person's face on `day`: under
    `pofa` a child's (under 18, or of unknown age) comes from a parent or guardian, under `gdpr`
    and for adults it is the person's own."""
    child = rules == "pofa" and (date_of_birth is None or age_on(date_of_birth, day) < POFA_ADULT_AGE)
    return (by in GUARDIANS) == child


def consent_reasons(state: PersonState, channel: str, moment: datetime, policy: Policy) -> tuple[str, ...]:
    """Why `state`'s person may not appear on `channel` at `moment`; empty when they may."""
    if state.status == PersonStatus.ERASED:
        return (PERSON_ERASED,)
    reasons: list[str] = []
    if state.safeguarding:
        reasons.append(SAFEGUARDING)
    record = current_record(state.records, channel, moment)
    if record is None:
        future = any(Channel(channel).covered_by(r.channel) and r.action == "grant" for r in state.records)
        reasons.append(CONSENT_NOT_YET_VALID if future else NO_CONSENT_FOR_CHANNEL)
    elif record.action == "withdraw":
        reasons.append(CONSENT_WITHDRAWN)
    elif record.action == "object":
        # An objection blocks whatever the channel's lawful basis: on a consent channel it is
        # recorded as a withdrawal, so only public-task and legitimate-interest channels see it.
        reasons.append(OBJECTED)
    else:
        if record.valid_until is not None and moment >= record.valid_until:
            reasons.append(CONSENT_EXPIRED)
        if record.granted_by not in GUARDIANS:
            if state.date_of_birth is None:
                reasons.append(DATE_OF_BIRTH_UNKNOWN)
            elif age_on(state.date_of_birth, record.at.date()) < policy.age_threshold:
                reasons.append(GUARDIAN_CONSENT_REQUIRED)
        else:
            lapses = reconsent_due(state, policy)
            if lapses is not None and moment >= lapses:
                reasons.append(RECONSENT_REQUIRED)
        if state.left_on is not None and not record.survives_leaving and moment >= end_of_day(state.left_on):
            reasons.append(PERSON_LEFT)
    return tuple(reasons)


def objection_action(channel: str, policy: Policy) -> Action:
    """How an objection to publication on `channel` is recorded: an objection where the lawful basis
    is public task or legitimate interests, a withdrawal where it is consent."""
    return "withdraw" if policy.lawful_basis(channel) == "consent" else "object"


def biometric_reasons(
    date_of_birth: date | None, records: Iterable[BiometricRecord], moment: datetime, rules: BiometricRules
) -> tuple[str, ...]:
    """Why a person's face may not be matched at `moment`; empty when it may.

    Each giver's latest answer counts and the most restrictive wins: a learner's refusal (at any
    age) or any parent's objection stops matching. Under `pofa`, a child (under 18, or of unknown
    age) needs at least one parent's or guardian's written consent; an adult, and everyone under
    `gdpr`, needs their own.
    """
    answers: dict[tuple[str, str | None], BiometricRecord] = {}
    for record in sorted((r for r in records if r.at <= moment), key=lambda r: (r.at, r.sequence)):
        giver = (record.by, record.by_name if record.by in GUARDIANS else None)
        answers[giver] = record
    current = list(answers.values())
    reasons: list[str] = []
    if any(r.by == "self" and r.action in ("refuse", "object") for r in current):
        reasons.append(BIOMETRIC_REFUSED)
    if any(r.by in GUARDIANS and r.action in ("object", "refuse") for r in current):
        reasons.append(BIOMETRIC_OBJECTION)
    own = any(r.by == "self" and r.action == "grant" for r in current)
    parental = any(r.by in GUARDIANS and r.action == "grant" for r in current)
    if rules == "pofa" and (date_of_birth is None or age_on(date_of_birth, moment.date()) < POFA_ADULT_AGE):
        if not parental:
            reasons.append(PARENT_BIOMETRIC_CONSENT_REQUIRED)
    elif not own:
        reasons.append(BIOMETRIC_CONSENT_REQUIRED)
    return tuple(reasons)


def identify(face: FaceInput, policy: Policy) -> tuple[Outcome | None, Candidate | None, tuple[str, ...]]:
    """Who a face is: (None, best, ()) when identified, else the non-consent outcome and its reason."""
    if face.too_small:
        return "uncertain", None, (FACE_TOO_SMALL,)
    if face.possible:
        return "uncertain", None, (POSSIBLE_FACE,)
    if not face.candidates:
        return "unknown", None, (UNKNOWN_FACE,)
    best = face.candidates[0]
    runner_up = next((c for c in face.candidates[1:] if c.person != best.person), None)
    clear_margin = runner_up is None or runner_up.distance - best.distance >= policy.margin
    if best.distance <= policy.accept_distance and clear_margin:
        return None, best, ()
    if best.distance <= policy.review_distance:
        return "uncertain", best, (UNCERTAIN_MATCH,)
    return "unknown", None, (UNKNOWN_FACE,)


def decide_face(
    face: FaceInput, people: Mapping[str, PersonState], channel: str, moment: datetime, policy: Policy
) -> FaceVerdict:
    """The verdict for one face on `channel` at `moment`.

    A reviewer's identification decides who the face is, never whether it may appear: the consent
    rules decide that as for any identified face.
    """
    if face.review is not None:
        return decide_reviewed(face.review, people, channel, moment, policy)
    if not policy.matching_enabled:
        return FaceVerdict("uncertain", None, None, (MATCHING_DISABLED,))
    outcome, best, reasons = identify(face, policy)
    distance = best.distance if best is not None else None
    # A degraded face keeps its reason whatever the outcome, so a later re-check still sees it.
    unreliable = (UNRELIABLE_FACE,) if face.degraded else ()
    if outcome == "uncertain" and best is not None and reasons == (UNCERTAIN_MATCH,) and not face.degraded:
        alike = consented_alike(face, best, people, channel, moment, policy)
        if alike is not None:
            return FaceVerdict("consented", best.person, distance, (), also=alike)
    if outcome is not None:
        person = best.person if best is not None else None
        return FaceVerdict(outcome=outcome, person=person, distance=distance, reasons=(*reasons, *unreliable))
    assert best is not None
    state = people.get(best.person)
    if state is None:
        # A template without a person record is a data fault: fail closed.
        return FaceVerdict("no_consent", best.person, distance, (NO_CONSENT_FOR_CHANNEL, *unreliable))
    if not state.matchable:
        return FaceVerdict("unknown", None, None, (UNKNOWN_FACE, *unreliable))
    blockers = consent_reasons(state, channel, moment, policy)
    if blockers:
        return FaceVerdict("no_consent", best.person, distance, (*blockers, *unreliable))
    if face.degraded:
        # Confidently this consented person, but from an encoding that cannot be trusted alone.
        return FaceVerdict("uncertain", best.person, distance, unreliable)
    return FaceVerdict("consented", best.person, distance, ())


def consented_alike(
    face: FaceInput,
    best: Candidate,
    people: Mapping[str, PersonState],
    channel: str,
    moment: datetime,
    policy: Policy,
) -> tuple[str, ...] | None:
    """The other people a face too close to call may be, when it is surely one of them and every
    one of them may appear on `channel` at `moment`; else None (the face stays uncertain).

    Surely one of them: the best is within the accept distance, only the margin failed. The last
    candidate given being within the margin too means someone further may be as well: not sure.
    """
    if best.distance > policy.accept_distance:
        return None
    alike = [c for c in face.candidates if c.distance - best.distance < policy.margin]
    if len(alike) == len(face.candidates) and len(face.candidates) > 2:
        return None
    for c in alike:
        state = people.get(c.person)
        if state is None or not state.matchable or consent_reasons(state, channel, moment, policy):
            return None
    return tuple(c.person for c in alike if c.person != best.person)


def decide_reviewed(
    review: Review, people: Mapping[str, PersonState], channel: str, moment: datetime, policy: Policy
) -> FaceVerdict:
    """The verdict for a face a reviewer identified by eye: their word on who, the rules on whether.

    Identified by eye is not face matching, so it holds for a person whose face may not be matched
    (biometric consent refused) and before a DPIA is recorded.
    """
    if review.resolution == "not_a_face":
        return FaceVerdict("not_a_face", None, None, (), reviewed=True)
    if review.resolution == "stranger" or review.person is None:
        return FaceVerdict("unknown", None, None, (UNKNOWN_FACE,), reviewed=True)
    state = people.get(review.person)
    if state is None:
        return FaceVerdict("no_consent", review.person, None, (NO_CONSENT_FOR_CHANNEL,), reviewed=True)
    blockers = consent_reasons(state, channel, moment, policy)
    outcome: Outcome = "no_consent" if blockers else "consented"
    return FaceVerdict(outcome, review.person, None, blockers, reviewed=True)


def decide(
    faces: Sequence[FaceInput],
    people: Mapping[str, PersonState],
    channel: str,
    moment: datetime,
    policy: Policy,
    limit: str | None = None,
) -> PhotoVerdict:
    """The verdict for a photo: blocked if any face may not appear, else review if any is uncertain.

    On a channel that allows covering, faces that may not appear are covered instead of blocking,
    except a safeguarding-flagged person, who is never published in any form. `limit` is set when
    analysis stopped early (too many faces, time): part of the photo was never examined, so it is
    never publishable. A face a reviewer marked `not_a_face` plays no part; one marked a stranger
    blocks even where unknown faces go to review (a reviewer has looked: there is nothing to review).
    """
    if not policy.matching_enabled and not any(face.review is not None for face in faces):
        verdicts = tuple(FaceVerdict("uncertain", None, None, (MATCHING_DISABLED,)) for _ in faces)
        disabled = (MATCHING_DISABLED,) if faces else ()
        return PhotoVerdict(Verdict.REVIEW if faces else Verdict.PUBLISHABLE, disabled, verdicts)
    verdicts = tuple(decide_face(face, people, channel, moment, policy) for face in faces)
    if policy.allows_cover(channel):
        verdicts = tuple(
            replace(v, covered=True) if _excluded(v) and SAFEGUARDING not in v.reasons else v
            for v in verdicts
        )
    visible = [v for v in verdicts if not v.covered and v.outcome != "not_a_face"]
    reasons = list(_unique(reason for v in visible for reason in v.reasons))
    if any(v.covered for v in verdicts):
        reasons.append(FACES_COVERED)
    if limit is not None:
        reasons.append(limit)
    review_unknown = policy.unknown_faces == "review"
    if any(
        _excluded(v) and not (review_unknown and v.outcome == "unknown" and not v.reviewed) for v in visible
    ):
        verdict = Verdict.BLOCKED
    elif any(v.outcome in ("uncertain", "unknown") for v in visible) or limit is not None:
        verdict = Verdict.REVIEW
    else:
        verdict = Verdict.PUBLISHABLE
    return PhotoVerdict(verdict=verdict, reasons=tuple(reasons), faces=verdicts)


def _excluded(verdict: FaceVerdict) -> bool:
    return verdict.outcome in ("no_consent", "unknown")


def unreadable() -> PhotoVerdict:
    """The verdict for a file that could not be read as an image: blocked."""
    return PhotoVerdict(verdict=Verdict.BLOCKED, reasons=(UNREADABLE_IMAGE,), faces=())


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


# --- names in captions and alt text ----------------------------------------------------------------


@dataclass(frozen=True)
class KnownName:
    """An enrolled person's name, as a caption might spell it."""

    person: str
    full_name: str


@dataclass(frozen=True)
class ScrubbedText:
    """A caption with every name that may not appear removed, and how many were removed."""

    text: str
    removed: int


def naming_allowed(
    verdict: PhotoVerdict, people: Mapping[str, PersonState], channel: str, moment: datetime
) -> dict[str, Named]:
    """How each person shown and publishable in the photo may be named on `channel` at `moment`."""
    allowed: dict[str, Named] = {}
    for face in verdict.faces:
        # A face that may be one of several people names none of them.
        if face.outcome != "consented" or face.person is None or face.person not in people or face.also:
            continue
        record = current_record(people[face.person].records, channel, moment)
        if record is not None and record.action == "grant" and record.named != "no":
            allowed[face.person] = record.named
    return allowed


def scrub_names(text: str, known: Sequence[KnownName], allowed: Mapping[str, Named]) -> ScrubbedText:
    """Remove every known name from `text` except those `allowed` (in full, or first name only).

    A name counts whether written in full or as any single part of it, in any case, with or without
    a possessive 's. A part shared by an allowed and a disallowed person is kept: it cannot tell
    them apart, and the allowed person is in the photo. Names that are also common words are
    removed all the same (failing closed costs a word, not a child's identity).
    """
    phrases: dict[str, list[tuple[str, int]]] = {}
    for name in known:
        parts = [p for p in re.split(r"\s+", name.full_name.strip()) if len(p) >= 2]
        if len(parts) > 1:
            phrases.setdefault(" ".join(parts).casefold(), []).append((name.person, -1))
        for index, part in enumerate(parts):
            phrases.setdefault(part.casefold(), []).append((name.person, index))
    if not phrases:
        return ScrubbedText(text, 0)
    alternatives = sorted(phrases, key=len, reverse=True)
    pattern = re.compile(
        r"(?<![\w])(" + "|".join(r"\s+".join(map(re.escape, a.split(" "))) for a in alternatives) + r")"
        r"((?:['\u2019]s)?)(?![\w])",
        re.IGNORECASE,
    )
    first_names = {n.person: re.split(r"\s+", n.full_name.strip())[0] for n in known}
    removed = 0

    def keep_or_drop(match: re.Match[str]) -> str:
        nonlocal removed
        owners = phrases[re.sub(r"\s+", " ", match.group(1)).casefold()]
        for person, index in owners:
            level = allowed.get(person)
            if level == "yes" or (level == "first_name" and index == 0):
                return _KEPT + match.group(0) + _END
        for person, index in owners:
            if allowed.get(person) == "first_name" and index == -1:
                return _KEPT + first_names[person] + match.group(2) + _END
        removed += 1
        # A possessive ("Sam's team") is part of the phrase after it, not an item of a list.
        return _GONE_OWNER if match.group(2) else _GONE

    marked = pattern.sub(keep_or_drop, text)
    if not removed:
        return ScrubbedText(text, 0)
    return ScrubbedText(_tidy(_close_gaps(marked)), removed)


# Marks for the names found: a removed name, a removed possessive, and a kept name between two marks.
_GONE, _GONE_OWNER, _KEPT, _END = "\x00", "\x04", "\x01", "\x02"
_NAME_ITEM = r"(?:\x00|\x01[^\x02]*\x02)"
_LIST_SEP = r"(?:[ \t]*,[ \t]*(?:(?:and|&)[ \t]+)?|[ \t]+(?:and|&)[ \t]+)"
_NAME_LIST = re.compile(_NAME_ITEM + r"(?:" + _LIST_SEP + _NAME_ITEM + r")+", re.IGNORECASE)
# Words that only join a name to the sentence: with the name gone, they go too.
_JOINERS = r"(?:(?<![\w'\u2019-])(?:and|with|of|to|for|from|by|featuring|including|alongside|beside)|&)"


def _rejoin(match: re.Match[str]) -> str:
    """A list of names with some removed, written again with the names kept ("A, B and C")."""
    run = match.group(0)
    if _GONE not in run:
        return run
    kept: list[str] = re.findall(r"\x01([^\x02]*)\x02", run)
    if not kept:
        return _GONE
    if len(kept) == 1:
        return kept[0]
    separators = re.split(_NAME_ITEM, run)
    conjunction = "&" if any("&" in sep for sep in separators) else "and"
    serial = len(kept) > 2 and any(re.search(r",[ \t]*(?:and|&)", sep, re.IGNORECASE) for sep in separators)
    return ", ".join(kept[:-1]) + ("," if serial else "") + f" {conjunction} " + kept[-1]


def _close_gaps(marked: str) -> str:
    """Remove the marked names so that the sentence still reads: lists of names are joined again,
    a word that only joined a removed name ("with", "and", "of") goes with it, and a sentence that
    began with a removed name begins with a capital."""
    text = _NAME_LIST.sub(_rejoin, marked)
    text = text.replace(_KEPT, "").replace(_END, "")
    text = re.sub(_JOINERS + r"[ \t]+\x00", _GONE, text, flags=re.IGNORECASE)
    text = re.sub(r"\x00[ \t]*,?[ \t]+" + _JOINERS + r"[ \t]+", _GONE + " ", text, flags=re.IGNORECASE)
    # The last of a list of names nobody enrolled and removed ones: its comma goes with it.
    text = re.sub(r"[ \t]*,[ \t]*\x00(?=[ \t]+[a-z]|[ \t]*(?:[.;:!?)\]]|$))", " " + _GONE, text)

    def capital(match: re.Match[str]) -> str:
        return match.group(1) + match.group(2).upper()

    text = re.sub(r"((?:^|[.!?][ \t]+)[ \t]*(?:[\x00\x04][ \t,]*)+)(\w)", capital, text)
    return text.replace(_GONE, "").replace(_GONE_OWNER, "")


def _tidy(text: str) -> str:
    """Close the gaps left by removed names: doubled spaces, spaces before punctuation, bare 'and'."""
    text = re.sub(r"[ \t]{2,}", " ", text)
    text = re.sub(r"\b(?:and|&)[ \t]*(?=[,.;:!?]|$)", "", text, flags=re.IGNORECASE)
    text = re.sub(r"\b(?:with)[ \t]*(?=[,.;:!?]|$)", "", text, flags=re.IGNORECASE)
    text = re.sub(r"[ \t]+([,.;:!?])", r"\1", text)
    text = re.sub(r",(?:[ \t]*,)+", ",", text)
    text = re.sub(r",[ \t]*([.;:!?])", r"\1", text)
    text = re.sub(r"(^|[(\[])[ \t]*,[ \t]*", r"\1", text)
    text = re.sub(r"(^|[(\[])[ \t]*(?:and|&)[ \t]+", r"\1", text, flags=re.IGNORECASE)
    text = re.sub(r"\([ \t]*\)|\[[ \t]*\]", "", text)
    text = re.sub(r"[ \t]{2,}", " ", text)
    text = re.sub(r",$", "", text.strip())
    return text.strip()
