"""The regular expressions `pii` finds each kind with (Python's re; the RE2 pre-checks that
pick documents for them live next to each detector in `pii.DETECTORS`)."""

from __future__ import annotations

import re

_SECRET_PATTERNS = [
    re.compile(
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
        r"[\s\S]*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|\Z)"
    ),
    re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b"),
    re.compile(r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36}\b|\bgithub_pat_[A-Za-z0-9_]{60,}"),
    re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    # tokens whose prefix names their provider: Google API, Stripe, GitLab, npm, Hugging Face,
    # OpenAI / Anthropic (`sk-`, `sk-proj-`, `sk-ant-api03-`), Slack webhooks
    re.compile(
        r"\bAIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])|\b(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{24,99}\b"
        r"|\bglpat-[0-9A-Za-z_-]{20,}|\bnpm_[A-Za-z0-9]{36}\b|\bhf_[A-Za-z0-9]{34}\b"
        r"|\bsk-[A-Za-z0-9_-]{32,}|https://hooks\.slack\.com/services/[A-Za-z0-9/]{20,}"
    ),
]
_PROVIDER_PREFILTER = (
    r"AIza[0-9A-Za-z_-]{35}|(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{24}|glpat-[0-9A-Za-z_-]{20}"
    r"|npm_[A-Za-z0-9]{36}|hf_[A-Za-z0-9]{34}|sk-[A-Za-z0-9_-]{32}|hooks\.slack\.com/services/"
)
# `api_key = "..."`: only the value (group 1) is a secret, and only when it looks random.
# The keyword may end a longer name (`OPENAI_API_KEY=`, `aws_secret_access_key =`): `\b`
# does not see a word start after `_`, so the keyword only needs no letter or digit before it.
_ASSIGNED_SECRET = re.compile(
    r"(?i)(?<![A-Za-z0-9])(?:api[_-]?key|apikey|api[_-]?secret|secret[_-]?key|client[_-]?secret|"
    r"access[_-]?token|auth[_-]?token|access[_-]?key(?:[_-]?id)?|secret|token|password|passwd)"
    r"(?:[_-][A-Za-z0-9_-]{0,40})?[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9_\-+/=.]{16,200})"
)
# Lookbehinds come after the first character: a pattern that starts with a character class
# lets Python's re skip ahead to candidates; one that starts with a lookbehind does not (3x).
_IBAN = re.compile(r"[A-Z](?<!\w[A-Z])[A-Z]\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
_CARD = re.compile(r"\d(?<![\d.,-]\d)(?:[ -]?\d){12,18}(?![\d-]|[.,]\d)")
_IPV4 = re.compile(
    r"\d(?<![\w.-]\d)\d{0,2}(?:\.\d{1,3}){3}(?![\w-]|\.\d)"  # octets checked in _ipv4
)
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{1,4})?"
    r"(?![\w:]|\.\d)"
)
# Phones: international (+CC ...) or a parenthesised / separated area code. Bare digit runs
# are left alone: they are far more often numbers of other things.
# Not inside a longer run of digit groups (before or after): that is some other number.
_PHONE = re.compile(
    r"(?:"
    r"\+(?<![\w+]\+)\d{1,3}[ .-]?(?:\(0?\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,4}"
    r"|\((?<![\w+]\()(?<!\d[ -]\()\d{2,5}\)[ .-]?\d{3,4}[ .-]?\d{3,4}"
    r"|\d(?<![\w+.,:]\d)(?<!\d[ -]\d)\d{2}([-.])\d{3}\1\d{4}"  # one separator: not `252.227-7013`
    r"|1(?<![\w+.,:]1)(?<!\d[ -]1)-\d{3}-\d{3}-\d{4}"  # North American 1-800-555-0199
    # national (0...): groups split by a separator, or a 3-5 digit area code then 5-8 digits,
    # French pairs (06 12 34 56 78), German area code / number (089/1234567), or 00 for +
    r"|0(?<![\w+.,:/]0)(?<!\d[ -]0)"
    r"(?:\d{1,4}[ -]\d{3,4}[ -]\d{2,4}(?:[ -]\d{2,4})?|\d{2,4}[ -]\d{5,8}"
    r"|[1-9]([ .])\d\d(?:\2\d\d){3}|\d{2,4}/\d{4,8}"
    r"|0[1-9]\d{0,2}[ .-](?:\(0?\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]\d{2,8}){1,3})"
    r")(?![\w:/]|[.-]\d| \d)"
)
_DATE_LIKE = re.compile(r"^(?:\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4})$")
