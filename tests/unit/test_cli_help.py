"""Every command explains itself: `--help` with examples that really parse, and `--version`."""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from collections.abc import Iterator
from importlib import metadata

import pytest

from edgepolicy import cli


def every_parser(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """The program's parser and every subcommand's, depth first, with their paths."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from every_parser(child, (*path, name))


PARSERS = list(every_parser(cli.build_parser()))
IDS = [" ".join(path) or "edgepolicy" for path, _ in PARSERS]


def example_commands(epilog: str) -> list[list[str]]:
    """The edgepolicy command lines of an epilog's Examples section (continuation lines
    joined; what is piped in, redirections and comments left out)."""
    text = epilog.split("Examples:\n", 1)[1].replace("\\\n", " ")
    commands = []
    for line in text.splitlines():
        line = line.split("  #")[0].split(" > ")[0].strip()
        if "edgepolicy " not in line or line.startswith(("source", "Run ")):
            continue
        words = shlex.split(line[line.index("edgepolicy ") :])
        commands.append(words[1:])
    return commands


def test_the_walk_finds_every_command() -> None:
    assert set(IDS) >= {
        "edgepolicy", "check", "serve", "bundle", "bundle build", "bundle publish",
        "bundle serve", "bundle watch", "completion",
    }  # fmt: skip


@pytest.mark.parametrize(("path", "parser"), PARSERS, ids=IDS)
def test_every_command_has_examples_of_itself_kept_as_written(
    path: tuple[str, ...], parser: argparse.ArgumentParser
) -> None:
    assert parser.formatter_class is argparse.RawDescriptionHelpFormatter
    assert parser.epilog is not None
    assert "\nExamples:\n" in f"\n{parser.epilog}"
    own = [words for words in example_commands(parser.epilog) if tuple(words[: len(path)]) == path]
    assert own, f"no example runs `edgepolicy {' '.join(path)}`"
    help_text = parser.format_help()
    assert parser.epilog.rstrip() in help_text  # examples are printed line by line, unwrapped


@pytest.mark.parametrize(("path", "parser"), PARSERS, ids=IDS)
def test_every_example_parses(path: tuple[str, ...], parser: argparse.ArgumentParser) -> None:
    assert parser.epilog is not None
    for words in example_commands(parser.epilog):
        args = cli.build_parser().parse_args(words)
        assert callable(args.func), words


def test_help_works_for_every_command_in_a_real_process() -> None:
    for path, _ in PARSERS:
        completed = subprocess.run(
            [sys.executable, "-m", "edgepolicy", *path, "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert completed.returncode == 0, completed.stderr
        assert "\nExamples:\n" in completed.stdout


def test_version_comes_from_the_package_metadata(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = metadata.version

    def version(name: str) -> str:
        return "9.8.7rc1" if name == "edgepolicy" else real(name)

    monkeypatch.setattr(metadata, "version", version)
    with pytest.raises(SystemExit) as exited:
        cli.main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == "edgepolicy 9.8.7rc1\n"


def test_version_of_the_installed_distribution_in_a_real_process() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "edgepolicy", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert completed.stdout == f"edgepolicy {metadata.version('edgepolicy')}\n"
