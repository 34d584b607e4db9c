"""The C modules take the contract's limits from the generated header, and the header is current."""

from __future__ import annotations

import re
from pathlib import Path

from inferwatch.contract import header_gen, jsonschema_gen, limits

NATIVE = Path(header_gen.HEADER).parent


def test_checked_in_header_equals_a_fresh_generation() -> None:
    assert header_gen.HEADER.read_text() == header_gen.render(), (
        "services/inferwatch/native/contract_limits.h is stale: run `make schemas` (then `make install` rebuilds the C modules)"
    )
    assert header_gen.main(["--check"]) == 0


def test_header_carries_every_c_limit_and_the_alphabet() -> None:
    text = header_gen.render()
    for name, value in limits.C_LIMITS.items():
        assert re.search(rf"^#define {name} {value}(LL)?$", text, re.M), name
    table = re.search(r"IW_NAME_CHARS_INIT \{(.*?)\}", text, re.S)
    assert table is not None
    bits = [int(x) for x in re.findall(r"[01]", table.group(1))]
    assert len(bits) == 256
    assert {chr(i) for i, b in enumerate(bits) if b} == set(limits.NAME_CHARS)


def test_c_modules_include_the_header_and_write_no_limit_of_their_own() -> None:
    sources = sorted(NATIVE.glob("_*.c"))
    assert sources
    # Numbers that are contract limits and would only appear in C as a second copy of the contract
    # (4096, 1000, 64 or 128 are also buffer sizes and unit conversions there, so they are not listed).
    own = {str(limits.TS_MAX_MS), str(limits.MAX_INPUTS)}
    for src in sources:
        text = src.read_text()
        assert '#include "contract_limits.h"' in text, f"{src.name} must include the generated header"
        code = re.sub(r"/\*.*?\*/", "", text, flags=re.S)  # comments may mention numbers
        code = re.sub(r"//[^\n]*", "", code)
        for number in own:
            assert not re.search(rf"\b{number}(LL)?\b", code), f"{src.name} writes the contract limit {number} itself"
        assert "'@'" not in code and "['_']" not in code, f"{src.name} spells the name alphabet itself"


def test_generated_files_are_current_together() -> None:
    """`make schemas` regenerates both the JSON Schemas and the header: neither is stale."""
    assert jsonschema_gen.main(["--check"]) == 0
    assert header_gen.main(["--check"]) == 0
