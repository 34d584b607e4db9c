"""One security setting, two client libraries: the librdkafka dict and its aiokafka/faust translation."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from inferwatch.config import Settings
from inferwatch.kafka.clientconf import aiokafka_auth, base_config, faust_credentials
from inferwatch.kafka.errors import KafkaConfigError
from tests.support.tls import make_pki


def _settings(**security: str) -> Settings:
    return Settings(kafka_bootstrap="127.0.0.1:1", kafka_security=security)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pki(tmp_path_factory.mktemp("pki")).ca_pem


def test_plaintext_by_default() -> None:
    s = _settings()
    assert base_config(s) == {"bootstrap.servers": "127.0.0.1:1"}
    assert aiokafka_auth(s) == {"security_protocol": "PLAINTEXT"}
    assert faust_credentials(s) is None


def test_sasl_ssl_scram_reaches_both_libraries(ca: Path) -> None:
    sec = {"security.protocol": "sasl_ssl", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "u",
           "sasl.password": "p", "ssl.ca.location": str(ca)}
    s = _settings(**sec)
    assert base_config(s) == {"bootstrap.servers": "127.0.0.1:1", **sec}
    auth = aiokafka_auth(s)
    assert auth["security_protocol"] == "SASL_SSL" and auth["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (auth["sasl_plain_username"], auth["sasl_plain_password"]) == ("u", "p")
    ctx = auth["ssl_context"]
    assert isinstance(ctx, ssl.SSLContext) and ctx.check_hostname and ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.get_ca_certs()[0]["subject"] == ((("commonName", "inferwatch test CA"),),)
    creds = faust_credentials(s)
    assert creds.protocol.value == "SASL_SSL" and creds.mechanism.value == "SCRAM-SHA-512"
    assert creds.username == "u" and creds.password == "p" and creds.ssl_context is not None
    assert "p" not in repr(creds)


def test_ssl_only_and_hostname_check_off(ca: Path) -> None:
    s = _settings(**{"security.protocol": "SSL", "ssl.ca.location": str(ca),
                     "ssl.endpoint.identification.algorithm": "none"})
    auth = aiokafka_auth(s)
    assert auth["security_protocol"] == "SSL" and not auth["ssl_context"].check_hostname
    assert faust_credentials(s).protocol.value == "SSL"


def test_inline_ca_and_verification_off_match_librdkafka(ca: Path) -> None:
    auth = aiokafka_auth(_settings(**{"security.protocol": "SSL", "ssl.ca.pem": ca.read_text()}))
    assert auth["ssl_context"].get_ca_certs()[0]["subject"] == ((("commonName", "inferwatch test CA"),),)
    off = aiokafka_auth(_settings(**{"security.protocol": "SSL", "enable.ssl.certificate.verification": "false"}))
    assert off["ssl_context"].verify_mode == ssl.CERT_NONE and not off["ssl_context"].check_hostname


@pytest.mark.parametrize(("security", "message"), [
    ({"security.protocol": "TLS"}, "security.protocol must be one of"),
    ({"security.protocol": "SASL_SSL", "sasl.mechanism": "GSSAPI", "sasl.username": "u", "sasl.password": "p"},
     "sasl.mechanism 'GSSAPI' is not supported"),
    ({"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN"}, "needs sasl.username and sasl.password"),
    ({"security.protocol": "SSL", "ssl.keystore.location": "/k.p12"}, "ssl.keystore.location cannot be applied"),
    ({"security.protocol": "SSL", "ssl.ca.location": "/nonexistent/ca.pem"}, "ssl.ca.location '/nonexistent/ca.pem'"),
    ({"security.protocol": "SSL", "ssl.endpoint.identification.algorithm": "maybe"}, "must be 'https' or 'none'"),
    ({"security.protocol": "SSL", "ssl.key.location": "/k.pem"}, "needs ssl.certificate.location"),
    ({"security.protocol": "SSL", "ssl.ca.pem": "not a certificate"}, "ssl.ca.pem cannot be read"),
    ({"security.protocol": "SSL", "enable.ssl.certificate.verification": "maybe"}, "must be 'true' or 'false'"),
])
def test_what_aiokafka_cannot_honour_is_refused_by_name(security: dict[str, str], message: str) -> None:
    # a worker must never connect less securely than the SDK: no option is silently dropped
    with pytest.raises(KafkaConfigError, match=message):
        aiokafka_auth(_settings(**security))


def test_the_env_var_is_json(monkeypatch: pytest.MonkeyPatch, ca: Path) -> None:
    monkeypatch.setenv("INFERWATCH_KAFKA_SECURITY", '{"security.protocol": "SASL_SSL", "sasl.mechanism": '
                       f'"SCRAM-SHA-256", "sasl.username": "u", "sasl.password": "p", "ssl.ca.location": "{ca}"}}')
    auth = aiokafka_auth(Settings())
    assert auth["sasl_mechanism"] == "SCRAM-SHA-256" and auth["security_protocol"] == "SASL_SSL"
