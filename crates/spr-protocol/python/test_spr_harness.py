"""Unit tests of the harness (spr_harness.py), run by `cargo test -p spr-protocol`.

Pure parts (the plan, the order of a run's isolation against a recording kernel, the
report and its bounds, output capture, the scratch wipe, descriptor passing) are tested
in process; the worker as a whole is driven as a real subprocess speaking frames, with no
sandbox (the kernel layer is tested from Rust)."""

import json
import os
import select
import shutil
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import spr_harness as h  # noqa: E402

HARNESS = os.path.join(HERE, "spr_harness.py")

DEFAULT_POLICY = {
    "mode": "restrict",
    "timeout_seconds": 5,
    "memory_limit_mb": 256,
    "max_output_kb": 128,
    "blocked_imports": ["os", "subprocess", "socket", "ctypes", "importlib"],
    "blocked_builtins": ["eval", "exec", "open", "compile", "breakpoint"],
    "allowed_imports": [],
    "allowed_builtins": [],
    "allowed_globals": [],
    "blocked_globals": [],
    "extra_globals": {},
    "sandbox": {},
}


def permissive(**changes):
    policy = dict(DEFAULT_POLICY, blocked_imports=[], blocked_builtins=[])
    policy.update(changes)
    return policy


class FakeKernel:
    """Records the calls a run's isolation makes; fails the one named in `fail`."""

    def __init__(self, fail=None, abi=7):
        self.calls = []
        self.fail = fail
        self.abi = abi

    def _do(self, name, *args):
        self.calls.append((name,) + args)
        if self.fail == name:
            raise OSError(1, "Operation not permitted")

    def unshare(self, flags):
        self._do("unshare", flags)

    def mount(self, source, target, fstype, flags, data):
        self._do("mount", source, target, fstype, data)

    def bind_read_only(self, path):
        self._do("bind_read_only", path)

    def write_sysctl(self, name, value):
        self._do("write_sysctl", name, value)

    def open_tree(self, path):
        self._do("open_tree", path)
        return os.open(HERE, h.O_PATH)

    def move_mount(self, tree, target):
        self._do("move_mount", target)

    def landlock_abi(self):
        if self.abi is None:
            raise OSError(38, "Function not implemented")
        return self.abi

    def prepared_ruleset(self, abi, fs, net, scoped):
        return ("ruleset", abi, fs, net, scoped)

    def landlock_ruleset(self, prepared):
        self._do("landlock_create_ruleset", prepared[1:])
        return os.open(os.devnull, os.O_RDONLY)

    def prepared_rule(self, fd, rights):
        return ("rule", rights)

    def landlock_add_rule(self, ruleset, attr):
        self._do("landlock_add_rule", attr[1])

    def landlock_restrict_self(self, ruleset):
        self._do("landlock_restrict_self")

    def drop_capabilities(self, bounding):
        self._do("drop_capabilities")

    def prepared_filter(self, program):
        return (len(program),)

    def seccomp(self, prepared):
        self._do("seccomp", prepared[0])

    def prctl(self, option, a=0, b=0, what="prctl"):
        self._do("prctl", option, a)

    def names(self):
        return [c[0] for c in self.calls]


def namespaced_plan(tmp, **changes):
    data = {
        "fresh": "namespaces",
        "scratch": tmp,
        "tmpfs": [{"path": tmp, "size_mb": 16, "mode": "1777"}],
        "rebind": [os.path.join(tmp, "venv")],
        "procfs": {"options": "hidepid=ptraceable", "rights": 12},
        "landlock": {"abi": 7, "fs": 0xFFFF, "net": 3, "scoped": 3, "rules": [[HERE, 13], ["/nonexistent-spr", 13]], "fresh_rights": 0x7FFE},
        "seccomp": [[6, 0, 0, 0x7FFF0000], [6, 0, 0, 0x50001]],
        "caps": True,
        "oom_score_adj": None,
    }
    data.update(changes)
    return h.Plan(data)


class PlanTests(unittest.TestCase):
    def test_a_bare_plan_isolates_nothing_and_scrubs(self):
        plan = h.Plan({})
        self.assertEqual(plan.fresh, h.FRESH_SCRUB)
        self.assertIsNone(plan.landlock)
        self.assertIsNone(plan.seccomp)
        self.assertFalse(plan.caps)

    def test_a_seccomp_program_is_packed_as_sock_filters(self):
        plan = h.Plan({"seccomp": [[6, 0, 0, 0x7FFF0000], [0x15, 1, 2, 41]]})
        self.assertEqual(len(plan.seccomp), 16)
        self.assertEqual(struct.unpack("=HBBI", plan.seccomp[8:]), (0x15, 1, 2, 41))

    def test_unknown_freshness_and_bad_arguments_are_refused(self):
        with self.assertRaises(ValueError):
            h.Plan({"fresh": "sometimes"})
        with self.assertRaises(ValueError):
            h.parse_args(["--plan", "[1, 2]"])

    def test_the_process_filter_and_scrubbed_directories_are_read(self):
        plan = h.Plan({"process_seccomp": [[6, 0, 0, 0x7FFF0000]], "scrubbed_dirs": ["/dev/shm"]})
        self.assertEqual(struct.unpack("=HBBI", plan.process_seccomp), (6, 0, 0, 0x7FFF0000))
        self.assertEqual(plan.scrubbed_dirs, ["/dev/shm"])
        bare = h.Plan({})
        self.assertIsNone(bare.process_seccomp)
        self.assertEqual(bare.scrubbed_dirs, [])

    def test_scratch_argument_still_works_for_a_bare_harness(self):
        plan = h.parse_args(["--scratch", "/tmp/x"])
        self.assertEqual(plan.scratch, "/tmp/x")
        self.assertTrue(plan.own_scratch)


class IsolationTests(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp()
        os.makedirs(os.path.join(self.tmp, "venv"))

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_a_run_isolates_itself_in_order_before_its_request(self):
        k = FakeKernel()
        iso = h.Isolation(namespaced_plan(self.tmp), k)
        iso.apply(k)
        sysrq = ["mount"] if os.path.exists("/proc/sysrq-trigger") else []
        self.assertEqual(
            k.names(),
            ["unshare", "open_tree", "mount", "move_mount", "mount"]
            + ["write_sysctl"] * 5 + ["bind_read_only"] + sysrq
            + [
                "landlock_create_ruleset", "landlock_add_rule", "landlock_add_rule",
                "landlock_add_rule", "landlock_restrict_self", "drop_capabilities", "seccomp",
            ],
        )
        self.assertEqual(k.calls[5][1:], ("kernel/shm_rmid_forced", b"1"))
        offset = 11 + len(sysrq)
        # SysV shared memory no larger than the run's /dev/shm (none here: the default).
        self.assertIn(("write_sysctl", "kernel/shmmax", b"%d" % (64 << 20)), k.calls)
        self.assertEqual(k.calls[0][1], h.CLONE_NEWNS | h.CLONE_NEWIPC)
        self.assertEqual(k.calls[2][1:], ("tmpfs", self.tmp, "tmpfs", "size=16m,mode=1777"))
        self.assertEqual(k.calls[4][1:], ("proc", "/proc", "proc", "hidepid=ptraceable"))
        # The per-run tmpfs root gets the fresh rights, /proc its own.
        self.assertEqual(k.calls[offset + 2][1], 0x7FFE)
        self.assertEqual(k.calls[offset + 3][1], 12)
        self.assertEqual(k.calls[-1], ("seccomp", 16))

    def test_a_failing_step_stops_the_run_and_is_named(self):
        for failing, words in [
            ("unshare", "unshare the run's mount and IPC namespaces"),
            ("landlock_restrict_self", "apply the run's Landlock ruleset"),
            ("seccomp", "install the run's seccomp filter"),
        ]:
            k = FakeKernel(fail=failing)
            iso = h.Isolation(namespaced_plan(self.tmp), k)
            with self.assertRaises(h.SetupError) as caught:
                iso.apply(k)
            self.assertIn(words, str(caught.exception))
            self.assertEqual(k.names()[-1], failing)

    def test_the_summary_says_what_every_run_gets(self):
        k = FakeKernel()
        summary = h.Isolation(namespaced_plan(self.tmp), k).summary()
        self.assertEqual(summary["fresh_namespaces"], ["mount", "ipc"])
        self.assertEqual(summary["landlock_abi"], 7)
        self.assertTrue(summary["landlock_scoped"] and summary["seccomp"] and summary["capabilities_dropped"])

    def test_the_process_filter_is_prepared_ahead_and_installed_on_demand(self):
        k = FakeKernel()
        plan = namespaced_plan(self.tmp, process_seccomp=[[6, 0, 0, 0x7FFF0000]] * 3)
        iso = h.Isolation(plan, k)
        self.assertEqual(iso.process_filter, (24,))
        iso.apply(k)
        # Not part of the isolation before the request: the policy decides.
        self.assertEqual(k.names()[-1], "seccomp")
        self.assertEqual(k.calls[-1], ("seccomp", 16))
        iso.refuse_processes(k)
        self.assertEqual(k.calls[-2:], [("prctl", h.PR_SET_NO_NEW_PRIVS, 1), ("seccomp", 24)])
        self.assertTrue(iso.summary()["process_filter"])
        self.assertFalse(h.Isolation(namespaced_plan(self.tmp), k).summary()["process_filter"])

    def test_the_summary_says_where_dev_shm_comes_from(self):
        k = FakeKernel()
        shm = {"path": "/dev/shm", "size_mb": 64, "mode": "1777"}
        fresh = namespaced_plan(self.tmp, tmpfs=[{"path": self.tmp, "size_mb": 16, "mode": "1777"}, shm])
        self.assertEqual(h.Isolation(fresh, k).summary()["dev_shm"], "tmpfs")
        self.assertIsNone(h.Isolation(namespaced_plan(self.tmp), k).summary()["dev_shm"])
        shared = h.Plan({"fresh": "scrub", "scratch": self.tmp, "scrubbed_dirs": ["/dev/shm"]})
        self.assertEqual(h.Isolation(shared, k).summary()["dev_shm"], "scrubbed")
        self.assertIsNone(h.Isolation(h.Plan({"scratch": self.tmp}), k).summary()["dev_shm"])

    def test_a_kernel_without_landlock_is_reported_not_pretended(self):
        k = FakeKernel(abi=None)
        plan = namespaced_plan(self.tmp, landlock={"abi": None, "scoped": 3})
        iso = h.Isolation(plan, k)
        self.assertIsNone(iso.summary()["landlock_abi"])
        iso.apply(k)
        self.assertNotIn("landlock_restrict_self", k.names())

    def test_scoping_needs_abi_6(self):
        k = FakeKernel(abi=5)
        plan = namespaced_plan(self.tmp, landlock={"abi": None, "scoped": 3})
        self.assertIsNone(h.Isolation(plan, k).landlock)

    def test_scrub_mode_makes_no_namespace_and_no_mount(self):
        k = FakeKernel()
        plan = h.Plan({"fresh": "scrub", "scratch": self.tmp, "seccomp": [[6, 0, 0, 0x7FFF0000]]})
        h.Isolation(plan, k).apply(k)
        self.assertEqual(k.names(), ["seccomp"])


class MallocTests(unittest.TestCase):
    def test_the_worker_keeps_glibc_to_one_malloc_arena(self):
        calls = []

        class Libc:
            def mallopt(self, option, value):
                calls.append((option, value))
                return 1

        class K:
            libc = Libc()

        h.one_malloc_arena(K())
        self.assertEqual(calls, [(h.M_ARENA_MAX, 1)])

        class NoMallopt:
            libc = object()

        h.one_malloc_arena(NoMallopt())  # not glibc: nothing to do, no error


class CaptureAndReportTests(unittest.TestCase):
    def test_capture_keeps_up_to_its_cap_and_cuts_at_a_character(self):
        c = h.Capture(5)
        c.feed("héllo wörld".encode())
        self.assertTrue(c.truncated)
        self.assertEqual(c.text(), "héll")
        c = h.Capture(100)
        c.feed(b"abc")
        self.assertEqual((c.text(), c.truncated), ("abc", False))

    def run_of(self, started=100.0):
        run = h.Run.__new__(h.Run)
        run.started = started
        run.marked = False
        return run

    def capture(self, data, cap=1 << 20):
        c = h.Capture(cap)
        c.feed(data)
        return c

    def report(self, exit_info, res=b'A' + struct.pack("<Q", 1234) + b'{"outcome":"completed","result":1}', deadline=105.0):
        return h.build_report(
            {"id": 7}, self.run_of(), exit_info, deadline,
            self.capture(b"out"), self.capture(b""), self.capture(res, h.MAX_RESULT_BYTES + h.ARMED_LEN),
        )

    def exited(self, status=0, at=101.0, killed=False):
        return {"status": status, "at": at, "killed": killed, "leftovers": 0, "reset": True}

    def test_a_clean_exit_is_reported_from_the_zygote_s_observation(self):
        r = self.report(self.exited())
        self.assertEqual((r["exit_code"], r["signal"], r["timed_out"]), (0, None, False))
        self.assertEqual(r["child_frame"], '{"outcome":"completed","result":1}')
        self.assertAlmostEqual(r["duration_ms"], 1000.0)
        self.assertFalse(r["retire"])
        self.assertEqual(r["setup_us"], 1234)

    def test_alive_at_the_deadline_is_a_timeout_whatever_the_run_wrote(self):
        self.assertTrue(self.report(self.exited(status=9, at=106.0, killed=True))["timed_out"])
        # Ended on its own, but after the deadline: still a timeout.
        self.assertTrue(self.report(self.exited(at=105.5))["timed_out"])
        self.assertFalse(self.report(self.exited(at=104.9))["timed_out"])

    def test_a_run_whose_isolation_failed_breaks_the_worker_not_the_run(self):
        with self.assertRaises(h.WorkerBroken):
            self.report(self.exited(status=71 << 8), res=b"Fseccomp: EPERM")
        with self.assertRaises(h.WorkerBroken):
            self.report(self.exited(status=9), res=b"")

    def test_an_oversized_result_is_the_run_s_error_and_the_report_fits(self):
        big = b"A" + bytes(8) + b"x" * (h.MAX_RESULT_BYTES + 10)
        r = self.report(self.exited(), res=big)
        self.assertTrue(r["child_frame_overflow"])
        self.assertIsNone(r["child_frame"])

    def test_a_report_full_of_escaped_characters_is_cut_to_the_frame_limit(self):
        out = self.capture(b"\x01" * (12 << 20), cap=64 << 20)
        frame = b'{"outcome":"completed","result":"' + b'"' * (h.MAX_RESULT_BYTES - 40) + b'"}'
        res = self.capture(b"A" + bytes(8) + frame, h.MAX_RESULT_BYTES + h.ARMED_LEN)
        r = h.build_report({"id": 1}, self.run_of(), self.exited(), 105.0, out, self.capture(b""), res)
        self.assertLessEqual(len(json.dumps(r, separators=(",", ":"))), h.MAX_REPORT_BYTES)
        self.assertTrue(r["stdout_truncated"])

    def test_a_scrub_that_failed_retires_the_worker(self):
        info = self.exited()
        info["reset"] = False
        self.assertTrue(self.report(info)["retire"])


class HygieneTests(unittest.TestCase):
    def test_wipe_empties_whatever_modes_the_run_left(self):
        base = tempfile.mkdtemp()
        hidden = os.path.join(base, ".hidden", "deeper")
        os.makedirs(hidden)
        with open(os.path.join(hidden, "secret"), "w") as f:
            f.write("x")
        os.chmod(os.path.join(base, ".hidden"), 0o300)
        os.chmod(hidden, 0)
        os.mkfifo(os.path.join(base, "fifo"))
        os.symlink("/etc/passwd", os.path.join(base, "link"))
        os.chmod(base, 0)
        self.assertTrue(h.wipe_dir(base))
        self.assertEqual(os.listdir(base), [])
        self.assertTrue(os.path.exists("/etc/passwd"))
        os.rmdir(base)

    def test_descriptors_cross_between_processes_with_their_message(self):
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        r, w = os.pipe()
        h.send_message(a, "R 42", [r, w])
        text, fds = h.recv_message(b)
        self.assertEqual(text, "R 42")
        self.assertEqual(len(fds), 2)
        os.write(fds[1], b"ok")
        self.assertEqual(os.read(r, 2), b"ok")
        for fd in fds + [r, w]:
            os.close(fd)
        a.close()
        self.assertEqual(h.recv_message(b), ("", []))
        b.close()


class PolicyTests(unittest.TestCase):
    def test_blocked_imports_are_refused_with_the_original_message(self):
        hook = h.make_import_hook(DEFAULT_POLICY)
        with self.assertRaises(ImportError) as caught:
            hook("os")
        self.assertEqual(str(caught.exception), "Import 'os' is blocked by policy")
        with self.assertRaises(ImportError):
            hook("importlib.util")
        self.assertIs(hook("math"), __import__("math"))

    def test_the_c_modules_behind_a_blocked_wrapper_are_blocked_for_the_user(self):
        hook = h.make_import_hook(DEFAULT_POLICY)
        for name in ("_posixsubprocess", "_ctypes", "posix", "_socket"):
            with self.assertRaises(ImportError) as caught:
                hook(name)
            self.assertEqual(str(caught.exception), "Import '%s' is blocked by policy" % name)
        open_hook = h.make_import_hook(permissive())
        self.assertIs(open_hook("posix"), __import__("posix"))
        self.assertIs(open_hook("_posixsubprocess"), __import__("_posixsubprocess"))

    def test_input_keys_become_globals_unless_reserved_private_or_filtered(self):
        policy = dict(DEFAULT_POLICY, extra_globals={"project": "spr"}, blocked_globals=["hidden"])
        g = h.make_globals(policy, {}, {"x": 1, "_private": 2, "result": 3, "hidden": 4, "project": 5})
        self.assertEqual(g["x"], 1)
        self.assertEqual(g["project"], "spr")
        for absent in ("_private", "hidden"):
            self.assertNotIn(absent, g)
        self.assertIsNone(g["result"])

    def test_only_the_operator_s_policies_are_prepared_ahead(self):
        plan = h.Plan({"policies": [DEFAULT_POLICY]})
        h._prepared.clear()
        h.prepare_known(plan)
        self.assertIs(h.prepared_for(DEFAULT_POLICY, plan), h._prepared[0])
        tenant = dict(DEFAULT_POLICY, extra_globals={"token": "secret"})
        fresh = h.prepared_for(tenant, plan)
        self.assertIsNot(fresh, h._prepared[0])
        self.assertEqual(len(h._prepared), 1)  # nothing a caller sent is kept
        h._prepared.clear()


class Worker:
    """The harness as a subprocess (no sandbox), driven by frames."""

    def __init__(self, *args):
        self.scratch = tempfile.mkdtemp()
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-B", HARNESS, "--scratch", self.scratch] + list(args),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )
        self.hello = self.read(30)

    def read(self, timeout):
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise AssertionError("no frame within %ss" % timeout)
        header = self.proc.stdout.read(4)
        if len(header) < 4:
            return None
        return json.loads(self.proc.stdout.read(int.from_bytes(header, "big")))

    def run(self, code, policy=None, input_data=None, timeout=30, id=1):
        body = json.dumps(
            {"type": "run", "id": id, "code": code, "input_data": input_data or {}, "policy": policy or DEFAULT_POLICY},
            separators=(",", ":"),
        ).encode()
        self.proc.stdin.write(len(body).to_bytes(4, "big") + body)
        self.proc.stdin.flush()
        return self.read(timeout)

    def close(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        status = self.proc.wait(timeout=10)
        self.proc.stdout.close()
        shutil.rmtree(self.scratch, ignore_errors=True)
        return status


class WorkerTests(unittest.TestCase):
    def setUp(self):
        self.worker = Worker()

    def tearDown(self):
        self.worker.close()

    def frame(self, report):
        return json.loads(report["child_frame"])

    def test_hello_then_a_run_and_end_of_input_ends_the_worker(self):
        self.assertEqual(self.worker.hello["type"], "hello")
        self.assertEqual(self.worker.hello["protocol_version"], h.PROTOCOL_VERSION)
        r = self.worker.run("print('hi'); result = x * 10**30", input_data={"x": 3})
        self.assertEqual(r["exit_code"], 0)
        self.assertEqual(r["stdout"], "hi\n")
        self.assertEqual(self.frame(r)["result"], 3 * 10**30)

    def test_a_forged_report_and_closed_pipes_do_not_hide_a_timeout(self):
        code = (
            "import os, time\n"
            "for fd in range(3, 64):\n"
            "    try:\n"
            "        os.write(fd, b'{\"outcome\":\"completed\",\"result\":1}')\n"
            "        os.close(fd)\n"
            "    except OSError:\n"
            "        pass\n"
            "os.close(1); os.close(2)\n"
            "time.sleep(30)\n"
        )
        started = time.monotonic()
        r = self.worker.run(code, policy=permissive(timeout_seconds=1))
        self.assertTrue(r["timed_out"])
        self.assertLess(time.monotonic() - started, 10)
        self.assertEqual(self.worker.run("result = 2")["exit_code"], 0)

    SCAN = (
        "found = 0\n"
        # Never written contiguously in this code: built at run time.
        "needle = %r[::-1].encode()\n"
        "mem = open('/proc/self/mem', 'rb', 0)\n"
        "for line in open('/proc/self/maps'):\n"
        "    addr, perms = line.split()[:2]\n"
        "    if 'r' not in perms:\n"
        "        continue\n"
        "    lo, hi = (int(x, 16) for x in addr.split('-'))\n"
        "    try:\n"
        "        mem.seek(lo)\n"
        "        found += mem.read(hi - lo).count(needle)\n"
        "    except (OSError, ValueError, OverflowError):\n"
        "        pass\n"
        "result = found\n"
    )

    def assert_not_in_next_run(self, secret):
        scan = self.SCAN
        found = self.frame(self.worker.run(scan % secret[::-1], policy=permissive(timeout_seconds=20), timeout=60))
        # The same scan for a secret no run ever sent finds only the scanner's own needle.
        other = "spr-secret-%d-%s" % (os.getpid(), os.urandom(8).hex())
        baseline = self.frame(self.worker.run(scan % other[::-1], policy=permissive(timeout_seconds=20), timeout=60))
        self.assertEqual(found["result"], baseline["result"])

    def test_nothing_of_one_run_is_in_the_memory_of_the_next(self):
        secret = "spr-secret-%d-%s" % (os.getpid(), os.urandom(8).hex())
        victim = permissive(extra_globals={"token": secret})
        r = self.worker.run("print(token); result = token + input_data['s']", policy=victim, input_data={"s": secret})
        self.assertEqual(r["stdout"], secret + "\n")
        self.assert_not_in_next_run(secret)

    def test_the_names_of_files_a_run_left_are_not_in_the_memory_of_the_next(self):
        # The scratch is emptied after the run, which reads the names: not in the zygote.
        secret = "spr-name-%d-%s" % (os.getpid(), os.urandom(8).hex())
        code = (
            "import os\n"
            "base = os.path.dirname(os.getcwd())\n"
            "for i in range(300):\n"
            "    os.makedirs('%s/%s-%d/%s' % (base, name, i, name))\n"
            "    open('%s-%d' % (name, i), 'w').write('x')\n"
            "result = 1\n"
        )
        r = self.worker.run(code, policy=permissive(), input_data={"name": secret})
        self.assertEqual(r["exit_code"], 0, r)
        self.assert_not_in_next_run(secret)

    def test_an_oversized_result_is_the_run_s_own_error(self):
        r = self.worker.run("result = 'x' * (17 << 20)", policy=permissive(memory_limit_mb=1024))
        self.assertTrue(r["child_frame_overflow"])
        self.assertEqual(r["exit_code"], 0)

    # A library's own imports go through the real __import__ (its module's builtins), not
    # the user's guarded one: json's, here, stands for any library's.
    LIBRARY_IMPORT = "import json\nlib_import = json.__builtins__['__import__']\n"

    def error(self, report):
        return self.frame(report).get("error")

    def test_a_library_may_import_ctypes_but_native_code_stays_refused(self):
        ok = self.worker.run(self.LIBRARY_IMPORT + "ct = lib_import('ctypes')\nresult = ct.sizeof(ct.c_int)")
        self.assertEqual(self.frame(ok)["result"], 4, ok)
        for attack, event in [
            ("ct.CDLL(None).getpid()", "ctypes.dlsym"),
            ("ct.CDLL('libc.so.6')", "ctypes.dlopen"),
            ("ct.string_at(id(1), 8)", "ctypes.string_at"),
            ("ct.c_char.from_address(id(1))", "ctypes.cdata"),
            ("lib_import('_ctypes').call_function(1, ())", "ctypes.call_function"),
        ]:
            r = self.worker.run(self.LIBRARY_IMPORT + "ct = lib_import('ctypes')\n" + attack)
            self.assertEqual(
                self.error(r), "PermissionError: Native code (ctypes) is blocked by policy (%s)" % event
            )
        self.assertEqual(self.worker.run("result = 2")["exit_code"], 0)

    def test_a_library_may_import_subprocess_but_starting_a_process_stays_refused(self):
        # A bare harness has no process filter: _posixsubprocess (whose fork_exec raises
        # no audit event) stays out of reach, even of libraries.
        r = self.worker.run(self.LIBRARY_IMPORT + "lib_import('subprocess')")
        self.assertEqual(self.error(r), "ImportError: Import '_posixsubprocess' is blocked by policy")
        r = self.worker.run(self.LIBRARY_IMPORT + "lib_import('os').system('true')")
        self.assertEqual(self.error(r), "PermissionError: Starting processes is blocked by policy (os.system)")
        self.assertEqual(self.worker.run("import _posixsubprocess")["exit_code"], 1)

    def test_whatever_a_run_leaves_in_scratch_is_gone_for_the_next(self):
        code = (
            "import os\n"
            "base = os.path.dirname(os.getcwd())\n"
            "os.makedirs(base + '/.hide/deep')\n"
            "open(base + '/.hide/deep/f', 'w').write('secret')\n"
            "os.chmod(base + '/.hide', 0o300)\n"
            "result = 1\n"
        )
        self.assertEqual(self.worker.run(code, policy=permissive())["exit_code"], 0)
        r = self.worker.run("import os\nresult = os.listdir(os.path.dirname(os.getcwd()))", policy=permissive())
        self.assertEqual(len(self.frame(r)["result"]), 1, r)  # only its own directory


class ProcessFilterWorkerTests(unittest.TestCase):
    """A worker whose plan has a process filter (here one that allows everything: the
    real filter is tested from Rust, under the sandbox)."""

    def setUp(self):
        self.shm = tempfile.mkdtemp()
        plan = {"process_seccomp": [[6, 0, 0, 0x7FFF0000]], "scrubbed_dirs": [self.shm]}
        self.worker = Worker("--plan", json.dumps(plan))

    def tearDown(self):
        self.worker.close()
        shutil.rmtree(self.shm, ignore_errors=True)

    def frame(self, report):
        return json.loads(report["child_frame"])

    def test_the_greeting_says_runs_get_the_process_filter(self):
        self.assertTrue(self.worker.hello["isolation"]["process_filter"])

    # Processes denied, files not: the test reads its own /proc/self/status.
    NO_PROCESSES = permissive(blocked_imports=["subprocess"])

    def test_with_the_kernel_refusing_processes_a_library_may_import_subprocess(self):
        code = WorkerTests.LIBRARY_IMPORT + (
            "sp = lib_import('subprocess')\n"
            "status = dict(l.split(':', 1) for l in open('/proc/self/status'))\n"
            "result = [sp.__name__, status['NoNewPrivs'].strip(), status['Seccomp'].strip()]\n"
        )
        r = self.worker.run(code, policy=self.NO_PROCESSES)
        self.assertEqual(self.frame(r)["result"], ["subprocess", "1", "2"], r)
        # Starting one is still the audit hook's refusal.
        r = self.worker.run(WorkerTests.LIBRARY_IMPORT + "lib_import('subprocess').run(['true'])")
        self.assertEqual(
            self.frame(r)["error"], "PermissionError: Starting processes is blocked by policy (subprocess.Popen)"
        )
        # The user's own import is still the import hook's friendly refusal.
        r = self.worker.run("import _posixsubprocess")
        self.assertEqual(self.frame(r)["error"], "ImportError: Import '_posixsubprocess' is blocked by policy")

    def test_a_policy_that_allows_processes_gets_no_filter(self):
        r = self.worker.run(
            "result = [l.split()[1] for l in open('/proc/self/status') if l.startswith('Seccomp:')]",
            policy=permissive(),
        )
        self.assertEqual(self.frame(r)["result"], ["0"], r)
        # Processes allowed, and the next run's process is a fresh copy without it.
        r = self.worker.run(
            "import subprocess\nresult = subprocess.run(['true']).returncode",
            policy=permissive(),
        )
        self.assertEqual(self.frame(r)["result"], 0, r)

    def test_a_scrubbed_directory_is_writable_and_empty_for_the_next_run(self):
        code = "import json\njson.__builtins__['open'](%r + '/sem.x', 'w').write('s')\nresult = 1" % self.shm
        r = self.worker.run(code)
        self.assertEqual(self.frame(r)["result"], 1, r)
        self.assertEqual(os.listdir(self.shm), [])
        r = self.worker.run("import json\njson.__builtins__['open']('/etc/spr-x', 'w')")
        self.assertIn("only the scratch directory is writable", self.frame(r)["error"])


if __name__ == "__main__":
    unittest.main()
