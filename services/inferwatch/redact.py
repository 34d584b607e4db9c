"""Credentials never leave the process in a log line or an error message.

One place for the masking every log and error path uses:

- :func:`redact_dsn` masks the password of a URL/DSN (``http://user:pw@host`` ->
  ``http://user:***@host``) and the values of credential-like query parameters (``?password=``);
- :func:`redact_config` masks the secret entries of a librdkafka/settings mapping
  (``sasl.password``, ``ssl.key.password``, ``*secret*``, ``*token*``, ...);
- :func:`mask_secrets` masks, in free text (an exception's message), every DSN password it finds
  and every known secret value given to it (a password passed apart from the URL, a SASL password).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

MASK = "***"

# Names of settings whose value is a credential. Matched on the last dotted/underscored part and on
# substrings, so ``sasl.password``, ``ssl.key.password``, ``sasl.oauthbearer.client.secret``,
# ``clickhouse_password``, ``api_token`` and ``ssl.key.pem`` are all covered.
_SECRET_NAME = re.compile(r"(pass(word|wd)?|secret|token|credential|private|(^|[._])key\.pem|api[._-]?key|"
                          r"sasl\.jaas\.config|sasl\.oauthbearer\.config)", re.IGNORECASE)
# ``scheme://user:password@`` anywhere in a text (the password never contains ``@``, ``/`` or a blank).
_URL_USERINFO = re.compile(r"(?P<pre>[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@]*:)(?P<pw>[^\s@/]+)(?P<at>@)")
_BARE_USERINFO = re.compile(r"^(?P<pre>[^\s:/@]*:)[^\s@]+@")
# ``password=...`` / ``token: ...`` in free text or a query string.
_KV = re.compile(r"(?P<k>\b[\w.\-]*(?:password|passwd|secret|token)[\w.\-]*\b)(?P<sep>\s*[=:]\s*)"
                 r"(?P<q>['\"]?)(?P<v>[^\s&'\",;}]+)", re.IGNORECASE)


def is_secret_name(name: str) -> bool:
    """Whether a setting called ``name`` holds a credential."""
    return bool(_SECRET_NAME.search(name))


def redact_dsn(url: str | None) -> str | None:
    """``url`` with its password and credential-like query values replaced by ``***``.

    Never raises: a string that does not parse as a URL is masked as free text instead.
    """
    if url is None:
        return None
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if not netloc and "@" in url:  # ``user:pw@host`` without a scheme: not a URL to urlsplit
            return _BARE_USERINFO.sub(lambda m: m["pre"] + MASK + "@", url)
        if "@" in netloc:
            userinfo, _, host = netloc.rpartition("@")
            user, colon, _pw = userinfo.partition(":")
            netloc = f"{user}:{MASK}@{host}" if colon else f"{user}@{host}"
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            if any(is_secret_name(k) for k, _ in pairs):
                query = urlencode([(k, MASK if is_secret_name(k) else v) for k, v in pairs], safe="*", quote_via=quote)
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return mask_secrets(url)


def redact_config(conf: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``conf`` with every credential's value replaced by ``***`` (URLs in values redacted)."""
    out: dict[str, Any] = {}
    for k, v in conf.items():
        if is_secret_name(str(k)) and v not in (None, ""):
            out[k] = MASK
        elif isinstance(v, str):
            out[k] = mask_secrets(v)
        elif isinstance(v, Mapping):
            out[k] = redact_config(v)
        else:
            out[k] = v
    return out


def mask_secrets(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with DSN passwords, ``password=...`` values and each of ``secrets`` masked.

    Secrets shorter than 3 characters are not searched for (masking every "a" would garble the
    text and reveal nothing more about such a password than its absence does).
    """
    out = _URL_USERINFO.sub(lambda m: m["pre"] + MASK + m["at"], str(text))
    out = _KV.sub(lambda m: m["k"] + m["sep"] + m["q"] + MASK, out)
    for s in sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True):
        out = out.replace(s, MASK)
        quoted = quote(s, safe="")
        if quoted != s:
            out = out.replace(quoted, MASK)
    return out


def settings_secrets(settings: Any) -> list[str]:
    """The credential values of an :class:`inferwatch.config.Settings` (to hand to :func:`mask_secrets`)."""
    found: list[str] = []
    for name in ("clickhouse_password", "api_token"):
        v = getattr(settings, name, None)
        if v:
            found.append(str(v))
    url = getattr(settings, "clickhouse_url", None)
    if url:
        try:
            pw = urlsplit(url).password
        except ValueError:
            pw = None
        if pw:
            found.append(pw)
    for k, v in (getattr(settings, "kafka_security", None) or {}).items():
        if is_secret_name(str(k)) and v:
            found.append(str(v))
    return found
