"""A griffe extension for the docs build, adapting lakevec's sources to mkdocstrings (which reads
them statically, without importing lakevec).

0. Re-exports by assignment: ``worker_errors = _dist.worker_errors`` in a module becomes an
   alias of the function (rendered with its docstring, like an imported name), and a class
   body's ``__doc__ = _dist.TagRules.__doc__`` gives the class that docstring.
1. Sphinx roles: the docstrings cross-reference with :class:`Table`,
   :func:`lakevec.dedup.minhash`, :meth:`~lakevec.VectorIndex.refresh`, which Markdown would print
   as they are. Each role becomes a link to the rendered object when the name resolves
   (absolute, or relative to the docstring's class and module, as Sphinx resolves it), as an
   optional autoref: a name the site does not render (a private helper) stays plain code instead
   of failing `mkdocs build --strict`.
2. ``Raises:`` sections: the docstrings wrap an entry's text without indenting it, name two
   exceptions on one line (``SchemaError: a. InvalidArgumentError: b.``) or describe the errors
   in prose (``the errors of ...``). The Google parser would drop those lines with a warning;
   continuation lines are indented, entries split, and a prose section becomes a paragraph.
3. reStructuredText literal blocks: a paragraph ending in ``::`` (``Quick start::``) ends in
   ``:``; its indented block is a code block in Markdown as well.

Loaded by mkdocstrings through `extensions: [docs/griffe_lakevec.py]` in mkdocs.yml.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|exc|obj):`(?P<body>[^`]+)`")
# `text <target>` in a role
EXPLICIT = re.compile(r"^(?P<text>.*?)\s*<(?P<target>[^<>]+)>$")


def _lookup(pkg: griffe.Module, path: str) -> griffe.Object | griffe.Alias | None:
    parts = path.split(".")
    if parts[0] != pkg.name:
        return None
    obj: Any = pkg
    for part in parts[1:]:
        try:
            members = obj.members
        except Exception:  # an alias whose target cannot be resolved
            return None
        if part not in members:
            return None
        obj = members[part]
    return obj


def _resolve(pkg: griffe.Module, scope: griffe.Object, target: str) -> str | None:
    """The full path of ``target`` as seen from ``scope`` (None: not an object of ``pkg``)."""
    candidates = [target]
    node: Any = scope
    while node is not None:
        candidates.append(f"{node.path}.{target}")
        node = node.parent
    for path in candidates:
        if _lookup(pkg, path) is not None:
            return path
    return None


def _replace(pkg: griffe.Module, scope: griffe.Object, text: str) -> str:
    def sub(m: re.Match) -> str:
        body = m["body"].strip()
        explicit = EXPLICIT.match(body)
        if explicit:
            label, target = explicit["text"], explicit["target"]
        else:
            target = body.lstrip("~!")
            label = target.rsplit(".", 1)[-1] if body.startswith("~") else target
        target = target.lstrip("~!")
        if m.group(0).startswith((":func:", ":meth:", ":py:func:", ":py:meth:")) and not label.endswith(")"):
            label += "()"
        code = f"<code>{html.escape(label)}</code>"
        path = _resolve(pkg, scope, target)
        if path is None or body.startswith("!"):
            return code
        return f'<autoref identifier="{html.escape(path)}" optional>{code}</autoref>'

    return ROLE.sub(sub, text)


RAISES = re.compile(r"^(?P<indent>[ ]*)Raises:[ ]*$")
EXC_ITEM = re.compile(r"^[A-Z]\w*(?:Error|Exception|Warning|Interrupt)(?:\.\w+)*:\s")
EXC_SPLIT = re.compile(r"(?<=\.)\s+(?=[A-Z]\w*(?:Error|Exception|Warning|Interrupt):\s)")


LITERAL = re.compile(r"(?<=\S)::$", re.M)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _fix_raises(text: str) -> str:
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        m = RAISES.match(lines[i])
        if not m:
            out.append(lines[i])
            i += 1
            continue
        head = len(m["indent"])
        j = i + 1
        while j < len(lines) and (not lines[j].strip() or _indent(lines[j]) > head):
            j += 1
        body = lines[i + 1 : j]
        while body and not body[-1].strip():
            body.pop()
        trailing = lines[i + 1 + len(body) : j]
        nonblank = [ln for ln in body if ln.strip()]
        if not nonblank:
            out.append(lines[i])
            i += 1
            continue
        item = min(_indent(ln) for ln in nonblank)
        if not EXC_ITEM.match(nonblank[0].strip()):
            # prose: one paragraph "Raises: ..." (not a section header any more)
            out.append(" " * head + "Raises: " + " ".join(ln.strip() for ln in nonblank))
        else:
            entries: list[str] = []
            for ln in nonblank:
                if _indent(ln) == item and EXC_ITEM.match(ln.strip()):
                    entries.append(ln.strip())
                else:
                    entries[-1] += " " + ln.strip()
            out.append(lines[i])
            for entry in entries:
                for part in EXC_SPLIT.split(entry):
                    out.append(" " * item + part)
        out.extend(trailing)
        i = j
    return "\n".join(out)


def _target(pkg: griffe.Module, module: griffe.Module, value: Any) -> str | None:
    """The full path of the object ``value`` (``_dist.worker_errors``) names in ``module``."""
    text = str(value) if value is not None else ""
    if not re.fullmatch(r"[A-Za-z_]\w*(\.\w+)*", text):
        return None
    head, _, rest = text.partition(".")
    base = module.imports.get(head)
    if base is None:
        return None
    path = f"{base}.{rest}" if rest else base
    return path if _lookup(pkg, path) is not None else None


def _reexports(pkg: griffe.Module) -> None:
    modules = [pkg]
    for mod in modules:
        modules.extend(m for m in mod.modules.values() if not m.is_alias)
        for name, member in list(mod.members.items()):
            if member.is_alias:
                continue
            if member.is_attribute and member.docstring is None:
                path = _target(pkg, mod, member.value)
                if path is not None and not _lookup(pkg, path).is_attribute:
                    mod.set_member(name, griffe.Alias(name, path, lineno=member.lineno, parent=mod))
            elif member.is_class and member.docstring is None and "__doc__" in member.members:
                doc = member.members["__doc__"]
                value = "" if doc.is_alias else str(doc.value)
                path = _target(pkg, mod, value.removesuffix(".__doc__")) if value.endswith(".__doc__") else None
                source = _lookup(pkg, path) if path else None
                if source is not None and source.docstring is not None:
                    member.docstring = griffe.Docstring(source.docstring.value, lineno=member.lineno, parent=member)
                    del member.members["__doc__"]


class LakevecDocs(griffe.Extension):
    """Resolve re-exports by assignment, then rewrite the Sphinx roles, ``Raises:`` sections
    and literal blocks of every docstring of the loaded package."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        _reexports(pkg)
        seen: set[int] = set()

        def walk(obj: griffe.Object) -> None:
            if id(obj) in seen:
                return
            seen.add(id(obj))
            if obj.docstring is not None:
                obj.docstring.value = LITERAL.sub(":", _fix_raises(_replace(pkg, obj, obj.docstring.value)))
            for member in obj.members.values():
                if not member.is_alias:
                    walk(member)

        walk(pkg)
