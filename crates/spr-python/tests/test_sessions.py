"""Sessions: state across cells, interrupts, lost sessions, the cap, closing, isolation."""

from __future__ import annotations

import gc
import pickle
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import spr
from spr import RunnerPolicy

from conftest import interrupt_during

IGNORES_INTERRUPTS = (
    "import time\n"
    "while True:\n"
    "    try:\n"
    "        time.sleep(10)\n"
    "    except KeyboardInterrupt:\n"
    "        pass\n"
)


@pytest.fixture(scope="module")
def capped(engine):
    """An engine of its own (over the suite's venv) that allows one session."""
    eng = spr.LocalEngine(venv_dir=engine.venv_dir, pool_size=1, max_sessions=1)
    yield eng
    eng.shutdown()


def test_state_persists_across_cells(engine):
    with engine.session() as s:
        assert s.run("import math\nscores = [72, 88, 95]").ok
        r = s.run("def mean(xs):\n    return sum(xs) / len(xs)\nresult = mean(scores)")
        assert r.ok and r.result == 85
        r = s.run("scores.append(100)\nlen(scores)")
        assert r.value == 4
        r = s.run("math.floor(mean(scores))")
        assert r.value == 88


def test_value_of_the_last_expression(engine):
    with engine.session() as s:
        assert s.run("x = 1").value is None  # a statement has no value
        assert s.run("x + 41").value == 42
        assert s.run("{'a': [1, None, True]}").value == {"a": [1, None, True]}
        assert s.run("2 ** 80").value == 2**80
        r = s.run("print('p')\n'last'")
        assert r.value == "last" and r.stdout == "p\n"
        r = s.run("1 / 0")
        assert not r.ok and r.value is None and r.error.startswith("ZeroDivisionError")
        # an error keeps the session
        assert s.run("x").value == 1


def test_result_and_input_are_per_cell(engine):
    with engine.session() as s:
        r = s.run("result = k * 2", input_data={"k": 5})
        assert r.result == 10
        r = s.run("k")  # the input key stayed a global
        assert r.value == 5
        r = s.run("result")  # reset to None before every cell
        assert r.ok and r.value is None and r.result is None


def test_session_policy_applies_to_every_cell(engine):
    with engine.session(policy=RunnerPolicy(blocked_imports=["json"])) as s:
        r = s.run("import json")
        assert r.error == "ImportError: Import 'json' is blocked by policy"
        assert s.run("import math\nmath.sqrt(81)").value == 9.0
        assert s.policy.blocked_imports == ["json"]


def test_session_with_a_bad_policy_is_refused(engine):
    with pytest.raises(ValueError, match="timeout_seconds"):
        engine.session(policy=RunnerPolicy(timeout_seconds=0))


def test_timed_out_cell_is_interrupted_and_the_session_survives(engine):
    with engine.session(policy=RunnerPolicy(timeout_seconds=1)) as s:
        s.run("kept = 'state'")
        r = s.run("import time\nwhile True:\n    time.sleep(0.05)")
        assert not r.ok
        assert r.timed_out and r.exit_code == 124
        assert not r.session_lost
        assert "KeyboardInterrupt" in r.stderr
        assert not s.lost
        assert s.run("kept").value == "state"


def test_a_cell_that_ignores_the_interrupt_loses_the_session(engine):
    s = engine.session(policy=RunnerPolicy(timeout_seconds=1))
    try:
        s.run("kept = 1")
        r = s.run(IGNORES_INTERRUPTS)
        assert r.timed_out and r.session_lost
        assert s.lost
        with pytest.raises(spr.SessionLostError):
            s.run("kept")
        # SessionLostError is a SessionError is a SprError.
        with pytest.raises(spr.SessionError):
            s.run("kept")
        with pytest.raises(spr.SprError):
            s.run("kept")
    finally:
        s.close()
def test_lost_session_message_names_no_empty_id(engine):
    """Was a bug, fixed: the message reads 'session "" was lost ...': the Python session has no id,
    and the message quotes an empty one."""
    with engine.session(policy=RunnerPolicy(blocked_imports=[])) as s:
        assert s.run("import os\nos._exit(3)").session_lost
        with pytest.raises(spr.SessionLostError) as info:
            s.run("1")
        assert "was lost" in str(info.value)
        assert 'session ""' not in str(info.value), str(info.value)


def test_a_session_whose_process_dies_is_lost(engine):
    with engine.session(policy=RunnerPolicy(blocked_imports=[])) as s:
        r = s.run("import os\nos._exit(3)")
        assert not r.ok
        assert r.session_lost
        with pytest.raises(spr.SessionLostError):
            s.run("1")


def test_the_session_cap(capped):
    first = capped.session()
    try:
        assert capped.open_sessions == 1
        with pytest.raises(spr.TooManySessionsError, match="1"):
            capped.session()
    finally:
        first.close()
    assert capped.open_sessions == 0
    with capped.session() as second:
        assert second.run("1 + 1").value == 2


def test_a_lost_session_gives_its_place_back(capped):
    s = capped.session(policy=RunnerPolicy(timeout_seconds=1))
    try:
        assert s.run(IGNORES_INTERRUPTS).session_lost
        with capped.session() as other:
            assert other.run("'free'").value == "free"
    finally:
        s.close()


def test_closing_twice_and_using_a_closed_session(engine):
    s = engine.session()
    s.run("x = 1")
    s.close()
    s.close()
    assert s.closed
    with pytest.raises(spr.SessionClosedError):
        s.run("x")
    with pytest.raises(spr.SessionError):
        s.run("x")


def test_context_manager_closes(engine):
    with engine.session() as s:
        assert not s.closed
    assert s.closed


def test_sessions_are_isolated(engine):
    with engine.session() as a, engine.session() as b:
        a.run("secret = 'a'\nopen('a.txt', 'w').write('from a')", files=None)
        r = b.run("secret")
        assert not r.ok and r.error.startswith("NameError")
        r = b.run("import pathlib\npathlib.Path('a.txt').exists()")
        assert r.ok and r.value is False
        assert a.run("secret").value == "a"


def test_session_files_persist(engine):
    with engine.session() as s:
        s.run("pass", files={"in/data.txt": "hello"})
        r = s.run("import pathlib\npathlib.Path('in/data.txt').read_text() + '!'")
        assert r.value == "hello!"
        r = s.run("import pathlib\npathlib.Path('out.txt').write_text('x' * 3)", collect=["out.txt"])
        assert [(f.path, f.data) for f in r.files] == [("out.txt", b"xxx")]


def test_one_shot_runs_do_not_see_session_state(engine):
    with engine.session() as s:
        s.run("leak = 1")
        r = spr.run_code("result = leak", engine)
        assert not r.ok and r.error.startswith("NameError")


def test_session_is_not_constructed_directly():
    with pytest.raises(TypeError):
        spr.Session()
def test_exceptions_pickle():
    """Was a bug, fixed: spr's exceptions have ``__module__ == "_native"`` (``create_exception!(_native,
    ...)``), a module that cannot be imported, so they cannot be pickled (a
    ProcessPoolExecutor or multiprocessing cannot carry them back) and tracebacks name
    them ``_native.SessionLostError``."""
    for cls in (
        spr.SprError,
        spr.SessionError,
        spr.SessionLostError,
        spr.TooManySessionsError,
        spr.SessionClosedError,
    ):
        assert cls.__module__ == "spr", f"{cls.__name__}.__module__ = {cls.__module__!r}"
        back = pickle.loads(pickle.dumps(cls("m")))
        assert type(back) is cls and back.args == ("m",)


def test_a_dropped_session_gives_its_place_back(capped):
    s = capped.session()
    s.run("x = 1")
    del s
    gc.collect()
    # The drop closes the session on spr's runtime, in the background: allow it seconds.
    deadline = time.monotonic() + 10
    while True:
        try:
            again = capped.session()
            break
        except spr.TooManySessionsError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    with again:
        assert again.run("'reopened'").value == "reopened"


def test_ctrl_c_during_a_cell_loses_the_session(engine):
    s = engine.session(policy=RunnerPolicy(timeout_seconds=30))
    try:
        s.run("x = 1")
        interrupt_during(lambda: s.run("import time\ntime.sleep(20)"))
        # The cell may be half done: the session is killed rather than reused.
        with pytest.raises(spr.SessionLostError):
            s.run("x")
    finally:
        s.close()
    with engine.session() as other:
        assert other.run("'fine'").value == "fine"


def test_sessions_from_many_threads(engine):
    def one(k):
        with engine.session() as s:
            s.run("acc = []")
            for i in range(5):
                s.run("acc.append(i)", input_data={"i": k * 10 + i})
            return s.run("acc").value

    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(one, range(4)))
    assert got == [[k * 10 + i for i in range(5)] for k in range(4)]


def test_lost_turns_true_after_an_interrupted_wait(engine):
    """After Ctrl-C during a cell the session is killed on spr's runtime; ``lost`` says
    so soon after (not necessarily at the very moment KeyboardInterrupt is raised)."""
    s = engine.session(policy=RunnerPolicy(timeout_seconds=30))
    try:
        interrupt_during(lambda: s.run("import time\ntime.sleep(20)"))
        # The kill may take a moment on spr's runtime: allow it seconds.
        deadline = time.monotonic() + 5
        while not s.lost and time.monotonic() < deadline:
            time.sleep(0.1)
        assert s.lost, "session.lost is False, yet the next cell raises SessionLostError"
    finally:
        s.close()
def test_session_input_must_be_a_dict_like_run_code(engine):
    """Was a bug, fixed: run_code refuses an input_data that is not a dict (ValueError: input_data must
    be a JSON object), as docs/PYTHON.md says; a session cell takes a list or a string."""
    with pytest.raises(ValueError):
        spr.run_code("result = 1", engine, input_data=[1])
    with engine.session() as s:
        with pytest.raises(ValueError, match="input_data"):
            s.run("input_data", input_data=[1])


def test_one_session_shared_by_threads_runs_cells_one_at_a_time(engine):
    with engine.session() as s:
        s.run("seen = []")

        def cell(i):
            return s.run("seen.append(i)\nlen(seen)", input_data={"i": i}).value

        with ThreadPoolExecutor(max_workers=4) as pool:
            counts = list(pool.map(cell, range(12)))
        assert sorted(counts) == list(range(1, 13))
        assert sorted(s.run("seen").value) == list(range(12))


def test_memory_error_and_system_exit_keep_the_session(engine):
    with engine.session(policy=RunnerPolicy(memory_limit_mb=128)) as s:
        s.run("keep = 7")
        r = s.run("x = bytearray(400 * 1024 * 1024)")
        assert not r.ok and r.resource_exceeded and not r.session_lost, r
        r = s.run("import sys\nsys.exit(4)")
        assert (r.ok, r.exit_code, r.error, r.session_lost) == (False, 4, "SystemExit: 4", False)
        r = s.run("raise SystemExit")
        assert r.ok and r.exit_code == 0
        assert s.run("keep").value == 7
        assert s.policy.memory_limit_mb == 128


@pytest.mark.parametrize(
    "expr, value",
    [
        ("{1, 2}", "{1, 2}"),
        ("float('nan')", "NaN"),
        ("float('-inf')", "-Infinity"),
        ("(1, 2)", [1, 2]),
        ("None", None),
        ("[True, 2 ** 70]", [True, 2**70]),
    ],
)
def test_values_json_cannot_hold_come_back_as_text(engine, expr, value):
    with engine.session() as s:
        r = s.run(expr)
        assert r.ok and r.value == value, r


def test_a_session_policy_file_is_read_once(engine, tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('[policy]\nblocked_imports = ["json"]\n')
    with engine.session(policy_file=str(path)) as s:
        assert s.run("import json").error == "ImportError: Import 'json' is blocked by policy"
        path.write_text("[policy]\nblocked_imports = []\n")
        # fixed for the session's life, unlike a one-shot run's config_path
        assert s.run("import json").error == "ImportError: Import 'json' is blocked by policy"
    assert spr.run_code("import json\nresult = 1", engine, policy_file=str(path)).ok
