"""A photo's stored status: pending until the gate first decides it, then its latest verdict."""

from __future__ import annotations

from enum import StrEnum

from gatekeeper.policy import Verdict


class PhotoStatus(StrEnum):
    """The `status` of a photo row (its retention clock starts from it)."""

    PENDING = "pending"
    PUBLISHABLE = Verdict.PUBLISHABLE.value
    BLOCKED = Verdict.BLOCKED.value
    REVIEW = Verdict.REVIEW.value

    @classmethod
    def of(cls, verdict: Verdict) -> PhotoStatus:
        """The status of a photo whose latest decision gave `verdict`."""
        return cls(verdict)
