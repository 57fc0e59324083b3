"""Photos taken on site (a chip's installation, a mobile job's place): read with a
size cap, accepted as JPEG or PNG by their magic bytes (never by the name or the
declared type, which the phone or an attacker chooses), stored under the data dir
with a fresh random name, and served only by a name of that exact shape."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "MAX_PHOTO_BYTES",
    "PHOTO_NAME",
    "PHOTO_TYPES",
    "PhotoRejected",
    "photo_file",
    "photo_media_type",
    "read_photo",
    "remove_photos",
    "store_photo",
]

MAX_PHOTO_BYTES = 8 * 1024 * 1024
PHOTO_TYPES = {b"\xff\xd8\xff": ("jpg", "image/jpeg"), b"\x89PNG\r\n\x1a\n": ("png", "image/png")}
PHOTO_NAME = re.compile(r"^photos/[0-9a-f]{32}\.(jpg|png)$")


@dataclass(frozen=True)
class PhotoRejected:
    """Why a photo is refused (Chinese, for the user) and the HTTP status."""

    reason: str
    status: int = 422


def read_photo(stream: BinaryIO) -> tuple[bytes, str] | PhotoRejected:
    """The photo's bytes and extension ("jpg" | "png"), reading at most one byte
    past the cap."""
    content = stream.read(MAX_PHOTO_BYTES + 1)
    if not content:
        return PhotoRejected("照片文件为空，请重新拍摄")
    if len(content) > MAX_PHOTO_BYTES:
        return PhotoRejected(
            f"照片超过 {MAX_PHOTO_BYTES // 1024 // 1024} MB，请降低拍照分辨率后重试", 413
        )
    for magic, (extension, _media) in PHOTO_TYPES.items():
        if content.startswith(magic):
            return content, extension
    return PhotoRejected("照片须为 JPEG 或 PNG 图片", 415)


def store_photo(data_dir: Path, content: bytes, extension: str) -> str:
    """Writes the photo; returns its path relative to ``data_dir``."""
    folder = data_dir / "photos"
    folder.mkdir(parents=True, exist_ok=True)
    relative = f"photos/{secrets.token_hex(16)}.{extension}"
    path = data_dir / relative
    with open(path, "xb") as handle:  # a fresh random name: never overwrite
        handle.write(content)
    return relative


def remove_photos(data_dir: Path, stored: Iterable[str]) -> None:
    """Deletes photos stored for something that was then refused: nothing of a
    refused write stays behind."""
    for relative in stored:
        (data_dir / relative).unlink(missing_ok=True)


def photo_file(data_dir: Path, relative: str) -> Path | None:
    """The stored file, or None when the name is not one we write (a stored path
    is never trusted to stay inside the data dir) or the file is gone."""
    if not PHOTO_NAME.fullmatch(relative):
        return None
    path = data_dir / relative
    return path if path.is_file() else None


def photo_media_type(relative: str) -> str:
    return "image/png" if relative.endswith(".png") else "image/jpeg"
