"""Kafka client settings built from :class:`inferwatch.config.Settings`, for both client libraries.

Wire format: none of its own; these are client options. One setting, ``INFERWATCH_KAFKA_SECURITY``
(JSON, librdkafka's names: ``security.protocol``, ``sasl.mechanism``, ``sasl.username``,
``sasl.password``, ``ssl.ca.location``, ...), secures every client of every service:

* :func:`base_config` — the librdkafka dict (SDK, sink, alerter, API, CLI, admin, the processor's
  reference reader), the security options passed through as they are;
* :func:`aiokafka_auth` / :func:`faust_credentials` — the same options translated for aiokafka
  (the processor's faust worker): security protocol, SASL mechanism and user, and an
  ``ssl.SSLContext`` built from the CA (and client certificate) files.

An option aiokafka cannot honour is refused with a :class:`~inferwatch.kafka.errors.KafkaConfigError`
naming it, rather than silently dropped: a worker must never connect less securely than the SDK.
"""

from __future__ import annotations

import ssl
from typing import Any

from inferwatch.config import Settings
from inferwatch.kafka.errors import KafkaConfigError

#: ``security.protocol`` values (librdkafka accepts any case).
PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
#: SASL mechanisms both client libraries speak with a user name and password.
PASSWORD_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
#: Options translated for aiokafka (and their librdkafka aliases).
_TRANSLATED = frozenset({
    "security.protocol", "sasl.mechanism", "sasl.mechanisms", "sasl.username", "sasl.password",
    "ssl.ca.location", "ssl.ca.pem", "ssl.certificate.location", "ssl.key.location", "ssl.key.password",
    "ssl.endpoint.identification.algorithm", "enable.ssl.certificate.verification",
})


def base_config(settings: Settings) -> dict[str, Any]:
    """Bootstrap plus the security settings (SASL/SSL) every librdkafka client needs."""
    conf: dict[str, Any] = {"bootstrap.servers": settings.kafka_bootstrap}
    conf.update(settings.kafka_security)
    return conf


def security_protocol(settings: Settings) -> str:
    """The configured ``security.protocol``, upper-cased (``PLAINTEXT`` when unset); checked."""
    proto = str(settings.kafka_security.get("security.protocol", "PLAINTEXT")).upper()
    if proto not in PROTOCOLS:
        raise KafkaConfigError(f"INFERWATCH_KAFKA_SECURITY: security.protocol must be one of {', '.join(PROTOCOLS)}, "
                               f"got {proto!r}")
    return proto


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """A TLS client context from ``ssl.ca.location`` or ``ssl.ca.pem`` (else the system's CAs) and,
    for mutual TLS, ``ssl.certificate.location``/``ssl.key.location``/``ssl.key.password``.

    The broker's host name is verified (as librdkafka does by default) unless
    ``ssl.endpoint.identification.algorithm`` is ``none``; its certificate is verified unless
    ``enable.ssl.certificate.verification`` is ``false``.
    """
    sec = settings.kafka_security
    ca, ca_pem = sec.get("ssl.ca.location"), sec.get("ssl.ca.pem")
    try:
        ctx = ssl.create_default_context(cafile=ca or None, cadata=ca_pem or None)
    except (OSError, ssl.SSLError, ValueError) as exc:
        what = f"ssl.ca.location {ca!r}" if ca else "ssl.ca.pem"
        raise KafkaConfigError(f"INFERWATCH_KAFKA_SECURITY: {what} cannot be read: {exc}") from None
    ident = str(sec.get("ssl.endpoint.identification.algorithm", "https")).lower()
    if ident not in ("https", "none"):
        raise KafkaConfigError("INFERWATCH_KAFKA_SECURITY: ssl.endpoint.identification.algorithm must be "
                               f"'https' or 'none', got {ident!r}")
    verify = str(sec.get("enable.ssl.certificate.verification", "true")).lower()
    if verify not in ("true", "false"):
        raise KafkaConfigError("INFERWATCH_KAFKA_SECURITY: enable.ssl.certificate.verification must be "
                               f"'true' or 'false', got {verify!r}")
    if ident == "none" or verify == "false":
        ctx.check_hostname = False
    if verify == "false":
        ctx.verify_mode = ssl.CERT_NONE
    cert, key = sec.get("ssl.certificate.location"), sec.get("ssl.key.location")
    if cert or key:
        if not cert:
            raise KafkaConfigError("INFERWATCH_KAFKA_SECURITY: ssl.key.location needs ssl.certificate.location")
        try:
            ctx.load_cert_chain(cert, key or None, sec.get("ssl.key.password") or None)
        except (OSError, ssl.SSLError) as exc:
            raise KafkaConfigError(f"INFERWATCH_KAFKA_SECURITY: client certificate {cert!r} / key {key!r} "
                                   f"cannot be loaded: {exc}") from None
    return ctx


def aiokafka_auth(settings: Settings) -> dict[str, Any]:
    """aiokafka client keyword arguments (``security_protocol``, ``sasl_mechanism``,
    ``sasl_plain_username``, ``sasl_plain_password``, ``ssl_context``) equivalent to
    :func:`base_config`'s security options. ``{"security_protocol": "PLAINTEXT"}`` when unset."""
    sec = settings.kafka_security
    proto = security_protocol(settings)
    unsupported = sorted(k for k in sec if k not in _TRANSLATED and k.startswith(("ssl.", "sasl.", "security.",
                                                                                   "enable.ssl.")))
    if unsupported:
        raise KafkaConfigError(
            f"INFERWATCH_KAFKA_SECURITY: {', '.join(unsupported)} cannot be applied to the processor's aiokafka "
            f"clients; supported: {', '.join(sorted(_TRANSLATED))}")
    out: dict[str, Any] = {"security_protocol": proto}
    if proto.startswith("SASL_"):
        mech = str(sec.get("sasl.mechanism", sec.get("sasl.mechanisms", "PLAIN"))).upper()
        if mech not in PASSWORD_MECHANISMS:
            raise KafkaConfigError(f"INFERWATCH_KAFKA_SECURITY: sasl.mechanism {mech!r} is not supported; "
                                   f"use one of {', '.join(PASSWORD_MECHANISMS)}")
        user, password = sec.get("sasl.username"), sec.get("sasl.password")
        if not user or password is None:
            raise KafkaConfigError(f"INFERWATCH_KAFKA_SECURITY: {proto} with {mech} needs sasl.username and "
                                   "sasl.password")
        out.update(sasl_mechanism=mech, sasl_plain_username=user, sasl_plain_password=password)
    if proto in ("SSL", "SASL_SSL"):
        out["ssl_context"] = ssl_context(settings)
    return out


def faust_credentials(settings: Settings) -> Any:
    """The faust ``broker_credentials`` for :func:`aiokafka_auth`'s options (None for PLAINTEXT).

    faust hands them to every aiokafka consumer and producer of the app.
    """
    from faust.auth import SASLCredentials, SSLCredentials

    auth = aiokafka_auth(settings)
    proto = auth["security_protocol"]
    if proto == "PLAINTEXT":
        return None
    if proto == "SSL":
        return SSLCredentials(context=auth["ssl_context"])
    return SASLCredentials(username=auth["sasl_plain_username"], password=auth["sasl_plain_password"],
                           ssl_context=auth.get("ssl_context"), mechanism=auth["sasl_mechanism"])
