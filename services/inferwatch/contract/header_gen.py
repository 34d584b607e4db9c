"""Generate ``services/inferwatch/native/contract_limits.h``, the C modules' copy of the contract's limits.

The C accelerators (``_decode.c``, ``_encode.c``) include this header instead of writing numbers of
their own: every ``#define`` comes from :data:`inferwatch.contract.limits.C_LIMITS` and the name
alphabet from :data:`inferwatch.contract.limits.NAME_CHARS`. ``make schemas`` (or
``python -m inferwatch.contract.header_gen``) rewrites it; ``--check`` exits 1 while the file on
disk differs from what this module generates (a contract test runs that check), and the C modules
are rebuilt by ``make install`` whenever the header changes.
"""

from __future__ import annotations

import sys
from pathlib import Path

from inferwatch.contract import limits

HEADER = Path(__file__).resolve().parent.parent / "native" / "contract_limits.h"
"""Where the header lives: beside the C modules that include it."""


def render() -> str:
    """The exact text of the header."""
    lines = [
        "/* contract_limits.h: the event contract's limits for the C modules.",
        " *",
        " * GENERATED from services/inferwatch/contract/limits.py by `make schemas`",
        " * (python -m inferwatch.contract.header_gen). Do not edit: change limits.py and regenerate;",
        " * tests/contract/test_limits_header.py fails while this file is stale.",
        " */",
        "#ifndef INFERWATCH_CONTRACT_LIMITS_H",
        "#define INFERWATCH_CONTRACT_LIMITS_H",
        "",
    ]
    for name, value in limits.C_LIMITS.items():
        suffix = "LL" if abs(value) > 2**31 - 1 else ""
        lines.append(f"#define {name} {value}{suffix}")
    lines += [
        "",
        f"/* 1 for the bytes of a name ([{limits.NAME_ALPHABET}]), 0 for every other byte:",
        " * `static const unsigned char table[256] = IW_NAME_CHARS_INIT;` */",
    ]
    table = ["1" if chr(c) in limits.NAME_CHARS else "0" for c in range(256)]
    rows = [",".join(table[i:i + 32]) for i in range(0, 256, 32)]
    lines.append("#define IW_NAME_CHARS_INIT { \\")
    lines += [f"    {row}{',' if i < len(rows) - 1 else ''} \\" for i, row in enumerate(rows)]
    lines += ["}", "", "#endif", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Write the header (default) or ``--check`` that the one on disk is current."""
    check = "--check" in (argv if argv is not None else sys.argv[1:])
    text = render()
    if check:
        if not HEADER.exists() or HEADER.read_text() != text:
            print(f"stale C header {HEADER} (run `make schemas`)")
            return 1
        return 0
    HEADER.write_text(text)
    print(f"wrote {HEADER}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
