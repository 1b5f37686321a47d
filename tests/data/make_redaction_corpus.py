"""Generate the labelled redaction corpus (``redaction_corpus.jsonl``), deterministically.

Run ``python tests/data/make_redaction_corpus.py`` to rewrite the file; the corpus test
regenerates it in memory and fails if the committed file drifts from this script.

Each line is one record:
- ``{"kind": "positive", "family": F, "text": ..., "spans": [[start, end, F], ...]}``
- ``{"kind": "negative", "family": F, "text": ..., "spans": []}`` (``family`` is the one
  the text imitates: Luhn-invalid numbers, UUIDs, git SHAs, ``sk-`` in prose, reserved
  SSNs, version strings, timestamps, placeholders ...)
- ``{"kind": "evasion", ...}`` like a positive, with the secret disguised (JSON ``\\u``
  escapes, zero-width characters, full-width digits); spans index the disguised text.
- ``{"kind": "parts", "family": F, "parts": [...], "secret": S}`` a secret split across
  the content parts of one message; ``{"kind": "chunks", ...}`` the same over stream chunks.
Offsets are Python ``str`` indices.
"""

from __future__ import annotations

import base64
import json
import random
import string
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

SEED = 20261123
PER_FAMILY = 220
OUT = Path(__file__).with_name("redaction_corpus.jsonl")

ALNUM = string.ascii_letters + string.digits
B64URL = ALNUM + "-_"
UPPER_ALNUM = string.ascii_uppercase + string.digits

FIRST = ["john", "jane", "maria", "wei", "olga", "ahmed", "lucas", "emma", "noah", "priya"]
LAST = ["smith", "doe", "garcia", "chen", "ivanova", "khan", "silva", "brown", "muller"]
DOMAINS = ["example.com", "example.org", "mail.example.co.uk", "corp.example.io", "test.dev"]

PROSE_BEFORE = [
    "Please use {} for this.",
    "Here it is: {}",
    "my details are {} thanks",
    "Can you check why {} does not work?",
    "{}",
    "config:\n  value: {}\n",
    "- item {} (see above)",
    "Subject: update\n\nThe value is {}.\nRegards",
]


def rand(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def mixed(rng: random.Random, alphabet: str, n: int) -> str:
    """A random string that holds lower, upper and digit characters."""
    while True:
        s = rand(rng, alphabet, n)
        if (
            any(c.islower() for c in s)
            and any(c.isupper() for c in s)
            and any(c.isdigit() for c in s)
        ):
            return s


# -- reference checksums -------------------------------------------------------------------


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def luhn_complete(prefix: str) -> str:
    for d in "0123456789":
        if luhn_ok(prefix + d):
            return prefix + d
    raise AssertionError(prefix)


IBAN_SHAPES = {  # country: BBAN layout (n = digit, a = upper letter, c = alnum)
    "GB": "aaaa" + "n" * 14,
    "DE": "n" * 18,
    "FR": "n" * 10 + "c" * 11 + "nn",
    "ES": "n" * 20,
    "NL": "aaaa" + "n" * 10,
    "IT": "a" + "n" * 10 + "c" * 12,
    "CH": "n" * 5 + "c" * 12,
    "BE": "n" * 12,
    "NO": "n" * 11,
    "PL": "n" * 24,
    "AT": "n" * 16,
    "IE": "aaaa" + "n" * 14,
}


def iban_mod97(s: str) -> int:
    return int("".join(str(int(c, 36)) for c in s)) % 97


def make_iban(rng: random.Random, cc: str) -> str:
    bban = "".join(
        rng.choice(
            string.digits if k == "n" else string.ascii_uppercase if k == "a" else UPPER_ALNUM
        )
        for k in IBAN_SHAPES[cc]
    )
    check = 98 - iban_mod97(bban + cc + "00")
    return f"{cc}{check:02d}{bban}"


def group4(s: str) -> str:
    return " ".join(s[i : i + 4] for i in range(0, len(s), 4))


# -- positives -------------------------------------------------------------------------------


def email(rng: random.Random) -> str:
    f, l_ = rng.choice(FIRST), rng.choice(LAST)
    local = rng.choice(
        [
            f"{f}.{l_}",
            f"{f}_{l_}{rng.randint(1, 99)}",
            f"{f}+{rng.choice(['news', 'x'])}",
            f[0] + l_,
        ]
    )
    return f"{local}@{rng.choice(DOMAINS)}"


def phone(rng: random.Random) -> str:
    a = rng.randint(2, 9) * 100 + rng.randint(0, 99)
    e = rng.randint(2, 9) * 100 + rng.randint(0, 99)
    n = rng.randint(0, 9999)
    forms = [
        f"+1{a}{e}{n:04d}",
        f"+1 ({a}) {e}-{n:04d}",
        f"({a}) {e}-{n:04d}",
        f"{a}-{e}-{n:04d}",
        f"{a}.{e}.{n:04d}",
        f"+44 20 {rng.randint(7000, 8999)} {rng.randint(0, 9999):04d}",
        f"020 {rng.randint(7000, 8999)} {rng.randint(0, 9999):04d}",
        f"07{rng.randint(100, 999)} {rng.randint(100000, 999999)}",
        f"+49 30 {rng.randint(1000000, 99999999)}",
        f"01 {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)} "
        f"{rng.randint(10, 99)}",
        f"+33 1 {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)} "
        f"{rng.randint(10, 99)}",
    ]
    return rng.choice(forms)


def card(rng: random.Random) -> str:
    kind = rng.choice(["visa", "mc", "amex", "disc", "mc2"])
    if kind == "amex":
        num = luhn_complete(rng.choice(["34", "37"]) + rand(rng, string.digits, 12))
        return rng.choice(
            [num, f"{num[:4]} {num[4:10]} {num[10:]}", f"{num[:4]}-{num[4:10]}-{num[10:]}"]
        )
    prefix = {"visa": "4", "mc": str(rng.randint(51, 55)), "disc": "6011", "mc2": "2221"}[kind]
    num = luhn_complete(prefix + rand(rng, string.digits, 15 - len(prefix)))
    sep = rng.choice(["", " ", "-"])
    return sep.join(num[i : i + 4] for i in range(0, 16, 4)) if sep else num


def iban(rng: random.Random) -> str:
    s = make_iban(rng, rng.choice(sorted(IBAN_SHAPES)))
    return group4(s) if rng.random() < 0.5 else s


def ssn(rng: random.Random) -> str:
    area = rng.choice([rng.randint(1, 665), rng.randint(667, 899)])
    sep = rng.choice(["-", "-", " "])
    return f"{area:03d}{sep}{rng.randint(1, 99):02d}{sep}{rng.randint(1, 9999):04d}"


def ipv4(rng: random.Random) -> str:
    return ".".join(str(rng.randint(0, 255)) for _ in range(4))


def ipv6(rng: random.Random) -> str:
    groups = [f"{rng.randint(0, 0xFFFF):x}" for _ in range(8)]
    form = rng.randint(0, 3)
    if form == 0:
        return ":".join(groups)
    if form == 1:
        return "2001:db8:" + ":".join(groups[2:4]) + "::" + groups[7]
    if form == 2:
        return "fe80::" + ":".join(groups[4:])
    return ":".join(groups[:3]) + "::" + ":".join(groups[5:])


def aws(rng: random.Random) -> str:
    return rng.choice(["AKIA", "AKIA", "ASIA"]) + rand(rng, string.ascii_uppercase + "234567", 16)


def github(rng: random.Random) -> str:
    if rng.random() < 0.3:
        return "github_pat_" + mixed(rng, ALNUM, 22) + "_" + mixed(rng, ALNUM, 59)
    return rng.choice(["ghp_", "gho_", "ghu_", "ghs_", "ghr_"]) + mixed(rng, ALNUM, 36)


def slack_token(rng: random.Random) -> str:
    p = rng.choice(["xoxb", "xoxp", "xoxa", "xoxs"])
    return (
        f"{p}-{rand(rng, string.digits, 12)}-{rand(rng, string.digits, 13)}-{mixed(rng, ALNUM, 24)}"
    )


def slack_webhook(rng: random.Random) -> str:
    return (
        f"https://hooks.slack.com/services/T{rand(rng, UPPER_ALNUM, 8)}/"
        f"B{rand(rng, UPPER_ALNUM, rng.choice([8, 10]))}/{mixed(rng, ALNUM, 24)}"
    )


def openai(rng: random.Random) -> str:
    kind = rng.randint(0, 3)
    if kind == 0:
        return "sk-" + mixed(rng, ALNUM, 20) + "T3BlbkFJ" + mixed(rng, ALNUM, 20)
    pre = ["sk-proj-", "sk-svcacct-", "sk-admin-"][kind - 1]
    return pre + mixed(rng, B64URL, rng.choice([48, 74, 156]))


def anthropic(rng: random.Random) -> str:
    kind = rng.choice(["api03", "api03", "admin01"])
    return f"sk-ant-{kind}-" + mixed(rng, B64URL, 93) + "AA"


def stripe(rng: random.Random) -> str:
    return rng.choice(["sk_live_", "sk_test_", "rk_live_"]) + mixed(
        rng, ALNUM, rng.choice([24, 34, 99])
    )


def google(rng: random.Random) -> str:
    return "AIza" + mixed(rng, B64URL, 35)


def b64(obj: dict[str, Any]) -> str:
    raw = json.dumps(obj, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def jwt(rng: random.Random) -> str:
    header = rng.choice(
        [{"alg": "HS256", "typ": "JWT"}, {"alg": "RS256"}, {"typ": "JWT", "alg": "ES256"}]
    )
    payload = {
        "sub": str(rng.randint(1, 10**9)),
        "name": rng.choice(FIRST),
        "iat": 1700000000 + rng.randint(0, 10**7),
    }
    return f"{b64(header)}.{b64(payload)}.{rand(rng, B64URL, 43)}"


def private_key(rng: random.Random) -> str:
    label = rng.choice(
        [
            "RSA PRIVATE KEY",
            "EC PRIVATE KEY",
            "PRIVATE KEY",
            "OPENSSH PRIVATE KEY",
            "ENCRYPTED PRIVATE KEY",
        ]
    )
    lines = [rand(rng, ALNUM + "+/", 64) for _ in range(rng.randint(3, 12))]
    lines.append(rand(rng, ALNUM + "+/", rng.randint(4, 60)) + "==")
    body = "\n".join(lines)
    return f"-----BEGIN {label}-----\n{body}\n-----END {label}-----"


def secret_value(rng: random.Random) -> str:
    return mixed(rng, ALNUM + "!#%&*+-.^_~", rng.randint(10, 32))


GENERIC_TEMPLATES = [
    'password = "{}"',
    "DB_PASSWORD={}",
    '{{"client_secret": "{}"}}',
    "api_key: {}",
    "export SECRET_TOKEN='{}'",
    "passwd={}",
    "Authorization: Bearer {}",
    "auth_token => '{}'",
    "x-api-key: {}",
    "private_key = `{}`",
]


def generic(rng: random.Random) -> tuple[str, str]:
    tmpl = rng.choice(GENERIC_TEMPLATES)
    value = secret_value(rng)
    if "Bearer" in tmpl:
        value = mixed(rng, ALNUM + "-._", rng.randint(24, 40))
    return tmpl, value


MAKERS: dict[str, Callable[[random.Random], str]] = {
    "EMAIL": email,
    "PHONE": phone,
    "CREDIT_CARD": card,
    "IBAN": iban,
    "US_SSN": ssn,
    "IPV4": ipv4,
    "IPV6": ipv6,
    "AWS_ACCESS_KEY": aws,
    "GITHUB_TOKEN": github,
    "SLACK_TOKEN": slack_token,
    "SLACK_WEBHOOK": slack_webhook,
    "OPENAI_KEY": openai,
    "ANTHROPIC_KEY": anthropic,
    "STRIPE_KEY": stripe,
    "GOOGLE_API_KEY": google,
    "JWT": jwt,
    "PRIVATE_KEY": private_key,
}


def embed(rng: random.Random, secret: str) -> tuple[str, int]:
    tmpl = rng.choice(PROSE_BEFORE)
    start = tmpl.index("{}")
    return tmpl.replace("{}", secret, 1), start


def positive(rng: random.Random, family: str) -> dict[str, Any]:
    if family == "GENERIC_SECRET":
        tmpl, value = generic(rng)
        inner = tmpl.format(value)
        outer, off = embed(rng, inner)
        start = off + inner.index(value)
        return {
            "kind": "positive",
            "family": family,
            "text": outer,
            "spans": [[start, start + len(value), family]],
        }
    secret = MAKERS[family](rng)
    text, start = embed(rng, secret)
    return {
        "kind": "positive",
        "family": family,
        "text": text,
        "spans": [[start, start + len(secret), family]],
    }


# -- negatives -------------------------------------------------------------------------------


def uuid(rng: random.Random) -> str:
    h = rand(rng, "0123456789abcdef", 32)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def luhn_invalid(rng: random.Random) -> str:
    while True:
        num = rng.choice("3456") + rand(rng, string.digits, 15)
        if not luhn_ok(num):
            break
    sep = rng.choice(["", " ", "-"])
    return sep.join(num[i : i + 4] for i in range(0, 16, 4)) if sep else num


def reserved_ssn(rng: random.Random) -> str:
    kind = rng.randint(0, 4)
    area = [0, 666, rng.randint(900, 999), rng.randint(1, 665), rng.randint(1, 665)][kind]
    group = 0 if kind == 3 else rng.randint(1, 99)
    serial = 0 if kind == 4 else rng.randint(1, 9999)
    return f"{area:03d}-{group:02d}-{serial:04d}"


def bad_iban(rng: random.Random) -> str:
    s = make_iban(rng, rng.choice(sorted(IBAN_SHAPES)))
    check = (int(s[2:4]) + rng.randint(1, 90)) % 97 + 2
    return s[:2] + f"{check:02d}"[-2:] + s[4:]


NEG_MAKERS: dict[str, list[Callable[[random.Random], str]]] = {
    "CREDIT_CARD": [
        lambda r: f"order number {luhn_invalid(r)} shipped",
        lambda r: (
            f"tracking {r.choice('3456')}{rand(r, string.digits, 11)} and invoice "
            f"{rand(r, string.digits, 8)}"
        ),
        lambda r: (
            f"the total was ${r.randint(1, 9)},{r.randint(100, 999)}.{r.randint(10, 99)}"
            f" on card ending {r.randint(1000, 9999)}"
        ),
    ],
    "US_SSN": [
        lambda r: f"SSN {reserved_ssn(r)} is not valid",
        lambda r: (
            f"ISBN 978-{r.randint(0, 9)}-{r.randint(10, 99)}-{r.randint(100000, 999999)}-"
            f"{r.randint(0, 9)}"
        ),
        lambda r: (
            f"part no. {r.randint(10, 99)}-{r.randint(1000, 9999)}-{r.randint(100, 999)} in stock"
        ),
    ],
    "IBAN": [
        lambda r: f"account {bad_iban(r)}",
        lambda r: (
            f"reference {r.choice(['AB', 'ZZ', 'QQ'])}{r.randint(10, 99)}{rand(r, UPPER_ALNUM, 16)}"
        ),
    ],
    "OPENAI_KEY": [
        lambda r: (
            r.choice(
                [
                    "we use sk-learn for the baseline and a task-based split",
                    "the sk-8 skateboard and a risk-free trial",
                    "read the sk- prefix docs: keys look like sk-proj-...",
                    "desk-top apps and sk-test runs are fine",
                    "the flask-sqlalchemy and sk-image packages",
                ]
            )
            + f" ({r.randint(1, 999)})"
        ),
    ],
    "GIT_SHA": [
        lambda r: f"commit {rand(r, '0123456789abcdef', 40)} fixed it",
        lambda r: (
            f"merged {rand(r, '0123456789abcdef', 7)} into main, parent "
            f"{rand(r, '0123456789abcdef', 40)}"
        ),
    ],
    "UUID": [
        lambda r: f"request id {uuid(r)}",
        lambda r: f'{{"id": "{uuid(r)}", "user": "{uuid(r).upper()}"}}',
    ],
    "IPV4": [
        lambda r: f"released version {r.randint(0, 20)}.{r.randint(0, 40)}.{r.randint(0, 99)}",
        lambda r: (
            f"upgrade to v{r.randint(1, 9)}.{r.randint(0, 9)}.{r.randint(0, 9)}.{r.randint(0, 9)}"
            f" now"
        ),
        lambda r: (
            f"ratio {r.randint(300, 999)}.{r.randint(0, 255)}.{r.randint(0, 255)}."
            f"{r.randint(0, 255)}"
        ),
    ],
    "TIMESTAMP": [
        lambda r: (
            f"at 2024-{r.randint(1, 12):02d}-{r.randint(1, 28):02d} {r.randint(0, 23):02d}:"
            f"{r.randint(0, 59):02d}:{r.randint(0, 59):02d}"
        ),
        lambda r: (
            f"ts=2025-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}T{r.randint(0, 23):02d}:"
            f"{r.randint(0, 59):02d}:{r.randint(0, 59):02d}.{r.randint(0, 999):03d}Z"
        ),
        lambda r: f"epoch {r.randint(1_600_000_000, 1_800_000_000)} took {r.randint(1, 999)} ms",
        lambda r: (
            f"between {r.randint(0, 23):02d}:{r.randint(0, 59):02d} and {r.randint(0, 23):02d}:"
            f"{r.randint(0, 59):02d}:{r.randint(0, 59):02d}"
        ),
    ],
    "IPV6": [
        lambda r: (
            f"std::vector<{r.choice(['int', 'float'])}> x; a[{r.randint(1, 9)}::{r.randint(1, 9)}]"
        ),
        lambda r: "mac " + ":".join(f"{r.randint(0, 255):02X}" for _ in range(6)),
        lambda r: f"Note: see section {r.randint(1, 9)}: done",
    ],
    "EMAIL": [
        lambda r: f"ping @{r.choice(FIRST)} about the @decorator",
        lambda r: f"{r.choice(FIRST)}@localhost is local only",
        lambda r: "python -m pip install pkg@1.2.3",
    ],
    "GENERIC_SECRET": [
        lambda r: r.choice(
            [
                "password = ********",
                "password: <your-password>",
                "token = ${API_TOKEN}",
                "api_key = os.environ['OPENAI_API_KEY']",
                "secret_key = settings.SECRET_KEY",
                "token_count: 12345678",
                "if password == other_password:",
                "the password policy: at least 12 characters",
                "max_tokens: 4096",
                "token: string (required)",
                "password_hash = bcrypt.hash(pw)",
                "secret: true",
            ]
        ),
    ],
    "KEY_PREFIXES": [
        lambda r: (
            r.choice(
                [
                    "AWS keys start with AKIA and are 20 characters",
                    "GitHub tokens look like ghp_ followed by 36 characters",
                    "Slack bot tokens start with xoxb-",
                    "Google keys start with AIza.",
                    "JWTs start with eyJ (base64 of '{\"')",
                    "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A\n"
                    "-----END PUBLIC KEY-----",
                    "-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIEAgAAuTANBgkq\n"
                    "-----END CERTIFICATE-----",
                    "visit https://hooks.slack.com/ for docs",
                    "Stripe uses sk_live_ and sk_test_ prefixes",
                    "Asia and AKIAN are words",
                ]
            )
            + f" #{r.randint(1, 9999)}"
        ),
    ],
    "HASHES": [
        lambda r: f"md5 {rand(r, '0123456789abcdef', 32)} sha256 {rand(r, '0123456789abcdef', 64)}",
        lambda r: f"data:image/png;base64,iVBORw0KGgo{rand(r, ALNUM + '+/', r.randint(40, 120))}==",
        lambda r: f'etag W/"{rand(r, "0123456789abcdef", 16)}" nonce {rand(r, ALNUM, 22)}',
    ],
    "LOGS": [
        lambda r: (
            f"[2024-01-{r.randint(10, 28)} {r.randint(10, 23)}:{r.randint(10, 59)}:"
            f"{r.randint(10, 59)},{r.randint(100, 999)}] INFO pid={r.randint(100, 99999)} took "
            f"{r.randint(1, 999)}ms"
        ),
        lambda r: f"location {r.uniform(-90, 90):.4f}, {r.uniform(-180, 180):.4f}",
        lambda r: (
            f"population {r.randint(1, 999)},{r.randint(100, 999)},{r.randint(100, 999)} in "
            f"{r.randint(1900, 2024)}"
        ),
        lambda r: (
            f"GET /api/v{r.randint(1, 3)}/items/{r.randint(10**5, 10**9)}?page={r.randint(1, 99)}"
            f" 200"
        ),
    ],
    "CODE": [
        lambda r: r.choice(
            [
                "token = get_token()",
                "password = request.form['password']",
                "const secret = process.env.SECRET;",
                "self.api_key = api_key",
                "headers = {'Authorization': f'Bearer {token}'}",
                "api_key: str | None = None",
                "def check(password: str) -> bool:",
                "if not token:\n    raise AuthError('missing token')",
                "secret = Secret(value)",
                "password_field = forms.CharField(widget=forms.PasswordInput)",
            ]
        ),
    ],
    "PHONE": [
        lambda r: f"call extension {r.randint(100, 9999)} or room {r.randint(1, 999)}",
        lambda r: f"score {r.randint(1, 99)}-{r.randint(1, 99)} in {r.randint(1990, 2024)}",
        lambda r: (
            f"dimensions {r.randint(100, 999)} x {r.randint(100, 999)} x {r.randint(1000, 9999)} mm"
        ),
    ],
}


def negative(rng: random.Random, family: str) -> dict[str, Any]:
    text = rng.choice(NEG_MAKERS[family])(rng)
    return {"kind": "negative", "family": family, "text": text, "spans": []}


# -- evasions --------------------------------------------------------------------------------

FULLWIDTH = {ord(d): chr(0xFF10 + int(d)) for d in string.digits}
ZW = ["\u200b", "\u200c", "\u200d", "\ufeff"]


def json_escape(secret: str, chars: str) -> str:
    return "".join(f"\\u{ord(c):04x}" if c in chars else c for c in secret)


def evasion(rng: random.Random, family: str) -> dict[str, Any]:
    secret = MAKERS[family](rng)
    how = rng.choice(["json", "zw", "fullwidth"])
    if how == "json":
        chars = {"EMAIL": "@.", "OPENAI_KEY": "-", "ANTHROPIC_KEY": "-", "US_SSN": "-"}.get(
            family, "-_@"
        )
        disguised = json_escape(secret, chars)
    elif how == "zw":
        k = rng.randint(1, len(secret) - 1)
        disguised = secret[:k] + rng.choice(ZW) + secret[k:]
    else:
        disguised = secret.translate(FULLWIDTH)
    text, start = embed(rng, disguised)
    return {
        "kind": "evasion",
        "family": family,
        "how": how,
        "text": text,
        "spans": [[start, start + len(disguised), family]],
    }


def split_case(rng: random.Random, family: str, kind: str) -> dict[str, Any]:
    secret = MAKERS[family](rng)
    k = rng.randint(3, len(secret) - 3)
    text = f"here you go: {secret} - thanks"
    cut = len("here you go: ") + k
    if kind == "parts":
        return {
            "kind": "parts",
            "family": family,
            "parts": [text[:cut], text[cut:]],
            "secret": secret,
        }
    n = rng.randint(2, 6)
    points = sorted(rng.sample(range(1, len(text)), n - 1))
    chunks = [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]
    return {"kind": "chunks", "family": family, "chunks": chunks, "secret": secret}


def build() -> list[dict[str, Any]]:
    rng = random.Random(SEED)
    records: list[dict[str, Any]] = []
    families = [*MAKERS, "GENERIC_SECRET"]
    for fam in families:
        records.extend(positive(rng, fam) for _ in range(PER_FAMILY))
    neg_families = sorted(NEG_MAKERS)
    per_neg = -(-PER_FAMILY * len(families) // len(neg_families))
    for fam in neg_families:
        records.extend(negative(rng, fam) for _ in range(per_neg))
    evasive = [
        "EMAIL",
        "CREDIT_CARD",
        "US_SSN",
        "PHONE",
        "OPENAI_KEY",
        "ANTHROPIC_KEY",
        "AWS_ACCESS_KEY",
        "GITHUB_TOKEN",
        "IBAN",
    ]
    for fam in evasive:
        records.extend(evasion(rng, fam) for _ in range(30))
    split_families = [f for f in MAKERS if f not in ("PRIVATE_KEY",)]
    for fam in split_families:
        records.extend(split_case(rng, fam, "parts") for _ in range(12))
        records.extend(split_case(rng, fam, "chunks") for _ in range(12))
    for i, rec in enumerate(records):
        rec["id"] = i
    return records


def render(records: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records)


def main() -> int:
    OUT.write_text(render(build()), encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
