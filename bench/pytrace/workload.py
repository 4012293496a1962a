"""The real CPython workload whose allocations bench/pytrace records.

Run by the machine's /usr/bin/python3 with PYTHONMALLOC=malloc and
PYTHONHASHSEED=0 under the shb_tracer preload (bench/pytrace/CMakeLists.txt).
Deterministic: fixed seeds, only the standard library, no threads, no
subprocesses, no files written. Three parts, each a common interpreter job:

  json     build a nested document (records of strings, ints, floats, lists,
           dicts), dump it to text, parse it back, dump again with indentation
  compile  compile the source of some standard-library modules to code
           objects (tokenizer, parser, AST, compiler), as an import does
  regex    compile a few patterns and run findall/sub/split over generated
           text
"""
import json
import random
import re
import sys

SCALE = int(sys.argv[1]) if len(sys.argv) > 1 else 1


def part_json(rng):
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta",
             "iota", "kappa", "lambda", "mu", "nu", "xi", "omicron", "pi"]
    doc = []
    for i in range(2500 * SCALE):
        doc.append({
            "id": i,
            "name": " ".join(rng.choice(words) for _ in range(rng.randint(1, 4))),
            "score": rng.random() * 1000,
            "tags": [rng.choice(words) for _ in range(rng.randint(0, 6))],
            "pos": {"x": rng.randint(-10**6, 10**6), "y": rng.randint(-10**6, 10**6)},
            "active": rng.random() < 0.5,
            "note": None if rng.random() < 0.7 else "n%08x" % rng.getrandbits(32),
        })
    text = json.dumps(doc)
    back = json.loads(text)
    pretty = json.dumps(back, indent=2, sort_keys=True)
    again = json.loads(pretty)
    assert again == doc
    return len(text) + len(pretty)


def part_compile():
    import argparse, ast, calendar, difflib, email.message, inspect, pydoc, typing
    total = 0
    for mod in (argparse, ast, calendar, difflib, email.message, inspect, pydoc, typing):
        with open(mod.__file__, encoding="utf-8") as f:
            src = f.read()
        for _ in range(SCALE):
            code = compile(src, mod.__file__, "exec")
            total += len(code.co_consts)
    return total


def part_regex(rng):
    letters = "abcdefghijklmnopqrstuvwxyz"
    lines = []
    for i in range(10000 * SCALE):
        w = "".join(rng.choice(letters) for _ in range(rng.randint(3, 12)))
        lines.append(f"{i:06d} {w}@example{i % 97}.org value={rng.randint(0, 10**6)} {w.upper()}")
    text = "\n".join(lines)
    email = re.compile(r"([a-z]+)@(example\d+)\.org")
    kv = re.compile(r"(\w+)=(\d+)")
    n = len(email.findall(text))
    n += sum(int(v) % 7 for _, v in kv.findall(text))
    text2 = email.sub(lambda m: m.group(2) + ":" + m.group(1)[::-1], text)
    n += len(re.split(r"\s+", text2))
    n += len(re.findall(r"\b[A-Z]{5,}\b", text2))
    return n


def main():
    rng = random.Random(0x5EED0004)
    print("json", part_json(rng), "compile", part_compile(), "regex", part_regex(rng))


if __name__ == "__main__":
    main()
