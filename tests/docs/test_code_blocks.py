"""Every code block in README.md and docs/*.md runs, so the docs cannot drift from the code.

- ``python`` blocks run verbatim, each in its own process with an empty temporary directory as the working directory,
  and must exit with status 0 within ``PYTHON_TIMEOUT_S``.
- ``bash`` blocks run line by line in one temporary directory per block: ``physopt ...`` (or ``python -m physopt ...``)
  runs as ``python -m physopt ...`` and must exit with status 0; ``pip install`` and ``python -m pytest`` lines are
  checked, not run (the extras exist in pyproject.toml, a pinned torch is the one .ci/run installs, pytest markers are
  declared, the plain test command is the last line of .ci/run); any other line fails.
- ``text`` blocks (output, diagrams) are not run; a block without a language, or in another one, fails.

A block whose command would run for long carries a directive in an HTML comment right before it, visible in the
markdown source, that this test applies before running it:

    <!-- docs-test: replace "--iterations 300" with "--iterations 2"; replace "--batch-size 32" with "--batch-size 4" -->
    <!-- docs-test: skip "needs a CUDA device" -->
    <!-- docs-test: file "my_physics.py" -->

``file "NAME"`` on a python block saves it as NAME in the directory of the next bash block of the same document
instead of running it on its own (a module the commands import, e.g. ``physopt compare my_physics:problem``).

A replacement that matches nothing in its block fails (the directive went stale), and so does a directive that is not
followed by a block: nothing is shrunk or skipped silently.

Speed: importing torch takes seconds, so every block and every command runs in a process forked from one worker that
has torch (and matplotlib) imported already: each starts from that clean interpreter state, in its own process,
without paying the import again. Where ``os.fork`` does not exist the test starts a fresh interpreter per block and
command instead.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PYTHON_TIMEOUT_S = 30
COMMAND_TIMEOUT_S = 60
LANGUAGES = {"python": "python", "py": "python", "bash": "bash", "sh": "bash", "shell": "bash", "console": "bash",
             "text": "text"}

FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([^\s`]*)\s*$")
DIRECTIVE = re.compile(r"^\s*<!--\s*docs-test:(.*?)-->\s*$")
DIRECTIVE_ITEM = re.compile(r'\s*(?:replace\s+"([^"]*)"\s+with\s+"([^"]*)"|skip\s+"([^"]+)"|file\s+"([^"]+)")\s*(?:;|$)')


# ---- reading the markdown ------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Block:
    path: Path
    line: int            # 1-based line of the opening fence
    language: str        # as written after the fence ('' if none)
    code: str
    directive: str | None = None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT).as_posix()}:{self.line}"

    @property
    def kind(self) -> str | None:
        return LANGUAGES.get(self.language.lower())


def read_blocks(path: Path) -> tuple[list[Block], list[str]]:
    """The fenced code blocks of a markdown file, each with the docs-test directive right before it (blank lines
    between allowed), and the problems found while reading (unclosed fences, directives followed by no block)."""
    lines = path.read_text().splitlines()
    blocks: list[Block] = []
    problems: list[str] = []
    pending: tuple[int, str] | None = None
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if fence:
            indent, marks, language = fence.groups()
            end = next((j for j in range(i + 1, len(lines))
                        if lines[j].strip().startswith(marks) and set(lines[j].strip()) == {marks[0]}), None)
            if end is None:
                problems.append(f"{path.name}:{i + 1}: code block never closed")
                break
            code = "\n".join(line[len(indent):] if line.startswith(indent) else line.lstrip()
                             for line in lines[i + 1:end]) + "\n"
            blocks.append(Block(path, i + 1, language, code, pending[1] if pending else None))
            pending, i = None, end + 1
            continue
        directive = DIRECTIVE.match(lines[i])
        if directive or lines[i].strip():
            if pending:
                problems.append(f"{path.name}:{pending[0]}: docs-test directive is not followed by a code block")
            pending = (i + 1, directive.group(1)) if directive else None
        i += 1
    if pending:
        problems.append(f"{path.name}:{pending[0]}: docs-test directive is not followed by a code block")
    return blocks, problems


def parse_directive(text: str | None) -> tuple[list[tuple[str, str]], str | None]:
    """'replace "a" with "b"; skip "why"' -> ([("a", "b")], "why"); a ``file`` item is read by :func:`file_name`."""
    replacements: list[tuple[str, str]] = []
    skip = None
    rest = (text or "").strip()
    while rest:
        item = DIRECTIVE_ITEM.match(rest)
        if not item or not item.group(0):
            raise ValueError(f"cannot read the docs-test directive at '{rest}'; write replace \"OLD\" with \"NEW\", "
                             f"skip \"REASON\" or file \"NAME\", separated by ';'")
        if item.group(3) is not None:
            skip = item.group(3)
        elif item.group(4) is not None:
            pass
        else:
            replacements.append((item.group(1), item.group(2)))
        rest = rest[item.end():].strip()
    return replacements, skip


def source_to_run(block: Block) -> str:
    """The block's code with its directive's replacements applied (each must match)."""
    replacements, skip = parse_directive(block.directive)
    if skip:
        pytest.skip(f"{block.where}: {skip}")
    code = block.code
    for old, new in replacements:
        assert old in code, (f"{block.where}: the directive replaces \"{old}\", which is not in the block; update "
                             f"the directive")
        code = code.replace(old, new)
    return code


def file_name(block: Block) -> str | None:
    """The NAME of the block's ``file "NAME"`` directive, or None."""
    found = re.search(r'(?:^|;)\s*file\s+"([^"]+)"', block.directive or "")
    return found.group(1) if found else None


def files_for(block: Block) -> dict[str, str]:
    """The python blocks with a ``file`` directive between the previous bash block of ``block``'s document and
    ``block``: {NAME: code}, saved next to its commands."""
    blocks = READ[block.path][0]
    files: dict[str, str] = {}
    for b in blocks[:blocks.index(block)]:
        if b.kind == "bash":
            files = {}
        elif b.kind == "python" and file_name(b):
            files[file_name(b)] = source_to_run(b)
    return files


READ = {path: read_blocks(path) for path in DOCS}
BLOCKS = [b for blocks, _ in READ.values() for b in blocks]
RUNNABLE = [b for b in BLOCKS if b.kind in ("python", "bash") and not file_name(b)]


# ---- running: a worker that forks one process per block or command --------------------------------------------------

WORKER = r"""
import json, os, runpy, signal, sys, time, traceback
import torch, torch._dynamo                 # imported once here; every forked block and command starts with them
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot
print("ready", flush=True)
for request in sys.stdin:
    req = json.loads(request)
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            os.setpgid(0, 0)
            os.chdir(req["cwd"])
            log = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(log, 1)
            os.dup2(log, 2)
            os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
            if req["kind"] == "python":
                sys.argv = [req["script"]]
                runpy.run_path(req["script"], run_name="__main__")
            else:
                sys.argv = ["physopt", *req["argv"]]
                runpy.run_module("physopt", run_name="__main__", alter_sys=True)
            status = 0
        except SystemExit as exit:
            status = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
            if not isinstance(exit.code, (int, type(None))):
                print(exit.code, file=sys.stderr)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)
    deadline = time.monotonic() + req["timeout"]
    while True:
        done, wait_status = os.waitpid(pid, os.WNOHANG)
        if done:
            reply = {"rc": os.waitstatus_to_exitcode(wait_status)}
            break
        if time.monotonic() > deadline:
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            reply = {"rc": None}
            break
        time.sleep(0.01)
    print(json.dumps(reply), flush=True)
"""


def environment() -> dict[str, str]:
    env = dict(os.environ, MPLBACKEND="Agg")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


class Runner:
    """Runs a python script or a physopt command in ``cwd``, its output to ``log``; returns the exit status (None on
    timeout)."""

    def __init__(self):
        self.worker = None
        if hasattr(os, "fork"):
            self.worker = subprocess.Popen([sys.executable, "-c", WORKER], stdin=subprocess.PIPE,
                                           stdout=subprocess.PIPE, text=True, env=environment(), cwd=ROOT)
            ready = self.worker.stdout.readline().strip()
            assert ready == "ready", f"the docs-test worker did not start: {ready!r}"

    def run(self, cwd: Path, log: Path, timeout: float, script: Path | None = None,
            argv: list[str] | None = None) -> int | None:
        if self.worker is None:
            cmd = [sys.executable, str(script)] if script else [sys.executable, "-m", "physopt", *argv]
            with open(log, "w") as out:
                try:
                    return subprocess.run(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          env=environment(), timeout=timeout).returncode
                except subprocess.TimeoutExpired:
                    return None
        request = {"kind": "python" if script else "physopt", "script": str(script) if script else None,
                   "argv": argv, "cwd": str(cwd), "log": str(log), "timeout": timeout}
        self.worker.stdin.write(json.dumps(request) + "\n")
        self.worker.stdin.flush()
        reply = self.worker.stdout.readline()
        assert reply, "the docs-test worker died"
        return json.loads(reply)["rc"]

    def close(self):
        if self.worker is not None:
            self.worker.stdin.close()
            self.worker.wait(timeout=30)


@pytest.fixture(scope="module")
def runner():
    r = Runner()
    yield r
    r.close()


def failure(what: str, rc: int | None, log: Path, timeout: float) -> str:
    output = log.read_text()[-4000:] if log.exists() else ""
    status = f"did not finish within {timeout:g} s" if rc is None else f"exited with status {rc}"
    return f"{what} {status}:\n{output}"


# ---- checks for the lines that are not run --------------------------------------------------------------------------

def pyproject() -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def ci_lines() -> list[str]:
    return [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
            if line.strip() and not line.strip().startswith("#")]


def requirement_name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].strip().lower()


def check_pip_install(words: list[str], where: str) -> None:
    project = pyproject()["project"]
    extras = project.get("optional-dependencies", {})
    known = {requirement_name(r) for r in project.get("dependencies", [])} | {
        requirement_name(r) for reqs in extras.values() for r in reqs}
    start = words.index("install") + 1
    for word in words[start:]:
        if word in ("-e", "--editable", "-U", "--upgrade", "-q", "--quiet"):
            continue
        local = re.fullmatch(r"\.(?:\[([\w,-]+)\])?", word)
        if local:
            missing = set(filter(None, (local.group(1) or "").split(","))) - set(extras)
            assert not missing, f"{where}: `{' '.join(words)}` names extras {sorted(missing)} that pyproject.toml lacks"
            continue
        pinned = re.fullmatch(r"torch==(\S+)", word)
        if pinned:
            ci_pin = re.search(r"torch==([\w.+]+)", (ROOT / ".ci" / "run").read_text())
            assert ci_pin and ci_pin.group(1) == pinned.group(1), (
                f"{where}: pins torch {pinned.group(1)}, but .ci/run installs "
                f"{ci_pin.group(1) if ci_pin else 'no pinned torch'}")
            continue
        assert requirement_name(word) in known and not word.startswith("-"), (
            f"{where}: `pip install {word}`: neither a local extra, the pinned torch, nor a requirement in pyproject.toml")


def check_pytest(words: list[str], where: str) -> None:
    command = " ".join(words)
    if words[3:] == ["-q"]:
        assert command == ci_lines()[-1], f"{where}: the test command `{command}` is not what .ci/run runs"
        return
    markers = {m.split(":")[0].strip() for m in pyproject()["tool"]["pytest"]["ini_options"].get("markers", [])}
    args = iter(words[3:])
    for arg in args:
        if arg == "-m":
            expression = next(args, "")
            used = set(re.findall(r"[A-Za-z_]\w*", expression)) - {"and", "or", "not"}
            assert used and used <= markers, f"{where}: `{command}` selects undeclared markers {sorted(used - markers)}"
        elif arg.startswith("-"):
            assert arg in ("-q", "-x", "-v"), f"{where}: `{command}`: option {arg} is not checked here; add it"
        else:
            assert (ROOT / arg.split("::")[0]).exists(), f"{where}: `{command}`: {arg} does not exist"


def shell_lines(code: str) -> list[list[str]]:
    """The commands of a bash block: continuation lines joined, comments and blank lines dropped."""
    return [words for line in code.replace("\\\n", " ").splitlines() if (words := shlex.split(line, comments=True))]


# ---- the tests -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_block_is_python_bash_or_text_and_every_directive_belongs_to_one(path):
    blocks, problems = READ[path]
    for block in blocks:
        if block.kind is None:
            problems.append(f"{block.where}: block in language '{block.language or '(none)'}'; label it python or "
                            f"bash to run it, text if it is output")
        elif block.kind == "text" and block.directive:
            problems.append(f"{block.where}: docs-test directive on a text block, which is never run")
        elif file_name(block) and (block.kind != "python" or not any(
                b.kind == "bash" and b.line > block.line for b in blocks)):
            problems.append(f"{block.where}: a file directive belongs on a python block that a bash block follows")
        else:
            try:
                parse_directive(block.directive)
            except ValueError as err:
                problems.append(f"{block.where}: {err}")
    assert not problems, "\n".join(problems)


def test_the_readme_shows_the_test_command_that_ci_runs():
    commands = [" ".join(words) for b in READ[ROOT / "README.md"][0] if b.kind == "bash"
                for words in shell_lines(b.code)]
    assert ci_lines()[-1] in commands


@pytest.mark.parametrize("block", RUNNABLE, ids=lambda b: b.where)
def test_code_block_runs(block, runner, tmp_path):
    code = source_to_run(block)
    work = tmp_path / "work"
    work.mkdir()
    if block.kind == "python":
        script, log = tmp_path / "block.py", tmp_path / "block.log"
        script.write_text(code)
        rc = runner.run(work, log, PYTHON_TIMEOUT_S, script=script)
        assert rc == 0, failure(f"{block.where}: the python block", rc, log, PYTHON_TIMEOUT_S)
        return
    for name, text in files_for(block).items():
        (work / name).write_text(text)
    commands = shell_lines(code)
    assert commands, f"{block.where}: empty bash block"
    for n, words in enumerate(commands):
        command = " ".join(words)
        if words[0] == "physopt" or words[:3] == ["python", "-m", "physopt"]:
            log = tmp_path / f"command{n}.log"
            argv = words[1:] if words[0] == "physopt" else words[3:]
            rc = runner.run(work, log, COMMAND_TIMEOUT_S, argv=argv)
            assert rc == 0, failure(f"{block.where}: `{command}`", rc, log, COMMAND_TIMEOUT_S)
        elif words[:2] == ["pip", "install"] or words[:4] == ["python", "-m", "pip", "install"]:
            check_pip_install(words, block.where)
        elif words[:3] == ["python", "-m", "pytest"]:
            check_pytest(words, block.where)
        else:
            pytest.fail(f"{block.where}: `{command}` is neither a physopt command, pip install nor python -m pytest; "
                        f"the docs test cannot run it (show it as text, or teach this test to check it)")
