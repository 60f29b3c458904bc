"""The Rust core's layout holds what README's Development section promises: no dependency
circles between sibling modules, lower layers never importing upper ones, no two items of
the core sharing a name, and every `unsafe` carrying a `SAFETY:` comment. Static checks of
the source tree (no build needed)."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"

# Who may import whom among the core's top-level modules (python/ is the glue over all).
ALLOWED = {
    "error": set(),
    "runtime": {"error"},
    "text": {"error"},
    "vector": {"error", "runtime"},
    "lake": {"error", "runtime"},
    "read": {"error", "runtime", "lake"},
    "index": {"error", "runtime", "lake", "read", "vector"},
    # the dedup index reads tables and is stored with the vector index's container and commits
    "dedup": {"error", "runtime", "text", "vector", "lake", "read", "index"},
    "tag": {"error", "runtime", "text", "vector"},
    # the decoders' entry points for fuzz/ (a boundary, like python/)
    "fuzz_api": {"error", "index", "lake", "vector", "dedup"},
}


def module_of(path: Path) -> tuple[str, ...]:
    rel = path.relative_to(SRC).with_suffix("")
    parts = rel.parts
    if parts[-1] == "mod":
        parts = parts[:-1]
    return parts


def core_files() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.rs") if "python" not in p.relative_to(SRC).parts)


def code_of(path: Path) -> str:
    """The file without its `#[cfg(test)]` module (tests may reach anywhere) and comments
    (doc links are not dependencies)."""
    text = path.read_text()
    i = text.find("#[cfg(test)]\nmod tests")
    text = text if i < 0 else text[:i]
    return "\n".join(line.split("//")[0] for line in text.splitlines())


IMPORT = re.compile(r"\bcrate::([a-z0-9_]+)(::)?")


def brace_entries(text: str) -> list[str]:
    """The top-level entries of the `{...}` group `text` starts with."""
    depth, entry, entries = 0, "", []
    for ch in text[1:]:
        if ch == "{":
            depth += 1
        elif ch == "}":
            if depth == 0:
                break
            depth -= 1
        if ch == "," and depth == 0:
            entries.append(entry)
            entry = ""
        else:
            entry += ch
    return entries + [entry]


def imports(path: Path) -> set[tuple[str, ...]]:
    """(top module, submodule) or (top module,) of every `crate::` path, with the entries of
    brace groups (`crate::index::{flat, hnsw}` imports two modules)."""
    code = code_of(path)
    out = set()
    for m in IMPORT.finditer(code):
        top, rest = m.group(1), code[m.end() :] if m.group(2) else ""
        heads = brace_entries(rest) if rest.startswith("{") else [rest]
        for h in heads:
            sub = re.match(r"\s*([a-z0-9_]+)\b", h)
            out.add((top, sub.group(1)) if sub and sub.group(1) != "self" else (top,))
    return out


def test_layers_only_import_downwards():
    bad = []
    for f in core_files():
        top = module_of(f)[0]
        if top == "lib":
            continue
        for imp in imports(f):
            if imp[0] != top and imp[0] not in ALLOWED.get(top, set()):
                bad.append(f"{f.relative_to(SRC)} imports crate::{'::'.join(imp)}")
    assert not bad, "\n".join(bad)


def test_no_dependency_circles_between_sibling_modules():
    # edges between sibling modules (same parent folder), and between top-level domains
    edges: dict[tuple[str, ...], set[tuple[str, ...]]] = defaultdict(set)
    for f in core_files():
        mod = module_of(f)
        if mod == ("lib",):
            continue
        for imp in imports(f):
            target = imp if len(imp) == 2 else imp[:1]
            if len(mod) == 2 and len(target) == 2 and target[0] == mod[0] and target != mod:
                edges[mod].add(target)
            elif target[0] != mod[0]:
                edges[mod[:1]].add(target[:1])
    seen: dict[tuple[str, ...], int] = {}
    cycles = []

    def visit(n, stack):
        seen[n] = 1
        for m in edges.get(n, ()):
            if seen.get(m) == 1:
                cycles.append(" -> ".join("::".join(x) for x in stack[stack.index(m) :] + [m]))
            elif m not in seen:
                visit(m, stack + [m])
        seen[n] = 2

    for n in list(edges):
        if n not in seen:
            visit(n, [n])
    assert not cycles, "dependency circles:\n" + "\n".join(cycles)


ITEM = re.compile(r"^(?:pub(?:\([a-z]+\))? )?(?:async )?(?:unsafe )?(fn|struct|enum|trait|type) ([A-Za-z_0-9]+)", re.M)


def test_no_two_core_items_share_a_name():
    where = defaultdict(list)
    for f in core_files():
        for m in ITEM.finditer(code_of(f)):
            where[m.group(2)].append(str(f.relative_to(SRC)))
    dups = {name: files for name, files in where.items() if len(files) > 1}
    assert not dups, dups


def test_every_unsafe_block_states_why_it_holds():
    missing = []
    for f in sorted(SRC.rglob("*.rs")):
        lines = f.read_text().splitlines()
        for i, line in enumerate(lines):
            code = line.split("//")[0]
            if not re.search(r"\bunsafe\s*(\{|\|)", code) and not re.search(r"\|\|\s*unsafe\s*\{", code):
                continue
            context = "\n".join(lines[max(0, i - 6) : i + 1])
            if "SAFETY:" not in context:
                missing.append(f"{f.relative_to(SRC)}:{i + 1}: {line.strip()}")
    assert not missing, "\n".join(missing)


def test_files_stay_small():
    big = [
        f"{f.relative_to(SRC)}: {n} lines"
        for f in sorted(SRC.rglob("*.rs"))
        if (n := len(code_of(f).splitlines())) > 500
    ]
    assert not big, big
