#!/usr/bin/env python3
"""tools/check_tree.py against small trees with one known fault each, then against this tree."""
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
CHECK = os.path.join(ROOT, "tools", "check_tree.py")


def run(tree):
    p = subprocess.run([sys.executable, CHECK, tree], capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr


def make(files):
    d = tempfile.mkdtemp(prefix="check_tree_")
    for path, text in files.items():
        full = os.path.join(d, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as f:
            f.write(text)
    return d


def body(lines):
    return "int F(int x) {\n" + "".join(f"  x += {i};\n" for i in range(lines - 2)) + "}\n"


def main():
    clean = {
        "common/a.h": "#pragma once\nint A();\n",
        "common/a.cc": '#include "common/a.h"\nint A() { return 1; }\n',
        "io/b.h": '#pragma once\n#include "common/a.h"\n',
        "io/b.cc": '#include "io/b.h"\n' + body(80),
        "tests/io/b_test.cc": '#include "launch/x.h"\n' + body(200),  # tests may include and run long
        "train/c.h": "#pragma once\n",
        "train/c.cc": '#include "train/c.h"\nstruct S {\n  S() : v_{1}, w_(2) {\n    int k = 0;\n  }\n  int v_, w_;\n};\n',
    }
    cases = [
        ("clean", {}, 0, "no upward include"),
        ("upward include", {"io/b.h": '#pragma once\n#include "serve/recommender.h"\n'}, 1,
         "room io includes serve/recommender.h of the higher room serve"),
        ("cycle", {"train/d.h": '#pragma once\n#include "train/c.h"\n',
                   "train/c.cc": '#include "train/c.h"\n#include "train/d.h"\n',
                   "train/d.cc": '#include "train/d.h"\n',
                   "train/c.h": '#pragma once\n#include "train/e.h"\n',
                   "train/e.h": '#pragma once\n#include "train/d.h"\n'}, 1, "include cycle inside room train"),
        ("long function", {"io/b.cc": '#include "io/b.h"\n' + body(81)}, 1, "function F has 81 lines (at most 80)"),
        ("long method in a class", {"model/m.h": "#pragma once\nclass M {\n public:\n  " + body(90).replace("\n", "\n  ") + "};\n"},
         1, "function F has 90 lines"),
        ("long operator", {"io/b.cc": '#include "io/b.h"\n' + body(85).replace("int F(int x)", "bool operator==(const B& x)")},
         1, "has 85 lines"),
        ("long launch function", {"launch/cmd.cc": body(61)}, 1, "function F has 61 lines (at most 60)"),
        ("launch at 60", {"launch/cmd.cc": body(60)}, 0, "no upward include"),
        ("fat launch", {"launch/flags.def": "X(a);\n" * 1700, "launch/cmd.cc": body(60) * 2}, 1,
         "launch: 1820 lines of C++ (at most 1800)"),
        ("unparsable Python", {"tools/u.py": "def f(:\n"}, 1, "cannot be parsed as Python"),
        ("long Python function", {"tools/t.py": "def f():\n" + "".join(f"    x = {i}\n" for i in range(85))}, 1,
         "function f has 86 lines"),
    ]
    failed = 0
    for name, change, want_rc, want_text in cases:
        tree = make({**clean, **change})
        rc, out = run(tree)
        shutil.rmtree(tree)
        ok = rc == want_rc and want_text in out
        failed += not ok
        print(f"{'ok' if ok else 'FAILED'}: {name}: exit {rc}" + ("" if ok else f", expected {want_rc} and {want_text!r}:\n{out}"))
    rc, out = run(ROOT)
    print(out.strip())
    if rc != 0:
        failed += 1
        print("FAILED: this tree breaks the rules above")
    if failed:
        return 1
    print(f"check_tree: {len(cases)} planted faults found, this tree clean")
    return 0


if __name__ == "__main__":
    sys.exit(main())
