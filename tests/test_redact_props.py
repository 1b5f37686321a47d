"""Property tests: the Rust validators and masking offsets against plain Python references."""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from tollhouse import native

IBAN_LENGTHS = {"GB": 22, "DE": 22, "FR": 27, "NL": 18, "NO": 15, "BE": 16, "CH": 21, "PL": 28}


def luhn_ref(digits: str) -> bool:
    if not digits or not digits.isascii() or not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def iban_ref(iban: str) -> bool:
    s = iban.replace(" ", "")
    if len(s) < 5 or IBAN_LENGTHS.get(s[:2].upper()) != len(s) or not s[2:4].isdigit():
        return False
    if not s.isascii() or not s.isalnum():
        return False
    return int("".join(str(int(c, 36)) for c in s[4:] + s[:4])) % 97 == 1


def ssn_ref(ssn: str) -> bool:
    if len(ssn) == 11 and ssn[3] in "- " and ssn[6] == ssn[3]:
        digits = ssn[:3] + ssn[4:6] + ssn[7:]
    elif len(ssn) == 9:
        digits = ssn
    else:
        return False
    if not (digits.isascii() and digits.isdigit()):
        return False
    area, group, serial = int(digits[:3]), int(digits[3:5]), int(digits[5:])
    return area not in (0, 666) and area < 900 and group != 0 and serial != 0


digit_strings = st.text(alphabet="0123456789", min_size=0, max_size=22)


@given(digit_strings)
def test_luhn_matches_reference(digits: str) -> None:
    assert native.luhn_valid(digits) == luhn_ref(digits)


@given(st.text(alphabet="0123456789", min_size=12, max_size=18))
def test_luhn_completed_numbers_validate(prefix: str) -> None:
    check = next(d for d in "0123456789" if luhn_ref(prefix + d))
    assert native.luhn_valid(prefix + check)
    wrong = str((int(check) + 1) % 10)
    assert not native.luhn_valid(prefix + wrong)


@st.composite
def iban_like(draw: st.DrawFn) -> str:
    cc = draw(st.sampled_from(sorted(IBAN_LENGTHS)))
    n = IBAN_LENGTHS[cc] - 4 + draw(st.sampled_from([0, 0, 0, -1, 1]))
    bban = draw(st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=n, max_size=n))
    if draw(st.booleans()):
        check = 98 - int("".join(str(int(c, 36)) for c in bban + cc + "00")) % 97
    else:
        check = draw(st.integers(0, 99))
    s = f"{cc}{check:02d}{bban}"
    if draw(st.booleans()):
        s = " ".join(s[i : i + 4] for i in range(0, len(s), 4))
    return s


@given(iban_like())
def test_iban_matches_reference(iban: str) -> None:
    assert native.iban_valid(iban) == iban_ref(iban)


@given(
    st.integers(0, 999),
    st.integers(0, 99),
    st.integers(0, 9999),
    st.sampled_from(["-", " ", ""]),
)
def test_ssn_matches_reference(area: int, group: int, serial: int, sep: str) -> None:
    ssn = f"{area:03d}{sep}{group:02d}{sep}{serial:04d}"
    assert native.ssn_valid(ssn) == ssn_ref(ssn)


@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=64))
def test_entropy_matches_reference(s: str) -> None:
    n = len(s)
    ref = -sum(c / n * math.log2(c / n) for c in Counter(s).values()) if n else 0.0
    assert math.isclose(native.shannon_entropy(s), ref, abs_tol=1e-9)


# -- masking offsets -------------------------------------------------------------------------

SECRETS = [
    ("EMAIL", "olga.ivanova@example.org"),
    ("CREDIT_CARD", "4111 1111 1111 1111"),
    ("US_SSN", "123-45-6789"),
    ("OPENAI_KEY", "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb3dEf6hIj"),
    ("AWS_ACCESS_KEY", "AKIAIOSFODNN7EXAMPLE"),
    ("IPV4", "10.20.30.40"),
    ("GITHUB_TOKEN", "ghp_aB3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb3d"),
    # evasions: a JSON escape, a zero-width space, full-width digits
    ("EMAIL", "bob\\u0040example.com"),
    ("CREDIT_CARD", "4\u200b111 1111 1111 1111"),
    ("US_SSN", "\uff11\uff12\uff13-\uff14\uff15-\uff16\uff17\uff18\uff19"),
]
# Filler that cannot form or extend a detection: letters, CJK, emoji, accents, spaces.
filler = st.text(
    alphabet=st.sampled_from(list("abc xyz QRS éüß 漢字 🙂🚀 ,;!?")), min_size=0, max_size=12
).map(lambda s: f" {s} ")


@st.composite
def documents(draw: st.DrawFn) -> tuple[str, list[tuple[str, int, int]]]:
    pieces = draw(st.lists(st.tuples(filler, st.sampled_from(SECRETS)), max_size=6))
    text = ""
    want = []
    for fill, (fam, secret) in pieces:
        text += fill
        want.append((fam, len(text), len(text) + len(secret)))
        text += secret
    text += draw(filler)
    return text, want


def normalize_ref(s: str) -> str:
    """What the redactor hashes: JSON escapes decoded, zero-width dropped, full-width folded."""
    s = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), s)
    s = re.sub("[\u200b-\u200d\u2060\ufeff]", "", s)
    return s.translate({c: c - 0xFF01 + 0x21 for c in range(0xFF01, 0xFF5F)})


def mask_ref(text: str, spans: list[native.Span], salt: str | None, hashed: bool) -> str:
    out, last = [], 0
    for s in spans:
        out.append(text[last : s.start])
        if hashed:
            digest = hashlib.sha256(
                (salt or "").encode()
                + b"\0"
                + s.family.encode()
                + b"\0"
                + normalize_ref(text[s.start : s.end]).encode()
            ).hexdigest()[:8]
            out.append(f"[REDACTED:{s.family}:{digest}]")
        else:
            out.append(f"[REDACTED:{s.family}]")
        last = s.end
    out.append(text[last:])
    return "".join(out)


RED = native.Redactor(hash_salt="pepper")


@settings(max_examples=200)
@given(documents(), st.booleans())
def test_scan_offsets_and_masking_match_python(
    doc: tuple[str, list[tuple[str, int, int]]], hashed: bool
) -> None:
    text, want = doc
    spans = RED.scan(text)
    assert [(s.family, s.start, s.end) for s in spans] == want
    modes = {"default": "hash"} if hashed else None
    out = RED.redact(text, modes)
    assert out.text == mask_ref(text, spans, "pepper", hashed)
    assert out.count == len(want)
    assert out.families == sorted({f for f, _, _ in want})


@settings(max_examples=100)
@given(documents(), st.lists(st.integers(1, 400), max_size=8))
def test_stream_equals_one_shot_for_any_chunking(
    doc: tuple[str, list[tuple[str, int, int]]], cuts: list[int]
) -> None:
    text, want = doc
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    s = RED.stream()
    out = "".join(s.feed(text[a:b]) for a, b in zip(points, points[1:], strict=False))
    out += s.finish()
    assert out == RED.redact(text).text
    assert s.count == len(want)
