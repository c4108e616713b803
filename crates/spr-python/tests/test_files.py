"""Files into a run's scratch and back out, what is refused, and figures as PNGs."""

from __future__ import annotations

import pytest

from spr import RunnerPolicy, run_code

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BLOB = bytes(range(256)) * 8 + b"\x00\xff\xfe"  # every byte value, not valid UTF-8

# Neither `os` nor `open` blocked: the audit hook then leaves file calls to the kernel's
# boundary, so the code can make the symlinks the collection must not follow.
UNGUARDED = RunnerPolicy(blocked_imports=[], blocked_builtins=[])


def test_text_and_bytes_files_in(engine):
    code = (
        "import pathlib\n"
        "result = [pathlib.Path('notes/t.txt').read_text(encoding='utf-8'),\n"
        "          list(pathlib.Path('data/b.bin').read_bytes()[:4]),\n"
        "          len(pathlib.Path('data/b.bin').read_bytes()),\n"
        "          pathlib.Path('m.txt').read_text()]"
    )
    r = run_code(
        code,
        engine,
        files={"notes/t.txt": "héllo\nwörld", "data/b.bin": BLOB, "m.txt": memoryview(b"mv")},
    )
    assert r.ok, r
    assert r.result == ["héllo\nwörld", [0, 1, 2, 3], len(BLOB), "mv"]


def test_binary_round_trip(engine):
    code = (
        "import pathlib\n"
        "data = pathlib.Path('in.bin').read_bytes()\n"
        "pathlib.Path('out').mkdir()\n"
        "pathlib.Path('out/same.bin').write_bytes(data)\n"
        "pathlib.Path('out/rev.bin').write_bytes(data[::-1])\n"
        "pathlib.Path('out/sub').mkdir()\n"
        "pathlib.Path('out/sub/t.txt').write_text('é')\n"
        "pathlib.Path('skip.txt').write_text('not collected')\n"
    )
    r = run_code(code, engine, files={"in.bin": bytearray(BLOB)}, collect=["out/**"])
    assert r.ok, r
    by_path = {f.path: f for f in r.files}
    assert sorted(by_path) == ["out/rev.bin", "out/same.bin", "out/sub/t.txt"]
    assert by_path["out/same.bin"].data == BLOB
    assert by_path["out/rev.bin"].data == BLOB[::-1]
    assert by_path["out/same.bin"].size == len(BLOB)
    assert not by_path["out/same.bin"].truncated
    assert by_path["out/sub/t.txt"].text() == "é"


def test_collect_a_single_glob_string(engine):
    r = run_code("open('a.txt', 'w').write('A')", engine, collect="*.txt", policy=UNGUARDED)
    assert [(f.path, f.data) for f in r.files] == [("a.txt", b"A")]


def test_collects_even_when_the_code_raises(engine):
    r = run_code(
        "import pathlib\npathlib.Path('partial.txt').write_text('half')\nraise RuntimeError('late')",
        engine,
        collect=["*.txt"],
    )
    assert not r.ok and r.error == "RuntimeError: late"
    assert [f.path for f in r.files] == ["partial.txt"]


@pytest.mark.parametrize(
    "path, reason",
    [
        ("../x", "'..'"),
        ("a/../../x", "'..'"),
        ("/etc/x", "absolute"),
        ("a//b", "empty segment"),
        ("./a", "'.'"),
        ("a\\b", "backslash"),
        ("", "empty"),
        ("a\nb", "control"),
    ],
)
def test_file_paths_that_leave_scratch_are_refused(engine, path, reason):
    with pytest.raises(ValueError, match=reason) as info:
        run_code("result = 1", engine, files={path: "x"})
    assert "files[0]" in str(info.value)


@pytest.mark.parametrize("glob", ["../*", "/etc/*", "a/../../b"])
def test_collect_globs_that_leave_scratch_are_refused(engine, glob):
    with pytest.raises(ValueError, match=r"collect\[0\]"):
        run_code("result = 1", engine, collect=[glob])


def test_bad_file_argument_types(engine):
    with pytest.raises(TypeError):
        run_code("1", engine, files={"a": 1})
    with pytest.raises(TypeError):
        run_code("1", engine, files=["a"])
    with pytest.raises(TypeError):
        run_code("1", engine, collect=[1])


def test_a_file_and_its_directory_both_given_is_refused(engine):
    with pytest.raises(ValueError, match="a"):
        run_code("1", engine, files={"a": "x", "a/b": "y"})


def test_symlinks_made_by_the_code_are_not_collected(engine):
    code = (
        "import os\n"
        "os.symlink('/etc/passwd', 'passwd.txt')\n"
        "os.symlink('/etc', 'etc')\n"
        "os.symlink('real.txt', 'inner.txt')\n"
        "open('real.txt', 'w').write('mine')\n"
    )
    r = run_code(code, engine, policy=UNGUARDED, collect=["*", "etc/**", "etc/passwd", "**/*.txt"])
    assert r.ok, r
    assert [f.path for f in r.files] == ["real.txt"]
    for f in r.files:
        assert b"root:" not in f.data
    assert "passwd.txt is a symlink" in r.stderr
    assert "etc is a symlink" in r.stderr


def test_a_request_file_is_not_written_through_a_symlink(engine):
    """In a session, a symlink left by an earlier cell is in the way of an upload: the
    write is refused, naming the file, and nothing lands outside scratch."""
    with engine.session(policy=UNGUARDED) as s:
        assert s.run("import os\nos.symlink('/tmp', 'sub')\nos.symlink('/etc/hostname', 'f.txt')").ok
        r = s.run("result = 1", files={"sub/x.txt": "evil"})
        assert not r.ok and "sub/x.txt" in r.error
        r = s.run("result = 1", files={"f.txt": "evil"})
        assert not r.ok and "f.txt" in r.error
        r = s.run("import os\nos.path.exists('/tmp/x.txt')")
        assert r.value is False


def test_matplotlib_figure_comes_back_as_png(datastack):
    code = (
        "import matplotlib.pyplot as plt\n"
        "fig, ax = plt.subplots()\n"
        "ax.plot([1, 2, 3], [4, 1, 9])\n"
        "ax.set_title('spr')\n"
        "fig.savefig('saved.png')\n"
        "result = 'drawn'\n"
    )
    r = run_code(code, datastack, collect=["*.png"], policy=RunnerPolicy(timeout_seconds=60))
    assert r.ok, r
    assert r.result == "drawn"
    assert len(r.outputs) == 1
    (out,) = r.outputs
    assert out.mime_type == "image/png"
    assert out.data.startswith(PNG_SIGNATURE)
    assert len(out.data) > 1000
    assert [f.path for f in r.files] == ["saved.png"]
    assert r.files[0].data.startswith(PNG_SIGNATURE)


def test_numpy_and_pandas_work_with_files(datastack):
    code = (
        "import pandas as pd\n"
        "df = pd.read_csv('in.csv')\n"
        "df['c'] = df['a'] * df['b']\n"
        "df.to_csv('out.csv', index=False)\n"
        "result = int(df['c'].sum())\n"
    )
    r = run_code(
        code,
        datastack,
        files={"in.csv": "a,b\n1,2\n3,4\n"},
        collect=["out.csv"],
        policy=RunnerPolicy(timeout_seconds=60),
    )
    assert r.ok, r
    assert r.result == 14
    assert r.files[0].text().splitlines() == ["a,b,c", "1,2,2", "3,4,12"]
