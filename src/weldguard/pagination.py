"""One page of a list query, with its total."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Generic, TypeVar

from fastapi import Query
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

T = TypeVar("T")

MAX_PAGE_SIZE = 200
# Counting every match of a broad filter over a city's 100k machines costs more
# than the page itself; past this many, "10000+" tells the user enough.
COUNT_CAP = 10_000


@dataclass(frozen=True)
class Page(Generic[T]):
    items: Sequence[T]
    total: int
    page: int
    size: int
    capped: bool = False  # total is COUNT_CAP and more match

    @property
    def pages(self) -> int:
        return max(1, (self.total + self.size - 1) // self.size)

    @property
    def total_label(self) -> str:
        return f"{self.total}+" if self.capped else str(self.total)


def paginate(session: Session, stmt: Select[T], page: int, size: int) -> Page[T]:
    size = min(max(1, size), MAX_PAGE_SIZE)
    limited = stmt.order_by(None).limit(COUNT_CAP + 1).subquery()
    total = session.scalar(select(func.count()).select_from(limited)) or 0
    capped = total > COUNT_CAP
    page = max(1, page)
    items = list(session.scalars(stmt.limit(size).offset((page - 1) * size)))
    return Page(items=items, total=min(total, COUNT_CAP), page=page, size=size, capped=capped)


# The query parameters of every paginated API list.
PageNumber = Annotated[int, Query(ge=1)]
PageSize = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]
