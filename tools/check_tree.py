#!/usr/bin/env python3
"""Reads the source tree and fails when its structure breaks the rules of docs/architecture.md.

  python3 tools/check_tree.py [ROOT] [--max-function-lines 80]

Rules:
  1. Rooms are ordered, lowest first (ROOMS below). A file of a room includes headers of its own room
     and of rooms below it only ("room/x.h"); tests/ and bench/ may include any room.
  2. Within a room, no two units include each other, directly or through a cycle (a unit is x.h with
     x.cc / x.cu: the .cc's includes count as the unit's).
  3. No function outside tests/ and bench/ passes --max-function-lines lines, from the line its
     signature starts to its closing brace (C++ and Python).
  4. launch/ stays a thin front door: its C++ sources (.h, .cc, .def, .in) hold at most
     LAUNCH_MAX_LINES lines in all, and none of its functions passes LAUNCH_MAX_FUNCTION_LINES.
Prints one line per violation (file:line: what) and exits 1 if there is any, else prints a summary
and exits 0.
"""
import argparse
import ast
import os
import re
import sys

# Lowest first: a room includes only itself and the rooms before it.
ROOMS = ["common", "io", "distributed", "sharding", "retrieval", "model", "eval", "train", "serve",
         "launch"]
CXX_EXT = (".h", ".cc", ".cu", ".cuh")
LAUNCH_MAX_LINES = 1800
LAUNCH_MAX_FUNCTION_LINES = 60
LAUNCH_EXT = (".h", ".cc", ".def", ".in")
EXEMPT_FUNCTION_DIRS = ("tests", "bench")
INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def strip_cxx(text):
    """Returns text with comments, string and character literals blanked (newlines kept)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "R" and text.startswith('R"', i) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'R"([^(\s]{0,16})\(', text[i:])
            if not m:
                out.append(c)
                i += 1
                continue
            end = text.find(")" + m.group(1) + '"', i + m.end())
            end = n if end < 0 else end + len(m.group(1)) + 2
            out.append(re.sub(r"[^\n]", " ", text[i:end]))
            i = end
        elif c == '"' or (c == "'" and not (i > 0 and text[i - 1].isalnum())):
            # A character literal; a digit separator (1'000) is preceded by a digit and skipped above.
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def line_of(text, pos):
    return text.count("\n", 0, pos) + 1


CLASS_RE = re.compile(r"^\s*(template\s*<.*>\s*)?(class|struct|union|enum)\b", re.S)
ACCESS_RE = re.compile(r"^(\s*(public|private|protected)\s*:(?!:))+")
NAMESPACE_RE = re.compile(r"^\s*(inline\s+)?namespace\b|^\s*extern\s+\"", re.S)


def cxx_functions(text):
    """Yields (name, first_line, last_line) of every function body at namespace or class scope."""
    s = strip_cxx(text)
    s = re.sub(r"^\s*#.*$", lambda m: " " * len(m.group(0)), s, flags=re.M)  # preprocessor lines
    yield from _scan_scope(s, 0, len(s))


def _scan_scope(s, begin, end):
    """Scans s[begin:end] (a namespace or class body) for top-level blocks."""
    i = begin
    stmt_start = begin
    while i < end:
        c = s[i]
        if c in ";}":
            stmt_start = i + 1
            i += 1
            continue
        if c != "{":
            i += 1
            continue
        head = s[stmt_start:i]
        close = _match(s, i)
        if NAMESPACE_RE.match(head) or head.strip().startswith("extern"):
            yield from _scan_scope(s, i + 1, close)
        elif CLASS_RE.match(head):
            if not re.match(r"^\s*enum\b", head):
                yield from _scan_scope(s, i + 1, close)
        elif "(" in head and ("=" not in head.split("(")[0] or re.search(r"\boperator\b", head)):
            if _in_init_list(head) and re.search(r"[\w>]$", head.rstrip()):
                i = close + 1  # a member's brace initialiser (y_{b}) inside a constructor's list
                continue
            label = ACCESS_RE.match(head)  # "public:" before a member function
            first = stmt_start + (label.end() if label else 0)
            body_head = s[first:i]
            name = re.findall(r"([~\w:]+(?:operator\s*\S+)?)\s*\(", body_head)
            yield (name[0] if name else "?", line_of(s, first + len(body_head) - len(body_head.lstrip())), line_of(s, close))
        i = close + 1
        stmt_start = i


def _in_init_list(head):
    return re.search(r"\)\s*(const\s*)?(noexcept\s*)?:\s*\w", head) is not None


def _match(s, i):
    depth = 0
    for j in range(i, len(s)):
        if s[j] == "{":
            depth += 1
        elif s[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    return len(s) - 1


def python_functions(text, path):
    tree = ast.parse(text, filename=path)  # a SyntaxError is reported by the caller
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield (node.name, node.lineno, node.end_lineno)


def source_files(root):
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        parts = rel.split(os.sep)
        if parts[0].startswith(".") and rel != "." or parts[0].startswith("build") or "corpus" in parts:
            dirnames[:] = []
            continue
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and not d.startswith("build")]
        for f in sorted(filenames):
            yield os.path.normpath(os.path.join(rel, f))


def check(root, max_lines):
    problems = []
    files = list(source_files(root))
    room_rank = {r: k for k, r in enumerate(ROOMS)}
    includes = {}
    for rel in files:
        if not rel.endswith(CXX_EXT):
            continue
        with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as f:
            text = f.read()
        includes[rel] = [(inc, line_of(text, m.start())) for m in INCLUDE_RE.finditer(text)
                         for inc in [m.group(1)]]
        top = rel.split(os.sep)[0]
        # Rule 1: rooms include only rooms below them.
        if top in room_rank:
            for inc, ln in includes[rel]:
                dep = inc.split("/")[0]
                if dep in room_rank and room_rank[dep] > room_rank[top]:
                    problems.append(f"{rel}:{ln}: room {top} includes {inc} of the higher room {dep}")
        # Rule 3 (and 4 in launch/): function length.
        if top not in EXEMPT_FUNCTION_DIRS:
            limit = min(max_lines, LAUNCH_MAX_FUNCTION_LINES) if top == "launch" else max_lines
            for name, a, b in cxx_functions(text):
                if b - a + 1 > limit:
                    problems.append(f"{rel}:{a}: function {name} has {b - a + 1} lines (at most {limit})")
    for rel in files:
        top = rel.split(os.sep)[0]
        if rel.endswith(".py") and top not in EXEMPT_FUNCTION_DIRS:
            with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as f:
                text = f.read()
            try:
                functions = list(python_functions(text, rel))
            except SyntaxError as e:
                problems.append(f"{rel}:{e.lineno}: cannot be parsed as Python ({e.msg}), so its functions are unchecked")
                functions = []
            for name, a, b in functions:
                if b - a + 1 > max_lines:
                    problems.append(f"{rel}:{a}: function {name} has {b - a + 1} lines (at most {max_lines})")
    # Rule 4: the size of launch/.
    launch_lines = 0
    for rel in files:
        if rel.split(os.sep)[0] == "launch" and rel.endswith(LAUNCH_EXT):
            with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as f:
                launch_lines += sum(1 for _ in f)
    if launch_lines > LAUNCH_MAX_LINES:
        problems.append(f"launch: {launch_lines} lines of C++ (at most {LAUNCH_MAX_LINES}): move what a second front "
                        "door would need below it")
    # Rule 2: no include cycle between the units of one room.
    units = {}
    for rel, incs in includes.items():
        top = rel.split(os.sep)[0]
        if top not in room_rank:
            continue
        unit = os.path.splitext(rel)[0]
        for inc, _ in incs:
            dep = os.path.splitext(inc)[0]
            if inc.split("/")[0] == top and dep != unit.replace(os.sep, "/"):
                units.setdefault(unit.replace(os.sep, "/"), set()).add(dep)
    problems += [f"{cycle[0]}: include cycle inside room {cycle[0].split('/')[0]}: " + " -> ".join(cycle)
                 for cycle in find_cycles(units)]
    return problems, len(files)


def find_cycles(graph):
    """One cycle per strongly connected component of more than one unit (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp) + [sorted(comp)[0]])

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", nargs="?", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    ap.add_argument("--max-function-lines", type=int, default=80)
    args = ap.parse_args()
    problems, n = check(os.path.abspath(args.root), args.max_function_lines)
    for p in problems:
        print(p)
    if problems:
        print(f"check_tree: {len(problems)} problem(s) in {n} files")
        return 1
    print(f"check_tree: {n} files, rooms {' < '.join(ROOMS)}: no upward include, no cycle inside a room, "
          f"no function over {args.max_function_lines} lines (launch/: {LAUNCH_MAX_FUNCTION_LINES}), launch/ within "
          f"{LAUNCH_MAX_LINES} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
