"""Deterministic sampling and redaction."""

from __future__ import annotations

import pytest

from inferwatch.sdk.redaction import Redaction, as_redaction, text_hash
from inferwatch.sdk.sampling import Sampler, resolve_rate


def test_sampling_is_deterministic_and_close_to_the_rate() -> None:
    s = Sampler(0.2)
    ids = [f"pred-{i}" for i in range(20_000)]
    kept = [i for i in ids if s.keep(i)]
    assert kept == [i for i in ids if Sampler(0.2).keep(i)]  # same ids, another instance/process
    assert 0.18 < len(kept) / len(ids) < 0.22


def test_rates_per_model() -> None:
    assert resolve_rate({"a": 0.5, "*": 0.1}, "a") == 0.5
    assert resolve_rate({"a": 0.5, "*": 0.1}, "b") == 0.1
    assert resolve_rate(None, "a") == 1.0
    with pytest.raises(ValueError, match="sample_rate"):
        resolve_rate(1.5, "a")


def test_redaction_drops_and_hashes_inputs() -> None:
    r = Redaction.of(drop=["email"], hash=["user_id"], salt="s3cret-of-16-bytes-or-more")
    out = r.inputs({"email": "a@b.c", "user_id": 42, "age": 31})
    assert "email" not in out and out["age"] == 31
    assert out["user_id"] != 42 and out["user_id"].startswith("h:")
    assert out["user_id"] == r.inputs({"user_id": 42})["user_id"]
    assert Redaction.of(hash=["user_id"], salt="another-salt-of-16-bytes").inputs({"user_id": 42})["user_id"] != out["user_id"]


def test_llm_text_can_be_logged_as_hashes_only() -> None:
    r = as_redaction({"llm_text": "hash", "salt": "s3cret-of-16-bytes-or-more"})
    assert r is not None
    out = r.llm({"prompt": "hello", "completion": "world!", "output_tokens": 2})
    assert "prompt" not in out and "completion" not in out
    assert out["prompt_hash"] == text_hash("hello", r.salt) and out["completion_chars"] == 6
