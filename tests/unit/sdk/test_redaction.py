"""Redaction that holds: keyed hashes only, a salt kept in the data dir, every field configurable."""

from __future__ import annotations

import hashlib
import socket
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from inferwatch.config import Settings
from inferwatch.sdk import EventValidationError, InferenceLogger
from inferwatch.sdk.redaction import (
    REDACTED_ERROR,
    SALT_FILE,
    Redaction,
    as_redaction,
    load_or_create_salt,
    text_hash,
    value_hash,
)

SALT = "a-salt-of-twenty-bytes"
EV: dict[str, Any] = {
    "schema_version": "prediction.v1", "event_id": "e1", "prediction_id": "p1", "ts": 1, "model": "m",
    "model_version": "1", "inputs": {"email": "ann@example.com", "user_id": 42, "age": 31},
    "outputs": {"label": "approved", "score": 0.9, "probabilities": {"approved": 0.9, "denied": 0.1}},
    "segment": {"customer": "acme-corp", "region": "eu"}, "tags": {"request": "req-77", "host": "h1"},
    "error": "KeyError: 'ann@example.com'", "llm": {"prompt": "hi ann", "completion": "hello", "output_tokens": 1},
}


def _red(**kw: Any) -> Redaction:
    return Redaction.of(salt=SALT, **kw)


# -- no unsalted hash ---------------------------------------------------------------------------------
def test_hashing_needs_a_salt() -> None:
    with pytest.raises(ValueError, match="salt is required"):
        text_hash("x", b"")
    unsalted = Redaction.of(hash=["user_id"])  # built without settings: the salt is not resolved yet
    with pytest.raises(ValueError, match="no salt"):
        unsalted.inputs({"user_id": 1})
    with pytest.raises(ValueError, match="at least 16 bytes"):
        Redaction.of(hash=["user_id"], salt="s3cret")


def test_the_hash_is_keyed_by_the_salt() -> None:
    h = value_hash("ann@example.com", SALT.encode())
    unkeyed = hashlib.blake2b(b"ann@example.com", digest_size=16).hexdigest()[:16]
    assert h.startswith("h:") and len(h) == 18 and h[2:] != unkeyed
    assert h[2:] == hashlib.blake2b(b"ann@example.com", digest_size=16, key=SALT.encode()).hexdigest()[:16]
    assert value_hash("ann@example.com", b"another-salt-16bytes") != h
    long_salt = b"x" * 200  # longer than BLAKE2b's key: hashed down, never cut (so the tail counts)
    assert text_hash("v", long_salt) != text_hash("v", b"x" * 199 + b"y")


# -- the salt: generated once, kept, reused ----------------------------------------------------------
def test_salt_generated_on_first_use_kept_0600_and_reused(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path / "data")
    r1 = as_redaction({"hash": ["user_id"]}, s)
    path = tmp_path / "data" / SALT_FILE
    assert r1 is not None and path.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_text().strip()) == 64  # 32 random bytes, hex
    r2 = as_redaction({"hash": ["user_id"]}, s)
    assert r2 is not None and r2.salt == r1.salt == path.read_bytes().strip()
    assert r1.inputs({"user_id": 7}) == r2.inputs({"user_id": 7})
    # another data dir: another salt, other hashes
    r3 = as_redaction({"hash": ["user_id"]}, Settings(data_dir=tmp_path / "other"))
    assert r3 is not None and r3.inputs({"user_id": 7}) != r1.inputs({"user_id": 7})


def test_drop_only_needs_no_salt(tmp_path: Path) -> None:
    r = as_redaction({"drop": ["email"], "segment": {"customer": "drop"}}, Settings(data_dir=tmp_path))
    assert r is not None and r.salt == b"" and not (tmp_path / SALT_FILE).exists()


def test_the_users_salt_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFERWATCH_REDACTION_SALT", SALT)
    s = Settings(data_dir=tmp_path)
    r = as_redaction({"hash": ["user_id"]}, s)
    assert r is not None and r.salt == SALT.encode() and not (tmp_path / SALT_FILE).exists()
    assert SALT not in repr(s) and SALT not in repr(r)
    monkeypatch.setenv("INFERWATCH_REDACTION_SALT", "short")
    with pytest.raises(ValueError, match="INFERWATCH_REDACTION_SALT"):
        as_redaction({"hash": ["user_id"]}, Settings(data_dir=tmp_path))
    # an explicit salt= beats both
    mine = b"the-callers-own-salt"
    r2 = as_redaction(Redaction.of(hash=["user_id"], salt=mine), s)
    assert r2 is not None and r2.salt == mine


def test_the_salt_file_copied_into_the_env_gives_the_same_hashes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = as_redaction({"segment": {"customer": "hash"}}, Settings(data_dir=tmp_path))
    assert a is not None
    monkeypatch.setenv("INFERWATCH_REDACTION_SALT", (tmp_path / SALT_FILE).read_text().strip())
    b = as_redaction({"segment": {"customer": "hash"}}, Settings(data_dir=tmp_path / "elsewhere"))
    assert b is not None and a.prediction(EV)["segment"] == b.prediction(EV)["segment"]


def test_processes_starting_together_agree_on_one_salt(tmp_path: Path) -> None:
    barrier = threading.Barrier(8)
    got: list[bytes] = []

    def one() -> None:
        barrier.wait()
        got.append(load_or_create_salt(tmp_path))

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(got)) == 1 and len(got) == 8
    assert [p.name for p in tmp_path.iterdir()] == [SALT_FILE]  # no temporary file left


def test_a_salt_file_readable_by_others_is_narrowed_and_a_corrupt_one_refused(tmp_path: Path) -> None:
    salt = load_or_create_salt(tmp_path)
    path = tmp_path / SALT_FILE
    path.chmod(0o644)
    assert load_or_create_salt(tmp_path) == salt
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text("abc\n")
    with pytest.raises(ValueError, match="corrupt redaction salt"):
        load_or_create_salt(tmp_path)


# -- every field ---------------------------------------------------------------------------------------
def test_every_field_can_be_redacted() -> None:
    r = _red(drop=["email"], hash=["user_id"], segment={"customer": "hash"}, tags={"*": "drop"},
             outputs={"label": "hash", "probabilities": "hash", "score": "drop"}, error="hash", llm_text="hash")
    out = r.prediction(EV)
    k = SALT.encode()
    assert out["inputs"] == {"user_id": value_hash(42, k), "age": 31}
    assert out["segment"] == {"customer": value_hash("acme-corp", k), "region": "eu"}
    assert "tags" in out and out["tags"] == {}
    assert out["outputs"] == {"label": value_hash("approved", k),
                              "probabilities": {value_hash("approved", k): 0.9, value_hash("denied", k): 0.1}}
    assert out["error"] == value_hash(EV["error"], k)
    assert out["llm"] == {"prompt_hash": text_hash("hi ann", k), "completion_hash": text_hash("hello", k),
                          "completion_chars": 5, "output_tokens": 1}
    raw = repr(out)
    for secret in ("ann@example.com", "acme-corp", "req-77", "approved", "denied", "KeyError", "hi ann", "hello"):
        assert secret not in raw
    assert EV["inputs"]["email"] == "ann@example.com" and EV["segment"]["customer"] == "acme-corp"  # caller's dicts intact


def test_dropped_error_text_keeps_the_failure() -> None:
    out = _red(error="drop").prediction({**EV, "outputs": None} | {"error": "boom: ann@example.com"})
    assert out["error"] == REDACTED_ERROR


def test_feedback_label_hashed_like_the_predicted_label_and_tags_follow_the_rules() -> None:
    r = _red(outputs={"label": "hash"}, tags={"request": "hash"})
    pred = r.prediction(EV)
    fb = r.feedback({"schema_version": "feedback.v1", "event_id": "f", "prediction_id": "p1", "ts": 2, "model": "m",
                     "label": "approved", "tags": {"request": "req-77"}})
    assert fb["label"] == pred["outputs"]["label"]  # accuracy still joins
    assert fb["tags"] == {"request": value_hash("req-77", SALT.encode())}


@pytest.mark.parametrize(("options", "message"), [
    ({"outputs": {"score": "hash"}}, "a number cannot be hashed"),
    ({"outputs": {"logits": "drop"}}, "unknown output field"),
    ({"segment": {"customer": "mask"}}, "must be 'drop' or 'hash'"),
    ({"error": "remove"}, "redact.error"),
    ({"drop": ["x"], "hash": ["x"]}, "both dropped and hashed"),
    ({"drop": "email"}, "not a single string"),
    ({"fields": {}}, "unknown option"),
])
def test_bad_options_are_refused_by_name(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        as_redaction(options)


def test_dropping_every_output_of_a_successful_prediction_is_a_caller_error() -> None:
    r = _red(outputs={"label": "drop"})
    with pytest.raises(EventValidationError) as exc:
        r.prediction({k: v for k, v in EV.items() if k != "error"} | {"outputs": {"label": "cat"}})
    assert exc.value.field == "outputs"


# -- the logger: a redacting logger never takes the fast path --------------------------------------------
def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("redact", [{"segment": {"customer": "hash"}}, {"error": "drop"}, {"outputs": {"label": "hash"}},
                                    {"tags": {"*": "drop"}}])
def test_any_redaction_keeps_the_logger_off_the_fast_path(tmp_path: Path, redact: dict[str, Any]) -> None:
    s = Settings(kafka_bootstrap=f"127.0.0.1:{_dead_port()}", data_dir=tmp_path)
    lg = InferenceLogger("m", "1", settings=s, spool_dir=None, redact=redact, close_timeout_s=0.1)
    try:
        assert "prediction" not in vars(lg)  # not the C version
        assert lg._fast is False
    finally:
        lg.close(0.1)


def test_the_spool_holds_only_redacted_bytes(tmp_path: Path) -> None:
    # Kafka away: events wait on disk, and what waits there is already redacted
    s = Settings(kafka_bootstrap=f"127.0.0.1:{_dead_port()}", data_dir=tmp_path / "data")
    lg = InferenceLogger("m", "1", settings=s, spool_dir=tmp_path / "spool", close_timeout_s=0.2,
                         replay_timeout_ms=200, redact={"drop": ["email"], "segment": {"customer": "hash"},
                                                        "error": "drop", "outputs": {"label": "hash"}})
    lg.prediction({"email": "ann@example.com"}, {"label": "approved"}, segment={"customer": "acme-corp"})
    lg.prediction({"x": 1.0}, None, error="boom for ann@example.com")
    lg.feedback("p-1", "approved")
    lg.close(0.2)
    spooled = b"".join(p.read_bytes() for p in (tmp_path / "spool").rglob("*") if p.is_file())
    assert b'"redacted"' in spooled  # the events are there ...
    for secret in (b"ann@example.com", b"acme-corp", b"approved"):
        assert secret not in spooled  # ... without their raw values
