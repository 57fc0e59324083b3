"""Identifiers: 统一社会信用代码 (GB 32100-2015), 身份证号 (GB 11643-1999), phone numbers.

Every ``normalize_*`` function returns the canonical form of a value or raises a
subclass of :class:`InvalidIdentifier` whose ``reason`` is a short Simplified
Chinese message meant for users (import error reports, form errors).

Privacy: a reason about an ID number never contains the number (nor its birth
date); show ID numbers and phone numbers with :func:`mask_id_number` and
:func:`mask_phone`.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date

__all__ = [
    "CREDIT_CODE_ALPHABET",
    "REGISTRATION_AUTHORITY_CODES",
    "InvalidCreditCode",
    "InvalidIdNumber",
    "InvalidIdentifier",
    "InvalidPhone",
    "birth_date_of",
    "credit_code_check_char",
    "id_number_check_digit",
    "is_valid_credit_code",
    "is_valid_id_number",
    "is_valid_phone",
    "make_credit_code",
    "make_id_number",
    "mask_id_number",
    "mask_phone",
    "normalize_credit_code",
    "normalize_id_number",
    "normalize_mobile_phone",
    "normalize_phone",
]


class InvalidIdentifier(ValueError):
    """An identifier that cannot be accepted; ``reason`` is shown to users (Chinese)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidCreditCode(InvalidIdentifier):
    """An invalid 统一社会信用代码."""


class InvalidIdNumber(InvalidIdentifier):
    """An invalid 身份证号. The reason never contains the number."""


class InvalidPhone(InvalidIdentifier):
    """An invalid mobile or fixed-line phone number."""


def _clean(raw: str) -> str:
    """NFKC (full-width to half-width) and drop every kind of whitespace."""
    text = unicodedata.normalize("NFKC", raw)
    # str.split() drops exactly the characters str.isspace() names, in C.
    return "".join(text.split())


# --------------------------------------------------------------------------
# 统一社会信用代码, GB 32100-2015
# --------------------------------------------------------------------------

#: The 31 characters of the code, in the order of their numeric values.
#: I, O, Z, S and V are never used.
CREDIT_CODE_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_CREDIT_VALUES = {ch: i for i, ch in enumerate(CREDIT_CODE_ALPHABET)}
_CREDIT_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_CREDIT_FORBIDDEN = "IOZSV"

#: Position 1, 登记管理部门代码, per GB 32100-2015 (as amended).
REGISTRATION_AUTHORITY_CODES: dict[str, str] = {
    "1": "机构编制",
    "2": "外交",
    "3": "司法行政",
    "4": "文化",
    "5": "民政",
    "6": "旅游",
    "7": "宗教",
    "8": "工会",
    "9": "市场监管（工商）",
    "A": "中央军委改革和编制办公室",
    "N": "农业",
    "Y": "其他",
}


def _check_credit_body(body: str) -> None:
    """Validate the structure of the first 17 characters (uppercase, half-width)."""
    for pos, ch in enumerate(body, start=1):
        if ch not in _CREDIT_VALUES:
            if ch in _CREDIT_FORBIDDEN:
                raise InvalidCreditCode(
                    f"统一社会信用代码第 {pos} 位含非法字符“{ch}”（不得使用 I、O、Z、S、V）"
                )
            raise InvalidCreditCode(
                f"统一社会信用代码第 {pos} 位含非法字符“{ch}”（只能是数字和大写字母，"
                "不得使用 I、O、Z、S、V）"
            )
    if body[0] not in REGISTRATION_AUTHORITY_CODES:
        raise InvalidCreditCode(f"统一社会信用代码第 1 位登记管理部门代码“{body[0]}”无效")
    if not body[2:8].isascii() or not body[2:8].isdigit():
        raise InvalidCreditCode("统一社会信用代码第 3–8 位（登记管理机关行政区划码）应为数字")


def _credit_check_char(body: str) -> str:
    total = sum(_CREDIT_VALUES[ch] * w for ch, w in zip(body, _CREDIT_WEIGHTS, strict=True))
    return CREDIT_CODE_ALPHABET[(31 - total % 31) % 31]


def credit_code_check_char(first17: str) -> str:
    """The GB 32100-2015 check character (18th) for the first 17 characters.

    Only the character set and the length are checked here.
    Raises :class:`InvalidCreditCode`.
    """
    body = _clean(first17).upper()
    if len(body) != 17:
        raise InvalidCreditCode(f"统一社会信用代码本体应为 17 位，当前为 {len(body)} 位")
    for pos, ch in enumerate(body, start=1):
        if ch not in _CREDIT_VALUES:
            raise InvalidCreditCode(
                f"统一社会信用代码第 {pos} 位含非法字符“{ch}”（不得使用 I、O、Z、S、V）"
            )
    return _credit_check_char(body)


def normalize_credit_code(raw: str) -> str:
    """Canonical form of a 统一社会信用代码: 18 half-width uppercase characters.

    Strips whitespace, converts full-width characters to half-width and uppercases,
    then checks length, character set, the registration-authority code (position
    1), the administrative-division code (positions 3–8, digits) and the check
    character. Raises :class:`InvalidCreditCode` naming the first problem found.
    """
    code = _clean(raw).upper()
    if not code:
        raise InvalidCreditCode("统一社会信用代码不能为空")
    if len(code) != 18:
        raise InvalidCreditCode(f"统一社会信用代码应为 18 位，当前为 {len(code)} 位")
    _check_credit_body(code[:17])
    last = code[17]
    if last not in _CREDIT_VALUES:
        raise InvalidCreditCode(
            f"统一社会信用代码第 18 位含非法字符“{last}”（不得使用 I、O、Z、S、V）"
        )
    expected = _credit_check_char(code[:17])
    if last != expected:
        raise InvalidCreditCode(f"统一社会信用代码校验位错误，应为 {expected}")
    return code


def is_valid_credit_code(raw: str) -> bool:
    """True when :func:`normalize_credit_code` accepts ``raw``."""
    try:
        normalize_credit_code(raw)
    except InvalidCreditCode:
        return False
    return True


def make_credit_code(first17: str) -> str:
    """Append the check character: a valid code for demo data and tests.

    ``first17`` must satisfy the same structural rules as a full code
    (authority code, digits at 3–8), so the result always validates.
    """
    body = _clean(first17).upper()
    if len(body) != 17:
        raise InvalidCreditCode(f"统一社会信用代码本体应为 17 位，当前为 {len(body)} 位")
    _check_credit_body(body)
    return body + _credit_check_char(body)


# --------------------------------------------------------------------------
# 公民身份号码, GB 11643-1999
# --------------------------------------------------------------------------

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_EARLIEST_BIRTH = date(1900, 1, 1)


def _id_check_digit(body: str) -> str:
    total = sum(int(ch) * w for ch, w in zip(body, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def _is_ascii_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def id_number_check_digit(first17: str) -> str:
    """The GB 11643-1999 check digit ('0'–'9' or 'X') for the first 17 digits."""
    body = _clean(first17)
    if len(body) != 17 or not _is_ascii_digits(body):
        raise InvalidIdNumber("身份证号本体码应为 17 位数字")
    return _id_check_digit(body)


def _parse_birth(body: str) -> date | None:
    try:
        return date(int(body[6:10]), int(body[10:12]), int(body[12:14]))
    except ValueError:
        return None


def normalize_id_number(raw: str, today: date | None = None) -> str:
    """Canonical 18-character 身份证号 (trailing 'x' uppercased).

    Checks: 18 characters, 17 digits then a digit or X, a first digit other than
    0, a real birth date (positions 7–14, YYYYMMDD) not before 1900-01-01 and,
    when ``today`` is given, not after it, and the check digit. Raises
    :class:`InvalidIdNumber`; its reason never repeats the number.
    """
    number = _clean(raw).upper()
    if not number:
        raise InvalidIdNumber("身份证号不能为空")
    if len(number) == 15 and _is_ascii_digits(number):
        raise InvalidIdNumber("不支持 15 位旧身份证号，请填写 18 位身份证号")
    if len(number) != 18:
        raise InvalidIdNumber(f"身份证号应为 18 位，当前为 {len(number)} 位")
    body, last = number[:17], number[17]
    if not _is_ascii_digits(body):
        raise InvalidIdNumber("身份证号前 17 位应为数字")
    if not (_is_ascii_digits(last) or last == "X"):
        raise InvalidIdNumber("身份证号第 18 位应为数字或 X")
    if body[0] == "0":
        raise InvalidIdNumber("身份证号地址码无效")
    birth = _parse_birth(body)
    if birth is None:
        raise InvalidIdNumber("身份证号中的出生日期不是有效日期")
    if birth < _EARLIEST_BIRTH:
        raise InvalidIdNumber("身份证号中的出生日期早于 1900 年")
    if today is not None and birth > today:
        raise InvalidIdNumber("身份证号中的出生日期晚于今天")
    if last != _id_check_digit(body):
        raise InvalidIdNumber("身份证号校验位错误，请核对号码")
    return number


def is_valid_id_number(raw: str, today: date | None = None) -> bool:
    """True when :func:`normalize_id_number` accepts ``raw``."""
    try:
        normalize_id_number(raw, today)
    except InvalidIdNumber:
        return False
    return True


def make_id_number(first17: str) -> str:
    """Append the check digit: a valid ID number for demo data and tests.

    ``first17`` must hold a real birth date at positions 7–14 (on or after
    1900-01-01), so the result always validates.
    """
    body = _clean(first17)
    if len(body) != 17 or not _is_ascii_digits(body):
        raise InvalidIdNumber("身份证号本体码应为 17 位数字")
    return normalize_id_number(body + _id_check_digit(body))


def birth_date_of(id_number: str) -> date:
    """The birth date encoded in a valid ID number (raises :class:`InvalidIdNumber`)."""
    number = normalize_id_number(id_number)
    birth = _parse_birth(number)
    assert birth is not None  # guaranteed by normalize_id_number
    return birth


def mask_id_number(id_number: str) -> str:
    """Masked ID number for display: first 3, then '*', then last 4.

    An 18-character number gives e.g. ``110***********1234`` (3 + 11 + 4). The
    input is not validated; a value too short to mask safely (under 8
    characters) is masked completely. Never shows the birth date.
    """
    number = _clean(id_number).upper()
    if len(number) < 8:
        return "*" * len(number)
    return number[:3] + "*" * (len(number) - 7) + number[-4:]


# --------------------------------------------------------------------------
# Phone numbers
# --------------------------------------------------------------------------

_MOBILE_RE = re.compile(r"1[3-9]\d{9}")
_SEPARATORS = "-–—()."  # after NFKC, full-width dashes and parentheses are ASCII
_EXTENSION_RE = re.compile(r"^(?P<main>.+?)(?:转|分机|ext\.?|#)(?P<ext>\d{1,6})$", re.IGNORECASE)


def _strip_country_code(digits: str, had_plus: bool) -> tuple[str, bool]:
    """Remove +86 / 0086 / 86 (before a mobile number). Returns (rest, removed)."""
    if had_plus and digits.startswith("86"):
        return digits[2:], True
    if digits.startswith("0086"):
        return digits[4:], True
    if digits.startswith("86") and len(digits) == 13 and _MOBILE_RE.fullmatch(digits[2:]):
        return digits[2:], True
    return digits, False


def _phone_digits(text: str) -> tuple[str, bool]:
    body = "".join(ch for ch in text if ch not in _SEPARATORS)
    had_plus = body.startswith("+")
    digits = body[1:] if had_plus else body
    if not _is_ascii_digits(digits):
        raise InvalidPhone("电话号码只能包含数字、空格、短横线和括号")
    return _strip_country_code(digits, had_plus)


def normalize_mobile_phone(raw: str) -> str:
    """Canonical 11-digit mainland mobile number (1[3-9] + 9 digits).

    Removes spaces, dashes, parentheses and a +86 / 0086 / 86 prefix.
    Raises :class:`InvalidPhone`.
    """
    text = _clean(raw)
    if not text:
        raise InvalidPhone("手机号不能为空")
    digits, _ = _phone_digits(text)
    if len(digits) != 11:
        raise InvalidPhone(f"手机号应为 11 位数字，当前为 {len(digits)} 位")
    if not _MOBILE_RE.fullmatch(digits):
        raise InvalidPhone("手机号应以 13–19 开头")
    return digits


def _area_code_length(digits: str) -> int:
    """010 and 02x are 3-digit area codes; all others (03xx–09xx) have 4 digits."""
    return 3 if digits[1] in "12" else 4


def normalize_phone(raw: str) -> str:
    """Canonical mobile or fixed-line number.

    Mobile numbers give 11 digits (see :func:`normalize_mobile_phone`).
    Fixed-line numbers must carry the area code and give ``AREA-LOCAL`` or
    ``AREA-LOCAL-EXT``, e.g. ``021-62512345``, ``0371-12345678``,
    ``010-12345678-801``: area code 010/02x (3 digits) or 0[3-9]xx (4 digits),
    local number 7 or 8 digits not starting with 0; an extension may follow a
    dash, "转", "分机", "ext" or "#". Raises :class:`InvalidPhone`.
    """
    text = _clean(raw)
    if not text:
        raise InvalidPhone("电话号码不能为空")
    extension = ""
    match = _EXTENSION_RE.match(text)
    if match:
        text, extension = match.group("main"), match.group("ext")
    elif not text.startswith("+") and text.count("-") == 2 and text.startswith("0"):
        # "010-12345678-801" carries an extension; "021-6251-2345" does not.
        head, _, ext = text.rpartition("-")
        head_digits = head.replace("-", "")
        if (
            _is_ascii_digits(ext)
            and len(ext) <= 6
            and len(head_digits) >= 3
            and len(head_digits) - _area_code_length(head_digits) in (7, 8)
        ):
            text, extension = head, ext
    digits, removed_country = _phone_digits(text)
    if _MOBILE_RE.fullmatch(digits):
        if extension:
            raise InvalidPhone("手机号不能带分机号")
        return digits
    if removed_country and not digits.startswith("0"):
        digits = "0" + digits  # +86 21 6251 2345: the trunk prefix 0 is dropped abroad
    if not digits.startswith("0"):
        if digits.startswith("1"):
            raise InvalidPhone("手机号应为 11 位且以 13–19 开头")
        raise InvalidPhone("固定电话需包含以 0 开头的区号，例如 021-62512345")
    if len(digits) < 3:
        raise InvalidPhone("固定电话号码不完整")
    area_len = _area_code_length(digits)
    area, local = digits[:area_len], digits[area_len:]
    if area[1] == "0" or (area[1] == "1" and area != "010"):
        raise InvalidPhone("固定电话区号无效")
    if len(local) not in (7, 8) or local.startswith("0"):
        raise InvalidPhone("固定电话号码（不含区号）应为 7 或 8 位数字")
    result = f"{area}-{local}"
    return f"{result}-{extension}" if extension else result


def is_valid_phone(raw: str) -> bool:
    """True when :func:`normalize_phone` accepts ``raw`` (mobile or fixed line)."""
    try:
        normalize_phone(raw)
    except InvalidPhone:
        return False
    return True


def mask_phone(phone: str) -> str:
    """Masked phone number for display.

    Mobile: ``138****5678``. Fixed line (``AREA-LOCAL[-EXT]``): area code kept,
    local number shows only its last 4 digits, extension dropped, e.g.
    ``021-****2345``. Anything else keeps at most its first 3 and last 4
    characters when it is at least 11 long, only its last 4 when 8–10 long,
    and is masked completely when shorter.
    """
    text = _clean(phone)
    if _MOBILE_RE.fullmatch(text):
        return text[:3] + "****" + text[-4:]
    parts = text.split("-")
    if (
        len(parts) in (2, 3)
        and parts[0].startswith("0")
        and all(_is_ascii_digits(p) for p in parts)
        and len(parts[1]) >= 7
    ):
        local = parts[1]
        return f"{parts[0]}-" + "*" * (len(local) - 4) + local[-4:]
    if len(text) >= 11:
        return text[:3] + "*" * (len(text) - 7) + text[-4:]
    if len(text) >= 8:
        return "*" * (len(text) - 4) + text[-4:]
    return "*" * len(text)
