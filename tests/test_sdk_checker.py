"""The static checker: one compile-time refusal per construct filters cannot use, each with its exact
``file:line:col: message (hint: ...)`` line, and what the checker accepts (narrowing, loops, helpers).
"""

from __future__ import annotations

import pytest

from meshfilter.sdk import ir
from meshfilter.sdk.checker import FilterSourceError, check_source

HEAD = ("from meshfilter.sdk import HttpFilter, Request, Response\n\n\nclass Canary(HttpFilter):\n"
        "    def on_request_headers(self, request: Request) -> None:\n")

# (construct, method body after HEAD (or a whole file), the exact refusal)
REFUSALS: list[tuple[str, str, str]] = [
    ('while',
     '        while True:\n            pass\n',
     'canary.py:6:9: while loops are not supported in filters (hint: loop over a list with for)'),
    ('for-else',
     "        for x in ['a']:\n            pass\n        else:\n            pass\n",
     'canary.py:9:13: for ... else is not supported in filters (hint: use a flag variable)'),
    ('try',
     '        try:\n            pass\n        except ValueError:\n            pass\n',
     'canary.py:6:9: exceptions are not supported in filters (hint: check values with if instead)'),
    ('raise',
     "        raise ValueError('x')\n",
     'canary.py:6:9: exceptions are not supported in filters (hint: log with self.log.error() and r'
     'eturn)'),
    ('with',
     "        with open('f') as f:\n            pass\n",
     'canary.py:6:9: with statements are not supported in filters (hint: filters have no resources '
     'to manage)'),
    ('assert',
     '        assert request.path\n',
     'canary.py:6:9: assert is not supported in filters (hint: check with if and log with self.log.'
     'error())'),
    ('del',
     '        x = 1\n        del x\n',
     'canary.py:7:9: del is not supported in filters (hint: assign a new value instead)'),
    ('global',
     '        global X\n',
     'canary.py:6:9: globals that change are not supported in filters (hint: use a local variable)'),
    ('nonlocal-nested-def',
     '        def inner() -> None:\n            pass\n',
     'canary.py:6:9: nested functions are not supported in filters (hint: make it a method of the f'
     'ilter class)'),
    ('import-in-method',
     '        import os\n',
     'canary.py:6:9: imports other than meshfilter.sdk are not supported in filters (hint: import a'
     't the top of the file, from meshfilter.sdk)'),
    ('lambda',
     '        f = lambda: 1\n',
     'canary.py:6:13: lambda is not supported in filters (hint: write a helper method)'),
    ('comprehension',
     "        xs = [x for x in ['a']]\n",
     'canary.py:6:14: comprehensions are not supported in filters (hint: use a for loop)'),
    ('dict',
     "        d = {'a': 'b'}\n",
     'canary.py:6:13: dicts are not supported in filters (hint: use if/elif, or a Config field per '
     'value)'),
    ('set',
     "        s = {'a'}\n",
     'canary.py:6:13: sets are not supported in filters (hint: use a list of string literals)'),
    ('subscript',
     '        x = request.path[1:]\n',
     'canary.py:6:13: indexing and slicing are not supported in filters (hint: use startswith/endsw'
     'ith, or loop over a list with for)'),
    ('ifexp',
     "        x = 'a' if request.path else 'b'\n",
     'canary.py:6:13: conditional expressions (x if c else y) are not supported in filters (hint: u'
     'se an if statement)'),
    ('walrus',
     '        if (n := len(request.path)) > 1:\n            pass\n',
     'canary.py:6:13: the := operator is not supported in filters (hint: assign on its own line)'),
    ('float',
     '        x = 1.5\n',
     'canary.py:6:13: float values are not supported in filters (hint: use int)'),
    ('bytes',
     "        x = b'a'\n",
     'canary.py:6:13: bytes literals are not supported in filters (hint: use str)'),
    ('big-int',
     '        x = 9007199254740992\n',
     'canary.py:6:13: int literals beyond 2**53 - 1 are not supported in filters (hint: ints are ex'
     'act up to 9007199254740991)'),
    ('non-ascii',
     "        x = 'café'\n",
     'canary.py:6:13: non-ASCII text in a string literal is not supported in filters (hint: header '
     'bytes are compared one by one; put such text in the Config)'),
    ('mult',
     '        x = len(request.path) * 2\n',
     'canary.py:6:13: the * operator is not supported in filters (hint: use + or - (str concatenati'
     'on, int arithmetic))'),
    ('chained',
     '        if 1 < len(request.path) < 5:\n            pass\n',
     'canary.py:6:12: chained comparisons are not supported in filters (hint: write a < b and b < c'
     ')'),
    ('is-not-none',
     "        if request.path is 'a':\n            pass\n",
     'canary.py:6:12: `is` is only supported with None (hint: compare values with ==)'),
    ('eq-none',
     "        ua = request.headers.get('user-agent')\n        if ua == None:\n            pass\n",
     'canary.py:7:12: compare with None using `is None` (hint: write x is None)'),
    ('optional-method',
     "        ua = request.headers.get('user-agent')\n        request.headers.set('x-a', ua.lower()"
     ')\n',
     'canary.py:7:36: `.lower()` on a value that may be None (hint: check `ua is not None` first)'),
    ('optional-in',
     "        ua = request.headers.get('user-agent')\n        if 'x' in ua:\n            pass\n",
     'canary.py:7:19: `in` on a value that may be None (hint: check `ua is not None` first)'),
    ('optional-len',
     "        ua = request.headers.get('user-agent')\n        n = len(ua)\n",
     'canary.py:7:17: len() of a value that may be None (hint: check `ua is not None` first)'),
    ('optional-arg',
     "        ua = request.headers.get('user-agent')\n        request.headers.set('x-a', ua)\n",
     'canary.py:7:36: headers.set() takes a str, but this value may be None (hint: check `ua is not'
     ' None` first)'),
    ('str-plus-int',
     "        x = 'n=' + len(request.path)\n",
     'canary.py:6:13: cannot add str and int (hint: use str(n) or an f-string)'),
    ('fstring-spec',
     "        x = f'{len(request.path):>5}'\n",
     'canary.py:6:13: format specs and conversions in f-strings are not supported in filters (hint:'
     ' write {value} only)'),
    ('unknown-method',
     "        x = request.path.split('/')\n",
     'canary.py:6:13: str.split() is not supported in filters (hint: str has startswith, endswith, '
     'removeprefix, removesuffix, lower, upper and strip)'),
    ('print',
     '        print(request.path)\n',
     'canary.py:6:9: print() is not supported in filters (hint: filters can call len(), str(), stri'
     'ng methods and their own helpers)'),
    ('unknown-name',
     '        x = undefined_name\n',
     'canary.py:6:13: unknown name undefined_name (hint: define it as a module-level constant or a '
     'local variable)'),
    ('maybe-unassigned',
     "        if request.path == '/':\n            y = 'a'\n        request.headers.set('x-a', y)\n",
     'canary.py:8:36: y may be used before it is assigned (hint: assign it on every path first)'),
    ('self-attr',
     '        self.count = 1\n',
     'canary.py:6:9: assigning to self.count is not supported in filters (hint: filters keep no sta'
     'te between calls; use a local variable)'),
    ('request-attr',
     "        request.path = '/x'\n",
     'canary.py:6:9: assigning to request.path is not supported in filters (hint: request and respo'
     'nse fields are read only; change headers with headers.set())'),
    ('bad-header-name',
     "        request.headers.set('x bad', 'v')\n",
     "canary.py:6:29: 'x bad' is not a valid HTTP header name (hint: use letters, digits and !#$%&'"
     '*+-.^_`|~ only (pseudo-headers are read through request.path, request.method ...))'),
    ('respond-not-last',
     "        request.respond(403)\n        request.headers.set('x-a', 'b')\n",
     'canary.py:6:9: request.respond() must be the last thing the callback does (hint: put return r'
     'ight after it)'),
    ('respond-status',
     '        request.respond(99)\n',
     'canary.py:6:25: status 99 is not in 200..599 (hint: use a status such as 403)'),
    ('respond-dict-var',
     "        h = 'x'\n        request.respond(403, headers=h)\n",
     'canary.py:7:38: respond() takes headers as a dict literal (hint: write headers={"location": u'
     'rl})'),
    ('or-value',
     "        x = request.headers.get('a') or 'b'\n",
     'canary.py:6:13: `or` on str | None values is only supported in conditions (hint: write an if '
     'statement that assigns the value)'),
    ('loop-growth',
     "        n = 1\n        for k in ['a', 'b']:\n            n = n + n\n",
     'canary.py:8:13: n may grow without bound in this loop (hint: inside a loop, step an int by a '
     'value that does not change in the loop: n = n + 1)'),
    ('int-bound',
     '        n = 4503599627370496\n        m = n + n + n\n',
     'canary.py:7:13: this int may exceed 2**53 - 1 (hint: ints are exact up to 9007199254740991; k'
     'eep sums small)'),
    ('keyword-call',
     "        self.helper(x='a')\n    def helper(self, x: str) -> None:\n        pass\n",
     'canary.py:6:21: keyword arguments are not supported here (hint: pass the arguments in order)'),
    ('recursion',
     "        self.walk('a')\n    def walk(self, x: str) -> None:\n        self.walk(x)\n",
     'canary.py:8:9: recursion is not supported in filters: walk calls itself (hint: rewrite it wit'
     'h a for loop)'),
    ('mutual-recursion',
     "        self.ping('a')\n    def ping(self, x: str) -> None:\n        self.pong(x)\n    def po"
     'ng(self, x: str) -> None:\n        self.ping(x)\n',
     'canary.py:10:9: recursion is not supported in filters: ping -> pong -> ping (hint: rewrite it'
     ' with a for loop)'),
    ('helper-annotation',
     "        self.h('a')\n    def h(self, x) -> None:\n        pass\n",
     'canary.py:7:17: parameter x of helper h needs a type annotation (hint: write x: str (or int, '
     'bool, str | None, list[str], Request, Response))'),
    ('helper-missing-return',
     "        self.h('a')\n    def h(self, x: str) -> str:\n        if x:\n            return x\n",
     'canary.py:7:5: helper h can reach its end without returning a str (hint: add a return at the '
     'end)'),
    ('yield',
     '        yield 1\n',
     'canary.py:6:9: generators are not supported in filters (hint: return a value)'),
    ('callback-args',
     '        pass\n    def on_response_headers(self, response: Response, extra: str) -> None:\n   '
     '     pass\n',
     'canary.py:7:5: on_response_headers takes one parameter besides self (hint: write def on_respo'
     'nse_headers(self, response: Response) -> None:)'),
    ('unknown-callback',
     '        pass\n    def on_request_body(self, request: Request) -> None:\n        pass\n',
     'canary.py:7:5: on_request_body is not a callback filters can define (hint: callbacks are on_r'
     'equest_headers and on_response_headers; other methods are helpers (give them a name not start'
     'ing with on_ or __))'),
    ('init',
     '        pass\n    def __init__(self) -> None:\n        pass\n',
     'canary.py:7:5: __init__ is not supported in filters (hint: the configuration comes from Confi'
     'g, and filters keep no state)'),
    ('decorator',
     '        pass\n    @staticmethod\n    def h() -> None:\n        pass\n',
     'canary.py:7:6: decorators are not supported in filters (hint: remove the decorator)'),
    ('async',
     '        pass\n    async def h(self) -> None:\n        pass\n',
     'canary.py:7:5: async code is not supported in filters (hint: filters are synchronous)'),
    ('nested-class',
     '        pass\n    class Other:\n        pass\n',
     'canary.py:7:5: classes other than Config are not supported in filters (hint: the only nested '
     'class is Config)'),
    ('call-callback',
     '        self.on_request_headers(request)\n',
     'canary.py:6:9: on_request_headers is a callback and cannot be called (hint: move the shared c'
     'ode into a helper)'),
    ('tuple-startswith',
     "        if request.path.startswith(('a', 'b')):\n            pass\n",
     'canary.py:6:36: startswith() with a tuple is not supported in filters (hint: write a.startswi'
     'th(x) or a.startswith(y))'),
    ('module-import',
     'import os\nfrom meshfilter.sdk import HttpFilter, Request\n\n\nclass Canary(HttpFilter):\n   '
     ' def on_request_headers(self, request: Request) -> None:\n        pass\n',
     'canary.py:1:1: imports other than meshfilter.sdk are not supported in filters (hint: write: f'
     'rom meshfilter.sdk import HttpFilter, Request, Response)'),
    ('module-class',
     'from meshfilter.sdk import HttpFilter, Request\n\n\nclass Helper:\n    pass\n\n\nclass Canary'
     '(HttpFilter):\n    def on_request_headers(self, request: Request) -> None:\n        pass\n',
     'canary.py:4:1: classes other than Config are not supported in filters (hint: Helper must subc'
     "lass HttpFilter, or be the filter's nested class Config)"),
    ('module-function',
     'from meshfilter.sdk import HttpFilter, Request\n\n\ndef helper() -> None:\n    pass\n\n\nclas'
     's Canary(HttpFilter):\n    def on_request_headers(self, request: Request) -> None:\n        p'
     'ass\n',
     'canary.py:4:1: module-level functions are not supported in filters (hint: make it a method of'
     ' the filter class (a helper))'),
    ('changing-global',
     'from meshfilter.sdk import HttpFilter, Request\n\nLIMIT = 1\nLIMIT = 2\n\n\nclass Canary(Http'
     'Filter):\n    def on_request_headers(self, request: Request) -> None:\n        pass\n',
     'canary.py:4:1: module-level name LIMIT is assigned more than once; filters only read constant'
     's (hint: assign each module-level constant once)'),
    ('non-constant-global',
     'from meshfilter.sdk import HttpFilter, Request\n\nNAMES = list()\n\n\nclass Canary(HttpFilter'
     '):\n    def on_request_headers(self, request: Request) -> None:\n        pass\n',
     'canary.py:3:9: module-level names must be constants (str, int, bool or a list of str literals'
     ') (hint: compute it inside a method instead)'),
    ('config-float',
     'from meshfilter.sdk import HttpFilter, Request\n\n\nclass Canary(HttpFilter):\n    class Conf'
     'ig:\n        ratio: float = 0.5\n\n    def on_request_headers(self, request: Request) -> None'
     ':\n        pass\n',
     'canary.py:6:16: float values are not supported in filters (hint: use int)'),
    ('config-dict',
     'from meshfilter.sdk import HttpFilter, Request\n\n\nclass Canary(HttpFilter):\n    class Conf'
     'ig:\n        table: dict[str, str]\n\n    def on_request_headers(self, request: Request) -> N'
     'one:\n        pass\n',
     'canary.py:6:16: dicts are not supported in filters (hint: use several fields, or a list[str])'),
    ('config-optional',
     'from meshfilter.sdk import HttpFilter, Request\n\n\nclass Canary(HttpFilter):\n    class Conf'
     'ig:\n        header: str | None = None\n\n    def on_request_headers(self, request: Request) '
     '-> None:\n        pass\n',
     'canary.py:6:17: Config field type str | None is not supported (hint: use str, int, bool, list'
     '[str], HeaderName or HeaderValue)'),
    ('config-unknown-field',
     'from meshfilter.sdk import HttpFilter, Request\n\n\nclass Canary(HttpFilter):\n    class Conf'
     'ig:\n        header: str\n\n    def on_request_headers(self, request: Request) -> None:\n    '
     "    request.headers.set(self.config.heder, 'x')\n",
     'canary.py:9:29: Config has no field heder (hint: fields: header)'),
    ('config-bad-default',
     'from meshfilter.sdk import HeaderName, HttpFilter, Request\n\n\nclass Canary(HttpFilter):\n  '
     "  class Config:\n        header: HeaderName = 'not a name'\n\n    def on_request_headers(self"
     ', request: Request) -> None:\n        pass\n',
     'canary.py:6:30: the default of header is not a valid HTTP header name (hint: use letters, dig'
     "its and !#$%&'*+-.^_`|~ only)"),
    ('class-attribute',
     'from meshfilter.sdk import HttpFilter, Request\n\n\nclass Canary(HttpFilter):\n    counter = '
     '0\n\n    def on_request_headers(self, request: Request) -> None:\n        pass\n',
     'canary.py:5:5: class attributes other than root_id are not supported in filters (hint: put se'
     'ttings in the Config, constants at module level)'),
    ('root-id-not-literal',
     "from meshfilter.sdk import HttpFilter, Request\n\nNAME = 'x'\n\n\nclass Canary(HttpFilter):\n"
     '    root_id = NAME\n\n    def on_request_headers(self, request: Request) -> None:\n        pa'
     'ss\n',
     'canary.py:7:15: root_id must be a string literal (hint: write root_id = "my_filter")'),
]

@pytest.mark.parametrize(("construct", "source", "expected"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refused_at_compile_time_with_the_exact_line(construct: str, source: str, expected: str) -> None:
    text = HEAD + source if source.startswith("        ") else source
    with pytest.raises(FilterSourceError) as err:
        check_source(text, "canary.py")
    assert err.value.line() == expected
    line, col = err.value.pos
    assert expected.startswith(f"canary.py:{line}:{col}: ")
    assert 1 <= line <= text.count("\n") and 1 <= col <= len(text.splitlines()[line - 1]) + 1


def test_non_ascii_names_are_refused() -> None:
    with pytest.raises(FilterSourceError) as err:
        check_source(HEAD + "        caf\u00e9 = 'x'\n", "canary.py")
    assert err.value.line() == ("canary.py:6:9: non-ASCII names are not supported in filters: caf\u00e9 (hint: rename "
                                "it with ASCII letters, digits and _)")


def test_refusal_is_a_usage_error_on_the_command_line(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from meshfilter.cli import main

    f = tmp_path / "canary.py"
    f.write_text(HEAD + "        while True:\n            pass\n")
    assert main(["wasm", "build", "python", str(f), "-o", str(tmp_path / "out.wasm")]) == 2
    assert capsys.readouterr().err.strip() == (f"meshfilter: error: {f}:6:9: while loops are not supported in filters "
                                               "(hint: loop over a list with for)")
    assert not (tmp_path / "out.wasm").exists()


ACCEPTED = HEAD.replace("class Canary", "LIST = ['a', 'b']\n\n\nclass Canary") + '''\
        ua = request.headers.get("user-agent")
        if ua is None:
            return
        lowered = ua.lower()                      # narrowed: ua is a str after the early return
        x: str | None = None
        if "x" in lowered and lowered.startswith("m"):
            x = lowered
        if x is not None and len(x) > 2:          # narrowed inside the and
            request.headers.set("x-a", x.upper())
        n = 0
        for item in LIST:
            if item == "b":
                break
            if not item:
                continue
            n += 1
        request.headers.set("x-n", f"{n}:{self.twice(n)}")
        if self.known(request, "x-b"):
            request.headers.remove("x-b")

    def twice(self, n: int) -> int:
        return n + n

    def known(self, request: Request, name: str) -> bool:
        return name in request.headers
'''


def test_accepted_constructs_check_to_typed_ir() -> None:
    program = check_source(ACCEPTED, "canary.py")
    fn = program.functions["on_request_headers"]
    assert fn.locals == {"ua": ir.OPT_STR, "lowered": ir.STR, "x": ir.OPT_STR, "n": ir.INT, "item": ir.STR}
    assert program.functions["twice"].params == (("n", ir.INT),) and program.functions["twice"].returns == ir.INT
    known = program.functions["known"]
    assert known.handle == ir.REQUEST and known.params == (("name", ir.STR),)
    assert [f.name for f in program.helpers()] == ["known", "twice"]  # callees before callers
    assert program.callbacks == ("on_request_headers",) and program.config is None
    assert program.root_id == "canary" and program.log_name == "canary"


def test_narrowing_is_lost_after_reassignment() -> None:
    body = ("        ua = request.headers.get('a')\n        if ua is not None:\n"
            "            ua = request.headers.get('b')\n            request.headers.set('x', ua)\n")
    with pytest.raises(FilterSourceError, match="may be None"):
        check_source(HEAD + body, "canary.py")


def test_loop_counters_are_bounded_and_accepted() -> None:
    body = ("        n = 0\n        total = 0\n        for k in ['a', 'b']:\n            n = n + 1\n"
            "            total = total + len(k)\n        request.headers.set('x', str(n + total))\n")
    check_source(HEAD + body, "canary.py")


def test_a_class_in_a_test_module_is_checked_alone() -> None:
    """Not strict: the test module's own imports and helpers do not matter, what the class uses does."""
    source = "import os\nimport pytest\n\n" + HEAD + "        request.headers.set('x', os.sep)\n"
    check_source(source.replace("os.sep", "'/'"), "test_x.py", "Canary", strict=False)
    with pytest.raises(FilterSourceError, match="unknown name os|has no attribute"):
        check_source(source, "test_x.py", "Canary", strict=False)
