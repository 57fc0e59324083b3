"""Tests of weldguard.domain.ids: credit codes, ID numbers, phone numbers."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from weldguard.domain.ids import (
    CREDIT_CODE_ALPHABET,
    REGISTRATION_AUTHORITY_CODES,
    InvalidCreditCode,
    InvalidIdentifier,
    InvalidIdNumber,
    InvalidPhone,
    birth_date_of,
    credit_code_check_char,
    id_number_check_digit,
    is_valid_credit_code,
    is_valid_id_number,
    is_valid_phone,
    make_credit_code,
    make_id_number,
    mask_id_number,
    mask_phone,
    normalize_credit_code,
    normalize_id_number,
    normalize_mobile_phone,
    normalize_phone,
)

# --------------------------------------------------------------------------
# Exceptions
# --------------------------------------------------------------------------


def test_exception_hierarchy() -> None:
    for cls in (InvalidCreditCode, InvalidIdNumber, InvalidPhone):
        assert issubclass(cls, InvalidIdentifier)
        assert issubclass(cls, ValueError)
    err = InvalidCreditCode("原因")
    assert err.reason == "原因"
    assert str(err) == "原因"


# --------------------------------------------------------------------------
# 统一社会信用代码
# --------------------------------------------------------------------------

# Real codes; each check character is recomputed independently below.
REAL_CREDIT_CODES = [
    "91350100M000100Y43",  # the usual GB 32100 example
    "91440300708461136T",  # 深圳市腾讯计算机系统有限公司
    "914403001922038216",  # 华为技术有限公司
    "91330100799655058B",  # 阿里巴巴（中国）网络技术有限公司
]


def _reference_check_char(first17: str) -> str:
    """Independent, literal transcription of GB 32100-2015 clause 5 / annex B."""
    values = {c: i for i, c in enumerate("0123456789ABCDEFGHJKLMNPQRTUWXY")}
    weights = [pow(3, i, 31) for i in range(17)]  # 3^(i-1) mod 31
    total = sum(values[c] * w for c, w in zip(first17, weights, strict=True))
    c18 = 31 - total % 31
    return "0123456789ABCDEFGHJKLMNPQRTUWXY"[0 if c18 == 31 else c18]


def test_weights_are_powers_of_three() -> None:
    assert [pow(3, i, 31) for i in range(17)] == [
        1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
    ]  # fmt: skip


def test_hand_computed_check_character() -> None:
    # 91350100M000100Y4 : values 9,1,3,5,0,1,0,0,M=21,0,0,0,1,0,0,Y=30,4
    values = [9, 1, 3, 5, 0, 1, 0, 0, 21, 0, 0, 0, 1, 0, 0, 30, 4]
    weights = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]
    total = sum(v * w for v, w in zip(values, weights, strict=True))
    assert total == 1640  # 9+3+27+135+26+420+8+900+112
    assert total % 31 == 28
    assert 31 - total % 31 == 3
    assert credit_code_check_char("91350100M000100Y4") == "3"


@pytest.mark.parametrize("code", REAL_CREDIT_CODES)
def test_real_credit_codes_are_valid(code: str) -> None:
    assert normalize_credit_code(code) == code
    assert is_valid_credit_code(code)
    assert credit_code_check_char(code[:17]) == code[17]
    assert _reference_check_char(code[:17]) == code[17]
    assert make_credit_code(code[:17]) == code


def test_credit_code_normalization() -> None:
    code = "91350100M000100Y43"
    assert normalize_credit_code("  91350100m000100y43\t") == code
    assert normalize_credit_code("９１３５０１００Ｍ０００１００Ｙ４３") == code
    assert normalize_credit_code("9135 0100 M000 100Y 43") == code
    assert normalize_credit_code("\u300091350100M000100Y43\u3000") == code


def test_credit_code_empty() -> None:
    with pytest.raises(InvalidCreditCode) as info:
        normalize_credit_code("   ")
    assert "不能为空" in info.value.reason


@pytest.mark.parametrize("raw", ["91350100M000100Y4", "91350100M000100Y433", "9"])
def test_credit_code_wrong_length(raw: str) -> None:
    with pytest.raises(InvalidCreditCode) as info:
        normalize_credit_code(raw)
    assert "18 位" in info.value.reason
    assert f"{len(raw)} 位" in info.value.reason


@pytest.mark.parametrize("letter", list("IOZSV"))
def test_credit_code_forbidden_letters(letter: str) -> None:
    raw = "91350100" + letter + "000100Y43"
    with pytest.raises(InvalidCreditCode) as info:
        normalize_credit_code(raw)
    assert "第 9 位" in info.value.reason
    assert letter in info.value.reason
    assert "I、O、Z、S、V" in info.value.reason


def test_credit_code_forbidden_letter_lowercase_is_reported_uppercase() -> None:
    with pytest.raises(InvalidCreditCode) as info:
        normalize_credit_code("91350100o000100Y43")
    assert "“O”" in info.value.reason


def test_credit_code_other_illegal_character() -> None:
    with pytest.raises(InvalidCreditCode) as info:
        normalize_credit_code("91350100M0001-0Y43")
    assert "第 14 位" in info.value.reason
    assert "非法字符" in info.value.reason


def test_credit_code_illegal_check_character() -> None:
    with pytest.raises(InvalidCreditCode) as info:
        normalize_credit_code("91350100M000100Y4I")
    assert "第 18 位" in info.value.reason


def test_credit_code_bad_registration_authority() -> None:
    raw = make_credit_code("91350100M000100Y4")
    bad = "B" + raw[1:]
    with pytest.raises(InvalidCreditCode) as info:
        normalize_credit_code(bad)
    assert "登记管理部门代码" in info.value.reason
    assert "“B”" in info.value.reason


def test_credit_code_division_code_must_be_digits() -> None:
    with pytest.raises(InvalidCreditCode) as info:
        normalize_credit_code("9135A100M000100Y43")
    assert "行政区划码" in info.value.reason


def test_credit_code_wrong_check_character_names_expected() -> None:
    with pytest.raises(InvalidCreditCode) as info:
        normalize_credit_code("91350100M000100Y44")
    assert info.value.reason == "统一社会信用代码校验位错误，应为 3"
    assert not is_valid_credit_code("91350100M000100Y44")


def test_credit_code_check_char_input_errors() -> None:
    with pytest.raises(InvalidCreditCode):
        credit_code_check_char("91350100M000100Y")
    with pytest.raises(InvalidCreditCode):
        credit_code_check_char("91350100I000100Y4")
    with pytest.raises(InvalidCreditCode):
        make_credit_code("B1350100M000100Y4")
    with pytest.raises(InvalidCreditCode):
        make_credit_code("913501")


def test_registration_authority_codes() -> None:
    assert set(REGISTRATION_AUTHORITY_CODES) == set("123456789ANY")
    assert all(c in CREDIT_CODE_ALPHABET for c in REGISTRATION_AUTHORITY_CODES)
    assert len(CREDIT_CODE_ALPHABET) == 31
    assert not set("IOZSV") & set(CREDIT_CODE_ALPHABET)


_alphabet = st.sampled_from(CREDIT_CODE_ALPHABET)
credit_bodies = st.builds(
    lambda a, b, area, rest: a + b + area + rest,
    st.sampled_from(sorted(REGISTRATION_AUTHORITY_CODES)),
    _alphabet,
    st.text(alphabet="0123456789", min_size=6, max_size=6),
    st.text(alphabet=CREDIT_CODE_ALPHABET, min_size=9, max_size=9),
)


@given(credit_bodies)
def test_make_credit_code_always_validates(body: str) -> None:
    code = make_credit_code(body)
    assert len(code) == 18
    assert code.startswith(body)
    assert normalize_credit_code(code) == code
    assert is_valid_credit_code(code.lower())
    assert code[17] == _reference_check_char(body)


@given(credit_bodies, st.integers(min_value=0, max_value=17), _alphabet)
def test_any_single_character_change_is_rejected(body: str, pos: int, new: str) -> None:
    code = make_credit_code(body)
    assume(code[pos] != new)
    changed = code[:pos] + new + code[pos + 1 :]
    assert not is_valid_credit_code(changed)


@given(credit_bodies, st.integers(min_value=0, max_value=16))
def test_adjacent_transpositions_of_distinct_characters_are_rejected(body: str, pos: int) -> None:
    code = make_credit_code(body)
    assume(code[pos] != code[pos + 1])
    swapped = code[:pos] + code[pos + 1] + code[pos] + code[pos + 2 :]
    assert not is_valid_credit_code(swapped)


@given(st.text(max_size=25))
def test_credit_code_normalizer_never_crashes(raw: str) -> None:
    try:
        code = normalize_credit_code(raw)
    except InvalidCreditCode as exc:
        assert exc.reason.startswith("统一社会信用代码")
    else:
        assert len(code) == 18
        assert is_valid_credit_code(code)


# --------------------------------------------------------------------------
# 身份证号
# --------------------------------------------------------------------------


def test_gb11643_example_is_valid() -> None:
    assert normalize_id_number("11010519491231002X") == "11010519491231002X"
    assert normalize_id_number("11010519491231002x") == "11010519491231002X"
    assert normalize_id_number(" 110105 19491231 002x ") == "11010519491231002X"
    assert normalize_id_number("１１０１０５１９４９１２３１００２Ｘ") == "11010519491231002X"
    assert id_number_check_digit("11010519491231002") == "X"
    assert birth_date_of("11010519491231002X") == date(1949, 12, 31)


def test_hand_computed_check_digit() -> None:
    # 11010519491231002: sum of digit * weight, weights 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2
    digits = [1, 1, 0, 1, 0, 5, 1, 9, 4, 9, 1, 2, 3, 1, 0, 0, 2]
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    total = sum(d * w for d, w in zip(digits, weights, strict=True))
    assert total == 167
    assert total % 11 == 2  # index 2 of "10X98765432" is X
    assert id_number_check_digit("11010519491231002") == "X"


def test_gb11643_example_born_1880_is_rejected_for_its_date_only() -> None:
    # The standard's other example: correct check digit, but born before 1900.
    assert id_number_check_digit("44052418800101001") == "4"
    with pytest.raises(InvalidIdNumber) as info:
        normalize_id_number("440524188001010014")
    assert "1900" in info.value.reason


def test_weights_are_powers_of_two_mod_11() -> None:
    weights = [pow(2, 17 - i, 11) for i in range(17)]
    assert weights == [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]


SECRET = "11010519491231002X"


def _reason(raw: str, today: date | None = None) -> str:
    with pytest.raises(InvalidIdNumber) as info:
        normalize_id_number(raw, today)
    reason = info.value.reason
    if raw:
        assert raw not in reason
        assert raw.strip()[:17] not in reason
    assert str(info.value) == reason
    return reason


def test_id_number_errors() -> None:
    assert "不能为空" in _reason("")
    assert "18 位" in _reason("1101051949123100")
    assert "15 位" in _reason("110105491231002")
    assert "前 17 位" in _reason("1101051949123100AX")
    assert "第 18 位" in _reason("11010519491231002Y")
    assert "地址码" in _reason(make_id_number_unchecked("01010519491231002"))
    assert "出生日期" in _reason(make_id_number_unchecked("11010519490230002"))
    assert "出生日期" in _reason(make_id_number_unchecked("11010519491301002"))
    assert "出生日期" in _reason(make_id_number_unchecked("11010519490000002"))
    assert "1900" in _reason(make_id_number_unchecked("11010518991231002"))
    assert "校验位" in _reason("110105194912310021")


def make_id_number_unchecked(first17: str) -> str:
    return first17 + id_number_check_digit(first17)


def test_birth_date_boundaries() -> None:
    today = date(2024, 6, 15)
    born_today = make_id_number("11010520240615002")
    assert normalize_id_number(born_today, today) == born_today
    born_tomorrow = make_id_number("11010520240616002")
    assert "晚于今天" in _reason(born_tomorrow, today)
    assert is_valid_id_number(born_tomorrow)  # without today, no future check
    assert not is_valid_id_number(born_tomorrow, today)
    first_day = make_id_number("11010519000101002")
    assert birth_date_of(first_day) == date(1900, 1, 1)
    leap = make_id_number("11010520000229002")
    assert birth_date_of(leap) == date(2000, 2, 29)
    assert "出生日期" in _reason(make_id_number_unchecked("11010519000229002"))


def test_id_reason_never_contains_number_or_birth_date() -> None:
    for raw in (
        "110105194912310021",
        make_id_number_unchecked("11010520990101002"),
    ):
        with pytest.raises(InvalidIdNumber) as info:
            normalize_id_number(raw, date(2024, 1, 1))
        assert raw not in info.value.reason
        assert raw[6:14] not in info.value.reason
        assert "1949" not in info.value.reason
        assert "2099" not in info.value.reason


def test_make_id_number_errors() -> None:
    with pytest.raises(InvalidIdNumber):
        make_id_number("1101051949123100")
    with pytest.raises(InvalidIdNumber):
        make_id_number("1101051949123100A")
    with pytest.raises(InvalidIdNumber):
        make_id_number("11010519491331002")  # month 13
    with pytest.raises(InvalidIdNumber):
        id_number_check_digit("123")
    with pytest.raises(InvalidIdNumber):
        birth_date_of("110105194912310021")


birth_dates = st.dates(min_value=date(1900, 1, 1), max_value=date(2099, 12, 31))
id_first17 = st.builds(
    lambda area, born, seq: area + born.strftime("%Y%m%d") + seq,
    st.from_regex(r"[1-9][0-9]{5}", fullmatch=True),
    birth_dates,
    st.from_regex(r"[0-9]{3}", fullmatch=True),
)


@given(id_first17)
def test_make_id_number_always_validates(first17: str) -> None:
    number = make_id_number(first17)
    assert number.startswith(first17)
    assert normalize_id_number(number) == number
    assert normalize_id_number(number.lower()) == number
    assert birth_date_of(number).strftime("%Y%m%d") == first17[6:14]
    born = birth_date_of(number)
    assert is_valid_id_number(number, today=born)
    assert not is_valid_id_number(number, today=born - timedelta(days=1))


@given(id_first17, st.integers(min_value=0, max_value=17), st.sampled_from("0123456789X"))
def test_id_single_character_change_is_rejected(first17: str, pos: int, new: str) -> None:
    number = make_id_number(first17)
    assume(number[pos] != new)
    changed = number[:pos] + new + number[pos + 1 :]
    with pytest.raises(InvalidIdNumber) as info:
        normalize_id_number(changed)
    assert changed not in info.value.reason
    assert number not in info.value.reason


@given(st.text(max_size=25))
def test_id_normalizer_never_crashes_or_leaks(raw: str) -> None:
    try:
        number = normalize_id_number(raw)
    except InvalidIdNumber as exc:
        stripped = "".join(raw.split())
        if len(stripped) >= 6:
            assert stripped not in exc.reason
    else:
        assert len(number) == 18


# --------------------------------------------------------------------------
# Masking ID numbers
# --------------------------------------------------------------------------


def test_mask_id_number_example() -> None:
    assert mask_id_number("110105194912311234") == "110***********1234"
    assert mask_id_number("11010519491231002x") == "110***********002X"
    assert len(mask_id_number("11010519491231002X")) == 18


def test_mask_id_number_short_values() -> None:
    assert mask_id_number("") == ""
    assert mask_id_number("1234567") == "*******"
    assert mask_id_number("110105491231002") == "110********1002"


@given(id_first17)
def test_mask_never_reveals_the_middle(first17: str) -> None:
    number = make_id_number(first17)
    masked = mask_id_number(number)
    assert masked[:3] == number[:3]
    assert masked[-4:] == number[-4:]
    assert masked[3:14] == "*" * 11
    assert number[6:14] not in masked  # birth date hidden
    assert len(masked) == 18


@given(st.text(max_size=30))
def test_mask_any_text_hides_at_least_the_middle(raw: str) -> None:
    masked = mask_id_number(raw)
    visible = sum(1 for c in masked if c != "*")
    assert visible <= 7
    if len(masked) >= 8:
        assert masked[3:-4] == "*" * (len(masked) - 7)


# --------------------------------------------------------------------------
# Phones
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("13812345678", "13812345678"),
        (" 138 1234 5678 ", "13812345678"),
        ("138-1234-5678", "13812345678"),
        ("+86 138 1234 5678", "13812345678"),
        ("+86-13812345678", "13812345678"),
        ("008613812345678", "13812345678"),
        ("8613812345678", "13812345678"),
        ("(+86)13812345678", "13812345678"),
        ("１３８１２３４５６７８", "13812345678"),
        ("19912345678", "19912345678"),
    ],
)
def test_normalize_mobile_phone(raw: str, expected: str) -> None:
    assert normalize_mobile_phone(raw) == expected
    assert normalize_phone(raw) == expected


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("", "不能为空"),
        ("1381234567", "11 位"),
        ("138123456789", "11 位"),
        ("12812345678", "13–19"),
        ("23812345678", "13–19"),
        ("1381234567a", "只能包含"),
        ("021-62512345", "13–19"),
        ("0371-12345678", "11 位"),
    ],
)
def test_normalize_mobile_phone_errors(raw: str, fragment: str) -> None:
    with pytest.raises(InvalidPhone) as info:
        normalize_mobile_phone(raw)
    assert fragment in info.value.reason


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("021-62512345", "021-62512345"),
        ("0371-12345678", "0371-12345678"),
        ("010-1234567", "010-1234567"),
        ("02162512345", "021-62512345"),
        ("037112345678", "0371-12345678"),
        ("021 6251 2345", "021-62512345"),
        ("021-6251-2345", "021-62512345"),
        ("(021)62512345", "021-62512345"),
        ("（０２１）６２５１２３４５", "021-62512345"),
        ("０２１－６２５１２３４５", "021-62512345"),
        ("+86 21 6251 2345", "021-62512345"),
        ("+86-371-12345678", "0371-12345678"),
        ("0086 21 62512345", "021-62512345"),
        ("010-12345678-801", "010-12345678-801"),
        ("021-62512345转801", "021-62512345-801"),
        ("021-62512345 分机 801", "021-62512345-801"),
        ("021-62512345 ext. 801", "021-62512345-801"),
        ("021-62512345#801", "021-62512345-801"),
    ],
)
def test_normalize_phone_landlines(raw: str, expected: str) -> None:
    assert normalize_phone(raw) == expected
    assert is_valid_phone(raw)
    assert normalize_phone(expected) == expected  # idempotent


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("", "不能为空"),
        ("62512345", "区号"),
        ("021-625123", "7 或 8 位"),
        ("021-625123456", "7 或 8 位"),
        ("021-02512345", "7 或 8 位"),
        ("001-62512345", "区号"),
        ("011-62512345", "区号"),
        ("0", "不完整"),
        ("1381234567", "手机号"),
        ("13812345678转8", "分机"),
        ("021-6251abcd", "只能包含"),
    ],
)
def test_normalize_phone_errors(raw: str, fragment: str) -> None:
    with pytest.raises(InvalidPhone) as info:
        normalize_phone(raw)
    assert fragment in info.value.reason
    assert not is_valid_phone(raw)


@pytest.mark.parametrize(
    ("phone", "masked"),
    [
        ("13812345678", "138****5678"),
        ("021-62512345", "021-****2345"),
        ("0371-1234567", "0371-***4567"),
        ("010-12345678-801", "010-****5678"),
        ("", ""),
        ("1234", "****"),
        ("62512345", "****2345"),
        ("+8613812345678", "+86*******5678"),
    ],
)
def test_mask_phone(phone: str, masked: str) -> None:
    assert mask_phone(phone) == masked


mobiles = st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True)


@given(mobiles)
def test_mobile_roundtrip_and_mask(mobile: str) -> None:
    spaced = f"+86 {mobile[:3]} {mobile[3:7]}-{mobile[7:]}"
    assert normalize_mobile_phone(spaced) == mobile
    masked = mask_phone(mobile)
    assert masked == mobile[:3] + "****" + mobile[7:]
    assert mobile[3:7] not in masked[3:7]


landlines = st.one_of(
    st.builds(
        lambda a, n: a + "-" + n,
        st.sampled_from(["010", "020", "021", "022", "023", "024", "025", "027", "028", "029"]),
        st.from_regex(r"[1-9][0-9]{6,7}", fullmatch=True),
    ),
    st.builds(
        lambda a, n: a + "-" + n,
        st.from_regex(r"0[3-9][0-9]{2}", fullmatch=True),
        st.from_regex(r"[1-9][0-9]{6,7}", fullmatch=True),
    ),
)


@given(landlines)
def test_landline_roundtrip(phone: str) -> None:
    assert normalize_phone(phone) == phone
    assert normalize_phone(phone.replace("-", "")) == phone
    assert normalize_phone(phone.replace("-", " ")) == phone
    local = phone.split("-")[1]
    masked = mask_phone(phone)
    assert masked.endswith(local[-4:])
    assert local not in masked


@given(st.text(max_size=25))
def test_phone_normalizer_never_crashes(raw: str) -> None:
    try:
        phone = normalize_phone(raw)
    except InvalidPhone as exc:
        assert exc.reason
    else:
        assert normalize_phone(phone) == phone
