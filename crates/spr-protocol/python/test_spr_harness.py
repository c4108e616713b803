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


class PreloadTests(unittest.TestCase):
    """Preloaded modules: imported once in M, fresh in every run."""

    PROBE = "colorsys"  # stdlib, and imported by nothing the harness loads

    def preloaded(self, *names):
        return Worker("--plan", json.dumps({"preload": list(names)}))

    def frame(self, report):
        return json.loads(report["child_frame"])

    def test_plan_entries_must_be_module_names(self):
        self.assertEqual(h.Plan({"preload": ["a.b", "c"]}).preload, ["a.b", "c"])
        self.assertEqual(h.Plan({}).preload, [])
        for bad in ["os;x", "a..b", "", "1a", "__import__('os')"]:
            with self.assertRaises(ValueError):
                h.Plan({"preload": [bad]})

    def test_a_run_finds_the_module_loaded_but_not_in_its_globals(self):
        w = self.preloaded(self.PROBE)
        try:
            self.assertEqual(w.hello["type"], "hello")
            self.assertEqual(w.hello["preload"]["modules"], [self.PROBE])
            self.assertGreaterEqual(w.hello["preload"]["vm_kb"], 0)
            r = w.run(
                "import sys\n"
                "before = (%r in sys.modules, %r in globals())\n"
                "import %s\n"
                "result = list(before)" % (self.PROBE, self.PROBE, self.PROBE),
                policy=permissive(),
            )
            self.assertEqual(self.frame(r)["result"], [True, False], r)
        finally:
            w.close()

    def test_what_a_run_changes_in_a_preloaded_module_is_gone_for_the_next(self):
        w = self.preloaded(self.PROBE)
        try:
            mutate = (
                "import {m}\n"
                "{m}.ADDED = 'run 1'\n"
                "{m}.rgb_to_hsv = lambda *a: 'patched'\n"
                "{m}.ONE_THIRD = 0.5\n"
                "{m}.__dict__.setdefault('_cache', {{}})['k'] = 'secret'\n"
                "result = {m}.rgb_to_hsv(1, 1, 1)"
            ).format(m=self.PROBE)
            self.assertEqual(self.frame(w.run(mutate, policy=permissive()))["result"], "patched")
            look = (
                "import {m}\n"
                "result = [hasattr({m}, 'ADDED'), {m}.rgb_to_hsv(1, 1, 1), {m}.ONE_THIRD,"
                " hasattr({m}, '_cache')]"
            ).format(m=self.PROBE)
            for _ in range(2):  # both zygotes' runs, whichever serves
                got = self.frame(w.run(look, policy=permissive()))["result"]
                self.assertEqual(got, [False, [0.0, 0.0, 1.0], 1.0 / 3.0, False])
        finally:
            w.close()

    def test_a_blocked_preloaded_module_stays_blocked(self):
        w = self.preloaded(self.PROBE)
        try:
            policy = dict(DEFAULT_POLICY, blocked_imports=DEFAULT_POLICY["blocked_imports"] + [self.PROBE])
            r = w.run("import %s" % self.PROBE, policy=policy)
            self.assertEqual(r["exit_code"], 1)
            self.assertEqual(
                self.frame(r)["error"], "ImportError: Import '%s' is blocked by policy" % self.PROBE
            )
        finally:
            w.close()

    def test_a_preloaded_fork_exec_is_disarmed_where_processes_are_denied(self):
        w = self.preloaded("subprocess")
        try:
            code = (
                "import _posixsubprocess\n"
                "try:\n"
                "    _posixsubprocess.fork_exec(*([None] * 23))\n"
                "except PermissionError as e:\n"
                "    result = str(e)\n"
            )
            r = w.run(code)
            self.assertIn("blocked by policy", self.frame(r)["result"], r)
            # A policy that allows processes keeps the real function.
            r = w.run("import _posixsubprocess\nresult = _posixsubprocess.fork_exec.__name__", policy=permissive())
            self.assertEqual(self.frame(r)["result"], "fork_exec")
        finally:
            w.close()

    def test_a_module_that_fails_to_import_stops_the_worker_with_its_name(self):
        for name, exc in (("spr_no_such_module", "ModuleNotFoundError"), ("encodings.mbcs", "ImportError")):
            w = self.preloaded(name)
            try:
                self.assertEqual(w.hello["type"], "fatal")
                self.assertIn("could not preload module '%s': %s" % (name, exc), w.hello["message"])
            finally:
                self.assertNotEqual(w.close(), 0)

    def test_the_preload_leaves_the_runs_environment_as_it_was(self):
        w = self.preloaded(self.PROBE)
        try:
            r = w.run("import os\nresult = sorted(os.environ)", policy=permissive())
            self.assertEqual(self.frame(r)["result"], ["HOME", "LANG", "PATH", "PYTHONIOENCODING", "TMPDIR"])
        finally:
            w.close()


if __name__ == "__main__":
    unittest.main()
