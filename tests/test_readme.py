"""README's two set-up commands are the ones CI and users run."""
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _commands():
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Quick start\n+```(?:bash|sh)?\n(.*?)```", text, re.S)
    assert block, "README.md needs a '## Quick start' section with one fenced block"
    return [ln for ln in block.group(1).splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def test_readme_has_exactly_two_commands_and_ci_runs_the_test_one():
    cmds = _commands()
    assert len(cmds) == 2, cmds
    assert "-m ember train" in cmds[0]
    assert "pytest" in cmds[1]
    assert cmds[1] in (ROOT / ".ci" / "run").read_text()
