"""The redact section of ``tollhouse.native``: the agreed API, modes, custom patterns,
evasions, content parts and streams."""

from __future__ import annotations

import threading

import pytest

from tollhouse import native
from tollhouse.errors import ConfigError

OPENAI = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb3dEf6hIj"
CARD = "4111 1111 1111 1111"


@pytest.fixture(scope="module")
def red() -> native.Redactor:
    return native.Redactor()


def test_families_lists_every_builtin() -> None:
    fams = native.Redactor.families()
    assert len(fams) == 18
    for name in ("EMAIL", "CREDIT_CARD", "OPENAI_KEY", "PRIVATE_KEY", "GENERIC_SECRET"):
        assert name in fams
    assert all(f == f.upper() for f in fams)


def test_scan_returns_typed_spans(red: native.Redactor) -> None:
    text = f"mail a.b@example.com key {OPENAI}"
    spans = red.scan(text)
    assert [(s.family, text[s.start : s.end]) for s in spans] == [
        ("EMAIL", "a.b@example.com"),
        ("OPENAI_KEY", OPENAI),
    ]
    assert spans[0] == native.Span("EMAIL", 5, 20)


def test_offsets_are_python_str_indices(red: native.Redactor) -> None:
    text = f"héllo 🙂 wörld {CARD} ✓ a@b.io"
    spans = red.scan(text)
    assert [text[s.start : s.end] for s in spans] == [CARD, "a@b.io"]


def test_redact_masks_and_counts(red: native.Redactor) -> None:
    out = red.redact(f"card {CARD}, ssn 123-45-6789, again {CARD}")
    assert out.text == (
        "card [REDACTED:CREDIT_CARD], ssn [REDACTED:US_SSN], again [REDACTED:CREDIT_CARD]"
    )
    assert out.count == 3
    assert out.families == ["CREDIT_CARD", "US_SSN"]
    clean = red.redact("nothing to see here")
    assert (clean.text, clean.count, clean.families) == ("nothing to see here", 0, [])


def test_hash_mode_is_stable_and_salted() -> None:
    a = native.Redactor(hash_salt="one")
    b = native.Redactor(hash_salt="one")
    c = native.Redactor(hash_salt="two")
    text = "write to alice@example.org"
    ta = a.redact(text, {"EMAIL": "hash"}).text
    assert ta == b.redact(text, {"EMAIL": "hash"}).text
    assert ta != c.redact(text, {"EMAIL": "hash"}).text
    assert ta.startswith("write to [REDACTED:EMAIL:") and len(ta) == len(
        "write to [REDACTED:EMAIL:12345678]"
    )
    # default applies to unlisted families; block masks (the pipeline blocks)
    out = a.redact(f"{CARD} bob@example.org", {"default": "hash", "EMAIL": "block"})
    assert out.text.startswith("[REDACTED:CREDIT_CARD:")
    assert out.text.endswith(" [REDACTED:EMAIL]")


def test_bad_modes_and_patterns_raise_config_error(red: native.Redactor) -> None:
    with pytest.raises(ConfigError, match="shred"):
        red.redact("a@b.io", {"EMAIL": "shred"})
    with pytest.raises(ConfigError, match="BROKEN"):
        native.Redactor(custom=[("BROKEN", "(unclosed")])
    with pytest.raises(ConfigError, match="NOT_A_FAMILY"):
        native.Redactor(families=["NOT_A_FAMILY"])
    with pytest.raises(ConfigError):
        native.Redactor(custom=[("bad name!", "x")])


def test_family_selection_and_custom_patterns() -> None:
    r = native.Redactor(families=["EMAIL"], custom=[("EMPLOYEE_ID", r"\bEMP-\d{6}\b")])
    assert r.enabled() == ["EMAIL", "EMPLOYEE_ID"]
    out = r.redact(f"EMP-123456 a@b.io {CARD} {OPENAI}")
    assert out.text == f"[REDACTED:EMPLOYEE_ID] [REDACTED:EMAIL] {CARD} {OPENAI}"
    none = native.Redactor(families=[])
    assert none.redact(f"a@b.io {CARD}").count == 0


def test_evasions_map_back_to_original_offsets(red: native.Redactor) -> None:
    cases = {
        "json escape": ("mail bob\\u0040example.com", "bob\\u0040example.com"),
        "zero width": (f"key sk-pr\u200boj-{OPENAI[8:]}", f"sk-pr\u200boj-{OPENAI[8:]}"),
        "full width": ("ssn １２３-４５-６７８９ ok", "１２３-４５-６７８９"),
        "bom inside": ("ip 10.\ufeff0.0.1 ok", "10.\ufeff0.0.1"),
    }
    for name, (text, secret) in cases.items():
        spans = red.scan(text)
        assert [text[s.start : s.end] for s in spans] == [secret], name
        assert secret not in red.redact(text).text, name


def test_redact_parts_catches_a_secret_split_between_parts(red: native.Redactor) -> None:
    parts = [f"my key is {OPENAI[:20]}", f"{OPENAI[20:]} thanks", "and a@b.io"]
    outs = red.redact_parts(parts)
    assert [o.text for o in outs] == [
        "my key is [REDACTED:OPENAI_KEY]",
        " thanks",
        "and [REDACTED:EMAIL]",
    ]
    assert [o.count for o in outs] == [1, 0, 1]
    joined = "".join(o.text for o in outs)
    assert OPENAI[20:] not in joined


def test_redact_many_matches_redact(red: native.Redactor) -> None:
    texts = [f"{i} a{i}@example.com {CARD}" for i in range(50)]
    texts.append("x" * 100_000 + " " + OPENAI)
    many = red.redact_many(texts)
    assert [m.text for m in many] == [red.redact(t).text for t in texts]


@pytest.mark.parametrize(
    "text",
    [
        f"your key is {OPENAI} and card {CARD} end",
        "mail carol.smith@example.com; password = 'Xk9#mQ2!vL7p' ok",
        "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBYr2nB1a\nAoGCCqGSM49\n"
        "-----END EC PRIVATE KEY-----\n",
    ],
)
def test_stream_catches_secrets_split_over_any_chunk_boundary(
    red: native.Redactor, text: str
) -> None:
    want = red.redact(text)
    for split in range(1, len(text)):
        s = red.stream()
        out = s.feed(text[:split]) + s.feed(text[split:]) + s.finish()
        assert out == want.text, split
        assert s.count == want.count


def test_stream_token_by_token_releases_text_promptly(red: native.Redactor) -> None:
    text = f"Sure! Here is the config: api key {OPENAI}, card {CARD}. Anything else?"
    s = red.stream()
    pieces = [text[i : i + 3] for i in range(0, len(text), 3)]
    out = []
    for p in pieces:
        out.append(s.feed(p))
        assert s.held < 64
    out.append(s.finish())
    assert "".join(out) == red.redact(text).text
    assert out[3] != ""  # prose is not held until the end


def test_redactor_is_shareable_across_threads(red: native.Redactor) -> None:
    text = f"{CARD} " * 20_000  # large enough to release the GIL
    results: list[int] = []

    def work() -> None:
        results.append(red.redact(text).count)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [20_000] * 4
