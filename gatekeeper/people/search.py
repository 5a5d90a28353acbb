"""Finding people by name or MIS id, for the people pages."""

from __future__ import annotations

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from consent_db.models import Person


def search_people(session: Session, query: str = "", *, limit: int = 100, offset: int = 0) -> list[Person]:
    """People whose name or external id contains `query` (any case, `%` and `_` literally), by name."""
    stmt = select(Person).order_by(Person.display_name, Person.id).limit(limit).offset(offset)
    if query.strip():
        text = query.strip().lower()
        stmt = stmt.where(
            or_(
                func.lower(Person.display_name).contains(text, autoescape=True),
                func.lower(Person.external_id).contains(text, autoescape=True),
            )
        )
    return list(session.scalars(stmt))
