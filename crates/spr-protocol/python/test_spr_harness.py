"""Unit tests of the harness (spr_harness.py), run by `cargo test -p spr-protocol`.

Pure parts (the plan, the order of a run's isolation against a recording kernel, the
report and its bounds, output capture, the scratch wipe, descriptor passing) are tested
in process; the worker as a whole is driven as a real subprocess speaking frames, with no
sandbox (the kernel layer is tested from Rust)."""

import fcntl
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

    def test_unpaired_surrogates_are_replaced_and_everything_else_left_as_it_is(self):
        data = h.encode_report({"outcome": "completed", "result": {"\udc80": ["\udcff", "a\ud800", "😀", "back\\ud800"]}})
        self.assertEqual(
            json.loads(data)["result"], {"\ufffd": ["\ufffd", "a\ufffd", "😀", "back\\ud800"]}
        )
        # Strict: every string it holds is valid Unicode (this raises on a lone surrogate).
        json.dumps(json.loads(data), ensure_ascii=False).encode("utf-8")
        # Text with pairs or escaped backslashes only is not re-encoded at all.
        for text in ('"\\ud83d\\ude00"', '"back\\\\ud800"', "[1, 2]"):
            self.assertIs(h.paired_surrogates(text), text)
        # Deep nesting without a lone surrogate is not walked.
        deep = "[" * 5000 + '"\\ud83d\\ude00"' + "]" * 5000
        self.assertIs(h.paired_surrogates(deep), deep)

    def test_an_exception_whose_str_raises_is_still_described(self):
        class Hostile(Exception):
            def __str__(self):
                raise RuntimeError("no")

        self.assertEqual(h.describe(Hostile()), "Hostile: <str() of the exception failed>")

    def test_a_result_whose_str_raises_is_an_unserializable_result(self):
        class Hostile:
            def __str__(self):
                raise RuntimeError("no")

        frame = json.loads(h.encode_report({"outcome": "completed", "result": Hostile()}))
        self.assertEqual(frame["outcome"], "exception")
        self.assertIn("str() of a value raised RuntimeError: no", frame["error"])

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

    def test_wipe_empties_a_tree_deeper_than_the_recursion_limit_and_path_max(self):
        base = tempfile.mkdtemp()
        fd = os.open(base, os.O_RDONLY)
        try:
            for _ in range(sys.getrecursionlimit() + 1500):  # some 5000 bytes of path
                os.mkdir("dd", dir_fd=fd)
                inner = os.open("dd", os.O_RDONLY, dir_fd=fd)
                os.close(fd)
                fd = inner
            with open(os.open("leaf", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=fd), "w") as f:
                f.write("x")
        finally:
            os.close(fd)
        self.assertTrue(h.wipe_dir(base))
        self.assertEqual(os.listdir(base), [])
        os.rmdir(base)

    def test_wipe_empties_a_wide_tree_listing_each_directory_once(self):
        base = tempfile.mkdtemp()
        for i in range(300):
            os.makedirs(os.path.join(base, "d%d" % i, "e"))
            open(os.path.join(base, "d%d" % i, "e", "f"), "w").close()
            open(os.path.join(base, "g%d" % i), "w").close()
        listed = []
        real = os.listdir

        def counting(path="."):
            listed.append(path)
            return real(path)

        h.os.listdir = counting
        try:
            h._wipe(base, os.lstat(base).st_dev)
        finally:
            h.os.listdir = real
        self.assertEqual(os.listdir(base), [])
        self.assertEqual(len(listed), 1 + 300 * 2, "each directory once (not again after each child)")
        os.rmdir(base)

    def test_wipe_leaves_what_it_cannot_remove_and_says_so(self):
        base = tempfile.mkdtemp()
        os.makedirs(os.path.join(base, "a", "b"))
        open(os.path.join(base, "a", "b", "f"), "w").close()
        open(os.path.join(base, "g"), "w").close()
        # Another device number stands in for a mount below the base: nothing of it is
        # entered or removed.
        h._wipe(base, os.lstat(base).st_dev + 1)
        self.assertEqual(sorted(os.listdir(base)), ["a", "g"])
        self.assertTrue(os.path.exists(os.path.join(base, "a", "b", "f")))
        self.assertTrue(h.wipe_dir(base))
        os.rmdir(base)

    def test_wipe_clears_the_immutable_and_append_only_flags_a_root_run_set(self):
        base = tempfile.mkdtemp(dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
        frozen = os.path.join(base, "frozen")
        with open(frozen, "w") as f:
            f.write("left")
        appending = os.path.join(base, "appending")
        os.mkdir(appending)
        open(os.path.join(appending, "inside"), "w").close()

        def set_flag(path, flag):
            fd = os.open(path, os.O_RDONLY)
            try:
                fcntl.ioctl(fd, h.FS_IOC_SETFLAGS, struct.pack("i", flag) + bytes(4))
            finally:
                os.close(fd)

        try:
            set_flag(frozen, h.FS_IMMUTABLE_FL)
        except OSError as exc:
            os.unlink(frozen)
            shutil.rmtree(base)
            # Nobody here can make a file immutable (no CAP_LINUX_IMMUTABLE, or a
            # filesystem without the flags): then no run can either.
            self.skipTest("cannot set FS_IMMUTABLE_FL here: %s" % exc)
        set_flag(appending, h.FS_APPEND_FL)
        set_flag(base, h.FS_IMMUTABLE_FL)
        self.assertTrue(h.wipe_dir(base))
        self.assertEqual(os.listdir(base), [])
        self.assertFalse(h.unfreeze(None, base), "the base's own flag was cleared on the way")
        os.rmdir(base)

    def test_wipe_never_enters_a_bind_mount_of_the_same_filesystem(self):
        base = tempfile.mkdtemp()
        victim = tempfile.mkdtemp()
        os.chmod(victim, 0o755)
        with open(os.path.join(victim, "keep"), "w") as f:
            f.write("precious")
        bound = os.path.join(base, "bound")
        os.mkdir(bound)
        try:
            h.kernel().mount(victim, bound, None, h.MS_BIND, None)
        except OSError as exc:
            shutil.rmtree(base)
            shutil.rmtree(victim)
            # Nothing here may mount (not root of this mount namespace): no run can.
            self.skipTest("cannot bind-mount here: %s" % exc)
        try:
            self.assertEqual(os.lstat(bound).st_dev, os.lstat(base).st_dev, "the same device")
            self.assertTrue(h.wipe_dir(base), "the mount was detached, then wiped")
            self.assertEqual(os.listdir(base), [])
            self.assertEqual(os.listdir(victim), ["keep"])
            self.assertEqual(stat.S_IMODE(os.stat(victim).st_mode), 0o755)
        finally:
            if os.path.ismount(bound):
                h.kernel().umount_detached(bound)
            shutil.rmtree(base)
            shutil.rmtree(victim)

    def test_wipe_keeps_the_flags_of_a_file_also_named_outside_the_scratch(self):
        base = tempfile.mkdtemp()
        outside = tempfile.mkdtemp()
        victim = os.path.join(outside, "victim")
        with open(victim, "w") as f:
            f.write("x")
        os.link(victim, os.path.join(base, "link"))
        fd = os.open(victim, os.O_RDONLY)
        try:
            fcntl.ioctl(fd, h.FS_IOC_SETFLAGS, struct.pack("i", h.FS_IMMUTABLE_FL) + bytes(4))
        except OSError as exc:
            os.close(fd)
            shutil.rmtree(base)
            shutil.rmtree(outside)
            self.skipTest("cannot set FS_IMMUTABLE_FL here: %s" % exc)
        try:
            self.assertFalse(h.wipe_dir(base), "the link stays, and the scrub says so")
            flags = struct.unpack("i", fcntl.ioctl(fd, h.FS_IOC_GETFLAGS, bytes(8))[:4])[0]
            self.assertTrue(flags & h.FS_IMMUTABLE_FL, "the other name's flag is kept")
        finally:
            fcntl.ioctl(fd, h.FS_IOC_SETFLAGS, struct.pack("i", 0) + bytes(4))
            os.close(fd)
            shutil.rmtree(base)
            shutil.rmtree(outside)

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

    def test_the_memory_limit_is_private_memory_with_address_space_above_it(self):
        plan = h.Plan({})
        saved = h._base_data_kb, h._preload_cost
        hard_data = h.resource.getrlimit(h.resource.RLIMIT_DATA)[1]
        hard_as = h.resource.getrlimit(h.resource.RLIMIT_AS)[1]
        # (base KiB, preload KiB of VmData and VmSize) -> (RLIMIT_DATA, RLIMIT_AS) in MiB
        cases = [
            ((0, None), (64, 64 + h.ADDRESS_SPACE_HEADROOM_MB)),
            # The interpreter's and harness's own memory, rounded up to whole MiB.
            ((18000, None), (64 + 18, 64 + h.ADDRESS_SPACE_HEADROOM_MB)),
            ((18000, (10000, 30000)), (64 + 28, 64 + h.ADDRESS_SPACE_HEADROOM_MB + 30)),
        ]
        try:
            for (base, preload), (data_mb, space_mb) in cases:
                h._base_data_kb = base
                h._preload_cost = None if preload is None else {"data_kb": preload[0], "vm_kb": preload[1]}
                limits = dict(h.rlimit_plan(dict(DEFAULT_POLICY, memory_limit_mb=64), plan))
                if hard_data == h.resource.RLIM_INFINITY:
                    self.assertEqual(limits[h.resource.RLIMIT_DATA], data_mb << 20, (base, preload))
                if hard_as == h.resource.RLIM_INFINITY:
                    self.assertEqual(limits[h.resource.RLIMIT_AS], space_mb << 20, (base, preload))
        finally:
            h._base_data_kb, h._preload_cost = saved

    def test_the_stat_of_a_process_is_read_by_field(self):
        fields = h.read_stat("/proc/self/stat")
        self.assertIn(fields[h.STAT_STATE], (b"R", b"S"))
        self.assertGreater(fields[h.STAT_VSIZE], 0)
        self.assertFalse(fields[h.STAT_FLAGS] & h.PF_EXITING)
        self.assertIsNone(h.read_stat("/proc/0/stat"))
        if not hasattr(os, "pidfd_open"):
            return
        pid = os.fork()
        if pid == 0:
            time.sleep(5)
            os._exit(0)
        try:
            fd = os.pidfd_open(pid)
            try:
                self.assertEqual(h.stat_path_of(fd), "/proc/%d/stat" % pid)
            finally:
                os.close(fd)
        finally:
            os.kill(pid, 9)
            os.waitpid(pid, 0)

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
        # The stages of its start (a worker with a preload or warm-up says them before
        # its greeting), then the greeting or its fatal frame (None if it died first).
        self.stages = []
        self.hello = self.read(30)
        while self.hello is not None and self.hello["type"] == "stage":
            self.stages.append(self.hello["stage"])
            self.hello = self.read(30)

    def read(self, timeout):
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise AssertionError("no frame within %ss" % timeout)
        header = self.proc.stdout.read(4)
        if len(header) < 4:
            return None
        return json.loads(self.proc.stdout.read(int.from_bytes(header, "big")))

    def run(self, code, policy=None, input_data=None, timeout=30, id=1, **extra):
        request = {"type": "run", "id": id, "code": code, "input_data": input_data or {}, "policy": policy or DEFAULT_POLICY}
        request.update(extra)  # files, collect
        body = json.dumps(request, separators=(",", ":")).encode()
        self.proc.stdin.write(len(body).to_bytes(4, "big") + body)
        self.proc.stdin.flush()
        return self.read(timeout)

    def cell(self, code, policy=None, input_data=None, timeout=30, id=1, **extra):
        return self.run(code, policy, input_data, timeout, id, type="cell", **extra)

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

    def test_code_raising_an_exception_whose_str_raises_gets_a_report(self):
        code = (
            "class E(Exception):\n"
            "    def __str__(self):\n"
            "        raise RuntimeError('no')\n"
            "raise E()"
        )
        r = self.worker.run(code)
        self.assertEqual(r["exit_code"], 1, r)
        self.assertEqual(self.frame(r)["error"], "E: <str() of the exception failed>")

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


class AttachmentTests(unittest.TestCase):
    """The writer and the collector, in a directory of their own (no worker)."""

    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.scratch = os.path.join(self.dir, "scratch")
        os.mkdir(self.scratch)
        self.outside = os.path.join(self.dir, "outside")
        os.mkdir(self.outside)
        with open(os.path.join(self.outside, "secret"), "w") as f:
            f.write("SECRET")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def ident(self):
        return h.open_scratch_ident(self.scratch)

    def collect(self, globs, budget=1 << 20):
        notes = []
        files = h.collect_files(self.scratch, self.ident(), globs, budget, notes)
        return files, notes

    def test_text_and_binary_files_are_written_with_their_parents(self):
        blob = bytes(range(256)) * 4
        h.write_files(self.scratch, [
            {"path": "data/in.csv", "content": "a,b\n1,\u00e9\n"},
            {"path": "deep/er/b.bin", "content": __import__("base64").b64encode(blob).decode(), "encoding": "base64"},
        ])
        with open(os.path.join(self.scratch, "data/in.csv"), encoding="utf-8") as f:
            self.assertEqual(f.read(), "a,b\n1,\u00e9\n")
        with open(os.path.join(self.scratch, "deep/er/b.bin"), "rb") as f:
            self.assertEqual(f.read(), blob)
        files, notes = self.collect(["**"])
        self.assertEqual([f["path"] for f in files], ["data/in.csv", "deep/er/b.bin"])
        self.assertEqual(__import__("base64").b64decode(files[1]["content"]), blob)
        self.assertEqual((files[1]["size"], files[1]["truncated"]), (1024, False))
        self.assertEqual(notes, [])

    def test_a_symlink_in_the_way_is_never_followed_when_writing(self):
        os.symlink(self.outside, os.path.join(self.scratch, "data"))
        os.symlink(os.path.join(self.outside, "secret"), os.path.join(self.scratch, "leaf"))
        for path in ("data/x", "leaf"):
            with self.assertRaises(h.AttachmentError) as cm:
                h.write_files(self.scratch, [{"path": path, "content": "pwned"}])
            self.assertIn(repr(path), str(cm.exception))
        with open(os.path.join(self.outside, "secret")) as f:
            self.assertEqual(f.read(), "SECRET")
        self.assertEqual(os.listdir(self.outside), ["secret"])

    def test_only_a_plain_file_is_replaced(self):
        h.write_files(self.scratch, [{"path": "a.txt", "content": "first, longer"}])
        h.write_files(self.scratch, [{"path": "a.txt", "content": "second"}])
        with open(os.path.join(self.scratch, "a.txt")) as f:
            self.assertEqual(f.read(), "second")
        os.mkdir(os.path.join(self.scratch, "adir"))
        os.mkfifo(os.path.join(self.scratch, "fifo"))
        os.link(os.path.join(self.scratch, "a.txt"), os.path.join(self.scratch, "hard"))
        for path in ("adir", "fifo", "hard", "a.txt/under"):
            with self.assertRaises(h.AttachmentError, msg=path):
                h.write_files(self.scratch, [{"path": path, "content": "x"}])

    def test_bad_paths_and_content_are_refused_by_the_harness_too(self):
        for path in ("/etc/x", "../x", "a/../../x", "a//b", "./a", "", "a\\b"):
            with self.assertRaises(h.AttachmentError, msg=path):
                h.write_files(self.scratch, [{"path": path, "content": "x"}])
        with self.assertRaises(h.AttachmentError):
            h.write_files(self.scratch, [{"path": "b.bin", "content": "!!notbase64", "encoding": "base64"}])
        self.assertEqual(os.listdir(self.scratch), [])
        for glob in ("../*", "/etc/*", "a/../*"):
            with self.assertRaises(h.AttachmentError, msg=glob):
                self.collect([glob])

    def test_symlinks_are_not_collected_whatever_they_point_at(self):
        os.mkdir(os.path.join(self.scratch, "out"))
        with open(os.path.join(self.scratch, "out/real.txt"), "w") as f:
            f.write("mine")
        os.symlink(os.path.join(self.outside, "secret"), os.path.join(self.scratch, "out/link.txt"))
        os.symlink("real.txt", os.path.join(self.scratch, "out/inside.txt"))
        os.symlink(self.outside, os.path.join(self.scratch, "out/dir"))
        files, notes = self.collect(["out/**", "**/*.txt", "out/dir/*"])
        self.assertEqual([f["path"] for f in files], ["out/real.txt"])
        self.assertNotIn("SECRET", json.dumps(files))
        self.assertTrue(any("out/link.txt is a symlink" in n for n in notes), notes)

    def test_globs_match_by_segment_and_a_directory_named_like_a_file_is_not_a_file(self):
        for path in ("a.png", "b.csv", "out/c.png", "out/deep/d.txt", "other/e.png"):
            os.makedirs(os.path.dirname(os.path.join(self.scratch, path)), exist_ok=True)
            with open(os.path.join(self.scratch, path), "w") as f:
                f.write(path)
        os.mkdir(os.path.join(self.scratch, "dir.png"))
        paths = lambda globs: [f["path"] for f in self.collect(globs)[0]]
        self.assertEqual(paths(["*.png"]), ["a.png"])
        self.assertEqual(paths(["**/*.png"]), ["a.png", "other/e.png", "out/c.png"])
        self.assertEqual(paths(["out/**"]), ["out/c.png", "out/deep/d.txt"])
        self.assertEqual(paths(["out"]), [])
        self.assertEqual(paths(["b.csv", "b.csv", "*.csv"]), ["b.csv"])
        self.assertEqual(paths(["[ab].*"]), ["a.png", "b.csv"])
        self.assertEqual(paths(["nothing/**"]), [])

    def test_huge_files_are_cut_to_the_budget_and_say_so(self):
        with open(os.path.join(self.scratch, "a.bin"), "wb") as f:
            f.write(b"a" * 3000)
        with open(os.path.join(self.scratch, "b.bin"), "wb") as f:
            f.write(b"b" * 3000)
        files, notes = self.collect(["*.bin"], budget=4000)
        self.assertEqual([(f["size"], f["truncated"]) for f in files], [(3000, False), (3000, True)])
        self.assertEqual(len(__import__("base64").b64decode(files[1]["content"])), 1000)
        self.assertEqual(notes, ["collect: b.bin cut to fit the 4000 bytes the collected files may hold together"])
        with open(os.path.join(self.scratch, "c.bin"), "wb") as f:
            f.write(b"c" * 10)
        _, notes = self.collect(["*.bin"], budget=4000)
        self.assertEqual(
            notes,
            ["collect: b.bin and 1 more file cut to fit the 4000 bytes the collected files may hold together (see each file's `truncated`)"],
        )

    def test_a_directory_of_many_names_is_not_walked_past_the_cap(self):
        os.mkdir(os.path.join(self.scratch, "many"))
        for i in range(300):
            open(os.path.join(self.scratch, "many", "%03d" % i), "w").close()
        saved = h.MAX_COLLECT_ENTRIES
        h.MAX_COLLECT_ENTRIES = 50
        try:
            files, notes = self.collect(["**"])
        finally:
            h.MAX_COLLECT_ENTRIES = saved
        self.assertLessEqual(len(files), 50)
        self.assertIn("stopped after looking at 50 entries", notes[-1])

    def test_names_the_host_would_refuse_are_skipped_not_sent(self):
        for name in (b"latin-\xe9.txt", b"new\nline.txt", b"ok.txt"):
            with open(os.path.join(os.fsencode(self.scratch), name), "w") as f:
                f.write("x")
        files, notes = self.collect(["*.txt"])
        self.assertEqual([f["path"] for f in files], ["ok.txt"])
        self.assertEqual(len([n for n in notes if "cannot be returned" in n]), 2, notes)
        json.dumps(notes, ensure_ascii=False).encode("utf-8")  # notes are printable

    def test_a_replaced_scratch_is_not_collected(self):
        ident = self.ident()
        os.rename(self.scratch, self.scratch + ".old")
        os.mkdir(self.scratch)
        with open(os.path.join(self.scratch, "x"), "w") as f:
            f.write("x")
        notes = []
        self.assertEqual(h.collect_files(self.scratch, ident, ["*"], 100, notes), [])
        self.assertIn("replaced", notes[0])

    def test_the_files_go_into_the_encoded_report_within_its_frame(self):
        with open(os.path.join(self.scratch, "r.txt"), "w") as f:
            f.write("hello")
        data = h.attach_outputs(b'{"outcome":"completed","result":1}', self.scratch, self.ident(), ["*.txt"], time.monotonic() + 5)
        report = json.loads(data)
        self.assertEqual(report["result"], 1)
        self.assertEqual(report["files"][0]["content"], "aGVsbG8=")
        # A result that fills the frame leaves no room: the file is cut to nothing.
        big = b'{"outcome":"completed","result":"' + b"x" * (h.MAX_RESULT_BYTES - 100) + b'"}'
        report = json.loads(h.attach_outputs(big, self.scratch, self.ident(), ["*.txt"], time.monotonic() + 5))
        self.assertEqual((report["files"][0]["content"], report["files"][0]["truncated"]), ("", True))


class WorkerFileTests(unittest.TestCase):
    def setUp(self):
        self.worker = Worker()

    def tearDown(self):
        self.worker.close()

    def test_files_go_in_before_the_code_and_come_back_after(self):
        r = self.worker.run(
            "text = open('data/in.txt').read()\n"
            "open('out.txt', 'w').write(text.upper())\n"
            "result = text\n",
            policy=permissive(),
            files=[{"path": "data/in.txt", "content": "abc"}],
            collect=["*.txt", "data/**"],
        )
        frame = json.loads(r["child_frame"])
        self.assertEqual(frame["result"], "abc")
        self.assertEqual([(f["path"], f["content"]) for f in frame["files"]], [("data/in.txt", "YWJj"), ("out.txt", "QUJD")])

    def test_code_that_breaks_shared_modules_keeps_its_report(self):
        r = self.worker.run(
            "import sys, signal, time\nsignal.setitimer = None\ntime.monotonic = None\nsys.modules = None\nresult = 7",
            policy=permissive(),
            files=[{"path": "a.txt", "content": "x"}],
            collect=["*.txt"],
        )
        frame = json.loads(r["child_frame"])
        self.assertEqual(frame["result"], 7)
        self.assertEqual(frame["files"][0]["path"], "a.txt")

    def test_a_symlink_planted_by_the_code_is_not_collected(self):
        r = self.worker.run(
            "import os\nos.symlink('/etc/passwd', 'leak.txt')\nos.mkdir('d')\nos.symlink('/etc', 'd/etc')\n",
            policy=permissive(),
            collect=["*.txt", "d/**"],
        )
        frame = json.loads(r["child_frame"])
        self.assertNotIn("files", frame)
        self.assertIn("leak.txt is a symlink", r["stderr"])

    def test_a_file_that_cannot_be_written_is_the_run_s_error_and_the_code_does_not_run(self):
        r = self.worker.run(
            "print('ran')",
            policy=permissive(sandbox={"max_file_size_mb": 1}),
            files=[{"path": "big.bin", "content": "x" * (2 << 20)}],
        )
        frame = json.loads(r["child_frame"])
        self.assertEqual(frame["outcome"], "exception")
        self.assertIn("files[0] 'big.bin'", frame["error"])
        self.assertEqual(r["stdout"], "")


class FigureTests(unittest.TestCase):
    """Rendering with a stand-in for matplotlib.pyplot (the real one is tested from Rust
    with the pinned data stack): hostile figures make notes, not broken reports."""

    class Figure:
        def __init__(self, behaviour):
            self.behaviour = behaviour

        def savefig(self, buf, format, dpi):
            if self.behaviour == "raise":
                raise RuntimeError("bad artist")
            if self.behaviour == "hang":
                while True:
                    pass
            if self.behaviour == "escape":
                raise SystemExit(3)
            if self.behaviour == "nasty":
                class Nasty(Exception):
                    def __str__(self):
                        raise RuntimeError("no")
                raise Nasty()
            buf.write(h.PNG_SIGNATURE + b"rest" if self.behaviour == "png" else b"GIF89a")

    class Pyplot:
        def __init__(self, figures):
            self.figures = figures
            self.closed = False

        def get_fignums(self):
            return list(range(1, len(self.figures) + 1))

        def figure(self, n):
            return self.figures[n - 1]

        def close(self, which):
            self.closed = which

    def render(self, behaviours, seconds=2.0, budget=1 << 20):
        plt = self.Pyplot([self.Figure(b) for b in behaviours])
        saved = sys.modules.get("matplotlib.pyplot")
        sys.modules["matplotlib.pyplot"] = plt
        try:
            notes = []
            return h.render_figures(budget, seconds, notes), notes, plt
        finally:
            if saved is None:
                del sys.modules["matplotlib.pyplot"]
            else:
                sys.modules["matplotlib.pyplot"] = saved

    def test_open_figures_become_png_outputs_and_are_closed(self):
        outputs, notes, plt = self.render(["png", "raise", "gif", "png"])
        self.assertEqual(len(outputs), 2)
        self.assertEqual(outputs[0]["mime_type"], "image/png")
        self.assertEqual(plt.closed, "all")
        self.assertTrue(any("bad artist" in n for n in notes), notes)
        self.assertTrue(any("did not render as PNG" in n for n in notes), notes)

    def test_a_figure_that_never_finishes_rendering_is_stopped_in_time(self):
        started = time.monotonic()
        import signal
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM])
        outputs, notes, _ = self.render(["png", "hang"], seconds=0.5)
        self.assertLess(time.monotonic() - started, 3)
        self.assertEqual(len(outputs), 1)
        self.assertIn("took more than", notes[-1])

    def test_caps_and_a_figure_raising_systemexit(self):
        outputs, notes, _ = self.render(["png"] * (h.MAX_OUTPUTS + 2))
        self.assertEqual(len(outputs), h.MAX_OUTPUTS)
        outputs, notes, _ = self.render(["png", "png"], budget=20)
        self.assertEqual(len(outputs), 1)
        outputs, notes, _ = self.render(["png"], seconds=0)
        self.assertEqual(outputs, [])
        outputs, notes, _ = self.render(["nasty", "png"])
        self.assertEqual(len(outputs), 1)
        self.assertIn("Nasty", notes[0])
        outputs, notes, _ = self.render(["escape", "png"])
        self.assertEqual(len(outputs), 1)
        self.assertIn("SystemExit", notes[0])



def write_on_every_fd(payload):
    """Cell code that writes `payload` (a Python expression) on every descriptor past
    stderr it can write to: the result pipe among them."""
    return (
        "for fd in range(3, 64):\n"
        "    try:\n"
        "        os.write(fd, %s)\n"
        "    except OSError:\n"
        "        pass\n" % payload
    )


class ZygoteLinkTests(unittest.TestCase):
    def test_a_zygote_gone_with_our_message_unread_is_gone_not_an_error(self):
        m, z = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            h.send_message(m, "E 1")  # never read by the zygote
            h.send_message(z, "X 2 1 0 0.0 0 0 0")
            z.close()
            # The kernel reports ECONNRESET first, then what the zygote had sent.
            self.assertEqual(h.recv_message(m), ("X 2 1 0 0.0 0 0 0", []))
            self.assertEqual(h.recv_message(m), ("", []))
        finally:
            m.close()

    def test_the_end_of_a_zygote_that_said_it_stops_is_not_a_failure(self):
        m, z = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        link = h.ZygoteLink(2, m)
        monitor = h.Monitor.__new__(h.Monitor)
        monitor.ready, monitor.exits, monitor.broken = [], {}, None
        try:
            h.send_message(z, "X 7 3 0 0.0 0 0 0")  # reset failed: the zygote stops
            z.close()
            monitor.handle_zygote_message(link)
            self.assertTrue(link.ending)
            self.assertIn((2, 3), monitor.exits)
            monitor.handle_zygote_message(link)
            self.assertTrue(link.gone)
            # One that did not say so is a broken worker.
            other = h.ZygoteLink(3, socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)[0])
            other.sock.shutdown(socket.SHUT_RDWR)
            with self.assertRaises(h.WorkerBroken):
                monitor.handle_zygote_message(other)
            other.sock.close()
        finally:
            m.close()


class SessionTests(unittest.TestCase):
    def setUp(self):
        self.worker = Worker()

    def tearDown(self):
        self.worker.close()

    def frame(self, report):
        return json.loads(report["child_frame"])

    def test_globals_and_imports_persist_and_the_last_expression_is_the_value(self):
        r = self.worker.cell("import math\nx = 20\nprint('one')")
        self.assertTrue(r["cell"])
        self.assertFalse(r["session_lost"])
        self.assertEqual(r["stdout"], "one\n")
        self.assertIsNone(self.frame(r)["value"])
        r = self.worker.cell("y = x + 1\nmath.floor(y * 1.5)", input_data={"z": 2})
        self.assertEqual(self.frame(r)["value"], 31)
        self.assertEqual(self.frame(r)["outcome"], "completed")
        r = self.worker.cell("result = z\n{'s': type(math).__name__}")
        self.assertEqual(self.frame(r)["result"], 2)  # a global from an earlier cell's input
        self.assertEqual(self.frame(r)["value"], {"s": "module"})
        r = self.worker.cell("result = z", input_data={"z": 5})
        self.assertEqual(self.frame(r)["result"], 5)

    def test_an_exception_keeps_the_session_and_a_syntax_error_too(self):
        r = self.worker.cell("a = 1\n1 / 0")
        self.assertEqual(self.frame(r)["outcome"], "exception")
        self.assertIn("ZeroDivisionError", self.frame(r)["error"])
        self.assertFalse(r["session_lost"])
        self.assertEqual(self.frame(self.worker.cell("def f(:"))["outcome"], "exception")
        self.assertEqual(self.frame(self.worker.cell("a + 1"))["value"], 2)

    def test_a_cell_past_its_deadline_is_interrupted_and_the_session_survives(self):
        self.worker.cell("import time\nkept = 'yes'")
        started = time.monotonic()
        r = self.worker.cell("while True:\n    time.sleep(0.01)", policy=dict(DEFAULT_POLICY, timeout_seconds=1))
        self.assertLess(time.monotonic() - started, 1 + h.CELL_INTERRUPT_GRACE_SECONDS)
        self.assertTrue(r["timed_out"])
        self.assertFalse(r["session_lost"])
        self.assertIn("KeyboardInterrupt", self.frame(r)["error"])
        self.assertEqual(self.frame(self.worker.cell("kept"))["value"], "yes")

    def test_a_cell_that_swallows_the_interrupt_loses_the_session(self):
        code = (
            "import time\n"
            "while True:\n"
            "    try:\n"
            "        time.sleep(0.01)\n"
            "    except KeyboardInterrupt:\n"
            "        pass\n"
        )
        r = self.worker.cell(code, policy=dict(DEFAULT_POLICY, timeout_seconds=1))
        self.assertTrue(r["timed_out"])
        self.assertTrue(r["session_lost"])
        self.assertEqual(r["signal"], 9)
        # The worker itself goes on: a new cell gets a new, empty session.
        r = self.worker.cell("'kept' in globals()")
        self.assertFalse(self.frame(r)["value"])

    def test_a_cell_that_writes_on_its_result_pipe_loses_the_session_without_a_timeout(self):
        code = "import os, time\n" + write_on_every_fd("b'\\x00\\x00\\x00\\x10junkjunkjunkjunk'") + "time.sleep(3)\n"
        r = self.worker.cell(code, policy=permissive(timeout_seconds=5))
        self.assertTrue(r["session_lost"], r)
        self.assertTrue(r["frame_refused"], r)
        self.assertFalse(r["timed_out"], r)
        self.assertLess(r["duration_ms"], 2500, r)

    def test_a_session_process_that_exits_is_lost(self):
        r = self.worker.cell("import os\nos._exit(3)", policy=permissive())
        self.assertTrue(r["session_lost"])
        self.assertEqual(r["exit_code"], 3)
        self.assertIsNone(r["child_frame"])

    def test_system_exit_ends_the_cell_not_the_session(self):
        r = self.worker.cell("n = 1\nraise SystemExit(4)")
        self.assertEqual(self.frame(r)["outcome"], "exit")
        self.assertEqual(self.frame(r)["exit_status"], 4)
        self.assertFalse(r["session_lost"])
        self.assertEqual(self.frame(self.worker.cell("n"))["value"], 1)

    def test_nothing_of_a_session_runs_between_its_cells(self):
        code = (
            "import threading, time\n"
            "ticks = [0]\n"
            "def tick():\n"
            "    while True:\n"
            "        ticks[0] += 1\n"
            "        time.sleep(0.001)\n"
            "threading.Thread(target=tick, daemon=True).start()\n"
            "time.sleep(0.05)\n"
        )
        self.assertEqual(self.frame(self.worker.cell(code))["outcome"], "completed")
        time.sleep(0.3)
        before = self.frame(self.worker.cell("ticks[0]"))["value"]
        time.sleep(0.6)
        after = self.frame(self.worker.cell("ticks[0]"))["value"]
        self.assertGreater(before, 10)  # it ran during the cells
        self.assertLess(after - before, 100)  # but not in the 0.6 s between them
        r = self.worker.cell("time.sleep(0.2)\nticks[0] - %d" % after)
        self.assertGreater(self.frame(r)["value"], 20)  # and runs again in the next cell

    def test_frames_the_code_forges_lose_the_session_instead_of_passing_for_later_cells(self):
        forge = (
            "import os, json, time\n"
            "fake = json.dumps({'outcome': 'completed', 'result': 'FORGED', 'value': 'FORGED'}).encode()\n"
            "frame = len(fake).to_bytes(4, 'big') + fake\n"
            + write_on_every_fd("frame")
            + "while True:\n"
            "    time.sleep(0.01)\n"
        )
        r = self.worker.cell(forge, policy=permissive(timeout_seconds=1))
        self.assertTrue(r["session_lost"], r)
        self.assertNotIn("FORGED", json.dumps(r))
        # A frame planted after the cell reported: the next cell finds it and is lost.
        plant = (
            "import os, threading, time, json\n"
            "def later():\n"
            "    time.sleep(0.2)\n"
            "    fake = json.dumps({'outcome': 'completed', 'value': 'PLANTED'}).encode()\n"
            "    for fd in range(3, 64):\n"
            "        try:\n"
            "            os.write(fd, (len(fake) + 32).to_bytes(4, 'big') + b'0' * 32 + fake)\n"
            "        except OSError:\n"
            "            pass\n"
            "threading.Thread(target=later).start()\n"
        )
        self.assertFalse(self.worker.cell(plant, policy=permissive())["session_lost"])
        r = self.worker.cell("time.sleep(0.5)\n2 + 2", policy=permissive())
        self.assertTrue(r["session_lost"], r)
        self.assertNotIn("PLANTED", json.dumps(r))

    def test_a_process_that_left_the_session_s_group_is_stopped_between_cells_too(self):
        code = (
            "import os, time\n"
            "r, w = os.pipe()\n"
            "pid = os.fork()\n"
            "if pid == 0:\n"
            "    os.setsid()\n"
            "    n = 0\n"
            "    while True:\n"
            "        n += 1\n"
            "        os.write(w, b'x')\n"
            "        time.sleep(0.001)\n"
            "os.set_blocking(r, False)\n"
            "time.sleep(0.05)\n"
            "def drain():\n"
            "    got = 0\n"
            "    while True:\n"
            "        try:\n"
            "            got += len(os.read(r, 65536))\n"
            "        except BlockingIOError:\n"
            "            return got\n"
        )
        self.assertEqual(self.frame(self.worker.cell(code, policy=permissive()))["outcome"], "completed")
        self.worker.cell("drain()", policy=permissive())
        time.sleep(0.6)
        idle = self.frame(self.worker.cell("drain()", policy=permissive()))["value"]
        self.assertLess(idle, 100)  # about 600 if it had kept running between the cells

    def test_values_that_are_not_json_come_back_as_text(self):
        self.assertEqual(self.frame(self.worker.cell("float('nan')"))["value"], "NaN")
        self.assertEqual(self.frame(self.worker.cell("{1, 2}"))["value"], "{1, 2}")


    def test_files_persist_for_the_session_and_come_back_when_collected(self):
        r = self.worker.cell(
            "import pathlib\npathlib.Path('data/in.csv').read_text()",
            files=[{"path": "data/in.csv", "content": "a,b\n1,2\n"}],
        )
        self.assertEqual(self.frame(r)["value"], "a,b\n1,2\n")
        r = self.worker.cell(
            "pathlib.Path('out.txt').write_text('made in cell 2')\nsorted(str(p) for p in pathlib.Path('.').rglob('*'))",
            collect=["*.txt"],
        )
        frame = self.frame(r)
        self.assertEqual(frame["value"], ["data", "data/in.csv", "out.txt"])
        self.assertEqual([f["path"] for f in frame["files"]], ["out.txt"])
        r = self.worker.cell("pathlib.Path('data/late.txt').read_text()", files=[{"path": "data/late.txt", "content": "x"}])
        self.assertEqual(self.frame(r)["value"], "x")



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
            # The user's own import is refused by name; a library's reaches the module.
            code = WorkerTests.LIBRARY_IMPORT + (
                "_posixsubprocess = lib_import('_posixsubprocess')\n"
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
                self.assertEqual(w.hello.get("cause"), "preload", "the host stops a server on it")
            finally:
                self.assertNotEqual(w.close(), 0)

    def test_the_stages_of_a_start_tell_a_death_in_the_warm_up_from_one_elsewhere(self):
        w = Worker()
        try:
            self.assertEqual(w.stages, [], "nothing to tell without a preload or warm-up")
            self.assertEqual(w.hello["type"], "hello")
        finally:
            w.close()
        w = self.preloaded("json")
        try:
            self.assertEqual(w.stages, ["preload", "started"])
            self.assertEqual(w.hello["type"], "hello")
        finally:
            w.close()
        # A warm-up that ends the process sends no fatal frame: the host sees it die
        # after "preload" and before "started".
        w = Worker("--plan", json.dumps({"warmup": "import os\nos._exit(3)"}))
        try:
            self.assertEqual(w.stages, ["preload"])
            self.assertIsNone(w.hello)
        finally:
            self.assertEqual(w.close(), 3)

    def test_the_preload_leaves_the_runs_environment_as_it_was(self):
        w = self.preloaded(self.PROBE)
        try:
            r = w.run("import os\nresult = sorted(os.environ)", policy=permissive())
            self.assertEqual(
                self.frame(r)["result"],
                sorted(
                    ["HOME", "LANG", "MPLBACKEND", "MPLCONFIGDIR", "PATH", "PYTHONIOENCODING", "TMPDIR"]
                    + list(h.BLAS_THREAD_VARIABLES)
                ),
            )
        finally:
            w.close()

    def test_a_run_may_allocate_its_memory_on_top_of_what_the_preload_maps(self):
        w = self.preloaded(self.PROBE)
        try:
            cost = w.hello["preload"]
            self.assertGreaterEqual(cost["data_kb"], 0)
            r = w.run(
                "import resource\n"
                "result = [resource.getrlimit(resource.RLIMIT_DATA)[0],"
                " resource.getrlimit(resource.RLIMIT_AS)[0]]",
                policy=dict(permissive(), memory_limit_mb=100),
            )
            data, space = self.frame(r)["result"]
            own_kb = w.hello["base_data_kb"] + cost["data_kb"]
            self.assertGreater(w.hello["base_data_kb"], 0)
            self.assertEqual(data, (100 + -(-own_kb // 1024)) << 20)
            self.assertEqual(
                space, (100 + h.ADDRESS_SPACE_HEADROOM_MB + -(-cost["vm_kb"] // 1024)) << 20
            )
        finally:
            w.close()


def page_of(buf, offset=0):
    """The address of the page holding byte `offset` of a writable buffer."""
    import ctypes

    address = ctypes.addressof((ctypes.c_char * len(buf)).from_buffer(buf)) + offset
    return address - address % h.PAGE


def in_spans(address, spans):
    return any(start <= address < start + length for start, length in spans)


def in_child(fn):
    """fn() evaluated in a forked child, its value (JSON) back through a pipe."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.write(w, json.dumps(fn()).encode())
        finally:
            os._exit(0)
    os.close(w)
    data = h.read_to_end(r)
    os.close(r)
    os.waitpid(pid, 0)
    return json.loads(data)


def exclusive(address):
    """Whether this process's page at `address` is in memory and mapped by it alone."""
    fd = os.open("/proc/self/pagemap", os.O_RDONLY)
    try:
        (entry,) = struct.unpack("<Q", os.pread(fd, 8, address // h.PAGE * 8))
    finally:
        os.close(fd)
    return bool(entry & h.PAGEMAP_PRESENT and entry & h.PAGEMAP_EXCLUSIVE)


MAP_NORESERVE = 0x4000  # Linux's, which Python's mmap module names only from 3.12


def thp_can_collapse():
    """MADV_COLLAPSE exists (Linux 6.1) and transparent huge pages are not off."""
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            if "[never]" in f.read():
                return False
    except OSError:
        return False
    major, minor = (int(x) for x in os.uname().release.split(".")[:2])
    return (major, minor) >= (6, 1)


def each_run_gives(test, worker, code, want, runs=3):
    """Run `code` (permissive policy) a few times on `worker`: each run's result is `want`."""
    for _ in range(runs):
        r = worker.run(code, policy=permissive())
        test.assertEqual(json.loads(r["child_frame"])["result"], want, r)


class MemoryLayoutTests(unittest.TestCase):
    """What M does to its memory so that forks and runs copy less: huge pages, and the
    pages a run typically writes learned from the warm-up and copied before the request."""

    def setUp(self):
        self.addCleanup(setattr, h, "_prefault", h._prefault)

    def test_written_pages_are_what_a_fork_copied_or_allocated(self):
        buf = bytearray(64 * h.PAGE)  # its own mapping, every page written here
        for i in range(0, len(buf), h.PAGE):
            buf[i] = 1

        def child():
            buf[3 * h.PAGE] = 2
            buf[10 * h.PAGE + 5] = 2
            return h.written_pages()

        spans = in_child(child)
        self.assertTrue(in_spans(page_of(buf, 3 * h.PAGE), spans), spans)
        self.assertTrue(in_spans(page_of(buf, 10 * h.PAGE), spans))
        for untouched in (5, 20, 40):
            self.assertFalse(in_spans(page_of(buf, untouched * h.PAGE), spans))

    def test_the_warm_ups_pages_are_copied_while_a_run_waits(self):
        h._spr_test_buffer = buf = bytearray(64 * h.PAGE)
        self.addCleanup(delattr, h, "_spr_test_buffer")
        for i in range(0, len(buf), h.PAGE):
            buf[i] = 1
        h._prefault = ()
        learned = h.learn_prefault(
            "import spr_harness\nspr_harness._spr_test_buffer[%d] = 3\n" % (7 * h.PAGE), 0.0
        )
        self.assertGreaterEqual(learned, 4)
        self.assertTrue(h._prefault, "nothing learned")
        self.assertTrue(in_spans(page_of(buf, 7 * h.PAGE), h._prefault))
        # The warm-up ran in a child: this process's buffer is as it was.
        self.assertEqual(buf[7 * h.PAGE], 1)

        def waiting_run():
            r, w = os.pipe()
            before = exclusive(page_of(buf, 7 * h.PAGE))
            h.prefault(h.kernel(), r)
            return [before, exclusive(page_of(buf, 7 * h.PAGE)), exclusive(page_of(buf, 30 * h.PAGE))]

        self.assertEqual(in_child(waiting_run), [False, True, False])

    def test_the_pre_fault_stops_as_soon_as_the_request_is_there(self):
        calls = []

        class Libc:
            def madvise(self, start, length, advice):
                calls.append((start.value, length.value, advice.value))
                return 0

        class K:
            import ctypes as ct

            libc = Libc()

        h._prefault = tuple((i * h.PAGE, h.PAGE) for i in range(1, 100))
        r, w = os.pipe()
        self.addCleanup(os.close, r)
        self.addCleanup(os.close, w)
        h.prefault(K(), r)
        self.assertEqual(len(calls), 99)
        self.assertEqual(calls[0], (h.PAGE, h.PAGE, h.MADV_POPULATE_WRITE))
        calls.clear()
        os.write(w, b"x")
        h.prefault(K(), r)
        self.assertEqual(calls, [])

    def test_nothing_is_learned_from_a_warm_up_that_fails(self):
        h._prefault = ()
        self.assertEqual(h.learn_prefault("raise ValueError('no')", 0.0), 0)
        self.assertEqual(h._prefault, ())

    def test_a_second_run_of_the_warm_up_that_hangs_costs_seconds_and_teaches_nothing(self):
        h._prefault = ()
        began = time.monotonic()
        # The child finds the mark the first run left, and sleeps.
        h._spr_test_seen = True
        self.addCleanup(delattr, h, "_spr_test_seen")
        code = "import spr_harness, time\nif getattr(spr_harness, '_spr_test_seen', False):\n    time.sleep(60)\n"
        self.assertEqual(h.learn_prefault(code, 0.0), 0)
        self.assertLess(time.monotonic() - began, h.LEARN_MIN_SECONDS + 3)
        self.assertEqual(h._prefault, ())

    def test_learned_spans_are_small_and_their_sum_is_capped(self):
        h._spr_test_big = buf = bytearray(4 * h.PREFAULT_SPAN_BYTES)
        self.addCleanup(delattr, h, "_spr_test_big")
        for i in range(0, len(buf), h.PAGE):
            buf[i] = 1
        code = (
            "import spr_harness\nb = spr_harness._spr_test_big\n"
            "for i in range(0, len(b), %d):\n    b[i] = 2\n" % h.PAGE
        )
        self.assertGreaterEqual(h.learn_prefault(code, 0.0), len(buf) // 1024)
        self.assertTrue(all(length <= h.PREFAULT_SPAN_BYTES for _, length in h._prefault))
        self.addCleanup(setattr, h, "PREFAULT_MAX_BYTES", h.PREFAULT_MAX_BYTES)
        h.PREFAULT_MAX_BYTES = 64 * h.PAGE
        self.assertEqual(h.learn_prefault(code, 0.0), 64 * h.PAGE // 1024)
        self.assertEqual(sum(length for _, length in h._prefault), 64 * h.PAGE)

    def test_full_ranges_become_huge_pages_and_sparse_ones_do_not(self):
        import mmap

        half = 8 << 20
        # One mapping that merges with no other (MAP_NORESERVE): its first half written
        # whole, its second one page in each 2 MiB.
        region = mmap.mmap(
            -1, 2 * half, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | MAP_NORESERVE
        )
        self.addCleanup(region.close)
        for i in range(0, half, h.PAGE):
            region[i] = 1
        for i in range(half, 2 * half, h.HUGE_PAGE):
            region[i] = 1
        start = page_of(region)

        def child():
            collapsed, filled = h.collapse_to_huge_pages(h.kernel())
            found = {"filled": filled}
            with open("/proc/self/smaps") as f:
                mine = False
                for line in f:
                    first = line.split()[0]
                    if "-" in first and not first.endswith(":"):
                        mine = int(first.split("-")[0], 16) == start
                    elif mine and first in ("AnonHugePages:", "Rss:"):
                        found[first] = int(line.split()[1])
            return [collapsed, found, region[h.PAGE], region[half + 1]]

        collapsed, found, a, b = in_child(child)
        self.assertEqual((a, b), (1, 0), "the contents are kept")
        # The sparse half was not filled in: it holds its 4 pages, no 8 MiB.
        self.assertLess(found["Rss:"], half // 1024 + 2048, found)
        self.assertLessEqual(found["filled"], collapsed // 2)
        if not thp_can_collapse():
            if os.environ.get("CI"):
                self.fail("CI needs MADV_COLLAPSE (Linux 6.1, transparent huge pages not off)")
            self.skipTest("no MADV_COLLAPSE here (Linux 6.1, transparent huge pages not off)")
        # The mapping need not start on a 2 MiB boundary: at least 3 of the 4 huge pages.
        self.assertGreaterEqual(found["AnonHugePages:"], 3 * 2048, found)
        self.assertGreaterEqual(collapsed, found["AnonHugePages:"])

    def test_a_run_sees_what_the_warm_up_left_and_not_what_a_run_did(self):
        w = Worker(
            "--plan",
            json.dumps({"preload": ["colorsys"], "warmup": "import colorsys\ncolorsys.WARMED = 1\nx = 2"}),
        )
        try:
            self.assertEqual(w.hello["type"], "hello")
            code = (
                "import colorsys\n"
                "result = [getattr(colorsys, 'WARMED', None), 'x' in globals()]\n"
                "colorsys.WARMED = 2"
            )
            each_run_gives(self, w, code, [1, False])
        finally:
            w.close()

    def test_a_warm_up_that_fails_stops_the_worker_with_its_exception(self):
        for code, want in (
            ("1/0", "the warm-up failed: ZeroDivisionError: division by zero"),
            ("def (", "the warm-up failed: SyntaxError"),
        ):
            w = Worker("--plan", json.dumps({"warmup": code}))
            try:
                self.assertEqual(w.hello["type"], "fatal")
                self.assertIn(want, w.hello["message"])
                self.assertEqual(w.hello.get("cause"), "preload")
            finally:
                self.assertNotEqual(w.close(), 0)

    def test_the_greeting_says_what_was_laid_out(self):
        w = Worker(
            "--plan",
            json.dumps({"preload": ["colorsys"], "warmup": "import colorsys\ncolorsys.hsv_to_rgb(0.5, 0.5, 0.5)"}),
        )
        try:
            memory = w.hello["memory"]
            self.assertGreater(memory["prefault_kb"], 0, memory)
            if thp_can_collapse():
                self.assertGreater(memory["huge_pages_kb"], 0, memory)
                self.assertLessEqual(memory["huge_pages_filled_kb"], memory["huge_pages_kb"] // 2)
            elif os.environ.get("CI"):
                self.fail("CI needs MADV_COLLAPSE")
        finally:
            w.close()

    def test_what_the_warm_up_printed_never_reaches_a_run(self):
        w = Worker(
            "--plan",
            json.dumps({
                "warmup": "import sys, os, signal\nprint('warm-up says hi')\nsys.stderr.write('and here')\n"
                "os.chdir('/')\nos.umask(0)\nsignal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})"
            }),
        )
        try:
            r = w.run(
                "import os, signal\nm = os.umask(0o22)\n"
                "result = [os.getcwd() != '/', m, sorted(signal.pthread_sigmask(signal.SIG_BLOCK, ()))]",
                policy=permissive(),
            )
            self.assertNotIn("warm-up says hi", r["stdout"])
            self.assertNotIn("and here", r["stderr"])
            got = json.loads(r["child_frame"])["result"]
            self.assertEqual(got[0], True, r)
            self.assertNotEqual(got[1], 0, r)
            self.assertEqual(got[2], [], r)
        finally:
            w.close()

    def test_a_warm_up_that_leaves_something_every_run_would_share_stops_the_worker(self):
        for code, want in (
            ("import tempfile\nkeep = tempfile.TemporaryFile()\nimport colorsys\ncolorsys.keep = keep", "left fd "),
            ("import mmap, colorsys\ncolorsys.keep = mmap.mmap(-1, 4096)", "left a shared mapping of "),
            # Read-only now, but a run could mprotect it writable.
            (
                "import mmap, colorsys\ncolorsys.keep = mmap.mmap(-1, 4096, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)",
                "left a shared mapping of ",
            ),
            ("import subprocess, colorsys\ncolorsys.keep = subprocess.Popen(['sleep', '30'])", "left process "),
            (
                "import threading, time\nthreading.Thread(target=time.sleep, args=(30,), daemon=True).start()",
                "the warm-up left 1 thread running besides the main one",
            ),
        ):
            w = Worker("--plan", json.dumps({"warmup": code}))
            try:
                self.assertEqual(w.hello["type"], "fatal", code)
                self.assertIn(want, w.hello["message"])
            finally:
                self.assertNotEqual(w.close(), 0)

    def test_a_file_the_warm_up_left_open_for_reading_is_each_runs_own(self):
        # matplotlib keeps the fonts it drew with open: each run reads its own opening.
        with tempfile.NamedTemporaryFile("wb", suffix=".ttf", delete=False) as f:
            f.write(b"0123456789")
        self.addCleanup(os.unlink, f.name)
        warmup = "import colorsys\ncolorsys.keep = open(%r, 'rb', buffering=0)\ncolorsys.keep.read(3)" % f.name
        w = Worker("--plan", json.dumps({"warmup": warmup}))
        try:
            self.assertEqual(w.hello["type"], "hello", w.hello)
            look = (
                "import colorsys, os\nk = colorsys.keep\n"
                "result = [os.lseek(k.fileno(), 0, 1), k.read(2).decode(), os.get_inheritable(k.fileno())]\n"
                "os.lseek(k.fileno(), 9, 0)"
            )
            each_run_gives(self, w, look, [3, "34", False])
        finally:
            w.close()
        # Replaced since the worker started: the run reads nothing rather than M's copy.
        with tempfile.NamedTemporaryFile("wb", delete=False) as g:
            g.write(b"abcdef")
        self.addCleanup(os.unlink, g.name)
        warmup = "import colorsys\ncolorsys.keep = open(%r, 'rb', buffering=0)" % g.name
        w = Worker("--plan", json.dumps({"warmup": warmup}))
        try:
            os.unlink(g.name)
            with open(g.name, "wb") as again:
                again.write(b"other")
            # The next run's process may be forked (and have reopened it) already; the one
            # after it is forked after the change.
            for _ in range(2):
                r = w.run("import colorsys\nresult = colorsys.keep.read().decode()", policy=permissive())
            self.assertEqual(json.loads(r["child_frame"])["result"], "", r)
        finally:
            w.close()

    def test_more_files_left_open_than_runs_reopen_stop_the_worker(self):
        warmup = "import colorsys\ncolorsys.keep = [open(%r, 'rb') for _ in range(65)]" % h.__file__
        w = Worker("--plan", json.dumps({"warmup": warmup}))
        try:
            self.assertEqual(w.hello["type"], "fatal", w.hello)
            self.assertIn("65 files open for reading (each run reopens at most 64)", w.hello["message"])
        finally:
            self.assertNotEqual(w.close(), 0)

    def test_only_a_read_only_regular_file_is_reopened(self):
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d)
        path = os.path.join(d, "f")
        with open(path, "wb") as f:
            f.write(b"x")
        ro = os.open(path, os.O_RDONLY)
        rw = os.open(path, os.O_RDWR)
        dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        r, w_ = os.pipe()
        gone = os.open(path, os.O_RDONLY)
        try:
            entry = h.reopenable(ro, path)
            self.assertEqual(entry[:2], (ro, path))
            self.assertEqual(entry[4:], (0, True))  # os.open: close-on-exec
            self.assertIsNone(h.reopenable(rw, path))
            self.assertIsNone(h.reopenable(dfd, d))
            self.assertIsNone(h.reopenable(r, "pipe:[1]"))
            os.unlink(path)
            self.assertIsNone(h.reopenable(gone, path + " (deleted)"))
            self.assertIsNone(h.reopenable(gone, path))
        finally:
            for fd in (ro, rw, dfd, r, w_, gone):
                os.close(fd)

    def test_the_plans_warm_up_is_text(self):
        self.assertIsNone(h.Plan({}).warmup)
        self.assertEqual(h.Plan({"warmup": "x = 1"}).warmup, "x = 1")
        with self.assertRaises(ValueError):
            h.Plan({"warmup": ["x"]})


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
