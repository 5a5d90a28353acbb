"""The words and colours the staff pages and the API give to reasons, channels and faces.

The domain (photos/views.py) gives facts: outcomes, reason codes (already masked for the viewer's
role by `people.identity`), who a face is and when they withdrew. This module says them in plain
English and picks each face's colour; nothing outside the web app needs them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from gatekeeper import policy
from gatekeeper.media.refusals import AGAIN
from gatekeeper.people.identity import CANNOT_BE_PUBLISHED
from gatekeeper.photos.views import FaceView, PhotoView

CONSENT_WORDS = {
    policy.NO_CONSENT_FOR_CHANNEL: "no consent for {channel}",
    policy.CONSENT_WITHDRAWN: "no consent for {channel} (withdrawn{on})",
    policy.OBJECTED: "no consent for {channel} (objected{on})",
    policy.CONSENT_EXPIRED: "consent for {channel} has expired",
    policy.CONSENT_NOT_YET_VALID: "consent for {channel} is not valid yet",
    policy.GUARDIAN_CONSENT_REQUIRED: "a parent or guardian must consent for {channel}",
    policy.DATE_OF_BIRTH_UNKNOWN: "no date of birth to check who may consent for {channel}",
    policy.RECONSENT_REQUIRED: "a parent's consent for {channel} lapsed at the age threshold: ask again",
    policy.PERSON_LEFT: "has left, and the consent for {channel} ended then",
    policy.PERSON_ERASED: "this person's record was erased",
    policy.UNKNOWN_FACE: "not recognised: nobody enrolled matches this face",
    policy.UNCERTAIN_MATCH: "an uncertain match, a reviewer must check it",
    policy.FACE_TOO_SMALL: "too small to identify, a reviewer must check it",
    policy.POSSIBLE_FACE: "possibly a face, a reviewer must check it",
    policy.MATCHING_DISABLED: "not matched (no DPIA is recorded yet), a reviewer must check it",
}

PHOTO_WORDS = {
    policy.UNREADABLE_IMAGE: "the file could not be read as an image",
    policy.TOO_MANY_FACES: "too many faces to examine them all: a reviewer must check it",
    policy.TIME_LIMIT: "face analysis took too long: a reviewer must check it",
    policy.FACES_COVERED: "faces without consent are covered in the published copy",
    policy.COVER_FAILED: "a covered face could still be detected",
    policy.CLEAN_COPY_FAILED: "no verified clean copy could be made",
    policy.CONSENT_CHANGED: "consent changed since the copy was made",
    policy.ANALYSIS_TOO_COARSE: "analysed for smaller copies than this channel needs: gate it again",
    CANNOT_BE_PUBLISHED: "cannot be published",
}

# The box colour of each face outcome (a covered face is grey whatever its outcome).
OUTCOME_COLOURS = {"consented": "green", "no_consent": "red", "unknown": "red", "uncertain": "amber"}


def spoken(name: str) -> str:
    """A channel's or sub-channel's name as people say it: `social_media` -> `social media`."""
    return name.replace("_", " ")


def channel_words(channel: str) -> str:
    """A channel as staff read it: `social_media:instagram` -> `social media (instagram)`."""
    named = policy.Channel(channel)
    return f"{spoken(named.base)} ({spoken(named.sub)})" if named.sub else spoken(named.base)


def reason_words(reason: str, channel: str) -> str:
    """A photo-level reason code in plain English."""
    template = PHOTO_WORDS.get(reason) or CONSENT_WORDS.get(reason)
    if template is None:
        return reason.replace("_", " ")
    return template.format(channel=channel_words(channel), on="")


def refusal(view: PhotoView) -> str:
    """Why a refused file could not be read, and what to do (the words `gate` gives)."""
    return view.error or f"{PHOTO_WORDS[policy.UNREADABLE_IMAGE]}: {AGAIN}"


def face_colour(face: FaceView) -> str:
    """The colour of a face's box: green, red, amber or grey."""
    if face.covered:
        return "grey"
    return OUTCOME_COLOURS.get(face.outcome, "grey")


def _day(moment: datetime) -> str:
    return f"{moment.day} {moment:%B %Y}"


def face_text(face: FaceView, channel: str) -> str:
    """A face as the photo page lists it: its number, who it is and why it may or may not appear."""
    who = f"{face.person_name} ({face.person})" if face.person is not None else None
    words = face_words(
        who, face.outcome, face.reasons, channel, covered=face.covered, withdrawn_on=face.withdrawn_on
    )
    return f"Face {face.number}: {words}"


def face_words(
    who: str | None,
    outcome: str,
    reasons: Iterable[str],
    channel: str,
    *,
    covered: bool = False,
    withdrawn_on: datetime | None = None,
) -> str:
    """Who a face is and why it may or may not appear on `channel`, as staff pages say it (the
    photo page, a scan's report); `reasons` as the viewer may see them (`masked_reasons`)."""
    if covered:
        return "covered in the published copy"
    if outcome == "consented":
        return f"{who or 'identified'}, consented for {channel_words(channel)}"
    if outcome == "not_a_face":
        return "not a face (a reviewer said so)"
    parts = []
    for reason in reasons:
        if reason == policy.SAFEGUARDING:
            parts.append("safeguarding flag: never published")
            continue
        template = CONSENT_WORDS.get(reason, reason.replace("_", " "))
        on = ""
        if reason in (policy.CONSENT_WITHDRAWN, policy.OBJECTED) and withdrawn_on is not None:
            on = f" on {_day(withdrawn_on)}"
        parts.append(template.format(channel=channel_words(channel), on=on))
    words = "; ".join(parts) or outcome.replace("_", " ")
    return f"{who}, {words}" if who else words


# Why a biometric consent or an enrolment cannot go ahead, in plain English.
BIOMETRIC_WORDS = {
    "biometric_refused": "the person refuses face matching",
    "biometric_objection": "a parent or guardian objects to face matching",
    "biometric_consent_required": "the person's own biometric consent is not recorded",
    "parent_biometric_consent_required": (
        "a learner under 18 needs a parent's or guardian's written biometric consent "
        "(Protection of Freedoms Act 2012), and none is recorded"
    ),
}


# An outbox message's state, as admins read it, and its tag (`ok`, `danger` or none).
MAIL_STATE_WORDS = {
    "queued": ("waiting to be sent", ""),
    "sending": ("being sent", ""),
    "sent": ("sent", "ok"),
    "failed": ("refused by the mail server: check the address, then send it again", "danger"),
    "uncertain": (
        "may have been sent: look for its Message-ID in the mailbox, then send it again or mark it sent",
        "danger",
    ),
}
