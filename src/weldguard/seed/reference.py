"""Reference data every installation needs: departments and the demo regions."""

from __future__ import annotations

from sqlalchemy.orm import Session

from weldguard.jurisdiction.models import Jurisdiction
from weldguard.jurisdiction.repository import JurisdictionRepository
from weldguard.jurisdiction.service import add_node, ensure_departments
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


def load_reference(session: Session) -> dict[str, Jurisdiction]:
    ensure_departments(session)
    return load_places(session)
