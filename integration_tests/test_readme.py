"""The README, to the letter: every command of its "The command line, against the emulator" section
runs as written (parsed out of README.md's code blocks, so an edit that breaks one fails here),
against the emulator started as it says (on a free port: the README's 8765 is substituted), and
gives the exit status and the output the README states: the `plan` block byte for byte, the read's
record counts, the state hand-back. Each exit status and sentence of its "When something is wrong"
list is checked by running the command.

The commands run with bash in a folder that stands in for the repository folder (its entries linked,
`.venv` the interpreter's environment), so the README's `local/` files land there, not in the
repository.
"""

from __future__ import annotations

import json
import queue
import re
import shlex
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from integration_tests.conftest import DeadPort
from integration_tests.connector_process import run_command
from source_klaviyo_segments.run import run

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
README_PORT = "8765"
# The README's own command line: what it tells a person to type, run with the interpreter that runs
# these tests (`make test` and `make demo` use .venv, which the README names).
VENV = Path(sys.executable).parent.parent


def section(title: str) -> str:
    """The README's section headed ``## {title}``, up to the next section."""
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else len(README)]


@dataclass(frozen=True)
class Block:
    lead: str  # the prose between the previous block and this one
    lang: str
    body: str


def code_blocks(text: str) -> list[Block]:
    """The fenced code blocks of ``text``, indented ones (in a list item) dedented."""
    pattern = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w-]*)[ \t]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)
    blocks, last = [], 0
    for match in pattern.finditer(text):
        indent = len(match["indent"])
        body = "".join(line[indent:] for line in match["body"].splitlines(keepends=True))
        blocks.append(Block(text[last : match.start()], match["lang"], body))
        last = match.end()
    return blocks


COMMAND_LINE = section("The command line, against the emulator")
BLOCKS = code_blocks(COMMAND_LINE)


def block(where: str) -> Block:
    """The one block whose body (or, for output, whose lead) holds ``where``."""
    found = [b for b in BLOCKS if where in b.body] or [b for b in BLOCKS if b.lead.rstrip().endswith(where)]
    assert len(found) == 1, f"the README's command-line section has {len(found)} blocks for {where!r}"
    return found[0]


def said(pattern: str, text: str = COMMAND_LINE) -> re.Match[str]:
    """What the README's prose states, matched with its line breaks read as spaces."""
    match = re.search(pattern, " ".join(text.split()))
    assert match, f"the README no longer states {pattern!r}"
    return match


def logical_lines(script: str) -> list[str]:
    """A shell block's commands: continuation lines joined, blank lines dropped."""
    lines, pending = [], ""
    for raw in script.splitlines():
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        if (pending + raw).strip():
            lines.append(pending + raw)
        pending = ""
    return lines


@dataclass
class Ran:
    line: str
    returncode: int
    stdout: str
    stderr: str

    @property
    def messages(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.startswith("{")]


def bash(script: str, cwd: Path, timeout: float = 300) -> Ran:
    done = subprocess.run(["bash", "-e", "-c", script], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    return Ran(script, done.returncode, done.stdout, done.stderr)


def run_lines(script: str, cwd: Path, aliases: dict[str, str]) -> list[Ran]:
    """Each command of a shell block, one bash each, as a person types them: an ``alias`` line is
    remembered (bash expands aliases only in an interactive shell) and expanded in later lines."""
    ran = []
    for line in logical_lines(script):
        if line.startswith("alias "):
            name, value = line[len("alias ") :].split("=", 1)
            aliases[name] = value.strip()
            continue
        first, *rest = line.split(" ", 1)
        expanded = " ".join([aliases.get(first, first), *rest])
        ran.append(bash(expanded, cwd))
    return ran


def words(ran: Ran) -> list[str]:
    return shlex.split(ran.line, comments=True)


def records_by_stream(messages: list[dict[str, Any]]) -> Counter[str]:
    return Counter(m["record"]["stream"] for m in messages if m["type"] == "RECORD")


def errors(messages: list[dict[str, Any]]) -> list[str]:
    return [m["trace"]["error"]["message"] for m in messages if m["type"] == "TRACE" and m["trace"]["type"] == "ERROR"]


# -- the walk-through, as written --------------------------------------------------------------------


@dataclass
class WalkThrough:
    folder: Path
    port: int
    startup_line: str
    config: dict[str, Any]
    commands: list[Ran]
    hand_back: list[Ran]

    def command(self, verb: str, *, state: bool = False) -> Ran:
        found = [
            ran for ran in self.commands + self.hand_back
            if words(ran)[1:2] == [verb] and ("--state" in words(ran)) == state
        ]  # fmt: skip
        assert len(found) == 1, f"the README runs {verb!r} {len(found)} times"
        return found[0]


def start_emulator(command: str, cwd: Path) -> tuple[subprocess.Popen[str], str]:
    """The README's emulator command on a free port (``--port 0``), and the line it starts with."""
    line = command.replace(f"--port {README_PORT}", "--port 0")
    assert line != command, "the README's emulator command names no --port 8765"
    process = subprocess.Popen(shlex.split(line), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    first: queue.Queue[str] = queue.Queue()

    def drain() -> None:  # all of it, or a chatty emulator would block on a full pipe
        for printed in process.stdout or ():
            first.put(printed)

    threading.Thread(target=drain, daemon=True).start()
    try:
        startup = first.get(timeout=60)
    except queue.Empty:
        process.kill()
        raise AssertionError("the emulator said nothing within a minute") from None
    return process, startup.rstrip("\n")


@pytest.fixture(scope="module")
def walk_through(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WalkThrough]:
    folder = tmp_path_factory.mktemp("repository")
    for entry in REPO.iterdir():
        if entry.name not in (".venv", "local", ".git"):
            (folder / entry.name).symlink_to(entry)
    (folder / ".venv").symlink_to(VENV)
    emulator_block = block("klaviyo_emulator")
    (emulator_command,) = logical_lines(emulator_block.body)
    process, startup = start_emulator(emulator_command, folder)
    try:
        port = int(re.search(r"listening on http://127\.0\.0\.1:(\d+)", startup)[1])  # type: ignore[index]
        config_block = block("local/emulator_config.json <<")
        setup = bash(config_block.body.replace(README_PORT, str(port)), folder)
        assert setup.returncode == 0, setup.stderr
        config = json.loads((folder / "local" / "emulator_config.json").read_text())
        aliases: dict[str, str] = {}
        commands = run_lines(block("alias connector=").body, folder, aliases)
        hand_back = run_lines(block("--state local/state.json").body, folder, aliases)
        yield WalkThrough(folder, port, startup, config, commands, hand_back)
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_emulator_starts_as_the_readme_says(walk_through: WalkThrough) -> None:
    printed = said(r"It prints `([^`]+?) \.\.\.`")[1].replace(README_PORT, str(walk_through.port))
    assert walk_through.startup_line.startswith(printed + " "), walk_through.startup_line
    # The config the README writes points the connector at it.
    assert walk_through.config["base_url"] == f"http://127.0.0.1:{walk_through.port}"


def test_every_command_of_the_readme_exits_0(walk_through: WalkThrough) -> None:
    ran = walk_through.commands + walk_through.hand_back
    verbs = [words(r)[1] if words(r)[0].endswith("source-klaviyo-segments") else words(r)[0] for r in ran]
    assert verbs == ["--help", "spec", "check", "discover", "plan", "read", "grep", "read"], verbs
    for each in ran:
        assert each.returncode == 0, (each.line, each.stdout[-2000:], each.stderr[-2000:])


def test_help_lists_the_five_commands(walk_through: WalkThrough) -> None:
    helped = walk_through.command("--help").stdout
    assert "{spec,check,discover,read,plan}" in helped
    listed = re.findall(r"^    (\w+) ", helped.split("commands:")[1], re.M)
    assert listed == ["spec", "check", "discover", "read", "plan"]


def test_spec_check_and_discover_print_what_the_readme_says(walk_through: WalkThrough) -> None:
    spec = walk_through.command("spec").messages
    assert [m["type"] for m in spec if m["type"] != "LOG"] == ["SPEC"]  # "the config's JSON schema"
    statuses = [m["connectionStatus"] for m in walk_through.command("check").messages if m["type"] == "CONNECTION_STATUS"]
    assert statuses == [{"status": "SUCCEEDED"}]  # "a CONNECTION_STATUS message"
    catalogs = [m["catalog"] for m in walk_through.command("discover").messages if m["type"] == "CATALOG"]
    assert [[s["name"] for s in c["streams"]] for c in catalogs] == [["segments", "segment_values", "segment_series"]]


def test_plan_prints_the_readme_block_byte_for_byte(walk_through: WalkThrough) -> None:
    planned = walk_through.command("plan")
    assert planned.stdout == block("`plan` prints (`--catalog` narrows it to the streams a catalog selects):").body
    assert planned.stderr == ""  # a person's output: no log line


def test_read_writes_the_records_the_readme_counts(walk_through: WalkThrough) -> None:
    messages = [json.loads(line) for line in (walk_through.folder / "local" / "messages.jsonl").read_text().splitlines()]
    counts = said(
        r"writes ([\d,]+) `segments` records, ([\d,]+) `segment_values` records and ([\d,]+) daily "
        r"`segment_series` records \((\d+) segments × (\d+) days\), with `STATE` messages in between"
    )
    segments, values, series, times, days = (int(number.replace(",", "")) for number in counts.groups())
    assert records_by_stream(messages) == {"segments": segments, "segment_values": values, "segment_series": series}
    assert series == times * days
    kinds = [m["type"] for m in messages]
    assert "STATE" in kinds[kinds.index("RECORD") : len(kinds) - kinds[::-1].index("RECORD")]  # in between
    assert errors(messages) == []
    # "read logs the same plan first (each report stream's line as it starts), then a line per report call"
    logged = [m["log"]["message"] for m in messages if m["type"] == "LOG"]
    plan = block("`plan` prints (`--catalog` narrows it to the streams a catalog selects):").body.splitlines()
    for line in plan[1:-1]:
        assert any(log.startswith(f"Plan: {line}") for log in logged), line
    calls = int(said(r"In all: (\d+) report calls", "\n".join(plan))[1])
    assert len([log for log in logged if re.match(r"^segment_\w+: call \d+ of \d+ ", log)]) == calls


def test_the_state_handed_back_reads_on_from_where_the_read_ended(walk_through: WalkThrough) -> None:
    state = json.loads((walk_through.folder / "local" / "state.json").read_text())
    assert isinstance(state, list) and state[0]["type"] == "STREAM"
    resumed = walk_through.command("read", state=True).messages
    assert errors(resumed) == []
    read_on = records_by_stream(resumed)["segment_series"]
    full = records_by_stream(
        [json.loads(line) for line in (walk_through.folder / "local" / "messages.jsonl").read_text().splitlines()]
    )["segment_series"]
    assert 0 < read_on < full  # only the lookback is read again


# -- "When something is wrong" ----------------------------------------------------------------------

WRONG = " ".join(COMMAND_LINE[COMMAND_LINE.index("**When something is wrong**") :].split())


def connector(tmp_path: Path, command: str, config: dict[str, Any] | None, catalog: bool = False) -> Ran:
    args = [command]
    if config is not None:
        (tmp_path / "config.json").write_text(json.dumps(config))
    args += ["--config", str(tmp_path / "config.json")]
    if catalog:
        args += ["--catalog", str(REPO / "integration_tests" / "acceptance" / "configured_catalog.json")]
    done = run_command(args, cwd=tmp_path)
    return Ran(" ".join(args), done.returncode, done.stdout, done.stderr)


@pytest.fixture()
def config(walk_through: WalkThrough) -> dict[str, Any]:
    return dict(walk_through.config)


def test_check_with_a_wrong_key_exits_0_with_the_quoted_failed_status(tmp_path: Path, config: dict[str, Any]) -> None:
    assert "`check` exits 0 whatever its verdict" in WRONG
    quoted = json.loads(block('"type":"CONNECTION_STATUS"').body)
    checked = connector(tmp_path, "check", {**config, "api_key": "pk_not_this_key"})
    assert checked.returncode == 0
    assert [m for m in checked.messages if m["type"] == "CONNECTION_STATUS"] == [quoted]


@pytest.mark.parametrize("wrong", ["key", "dead base_url"])
def test_discover_exits_0_with_a_wrong_key_or_a_dead_base_url(
    tmp_path: Path, config: dict[str, Any], dead_port: DeadPort, wrong: str
) -> None:
    assert "exits 0 even with a wrong key or a dead `base_url`, and exits 1 only for a config it refuses" in WRONG
    changed = {"api_key": "pk_not_this_key"} if wrong == "key" else {"base_url": f"http://127.0.0.1:{dead_port.port}"}
    discovered = connector(tmp_path, "discover", {**config, **changed})
    assert discovered.returncode == 0, discovered.stdout[-2000:]
    assert [m["type"] for m in discovered.messages].count("CATALOG") == 1
    assert not any(m["type"] == "TRACE" for m in discovered.messages)


# A config field it refuses, and each other mistake the README lists for `read` and `plan`.
REFUSALS = {
    "a config field it refuses": ({"interval": "yearly"}, "`interval` is 'yearly'; use one of hourly, daily, weekly, monthly."),
    "segment ids that are none of them in the account": (
        {"segment_ids": ["NOPE01"]},
        "None of the `segment_ids` is in the Klaviyo account (NOPE01): fix them, or remove the field to read every segment.",
    ),
    "a key Klaviyo refuses": (
        {"api_key": "pk_not_this_key"},
        "Klaviyo did not accept the API key (401): use a private API key (it starts with pk_) from Settings > API keys.",
    ),
}


@pytest.mark.parametrize("mistake", list(REFUSALS))
def test_read_and_plan_stop_with_exit_1_and_the_sentence(tmp_path: Path, config: dict[str, Any], mistake: str) -> None:
    assert mistake in WRONG
    assert "`read` and `plan` stop and exit with code 1" in WRONG
    changed, sentence = REFUSALS[mistake]
    read = connector(tmp_path, "read", {**config, **changed}, catalog=True)
    assert read.returncode == 1
    first, *rest = errors(read.messages)
    assert first.startswith(sentence), first  # "its first error trace"
    if mistake == "a config field it refuses":
        assert "its only one for a config problem, which stops it before any stream starts" in WRONG
        assert rest == []
    else:
        assert rest and sentence in rest[-1]  # "ends with a summary that quotes it"
    planned = connector(tmp_path, "plan", None)
    assert planned.returncode == 1 and planned.stdout == ""
    assert planned.stderr.count("\n") == 1 and planned.stderr.startswith(sentence)  # "the sentence alone on stderr"


def test_a_max_report_requests_too_small_stops_read_and_is_the_last_line_of_plan(
    tmp_path: Path, config: dict[str, Any]
) -> None:
    assert "a `max_report_requests` that leaves a stream less than its first window" in WRONG
    sentence = (
        "`max_report_requests` (1) leaves segment_series 0 report calls after 1 for segment_values, fewer than the 1 "
        "its first window needs: raise it to at least 2."
    )
    read = connector(tmp_path, "read", {**config, "max_report_requests": 1}, catalog=True)
    assert read.returncode == 1 and errors(read.messages)[0] == sentence
    assert "`plan` prints its plan with that sentence as its last line, and exits 0" in WRONG
    planned = connector(tmp_path, "plan", None)
    assert planned.returncode == 0 and planned.stdout.splitlines()[-1] == sentence


def test_discover_exits_1_for_a_config_it_refuses(tmp_path: Path, config: dict[str, Any]) -> None:
    discovered = connector(tmp_path, "discover", {**config, "interval": "yearly"})
    assert discovered.returncode == 1
    assert errors(discovered.messages)[0] == REFUSALS["a config field it refuses"][1]


def test_a_dead_base_url_stops_read_and_plan_after_about_half_a_minute(
    tmp_path: Path, config: dict[str, Any], dead_port: DeadPort, monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    assert "a `base_url` where nothing answers (after about half a minute" in WRONG
    slept: list[float] = []
    monkeypatch.setattr("time.sleep", slept.append)  # the CDK's backoff, counted and not slept
    (tmp_path / "config.json").write_text(json.dumps({**config, "base_url": f"http://127.0.0.1:{dead_port.port}"}))
    with pytest.raises(SystemExit) as stopped:
        run(["plan", "--config", str(tmp_path / "config.json")])
    assert stopped.value.code == 1
    assert 20 <= sum(slept) <= 45  # about half a minute
    out, err = capfd.readouterr()
    lines = err.splitlines()
    assert out == "" and lines[-1].startswith(f"Nothing answered at http://127.0.0.1:{dead_port.port} in ")
    # "after a line on stderr for each retry", as the README's example shows one
    assert said(r"after a line on stderr for each retry", WRONG)
    assert len(lines) - 1 == len(slept) and all("trying again in" in line for line in lines[:-1])
    example = said(r"e\.g\. `(Nothing answered at https://a\.klaviyo\.com [^`]+)`", WRONG)[1]
    assert example.replace("https://a.klaviyo.com", f"http://127.0.0.1:{dead_port.port}") in lines


@pytest.mark.parametrize("command", ["check", "discover", "read", "plan"])
def test_a_missing_config_file_stops_every_command_before_it_starts(tmp_path: Path, command: str) -> None:
    assert "stops every command (`check` included) before it starts: one error trace, exit code 1" in WRONG
    missing = tmp_path / "no_config.json"
    args = [command, "--config", str(missing)] + (
        ["--catalog", str(REPO / "integration_tests" / "acceptance" / "configured_catalog.json")] if command == "read" else []
    )
    done = run_command(args, cwd=tmp_path)
    sentence = f"The config file {missing} does not exist: check the path given to --config."
    assert done.returncode == 1
    if command == "plan":  # a person's command: the sentence alone on stderr
        assert (done.stdout, done.stderr) == ("", sentence + "\n")
        assert "(`plan`: the sentence alone on stderr)" in WRONG
    else:
        lines = done.stdout.splitlines()
        assert len(lines) == 1 and errors([json.loads(lines[0])]) == [sentence], done.stdout
