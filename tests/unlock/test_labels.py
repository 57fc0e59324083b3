"""Signing and checking machine labels: every tampered character, a wrong key,
malformed input and key rotation are rejected with a reason."""

from __future__ import annotations

import re
import string

import pytest
import segno
from hypothesis import given
from hypothesis import strategies as st

from weldguard.unlock.label_render import label_qr, qr_modules
from weldguard.unlock.labels import (
    MAC_CHARS,
    LabelRejected,
    LabelSigner,
    RejectReason,
)

SECRET = "test-secret-key-not-for-production"
BASE = "http://127.0.0.1:8000"
CODE = "WG3K9ABCDE"
# Every character a token may hold, and a few it may not.
ALPHABET = string.ascii_uppercase + string.digits + string.ascii_lowercase + ".-_~%"


@pytest.fixture
def signer() -> LabelSigner:
    return LabelSigner(SECRET, BASE)


def test_label_url_is_base_path_code_and_versioned_signature(signer: LabelSigner) -> None:
    url = signer.label_url(CODE)
    match = re.fullmatch(rf"http://127\.0\.0\.1:8000/s/{CODE}\.(1[A-Z2-7]{{{MAC_CHARS}}})", url)
    assert match, url
    sig = match.group(1)
    assert signer.verify_label(CODE, sig)
    assert signer.parse_label_path(f"/s/{CODE}.{sig}").code == CODE
    assert signer.parse_label_token(f"{CODE}.{sig}").version == "1"


def test_signature_is_stable_and_depends_on_the_code(signer: LabelSigner) -> None:
    assert signer.sign(CODE) == LabelSigner(SECRET, BASE + "/").sign(CODE)
    assert signer.sign(CODE) != signer.sign("WG3K9ABCDF")
    assert not signer.verify_label("WG3K9ABCDF", signer.sign(CODE))


def test_trailing_slash_of_the_base_url_is_dropped() -> None:
    assert "//s/" not in LabelSigner(SECRET, BASE + "/").label_url(CODE)


def test_every_tampered_character_is_rejected(signer: LabelSigner) -> None:
    token = signer.label_token(CODE)
    checked = 0
    for position, original in enumerate(token):
        for replacement in ALPHABET:
            if replacement == original:
                continue
            forged = token[:position] + replacement + token[position + 1 :]
            with pytest.raises(LabelRejected):
                signer.parse_label_token(forged)
            checked += 1
    assert checked > 1000


def test_tampered_signatures_fail_verify(signer: LabelSigner) -> None:
    sig = signer.sign(CODE)
    for position in range(len(sig)):
        for replacement in string.ascii_uppercase + "234567":
            if replacement != sig[position]:
                assert not signer.verify_label(
                    CODE, sig[:position] + replacement + sig[position + 1 :]
                )


def test_a_label_of_another_platform_is_a_bad_signature(signer: LabelSigner) -> None:
    other = LabelSigner("another-platform-secret", BASE)
    token = other.label_token(CODE)
    with pytest.raises(LabelRejected) as caught:
        signer.parse_label_token(token)
    assert caught.value.reason is RejectReason.BAD_SIGNATURE
    assert caught.value.code == CODE


@pytest.mark.parametrize(
    "token",
    [
        "",
        "WG3K9ABCDE",
        "WG3K9ABCDE.",
        ".1ABCDEFGHIJKLM",
        "wg3k9abcde.1ABCDEFGHIJKLM",
        "WG3K9ABCDE.1abcdefghijklm",
        "WG3K9ABCDE.1ABCDEFGHIJKL",  # one short
        "WG3K9ABCDE.1ABCDEFGHIJKLMN",  # one long
        "WG3K9ABCDE.1ABCDEFGHIJK1M",  # 1 is not base32
        "WG3K9ABCDE.1ABCDEFGHIJKLM.1ABCDEFGHIJKLM",
        "WG3K9ABCDE..1ABCDEFGHIJKLM",
        "WG3K9 ABCDE.1ABCDEFGHIJKLM",
        "ＷＧ3K9ABCDE.1ABCDEFGHIJKLM",
        "WG3K9ABCDE.1ABCDEFGHIJKLM\n",
        "WG3K9ABCDE%2E1ABCDEFGHIJKLM",
        "A" * 17 + ".1ABCDEFGHIJKLM",
        "W.1ABCDEFGHIJKLM",
        "X" * 5000,
    ],
)
def test_malformed_tokens_are_rejected_as_malformed(signer: LabelSigner, token: str) -> None:
    with pytest.raises(LabelRejected) as caught:
        signer.parse_label_token(token)
    assert caught.value.reason is RejectReason.MALFORMED


@pytest.mark.parametrize("path", ["", "/s/", "/S/WG3K9ABCDE.1ABCDEFGHIJKLM", "/scan/WG3K9ABCDE"])
def test_malformed_paths_are_rejected(signer: LabelSigner, path: str) -> None:
    with pytest.raises(LabelRejected) as caught:
        signer.parse_label_path(path)
    assert caught.value.reason is RejectReason.MALFORMED


def test_an_unknown_version_is_rejected_as_such(signer: LabelSigner) -> None:
    mac = signer.sign(CODE)[1:]
    for version in "0234569":
        with pytest.raises(LabelRejected) as caught:
            signer.parse_label_token(f"{CODE}.{version}{mac}")
        assert caught.value.reason is RejectReason.UNKNOWN_VERSION
        assert not signer.verify_label(CODE, version + mac)


def test_rotation_keeps_old_labels_valid_until_their_version_is_withdrawn() -> None:
    old = LabelSigner(SECRET, BASE)
    rotated = LabelSigner(
        SECRET, BASE, purposes={"1": b"label-v1", "2": b"label-v2"}, current_version="2"
    )
    withdrawn = LabelSigner(SECRET, BASE, purposes={"2": b"label-v2"}, current_version="2")
    old_token = old.label_token(CODE)
    new_token = rotated.label_token(CODE)
    assert new_token.split(".")[1].startswith("2")
    assert rotated.parse_label_token(old_token).version == "1"
    assert rotated.parse_label_token(new_token).version == "2"
    with pytest.raises(LabelRejected) as caught:
        withdrawn.parse_label_token(old_token)
    assert caught.value.reason is RejectReason.UNKNOWN_VERSION
    with pytest.raises(LabelRejected):
        old.parse_label_token(new_token)
    # A new version's key is not the old one's.
    assert new_token.split(".")[1][1:] != old_token.split(".")[1][1:]


def test_signing_refuses_what_is_not_a_machine_code(signer: LabelSigner) -> None:
    for bad in ("", "wg3k9abcde", "WG-1", "WG3K9ABCDE/..", "A" * 17):
        with pytest.raises(ValueError):
            signer.sign(bad)


@given(st.text(max_size=60))
def test_arbitrary_input_is_rejected_never_crashes(token: str) -> None:
    signer = LabelSigner(SECRET, BASE)
    try:
        parsed = signer.parse_label_token(token)
    except LabelRejected as rejected:
        assert isinstance(rejected.reason, RejectReason)
    else:  # only a real signature gets through
        assert token == signer.label_token(parsed.code)


@pytest.mark.parametrize(
    ("base", "expected_version"),
    [
        ("http://127.0.0.1:8000", 4),  # the default
        ("https://hanjie.yjj.sh.gov.cn", 4),  # a typical government host
        ("https://weldguard.yingjiguanli.shanghai.gov.cn", 5),  # a long one: still small
    ],
)
def test_label_url_fits_a_small_qr_code(base: str, expected_version: int) -> None:
    url = LabelSigner(SECRET, base).label_url("WGZZZZZZZZ")
    qr = label_qr(url)
    assert qr.version == expected_version, (len(url), qr.version)
    # Error correction M at least (segno raises it when the version has room).
    assert qr.error in ("M", "Q", "H")


def test_the_qr_modules_encode_the_label_url(signer: LabelSigner) -> None:
    """segno cannot decode; the modules we paint are exactly segno's symbol for the
    URL (tests/unlock/test_labels_render.py decodes a PNG when zbarimg is present)."""
    url = signer.label_url(CODE)
    reference = segno.make(url, error="m", micro=False)
    assert qr_modules(url) == [[bool(c) for c in row] for row in reference.matrix]
    assert qr_modules(url) != qr_modules(signer.label_url("WG3K9ABCDF"))
