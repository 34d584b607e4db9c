"""Secured Kafka end to end: SDK → processor → alerter → sink through a SASL_SSL listener only.

The native broker gets a second listener (TLS with a throwaway CA and certificate made by the test,
then SCRAM-SHA-512); every service is given that listener's address and ``INFERWATCH_KAFKA_SECURITY``
and nothing else: the SDK and sink and alerter (librdkafka) and the processor (faust over aiokafka,
a real ``inferwatch run processor`` subprocess). A client without credentials, and one with a wrong
password, are refused by the broker.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import KafkaError, Producer

from inferwatch.alerter.notification.webhook_receiver import LocalReceiver
from inferwatch.alerter.service import AlerterService
from inferwatch.config import Settings
from inferwatch.infra import NativeKafka, SaslSslListener, free_port
from inferwatch.kafka.admin import apply_topics
from inferwatch.kafka.clientconf import aiokafka_auth
from inferwatch.processor.settings import ProcessorSettings
from inferwatch.processor.topics import ensure_topics
from inferwatch.sdk import InferenceLogger
from tests.support.alerter import config, write_rules
from tests.support.sink import running_sink
from tests.support.store import migrated
from tests.support.tls import make_pki

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

USER, PASSWORD = "inferwatch-svc", "s3cret-Scram-512"
PROC_ENV = {"INFERWATCH_PROCESSOR_WINDOW_S": "60", "INFERWATCH_PROCESSOR_LATENESS_S": "0",
            "INFERWATCH_PROCESSOR_BASELINE_S": "0", "INFERWATCH_PROCESSOR_IDLE_FLUSH_S": "2",
            "INFERWATCH_PROCESSOR_HEALTH_PORT": "0"}
# recent: the store's tables keep rows for a limited time (TTL)
T0 = (time.time_ns() // 1_000_000 // 60_000 - 5) * 60_000
N = 200
TOPIC = "sasl-probe"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NativeKafka, Path]]:
    """A native broker with a SASL_SSL listener and one SCRAM-SHA-512 user; and the CA file."""
    root = tmp_path_factory.mktemp("sasl")
    pki = make_pki(root / "pki")
    broker = NativeKafka(root / "kafka", free_port(), free_port(),
                         sasl_ssl=SaslSslListener(free_port(), pki.broker_pem, {USER: PASSWORD}))
    broker.start()
    try:
        from confluent_kafka.admin import AdminClient, NewTopic

        # over the PLAINTEXT listener, the one the refused clients are not given
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.create_topics([NewTopic(TOPIC, 1, 1)])[TOPIC].result(30)
        yield broker, pki.ca_pem
    finally:
        broker.stop()


def security(ca: Path, password: str = PASSWORD) -> dict[str, str]:
    return {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": USER,
            "sasl.password": password, "ssl.ca.location": str(ca)}


def _errors_of(conf: dict[str, Any], wait_s: float = 6.0) -> tuple[list[KafkaError], int]:
    """Errors a librdkafka producer reports, and how many of its messages were not delivered."""
    errors: list[KafkaError] = []
    failed: list[KafkaError] = []
    p = Producer({**conf, "error_cb": errors.append, "message.timeout.ms": int(wait_s * 1000), "log_level": 0})
    p.produce(TOPIC, b"x", on_delivery=lambda err, _msg: failed.append(err) if err is not None else None)
    left = p.flush(wait_s + 5)
    return errors, left + len(failed)


def test_clients_without_the_right_credentials_are_refused(secured: tuple[NativeKafka, Path]) -> None:
    broker, ca = secured
    addr = broker.sasl_ssl_bootstrap
    # TLS but no SASL: the broker expects a SASL handshake and drops the connection
    errors, left = _errors_of({"bootstrap.servers": addr, "security.protocol": "SSL", "ssl.ca.location": str(ca)})
    assert left == 1
    # no TLS at all
    _, left = _errors_of({"bootstrap.servers": addr})
    assert left == 1
    # the right user, the wrong password: SCRAM authentication fails
    errors, left = _errors_of({"bootstrap.servers": addr, **security(ca, "wrong-password")})
    assert left == 1
    assert any(e.code() == KafkaError._AUTHENTICATION for e in errors), errors
    # and the same through aiokafka (the processor's client library)
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaConnectionError
    from aiokafka.errors import KafkaError as AioKafkaError

    async def connect(auth: dict[str, Any]) -> None:
        p = AIOKafkaProducer(bootstrap_servers=addr, request_timeout_ms=5000, **auth)
        try:
            await p.start()
        finally:
            await p.stop()

    bad = Settings(kafka_bootstrap=addr, kafka_security=security(ca, "wrong-password"))
    with pytest.raises((KafkaConnectionError, AioKafkaError)):
        asyncio.run(connect({}))
    with pytest.raises(AioKafkaError):
        asyncio.run(connect(aiokafka_auth(bad)))
    # the right credentials work with both libraries
    good = Settings(kafka_bootstrap=addr, kafka_security=security(ca))
    asyncio.run(connect(aiokafka_auth(good)))
    errors, left = _errors_of({"bootstrap.servers": addr, **security(ca)})
    assert left == 0


def test_sdk_processor_alerter_sink_through_sasl_ssl(secured: tuple[NativeKafka, Path], tmp_path: Path) -> None:
    broker, ca = secured
    s = Settings(kafka_bootstrap=broker.sasl_ssl_bootstrap, kafka_security=security(ca), topic_prefix="sec.",
                 data_dir=tmp_path / "data")
    apply_topics(s)  # admin client over SASL_SSL
    pcfg = ProcessorSettings(**{k.removeprefix("INFERWATCH_PROCESSOR_").lower(): v for k, v in PROC_ENV.items()})
    ensure_topics(s, pcfg)

    # SDK: predictions of one window, a quarter of them failed
    with InferenceLogger("secure-model", "1", settings=s, spool_dir=None) as lg:
        for i in range(N):
            if i % 4 == 0:
                lg.prediction({"x": float(i)}, None, error="boom", latency_ms=1.0, ts_ms=T0 + i * 100)
            else:
                lg.prediction({"x": float(i)}, {"label": "cat"}, latency_ms=1.0, ts_ms=T0 + i * 100)
        assert lg.flush(30)
        assert lg.stats()["delivered"] == N

    # processor: a real worker process, given only the secured listener
    env = {**os.environ, **PROC_ENV, "INFERWATCH_KAFKA_BOOTSTRAP": s.kafka_bootstrap,
           "INFERWATCH_KAFKA_SECURITY": orjson.dumps(s.kafka_security).decode(),
           "INFERWATCH_TOPIC_PREFIX": s.topic_prefix, "INFERWATCH_DATA_DIR": str(s.data_dir)}
    log = tmp_path / "processor.log"
    proc = subprocess.Popen([sys.executable, "-m", "inferwatch.cli.main", "run", "processor"], env=env,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)
    rules = write_rules(tmp_path)
    alerter: AlerterService | None = None
    try:
        with migrated(s) as store, LocalReceiver() as rcv, running_sink(s, store) as sink:
            cfg = config([{"name": "hook", "url": rcv.url, "signing": "none"}], backoff_max_s=1)
            alerter = AlerterService(s, rules, cfg).start_in_thread()

            fired = rcv.wait_for(lambda rs: any(r.status == 200 for r in rs), 150)
            assert fired, log.read_text()[-3000:]
            body = orjson.loads(next(r.body for r in rcv.requests if r.status == 200))
            assert body["status"] == "firing"
            assert body["alerts"][0]["annotations"]["summary"] == "secure-model error rate 0.25"

            def rows(table: str) -> int:
                return int(store.scalar(f"SELECT count() FROM {table}"))

            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not (rows("predictions") >= N and rows("metrics") and rows("alerts")):
                time.sleep(0.5)
            assert rows("predictions") == N, sink.health.snapshot()
            assert rows("metrics") >= 1 and rows("alerts") >= 1
            assert store.scalar("SELECT countIf(error IS NOT NULL) FROM predictions") == N // 4
    finally:
        if alerter is not None:
            alerter.join()
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
