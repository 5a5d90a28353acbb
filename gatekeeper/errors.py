"""The one error hierarchy of Consent Gatekeeper.

Nothing here knows about HTTP or the command line; the edges map these errors to status codes and
exit codes. Data travels as attributes so callers never parse messages.
"""

from __future__ import annotations


class GatekeeperError(Exception):
    """Base of every error the gatekeeper raises on purpose."""

    code = "error"


# --- not found -----------------------------------------------------------------------------------


class NotFoundError(GatekeeperError):
    """A named thing does not exist."""

    code = "not_found"


class PersonNotFoundError(NotFoundError):
    """No person has the given external id."""

    code = "person_not_found"

    def __init__(self, external_id: str) -> None:
        super().__init__(f"no person with external id {external_id!r}")
        self.external_id = external_id


class BlobNotFoundError(NotFoundError):
    """A blob store holds nothing under the key (idempotent jobs treat this as already done)."""

    code = "blob_not_found"

    def __init__(self, store: str, key: str) -> None:
        super().__init__(f"nothing stored under {key!r} in {store}")
        self.store = store
        self.key = key


class RecordNotFoundError(NotFoundError):
    """No photo, publication, takedown task or job has the given id."""

    code = "record_not_found"

    def __init__(self, kind: str, record_id: int) -> None:
        super().__init__(f"no {kind} with id {record_id}")
        self.kind = kind
        self.record_id = record_id


class FaceNotFoundError(NotFoundError):
    """No recorded face has the given id."""

    code = "face_not_found"

    def __init__(self, face_id: int) -> None:
        super().__init__(f"no recorded face with id {face_id}")
        self.face_id = face_id


class PhotoNotFoundError(NotFoundError):
    """No photo has the given id."""

    code = "photo_not_found"

    def __init__(self, photo_id: int) -> None:
        super().__init__(f"no photo with id {photo_id}")
        self.photo_id = photo_id


# --- input and configuration ---------------------------------------------------------------------


class InvalidInputError(GatekeeperError):
    """A value given by a user or a file is not acceptable."""

    code = "invalid_input"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ConfigError(InvalidInputError):
    """A setting cannot be parsed or is not allowed."""

    code = "invalid_setting"


class UnknownChannelError(InvalidInputError):
    """A channel name is not in the configured channel list."""

    code = "unknown_channel"

    def __init__(self, channel: str, allowed: tuple[str, ...]) -> None:
        super().__init__(
            f"unknown channel {channel!r}; configured channels: {', '.join(allowed)}",
            field="channel",
        )
        self.channel = channel
        self.allowed = allowed


class StaleDecisionError(InvalidInputError):
    """A review was given against a decision that is no longer the photo's latest."""

    code = "stale_decision"

    def __init__(self, decision_id: int, latest_id: int) -> None:
        super().__init__(
            f"decision {decision_id} is no longer the photo's latest (decision {latest_id} is): "
            "look at the photo again",
            field="decision",
        )
        self.decision_id = decision_id
        self.latest_id = latest_id


class DpiaRequiredError(GatekeeperError):
    """Face matching or enrolment was asked for before a DPIA was recorded."""

    code = "dpia_required"

    def __init__(self) -> None:
        super().__init__("no DPIA is recorded: faces are not matched and nobody is enrolled until one is")


# --- media -----------------------------------------------------------------------------------------


class MediaError(GatekeeperError):
    """An image cannot be read, or cannot be made clean."""

    code = "media_error"


class UnsupportedMediaError(MediaError):
    """The bytes are not of a format the gatekeeper accepts (recognised by content, not name)."""

    code = "unsupported_media"


class UnreadableImageError(MediaError):
    """The bytes claim an accepted format but do not decode fully (empty, truncated, corrupt)."""

    code = "unreadable_image"


class EmptyFileError(UnreadableImageError):
    """The file holds no bytes at all."""

    code = "empty_file"

    def __init__(self) -> None:
        super().__init__("the file is empty")


class ImageTooLargeError(UnreadableImageError):
    """The image exceeds the configured pixel or byte cap; it is refused before decoding."""

    code = "image_too_large"

    def __init__(self, message: str, *, pixels: int | None = None, limit: int | None = None) -> None:
        super().__init__(message)
        self.pixels = pixels
        self.limit = limit


class FileTooLargeError(ImageTooLargeError):
    """The file is larger, in bytes, than the configured cap; it is refused unread."""

    code = "file_too_large"

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"file is {size} bytes; the limit is {limit}", limit=limit)
        self.size = size


class FrameLimitError(UnreadableImageError):
    """A multi-frame image has more frames than can be gated frame by frame."""

    code = "too_many_frames"

    def __init__(self, message: str, *, frames: int, limit: int) -> None:
        super().__init__(message)
        self.frames = frames
        self.limit = limit


class ColourConversionError(UnreadableImageError):
    """The image's colour profile is not a standard one and cannot be converted to sRGB."""

    code = "colour_profile"


class MetadataLeakError(MediaError):
    """A clean copy still holds something outside the allow-list; it must not be published."""

    code = "metadata_leak"

    def __init__(self, message: str, *, found: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.found = found


# --- faces -----------------------------------------------------------------------------------------


class FaceError(GatekeeperError):
    """Face detection or encoding could not be done as asked."""

    code = "face_error"


class EnrolmentPhotoError(FaceError):
    """An enrolment photo does not show exactly one usable face."""

    code = "enrolment_photo"

    def __init__(self, message: str, *, faces_found: int, reason: str = "") -> None:
        super().__init__(message)
        self.faces_found = faces_found
        # no_face, several_faces, face_too_small or face_unclear (gatekeeper.faces.engine).
        self.reason = reason


# --- backends --------------------------------------------------------------------------------------


class BackendError(GatekeeperError):
    """A storage, database or queue backend failed; may be transient."""

    code = "backend_error"
    # Jobs retry (with backoff) only errors that may pass by themselves.
    transient = True


class StorageError(BackendError):
    """A blob store could not read, write or delete a key."""

    code = "storage_error"


class InvalidKeyError(StorageError):
    """A storage key is malformed or resolves outside the store's root."""

    code = "invalid_key"
    transient = False


# --- staff accounts and the public form ------------------------------------------------------------


class StaffUserNotFoundError(NotFoundError):
    """No staff account has the given username."""

    code = "user_not_found"

    def __init__(self, username: str) -> None:
        super().__init__(f"no staff account named {username!r}")
        self.username = username


class WithdrawalRequestNotFoundError(NotFoundError):
    """No withdrawal request has the given reference."""

    code = "request_not_found"

    def __init__(self, reference: str) -> None:
        super().__init__(f"no withdrawal request with reference {reference!r}")
        self.reference = reference


# --- email -----------------------------------------------------------------------------------------


class MailDeliveryError(BackendError):
    """A message could not be handed to the SMTP server this time (the server is down, or answered
    4xx): it stays queued and is tried again."""

    code = "mail_delivery"
