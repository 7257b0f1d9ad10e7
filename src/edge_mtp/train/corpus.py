"""The demo pair's training text, all of it already on the machine: the Python standard library of the
running interpreter (sources and the `pydoc` documentation topics), and for the fine-tune scenario its C
API headers.

Four kinds of text, so that the demo's prompt categories mean something:

* `code`:    the stdlib modules, each after a `# <path>` line;
* `chat`:    Gemma chat turns asking for a stdlib function by its signature and docstring summary, answered
             with the function's source;
* `rewrite`: chat turns asking to rewrite a function without its docstring and comment lines, answered
             with exactly that (mostly a copy of the prompt: the case speculative decoding is best at);
* `docs`:    the documentation topics as prose, and as chat answers to "explain ..." questions.

A fixed share of files and topics (by a hash of their name) is held out of training; the held-out
prompts of every category (`heldout_prompts`) are cut from those. `c` is the second domain: the
interpreter's `Include/` headers, with the same kind of hold-out.
"""

from __future__ import annotations

import ast
import hashlib
import sys
import sysconfig
import textwrap
from dataclasses import dataclass
from pathlib import Path

from edge_mtp.errors import EdgeMTPError

CHAT = "<start_of_turn>user\n{}<end_of_turn>\n<start_of_turn>model\n"
END = "<end_of_turn>\n"
HOLDOUT = {"module": 40, "topic": 8, "header": 12}  # 1 in N of each is held out (by a hash of its name)
SKIP_DIRS = {"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__", "encodings",
             "pydoc_data", "lib-dynload", "turtledemo", "lib2to3"}
FUNCTION_CHARS = (120, 1500)  # functions used for chat / rewrite turns
REWRITE_CHARS = 600  # rewrite turns hold the function twice: keep them within a 256-token training window
ASK = ("Write a Python function `{sig}`: {doc}", "Implement `{sig}` in Python. {doc}",
       "Can you write `{sig}`? It should do this: {doc}")
EXPLAIN = ("Explain {topic} in Python.", "What does the Python documentation say about {topic}?",
           "Tell me about {topic}.")
REWRITE = "Rewrite this function without its docstring and comment lines:\n```python\n{src}\n```"


def _hash(name: str) -> int:
    return int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)


def heldout(name: str, kind: str = "module") -> bool:
    return _hash(name) % HOLDOUT[kind] == 0


@dataclass(frozen=True)
class Function:
    module: str
    name: str
    signature: str  # "name(a, b=1)"
    summary: str  # the docstring's first line
    source: str  # dedented
    head: str  # the def line(s) through the docstring
    stripped: str  # without the docstring and comment-only lines


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def include_root() -> Path:
    return Path(sysconfig.get_paths()["include"])


def stdlib_modules(root: Path | None = None) -> list[tuple[str, str]]:
    """(relative path, source) of the stdlib's .py files, minus tests, data tables and vendored code."""
    root = root or stdlib_root()
    out = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if (SKIP_DIRS & set(rel.parts[:-1]) or rel.parts[0].startswith("config-")
                or rel.name.startswith("_sysconfigdata")):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if text.strip():
            out.append((rel.as_posix(), text))
    if not out:
        raise EdgeMTPError(f"{root}: no Python standard-library sources found")
    return out


def doc_topics() -> dict[str, str]:
    """The interpreter's own documentation topics (`pydoc_data.topics`, what `help('with')` prints)."""
    from pydoc_data.topics import topics

    return dict(sorted(topics.items()))


def c_headers(root: Path | None = None) -> list[tuple[str, str]]:
    root = root or include_root()
    headers = [(p.relative_to(root).as_posix(), p.read_text(encoding="utf-8", errors="replace"))
               for p in sorted(root.rglob("*.h"))]
    if not headers:
        raise EdgeMTPError(f"{root}: no C headers found (the fine-tune scenario needs the interpreter's headers)")
    return headers


def functions(module: str, source: str) -> list[Function]:
    """Module- and class-level functions with a docstring and a moderate length."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    lines = source.splitlines()
    out = []
    bodies = [tree] + [n for n in tree.body if isinstance(n, ast.ClassDef)]
    for owner in bodies:
        for node in owner.body:
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or not ast.get_docstring(node):
                continue
            doc_node = node.body[0]
            start = min([node.lineno] + [d.lineno for d in node.decorator_list])
            src = textwrap.dedent("\n".join(lines[start - 1:node.end_lineno]))
            if not FUNCTION_CHARS[0] <= len(src) <= FUNCTION_CHARS[1]:
                continue
            head = textwrap.dedent("\n".join(lines[start - 1:doc_node.end_lineno]))
            keep = [line for i, line in enumerate(lines[start - 1:node.end_lineno], start)
                    if not doc_node.lineno <= i <= doc_node.end_lineno and not line.strip().startswith("#")]
            if len(keep) < 2:
                continue
            summary = ast.get_docstring(node).strip().splitlines()[0].strip()
            out.append(Function(module, node.name, f"{node.name}({ast.unparse(node.args)})", summary, src, head,
                                textwrap.dedent("\n".join(keep))))
    return out


def _pick(options: tuple[str, ...], key: str) -> str:
    return options[_hash(key) % len(options)]


def chat_turn(f: Function) -> str:
    return CHAT.format(_pick(ASK, f.module + f.name).format(sig=f.signature, doc=f.summary))


def rewrite_turn(f: Function) -> str:
    return CHAT.format(REWRITE.format(src=f.source)) + "```python\n"


def topic_name(key: str, text: str) -> str:
    return text.splitlines()[0].strip() if text.strip() else key


def python_corpus() -> dict[str, list[str]]:
    """Training documents per kind (held-out files and topics excluded)."""
    docs: dict[str, list[str]] = {"code": [], "chat": [], "rewrite": [], "docs": []}
    for rel, source in stdlib_modules():
        if heldout(rel):
            continue
        docs["code"].append(f"# {rel}\n{source.rstrip()}\n\n")
        for f in functions(rel, source):  # half the functions become chat turns, the other half rewrites
            if _hash(f.module + f.name) % 2 or len(f.source) > REWRITE_CHARS:
                docs["chat"].append(chat_turn(f) + f"```python\n{f.source}\n```" + END)
            else:
                docs["rewrite"].append(rewrite_turn(f) + f"{f.stripped}\n```" + END)
    for key, text in doc_topics().items():
        if heldout(key, "topic"):
            continue
        question = _pick(EXPLAIN, key).format(topic=topic_name(key, text))
        docs["docs"] += [text.rstrip() + "\n\n", CHAT.format(question) + text.strip()[:2000] + END] * 2
    return docs


def c_corpus() -> list[str]:
    return [f"/* {rel} */\n{text.rstrip()}\n\n" for rel, text in c_headers() if not heldout(rel, "header")]


def _cut_words(text: str, words: int) -> str:
    """`text` up to (and without) the whitespace after its first `words` words."""
    count, inside = 0, False
    for i, ch in enumerate(text):
        if ch.isspace():
            if inside:
                count += 1
                if count == words:
                    return text[:i]
            inside = False
        else:
            inside = True
    return text


def heldout_prompts(per_category: int = 8) -> dict[str, list[str]]:
    """Prompts of each category cut from held-out text only: code (a function's head: signature and
    docstring), rewrite, chat, free-form (a documentation topic's opening words), and c (a header's
    first lines, the fine-tune domain)."""
    held = [f for rel, source in stdlib_modules() if heldout(rel) for f in functions(rel, source)]
    held.sort(key=lambda f: _hash(f.module + f.name))
    short = [f for f in held[per_category:] if len(f.source) <= REWRITE_CHARS][:per_category]
    rest = [f for f in held[per_category:] if f not in short]
    prompts = {
        "code": [f.head + "\n" for f in held[:per_category]],
        "rewrite": [rewrite_turn(f) for f in short],
        "chat": [chat_turn(f) for f in rest[:per_category]],
        "free-form": [_cut_words(text.split("\n\n", 1)[-1].strip(), 12)
                      for key, text in doc_topics().items() if heldout(key, "topic")][:per_category],
    }
    headers = [(rel, text) for rel, text in c_headers() if heldout(rel, "header")]
    prompts["c"] = ["/* " + rel + " */\n" + "\n".join(text.strip().splitlines()[:12]) + "\n"
                    for rel, text in headers[:per_category]]
    return prompts


def manifest() -> dict:
    """Where the text came from, with a digest of each source, so a rebuild can tell if its corpus differs."""
    digest = hashlib.sha256()
    for rel, text in stdlib_modules():
        digest.update(rel.encode() + b"\0" + text.encode())
    topics = hashlib.sha256(repr(sorted(doc_topics().items())).encode()).hexdigest()
    headers = hashlib.sha256(b"".join(r.encode() + b"\0" + t.encode() for r, t in c_headers())).hexdigest()
    return {"python": sys.version.split()[0], "stdlib": digest.hexdigest(), "doc_topics": topics,
            "c_headers": headers, "holdout": HOLDOUT}
