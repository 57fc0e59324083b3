"""Shared API shapes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from weldguard.pagination import Page

T = TypeVar("T")


class PageOut(BaseModel, Generic[T]):
    items: list[T]
    total: int
    page: int
    size: int
    pages: int
    total_capped: bool = False  # more than `total` match; narrow the filter

    @classmethod
    def of(cls, page: Page[Any], items: Sequence[T]) -> PageOut[T]:
        return cls(
            items=list(items),
            total=page.total,
            page=page.page,
            size=page.size,
            pages=page.pages,
            total_capped=page.capped,
        )
