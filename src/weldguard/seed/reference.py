"""Reference data every installation needs: departments, the demo regions and
the built-in holiday calendar (节假日安排)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from weldguard.db import utcnow
from weldguard.jurisdiction.models import Jurisdiction
from weldguard.jurisdiction.repository import JurisdictionRepository
from weldguard.jurisdiction.service import add_node, ensure_departments
from weldguard.permit.calendar_seed import seed_calendar
from weldguard.seed.places import PLACES


def load_places(session: Session) -> dict[str, Jurisdiction]:
    repo = JurisdictionRepository(session)
    nodes: dict[str, Jurisdiction] = {}
    for code, name, level, parent_code in PLACES:
        parent = nodes.get(parent_code) if parent_code else None
        if parent_code and parent is None:
            parent = repo.by_code(parent_code)
        nodes[code] = add_node(session, code, name, level, parent)
    return nodes


def load_reference(session: Session, now: datetime | None = None) -> dict[str, Jurisdiction]:
    ensure_departments(session)
    # Years an admin has entered are left alone (see permit.calendar_seed).
    seed_calendar(session, now or utcnow())
    return load_places(session)
