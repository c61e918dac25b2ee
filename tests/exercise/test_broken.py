"""Trainee code that raises, exits, allocates without end or loops for ever: reported with its line, in bounded
time, and the tool goes on; a file that cannot be loaded is said plainly (exit 2)."""

import pytest

from bankapp.cli import main
from bankapp.exercise.sandbox import Limits
from tests.exercise.conftest import SOLUTIONS


@pytest.mark.parametrize(
    ("file", "kind", "line", "says"),
    [
        ("exits.py", "error", 8, "SystemExit: 3"),
        ("allocates.py", "error", 6, "MemoryError"),
        ("spins_forever.py", "busy-wait", 6, "a busy wait"),
        ("waits_in_the_os.py", "hang", 8, "did not come back to a step within 3 s"),
    ],
)
def test_trainee_code_that_misbehaves_is_reported_with_its_line(judged, file, kind, line, says):
    stage = judged("deposit-guard", SOLUTIONS / file)
    assert not stage["passed"]
    assert stage["error"]["kind"] == kind and stage["error"]["line"] == line
    assert says in stage["error"]["message"]


@pytest.mark.slow
def test_a_computation_that_never_comes_back_to_a_line_is_stopped_by_the_limits(judged):
    stage = judged("deposit-guard", SOLUTIONS / "computes_forever.py", limits=Limits(cpu_s=20, wall_s=12.0))
    assert not stage["passed"] and stage["error"]["kind"] in ("hang", "limit")


@pytest.mark.parametrize(
    ("file", "says"),
    [
        ("missing_class.py", "has no class Guard"),
        ("wrong_signature.py", "Guard.acquire(self) cannot be called"),
    ],
)
def test_a_file_that_cannot_be_loaded_is_exit_2_said_plainly(capsys, file, says):
    assert main(["exercise", "check", "deposit-guard", str(SOLUTIONS / file)]) == 2
    assert says in capsys.readouterr().err


def test_a_syntax_error_is_exit_2_with_its_line(capsys, tmp_path):
    broken = tmp_path / "guard.py"
    broken.write_text("class Guard:\n    def acquire(self, timeout=None)\n        return True\n")
    assert main(["exercise", "check", "deposit-guard", str(broken)]) == 2
    assert "line 2: a syntax error" in capsys.readouterr().err


def test_an_exception_at_import_is_exit_2(capsys, tmp_path):
    broken = tmp_path / "guard.py"
    broken.write_text("import sys\nsys.exit(4)\n")
    assert main(["exercise", "check", "deposit-guard", str(broken)]) == 2
    assert "SystemExit at line 2" in capsys.readouterr().err


def test_the_trainee_file_runs_under_cpu_memory_and_process_limits(capsys, tmp_path):
    """The file reports the limits it runs under (at import, so the check stops there with exit 2)."""
    spy = tmp_path / "guard.py"
    spy.write_text(
        "import resource\n"
        "names = ('RLIMIT_CPU', 'RLIMIT_AS', 'RLIMIT_NPROC')\n"
        "raise SystemExit(' '.join(f'{n}={resource.getrlimit(getattr(resource, n))[0]}' for n in names))\n"
    )
    assert main(["exercise", "check", "deposit-guard", str(spy)]) == 2
    err = capsys.readouterr().err
    limits = Limits()
    assert f"RLIMIT_CPU={limits.cpu_s} " in err and f"RLIMIT_AS={limits.memory_bytes} " in err
    assert "RLIMIT_NPROC=-1" not in err
