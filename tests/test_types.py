"""The annotated modules ([tool.mypy] files in pyproject.toml: the state's schema, db, the
handler and method tables, the policy windows, the results queues, the errors) pass mypy
--strict. Among what that checks: initial_state() holds exactly the keys of schema.State."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_annotated_modules_pass_the_type_checker():
    out = subprocess.run([sys.executable, "-m", "mypy", "--no-error-summary"], cwd=ROOT, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_type_checker_would_see_a_missing_key(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text("from clusterd.schema import State\n\n\ndef f() -> State:\n    return {'bootstrapped': False}\n")
    out = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-error-summary", str(planted)], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 1 and "Missing keys" in out.stdout, out.stdout
