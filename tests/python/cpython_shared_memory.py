"""Run CPython's own shared-memory tests against sharena.ShareableList.

    /usr/bin/python3 tests/python/cpython_shared_memory.py [fork|spawn|forkserver]

The tests are class _TestSharedMemory of Lib/test/_test_multiprocessing.py,
as Debian's libpython3.11-testsuite installs it (/usr/lib/python3.11/test/);
they are read from there, never copied. Before they run,
multiprocessing.shared_memory.ShareableList is replaced by
sharena.ShareableList:

  - in this process, when this file is imported;
  - in every multiprocessing child: spawn and forkserver children import this
    file again as __mp_main__ (forkserver preloads it), fork children inherit
    the replacement;
  - in the fresh interpreters the tests start with
    test.support.script_helper (`python -I -c CODE`): CODE is prefixed with
    the same replacement.

The few assertions that check a limitation of the stdlib's ShareableList
which sharena's does not have are turned into assertions of sharena's
behaviour (see STDLIB_LIMITS and docs/python.md). Exit status 0 when every
test passes.
"""
import ast
import inspect
import os
import sys
import textwrap
import unittest

import sharena
import multiprocessing.shared_memory as shared_memory

shared_memory.ShareableList = sharena.ShareableList

import test.support.script_helper as script_helper  # noqa: E402
import test._test_multiprocessing as tmp  # noqa: E402

_SHARENA_DIR = os.path.dirname(os.path.dirname(os.path.abspath(sharena.__file__)))
_PREFIX = (
    "import sys; sys.path.insert(0, %r); import sharena, multiprocessing.shared_memory as _shr_sm; "
    "_shr_sm.ShareableList = sharena.ShareableList\n" % _SHARENA_DIR
)


def _with_substitution(fn):
    def wrapper(*args, **kw):
        args = list(args)
        if len(args) >= 2 and args[0] == "-c":
            args[1] = _PREFIX + args[1]
        return fn(*args, **kw)
    wrapper.__wrapped__ = fn
    return wrapper


if not hasattr(script_helper.assert_python_ok, "__wrapped__"):
    script_helper.assert_python_ok = _with_substitution(script_helper.assert_python_ok)
    script_helper.assert_python_failure = _with_substitution(script_helper.assert_python_failure)

# Assertions of stdlib limitations: (test, the regex its assertRaisesRegex
# expects). Each such `with self.assertRaisesRegex(ValueError, REGEX):
# sl[i] = v` block becomes: the value is stored and reads back equal, then
# the old value is put back so that the rest of the test runs as written.
STDLIB_LIMITS = {
    "test_shared_memory_ShareableList_basics": "exceeds available storage",
}


class _InvertLimit(ast.NodeTransformer):
    def __init__(self, regex):
        self.regex = regex
        self.count = 0

    def visit_With(self, node):
        self.generic_visit(node)
        if len(node.items) != 1 or len(node.body) != 1:
            return node
        call = node.items[0].context_expr
        ok = (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Attribute)
            and call.func.attr == "assertRaisesRegex"
            and len(call.args) == 2
            and isinstance(call.args[1], ast.Constant)
            and call.args[1].value == self.regex
        )
        body = node.body[0]
        if not ok or not isinstance(body, ast.Assign) or len(body.targets) != 1:
            return node
        target = body.targets[0]
        if not isinstance(target, ast.Subscript):
            return node
        self.count += 1
        seq, index = ast.unparse(target.value), ast.unparse(target.slice)
        value = ast.unparse(body.value)
        code = textwrap.dedent(f"""\
            _shr_old = {seq}[{index}]
            {seq}[{index}] = {value}
            self.assertEqual({seq}[{index}], {value})
            {seq}[{index}] = _shr_old
            """)
        new = ast.parse(code).body
        for n in new:
            ast.copy_location(n, node)
            ast.fix_missing_locations(n)
        return new


def _invert_limits(cls):
    for name, regex in STDLIB_LIMITS.items():
        fn = getattr(cls, name)
        src = textwrap.dedent(inspect.getsource(fn))
        tree = ast.parse(src)
        tr = _InvertLimit(regex)
        tree = ast.fix_missing_locations(tr.visit(tree))
        if tr.count == 0:
            raise RuntimeError(f"{name}: no assertion {regex!r} found; the tests changed")
        ns = {}
        exec(compile(tree, inspect.getsourcefile(fn), "exec"), vars(tmp), ns)
        setattr(cls, name, ns[name])
        cls._shr_inverted = getattr(cls, "_shr_inverted", 0) + tr.count


if not hasattr(tmp._TestSharedMemory, "_shr_inverted"):
    _invert_limits(tmp._TestSharedMemory)

if __name__ == "__main__" and len(sys.argv) > 1:
    os.environ["SHR_START_METHOD"] = sys.argv[1]
START_METHOD = os.environ.get("SHR_START_METHOD", "fork")
tmp.install_tests_in_module_dict(globals(), START_METHOD)

if __name__ == "__main__":
    tmp.PRELOAD = ["__main__"]
    print(f"sharena: CPython's _TestSharedMemory, start method {START_METHOD}, "
          f"ShareableList = {shared_memory.ShareableList.__module__}.ShareableList, "
          f"{tmp._TestSharedMemory._shr_inverted} stdlib-limit assertions inverted", flush=True)
    unittest.main(defaultTest="WithProcessesTestSharedMemory", argv=[sys.argv[0], "-v"])
