"""docs/architecture.md is the map of the code: every module is where the page says, and every file,
folder and test the page names exists. A module added, moved or renamed without the page fails here."""

from __future__ import annotations

import ast
import fnmatch
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PKG = ROOT / "services" / "inferwatch"
DOC = ROOT / "docs" / "architecture.md"
#: Every package has these (its marker and its own exceptions, a convention the page states once),
#: so the rows do not list them.
EVERYWHERE = {"__init__.py", "errors.py"}
TICKED = re.compile(r"`([^`\s]+)`")


def _section(title: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    assert f"## {title}\n" in text, f"docs/architecture.md lost its section {title!r}"
    return text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def _tree() -> list[tuple[list[Path], str]]:
    """The tree table's rows: the folders of the first cell (``top level``: the package's own
    modules), and the text of the row that describes them."""
    rows = []
    for line in _section("The tree, as the data flows").splitlines():
        if not line.startswith("| `") and not line.startswith("| top level"):
            continue
        first, rest = line[2:].split(" | ", 1)
        folders = [PKG] if first.strip() == "top level" else [PKG / f.rstrip("/") for f in TICKED.findall(first)]
        rows.append((folders, rest))
    return rows


def _modules(folder: Path) -> list[Path]:
    found = folder.glob("*.py") if folder == PKG else folder.rglob("*.py")
    return sorted(p for p in found if "__pycache__" not in p.parts)


def _names(path: Path, tokens: list[str]) -> bool:
    """Whether a token of the row names ``path``: its name, or a path that ends with it, or a glob."""
    rel = path.relative_to(PKG).parts
    suffixes = {"/".join(rel[i:]) for i in range(len(rel))}
    return any(t in suffixes or ("*" in t and fnmatch.fnmatch(path.name, t)) for t in tokens)


def test_the_tree_has_a_row_for_every_folder_of_the_package() -> None:
    covered = {f for folders, _ in _tree() for f in folders}
    folders = {p for p in PKG.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    missing = sorted(str(p.relative_to(PKG)) for p in folders - covered)
    assert not missing, f"packages without a row in the tree of docs/architecture.md: {missing}"
    assert PKG in covered, "the tree lost its `top level` row"


def test_every_module_is_named_in_its_folders_row() -> None:
    missing = []
    for folders, text in _tree():
        tokens = TICKED.findall(text)
        for folder in folders:
            missing += [str(m.relative_to(PKG)) for m in _modules(folder)
                        if m.name not in EVERYWHERE and not _names(m, tokens)]
    assert not missing, f"modules the tree of docs/architecture.md does not name in their folder's row: {missing}"


def test_every_file_and_folder_the_tree_names_exists_where_it_says() -> None:
    wrong = []
    everything = [p for p in PKG.rglob("*") if "__pycache__" not in p.parts]
    for folders, text in _tree():
        for token in TICKED.findall(text):
            if token.endswith(".py"):  # a module: in this row's folders
                candidates = [m for f in folders for m in _modules(f)]
            elif re.fullmatch(r"[\w./*-]+\.(c|h)", token) or re.fullmatch(r"[\w-]+(/[\w-]+)*/", token):
                candidates = everything  # a C file or a folder: anywhere in the package
            else:
                continue  # a class, a command, an environment variable
            if not any(_names(c, [token.rstrip("/")]) for c in candidates) and not (ROOT / token).exists():
                wrong.append(token)
    assert not wrong, f"docs/architecture.md's tree names what is not there: {wrong}"


def test_every_test_the_page_cites_exists() -> None:
    tests = {p.relative_to(ROOT).as_posix() for p in (ROOT / "tests").rglob("*")}
    names = {p.rsplit("/", 1)[-1] for p in tests}
    cited = [t for t in TICKED.findall(DOC.read_text(encoding="utf-8")) if t.startswith(("tests/", "test_"))]
    assert cited, "the page no longer says where its guarantees are tested"
    missing = [t for t in cited if t.rstrip("/") not in tests and t not in names]
    assert not missing, f"docs/architecture.md cites tests that do not exist: {missing}"



def test_every_hop_states_its_order_in_the_module_the_page_points_to() -> None:
    """The third column of the guarantees table names the modules whose docstrings state each hop's
    order: they exist, and their docstrings speak of it."""
    rows = [line.split(" | ") for line in _section("Guarantees and their commit orders").splitlines()
            if line.startswith("| ") and not line.startswith(("| hop", "| ---"))]
    assert rows, "the guarantees table is gone"
    for row in rows:
        assert len(row) == 4, f"a guarantees row without its four columns: {row}"
        for token in TICKED.findall(row[2]):
            if token.startswith("tests/"):
                assert (ROOT / token).is_file(), token
                continue
            module = PKG / token
            assert module.is_file(), f"docs/architecture.md points to {token}, which does not exist"
            doc = ast.get_docstring(ast.parse(module.read_text(encoding="utf-8"))) or ""
            assert "order" in doc.lower(), f"{token}'s docstring does not state the order the page says it does"
