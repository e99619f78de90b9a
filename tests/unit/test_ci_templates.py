"""The CI templates a team copies (``ci/gitlab-ci.yml``, ``.github/workflows/reliability.yml``):
shaped as GitLab and GitHub expect, and running nothing this project does not have.

Every shell line of a job is split as the shell would (shlex) and each command is checked
against the project itself: ``make`` targets against the Makefile, pytest's paths and
markers against the tree and the plugin, ``harness`` commands and options against the click
group in ``harness.cli``. Any other program must be on ``ALLOWED_PROGRAMS``, so a new tool
in a template is a decision someone made.
"""

from __future__ import annotations

import math
import re
import shlex
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from click.testing import CliRunner

from harness.cli import main as harness_cli
from harness.plugin import MARKERS, pytest_addoption

ROOT = Path(__file__).resolve().parents[2]
GITLAB = ROOT / "ci" / "gitlab-ci.yml"
GITHUB = ROOT / ".github" / "workflows" / "reliability.yml"
STAGE = "reliability-test"
JOBS = ("scenarios", "gameday")

# Programs the templates may run that this project does not define, each with its reason.
ALLOWED_PROGRAMS = {
    "apt-get": "installs what scripts/setup.sh expects present: python3-venv, npm, make",
    "echo": "says why the regression gate let an exit code 2 pass",
    "[": "tests the regression gate's exit code",
    "exit": "passes the regression gate's exit code on",
}
# pytest's own options the templates use, and whether each takes a value; the plugin's
# options are read from `harness.plugin.pytest_addoption`.
PYTEST_OPTIONS = {"-m": True, "-k": True, "--junitxml": True, "--deselect": True, "-q": False}
# Words a shell line may begin with that are not programs.
SHELL_KEYWORDS = {"if", "then", "elif", "else", "fi", "!"}
OPERATORS = {";", "&&", "||", "|"}
# Arguments under these directories name files of this repository, which must exist.
REPO_DIRS = ("scripts/", "fixtures/", "scenarios/", "tests/", "harness/", "bench/")
# What a job keeps for people, besides its JUnit XML.
REPORTS = {
    "scenarios": {"reports/suite-*.html", "reports/**/report.html", "reports/**/result.json"},
    "gameday": {"reports/**/report.html", "reports/**/result.json"},
}
GITLAB_KEYWORDS = {
    "stages",
    "variables",
    "default",
    "workflow",
    "include",
    "image",
    "services",
    "cache",
    "before_script",
    "after_script",
}


@dataclass(frozen=True)
class Command:
    """One simple command of a job's shell, and where it is."""

    where: str
    argv: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.where}: {shlex.join(self.argv)}"


# -- reading the templates ------------------------------------------------------------------


def gitlab() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(GITLAB.read_text())
    return doc


def github() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(GITHUB.read_text())
    return doc


def github_triggers(doc: dict[str, Any]) -> dict[str, Any]:
    # YAML 1.1 (PyYAML) reads the key `on` as the boolean true; GitHub reads it as "on".
    triggers: dict[str, Any] = doc.get("on", doc.get(True))
    return triggers


def _merged(base: Any, over: Any) -> Any:
    """GitLab's `extends`: mappings merge key by key, anything else is replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        return base | {k: _merged(base[k], v) if k in base else v for k, v in over.items()}
    return over


def gitlab_job(doc: dict[str, Any], name: str) -> dict[str, Any]:
    """The job ``name`` with what it `extends` merged in."""
    body = doc[name]
    parents = body.get("extends", [])
    job: dict[str, Any] = {}
    for parent in [parents] if isinstance(parents, str) else parents:
        job = _merged(job, gitlab_job(doc, parent))
    return _merged(job, {k: v for k, v in body.items() if k != "extends"})


def gitlab_jobs(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: gitlab_job(doc, name)
        for name in doc
        if name not in GITLAB_KEYWORDS and not name.startswith(".")
    }


def _flat(entries: Any) -> list[str]:
    if isinstance(entries, str):
        return [entries]
    return [line for entry in entries or [] for line in _flat(entry)]


def scripts(template: str, job: str) -> list[tuple[str, str]]:
    """The shell scripts ``job`` runs, in order, each with where it is."""
    if template == "gitlab":
        doc = gitlab()
        body = gitlab_jobs(doc)[job]
        default = doc.get("default", {})
        return [
            (f"gitlab {job} {key}[{i}]", text)
            for key in ("before_script", "script", "after_script")
            for i, text in enumerate(_flat(body.get(key, default.get(key, doc.get(key)))))
        ]
    steps = github()["jobs"][job]["steps"]
    return [
        (f"github {job} step {step.get('name', i)!r}", step["run"])
        for i, step in enumerate(steps)
        if "run" in step
    ]


def split_script(text: str, where: str) -> list[Command]:
    """The simple commands of a shell script, split as the shell would. Leading keywords
    (`if`, `then`, ...) and variable assignments are dropped: what remains is a program and
    its arguments. Redirections, subshells and substitutions stay in as words of their own,
    which no check accepts: the checker would not follow them."""
    commands = []
    for number, line in enumerate(text.replace("\\\n", " ").splitlines(), 1):
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words: list[str] = []
        for token in [*lexer, ";"]:
            if token not in OPERATORS:
                words.append(token)
                continue
            while words and (
                words[0] in SHELL_KEYWORDS or re.fullmatch(r"[A-Za-z_]\w*=.*", words[0])
            ):
                words.pop(0)
            if words:
                commands.append(Command(f"{where} line {number}", tuple(words)))
            words = []
    return commands


def commands(template: str, job: str) -> list[Command]:
    return [c for where, text in scripts(template, job) for c in split_script(text, where)]


# -- what this project has ------------------------------------------------------------------


def make_targets() -> set[str]:
    targets = set()
    for line in (ROOT / "Makefile").read_text().splitlines():
        found = re.match(r"([A-Za-z0-9_./%-][^:=#\t]*?)\s*::?(?!=)", line)
        if found:
            targets.update(t for t in found.group(1).split() if not t.startswith("."))
    return targets


def registered_markers() -> set[str]:
    ini = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    return set(MARKERS) | {line.split(":")[0].strip() for line in ini.get("markers", [])}


class _OptionRecorder:
    """Stands in for pytest's parser: records each option and whether it takes a value."""

    def __init__(self) -> None:
        self.options: dict[str, bool] = {}

    def getgroup(self, *args: object, **kwargs: object) -> _OptionRecorder:
        return self

    def addoption(self, *names: str, **attrs: object) -> None:
        takes_value = attrs.get("action") not in ("store_true", "store_false", "count")
        self.options.update(dict.fromkeys(names, takes_value))


def pytest_options() -> dict[str, bool]:
    recorder = _OptionRecorder()
    pytest_addoption(recorder)  # type: ignore[arg-type]
    return PYTEST_OPTIONS | recorder.options


# -- the checks -----------------------------------------------------------------------------


def problems_of(command: Command) -> list[str]:
    """Why ``command`` would not run in this project; empty if it would."""
    program, *args = command.argv
    if any(re.fullmatch(r"[();<>|&]+", word) or "`" in word for word in command.argv):
        return [f"{command}\n    the checker follows no redirection, subshell or substitution"]
    if program == "make":
        found = make_problems(args)
    elif program == ".venv/bin/pytest":
        found = pytest_problems(args)
    elif program == ".venv/bin/harness":
        found = harness_problems(args)
    elif program in ("bash", "sh") or program.startswith(("scripts/", "./")):
        script = args[0] if program in ("bash", "sh") and args else program
        found = [] if (ROOT / script).is_file() else [f"no script {script} in the repository"]
    elif program in ALLOWED_PROGRAMS:
        found = []
    else:
        found = [
            f"`{program}` is neither a command of this project (make, .venv/bin/pytest, "
            ".venv/bin/harness, a script) nor on ALLOWED_PROGRAMS: add it there, with why"
        ]
    for word in args:
        path = word.partition("=")[2] if word.startswith("--") else word
        path = path.split("::")[0]
        if path.startswith(REPO_DIRS) and not (ROOT / path).exists():
            found.append(f"no {path} in the repository")
    return [f"{command}\n    {problem}" for problem in found]


def make_problems(args: list[str]) -> list[str]:
    targets = make_targets()
    if not args:
        return ["give make a target: the Makefile's first one is not a decision to rely on"]
    return [
        f"no make target {arg!r} (the Makefile has {', '.join(sorted(targets))})"
        for arg in args
        if "=" not in arg and (arg.startswith("-") or arg not in targets)
    ]


def pytest_problems(args: list[str]) -> list[str]:
    options, markers = pytest_options(), registered_markers()
    problems, words = [], iter(args)
    for word in words:
        if not word.startswith("-"):
            if not (ROOT / word.split("::")[0]).exists():
                problems.append(f"pytest is given {word}, which is not in the repository")
            continue
        name, eq, value = word.partition("=")
        if name not in options:
            problems.append(
                f"pytest option {name} is unknown to this checker: add it to PYTEST_OPTIONS"
            )
            continue
        if options[name] and not eq:
            value = next(words, "")
        if name == "-m":
            words_of_expr = set(re.findall(r"[A-Za-z_]\w*", value)) - {"and", "or", "not"}
            problems += [
                f"-m {value!r}: {m!r} is not a registered marker ({', '.join(sorted(markers))})"
                for m in sorted(words_of_expr - markers)
            ]
    return problems


def harness_problems(args: list[str]) -> list[str]:
    """Problems with ``harness ARGS``: the command path must exist in the click group, and
    every option given must be one of that command's own."""
    command: click.Command = harness_cli
    path, rest = ["harness"], list(args)
    while isinstance(command, click.Group):
        problems, rest = _parsed(command, rest, path, group=True)
        if problems:
            return problems
        if not rest:
            return [f"`{' '.join(path)}` needs a command ({', '.join(sorted(command.commands))})"]
        name, rest = rest[0], rest[1:]
        sub = command.get_command(click.Context(command), name)
        if sub is None:
            return [
                f"`{' '.join(path)} {name}` is not a command of harness.cli "
                f"(`{' '.join(path)}` has: {', '.join(sorted(command.commands))})"
            ]
        command, path = sub, [*path, name]
    problems, positionals = _parsed(command, rest, path, group=False)
    arguments = [p for p in command.params if isinstance(p, click.Argument)]
    room = math.inf if any(a.nargs == -1 for a in arguments) else sum(a.nargs for a in arguments)
    if len(positionals) > room and not problems:  # an unknown option's value counts here
        problems.append(f"`{' '.join(path)}` takes {room} argument(s), given {positionals}")
    if len(positionals) < sum(1 for a in arguments if a.required):
        problems.append(f"`{' '.join(path)}` needs {[a.name for a in arguments if a.required]}")
    return problems


def _parsed(
    command: click.Command, words: list[str], path: list[str], *, group: bool
) -> tuple[list[str], list[str]]:
    """Problems with the options among ``words``, and the positional words (for a group:
    the first one and everything after it)."""
    options = {
        opt: param
        for param in command.params
        if isinstance(param, click.Option)
        for opt in (*param.opts, *param.secondary_opts)
    }
    helps = set(command.get_help_option_names(click.Context(command)))
    problems: list[str] = []
    positionals: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if not word.startswith("-"):
            if group:
                return problems, words[i - 1 :]
            positionals.append(word)
            continue
        name, eq, value = word.partition("=")
        param = options.get(name)
        if name in helps:
            continue
        if param is None:
            problems.append(
                f"`{' '.join(path)}` has no option {name} (it has: {', '.join(sorted(options))})"
            )
            continue
        if param.is_flag or param.count:
            continue
        if not eq:
            value, i = (words[i] if i < len(words) else ""), i + 1
        choices = getattr(param.type, "choices", None)
        if choices is not None and not value.startswith("$") and value not in choices:
            problems.append(
                f"`{' '.join(path)} {name}` takes one of {list(choices)}, not {value!r}"
            )
    return problems, positionals


def junit_written(template: str, job: str) -> str | None:
    """The JUnit XML path the job's pytest (--junitxml) or harness (--junit) writes."""
    for command in commands(template, job):
        for i, word in enumerate(command.argv):
            name, eq, value = word.partition("=")
            if name in ("--junitxml", "--junit"):
                return value if eq else command.argv[i + 1]
    return None


# -- the specifications ---------------------------------------------------------------------


def test_gitlab_template_is_a_reliability_test_stage_of_two_jobs_on_debian_12() -> None:
    doc = gitlab()
    assert STAGE in doc["stages"]
    jobs = gitlab_jobs(doc)
    assert set(jobs) == set(JOBS)
    for name, job in jobs.items():
        assert job["stage"] == STAGE, name
        assert str(job["image"]).startswith("debian:12"), name
        assert job["timeout"], name


def test_gitlab_scenarios_run_on_merge_requests_and_main_and_gameday_on_schedules_only() -> None:
    jobs = gitlab_jobs(gitlab())
    scenarios = [rule["if"] for rule in jobs["scenarios"]["rules"]]
    assert any('$CI_PIPELINE_SOURCE == "merge_request_event"' in r for r in scenarios)
    assert any("$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH" in r for r in scenarios)
    assert not any("schedule" in r for r in scenarios)
    gameday = [rule["if"] for rule in jobs["gameday"]["rules"]]
    assert gameday and all('$CI_PIPELINE_SOURCE == "schedule"' in r for r in gameday)


def test_github_workflow_runs_on_pull_requests_main_schedules_and_by_hand() -> None:
    doc = github()
    triggers = github_triggers(doc)
    assert {"pull_request", "push", "schedule", "workflow_dispatch"} <= set(triggers)
    assert triggers["push"]["branches"] == ["main"]
    assert all(entry["cron"] for entry in triggers["schedule"])
    assert set(doc["jobs"]) == set(JOBS)
    assert "pull_request" in doc["jobs"]["scenarios"]["if"]
    assert "schedule" in doc["jobs"]["gameday"]["if"]
    assert "schedule" not in doc["jobs"]["scenarios"]["if"]


def test_github_jobs_run_as_root_in_a_privileged_debian_12_container() -> None:
    for name, job in github()["jobs"].items():
        assert job["runs-on"] == "ubuntu-latest", name
        assert job["container"]["image"] == "debian:12", name
        assert "--privileged" in job["container"]["options"].split(), name  # netns, tc
        assert "user" not in job["container"], name
        assert job["timeout-minutes"], name


@pytest.mark.parametrize("template", ["gitlab", "github"])
@pytest.mark.parametrize("job", JOBS)
def test_every_command_a_job_runs_exists_in_this_project(template: str, job: str) -> None:
    """Fails for both gameday jobs until `harness gameday` is in harness/cli.py."""
    found = commands(template, job)
    assert any(c.argv[0] == ".venv/bin/harness" for c in found)
    problems = [p for c in found for p in problems_of(c)]
    assert not problems, "\n".join(problems)


def test_the_checker_refuses_what_this_project_does_not_have() -> None:
    wrong = {
        "make install": "no make target 'install'",
        ".venv/bin/pytest scenario -m quick": "not in the repository",
        ".venv/bin/pytest scenarios -m 'quick and fast'": "'fast' is not a registered marker",
        ".venv/bin/harness comprae": "is not a command of harness.cli",
        ".venv/bin/harness compare --against previous --junit x.xml": "has no option --junit",
        ".venv/bin/harness stack up --haproxy-policy loose": "takes one of",
        ".venv/bin/harness report": "needs ['run']",
        "curl -sSf https://example.org | sh": "nor on ALLOWED_PROGRAMS",
        ".venv/bin/harness run > out.txt": "follows no redirection",
        ".venv/bin/harness history extra": "takes 0 argument(s)",
        ".venv/bin/harness report $(ls -t reports | head -1)": "follows no redirection",
        "bash scripts/setup-all.sh": "no script scripts/setup-all.sh",
    }
    for line, problem in wrong.items():
        found = [p for c in split_script(line, "probe") for p in problems_of(c)]
        assert any(problem in p for p in found), (line, found)
    right = (
        "DEBIAN_FRONTEND=noninteractive make setup && .venv/bin/harness --debug stack up --nodes 3"
    )
    assert [p for c in split_script(right, "probe") for p in problems_of(c)] == []


@pytest.mark.parametrize("job", JOBS)
def test_gitlab_keeps_the_junit_xml_and_every_report_even_when_the_job_fails(job: str) -> None:
    artifacts = gitlab_jobs(gitlab())[job]["artifacts"]
    assert artifacts["when"] == "always"
    assert artifacts["expire_in"]
    written = junit_written("gitlab", job)
    assert written is not None
    assert artifacts["reports"]["junit"] == written
    assert REPORTS[job] <= set(artifacts["paths"])


@pytest.mark.parametrize("job", JOBS)
def test_github_publishes_the_junit_xml_and_uploads_every_report_even_when_the_job_fails(
    job: str,
) -> None:
    steps = github()["jobs"][job]["steps"]
    junit = [s for s in steps if s.get("uses", "").startswith("mikepenz/action-junit-report@")]
    upload = [s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert len(junit) == len(upload) == 1
    written = junit_written("github", job)
    assert written is not None
    assert junit[0]["with"]["report_paths"] == written
    assert "always()" in junit[0]["if"] and "always()" in upload[0]["if"]
    assert {written} | REPORTS[job] <= set(upload[0]["with"]["path"].split())
    assert upload[0]["with"]["retention-days"]


def test_the_history_is_kept_between_pipelines_per_branch_and_restored_before_the_run() -> None:
    cache = gitlab_jobs(gitlab())["scenarios"]["cache"]
    assert "reports/history.sqlite*" in cache["paths"]
    assert "$CI_COMMIT_REF_SLUG" in cache["key"]
    assert any("$CI_DEFAULT_BRANCH" in key for key in cache["fallback_keys"])
    assert cache.get("when", "on_success") == "on_success"  # a regressed run is not kept
    steps = github()["jobs"]["scenarios"]["steps"]
    uses = [s.get("uses", "") for s in steps]
    at = next(i for i, u in enumerate(uses) if u.startswith("actions/cache@"))
    assert steps[at]["with"]["path"] == "reports/history.sqlite*"
    assert "github.head_ref || github.ref_name" in steps[at]["with"]["key"]
    pytest_at = next(i for i, s in enumerate(steps) if ".venv/bin/pytest" in s.get("run", ""))
    assert at < pytest_at


def _gate(template: str) -> str:
    found = [t for _, t in scripts(template, "scenarios") if "harness compare" in t]
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize("template", ["gitlab", "github"])
def test_the_regression_gate_compares_after_the_scenarios_ran(template: str) -> None:
    programs = [" ".join(c.argv[:2]) for c in commands(template, "scenarios")]
    assert programs.index(".venv/bin/harness compare") > programs.index(
        ".venv/bin/pytest scenarios"
    )


@pytest.mark.parametrize("template", ["gitlab", "github"])
@pytest.mark.parametrize(
    ("exit_code", "passes"),
    [(0, True), (1, False), (2, True), (3, False)],
    ids=["no-regression", "regression-fails", "no-history-passes", "crash-fails"],
)
def test_the_regression_gate_fails_on_a_regression_and_passes_when_nothing_to_compare(
    template: str, exit_code: int, passes: bool, tmp_path: Path
) -> None:
    stub = tmp_path / ".venv" / "bin" / "harness"
    stub.parent.mkdir(parents=True)
    stub.write_text(f"#!/bin/sh\necho compared\nexit {exit_code}\n")
    stub.chmod(0o755)
    # GitLab's and GitHub's bash both run a job's script with -e and -o pipefail.
    run = subprocess.run(
        ["bash", "-eo", "pipefail", "-c", _gate(template)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert (run.returncode == 0) is passes, run
    assert run.stdout.startswith("compared")
    if exit_code == 2:
        assert "exit 2" in run.stdout  # the log says the gate did not compare
    elif not passes:
        assert run.returncode == exit_code


def test_compare_exits_2_on_a_runner_without_history_which_the_gate_lets_pass(
    tmp_path: Path,
) -> None:
    result = CliRunner().invoke(
        harness_cli, ["compare", "--against", "previous", "--reports-dir", str(tmp_path)]
    )
    assert result.exit_code == 2, result.output


def test_github_actions_are_pinned_and_run_steps_take_inputs_from_the_environment() -> None:
    for name, job in github()["jobs"].items():
        for step in job["steps"]:
            if "uses" in step:
                assert re.fullmatch(
                    r"[\w.-]+/[\w./-]+@(v\d+(\.\d+){0,2}|[0-9a-f]{40})", step["uses"]
                ), (name, step["uses"])
            # ${{ }} in a script is spliced in before the shell parses it: an injection.
            assert "${{" not in step.get("run", ""), (name, step)
