"""Records of imports, so that their reports can be downloaded afterwards."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from weldguard.db import Base, UTCDateTime, utcnow


class ImportRun(Base):
    __tablename__ = "import_run"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))  # enterprises | certificates
    filename: Mapped[str] = mapped_column(String(256))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"), index=True)
    partial: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(16))  # applied | rejected | partial
    created_count: Mapped[int] = mapped_column(Integer, default=0)
    updated_count: Mapped[int] = mapped_column(Integer, default=0)
    error_count: Mapped[int] = mapped_column(Integer, default=0)
    # [{"row": 5, "column": "统一社会信用代码", "reason": "..."}]
    errors: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
