"""Shell completion: scripts generated from the parser tree, exercised in real shells.

bash runs the completion function as bash itself calls it (COMP_WORDS/COMP_CWORD); fish runs
its own completion engine (`complete -C`); zsh completes in an interactive shell on a pseudo
terminal (zsh/zpty, after compinit), and its function also runs with the completion builtins
(compadd, _files, compset) replaced by functions printing their arguments, to see exactly
what it offers.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from edgepolicy import cli
from edgepolicy.cli.completion import FILES, commands, script
from edgepolicy.errors import UsageError

# The program's subcommands, as its parser defines them (other branches add their own).
COMMANDS = [name for name, _ in commands(cli.build_parser())[0].subcommands]


def generated(shell: str, tmp_path: Path) -> Path:
    """Write the script `edgepolicy completion SHELL` prints and return its path."""
    path = tmp_path / f"edgepolicy.{shell}"
    assert cli.main(["completion", shell]) == 0  # the command itself runs
    path.write_text(script(cli.build_parser(), shell))
    return path


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A directory with a few files to complete."""
    (tmp_path / "work" / "manifests").mkdir(parents=True)
    (tmp_path / "work" / "manifest-a.yaml").write_text("")
    (tmp_path / "work" / "policy.tar.gz").write_text("")
    return tmp_path / "work"


def require(shell: str) -> str:
    found = shutil.which(shell)
    if found is None:
        pytest.skip(f"{shell} is not installed (apt-get install -y {shell})")
    return found


def bash_complete(script_path: Path, cwd: Path, line: list[str]) -> list[str]:
    """What the generated bash completion offers for ``line`` (its last word being typed)."""
    words = " ".join(shlex.quote(word) for word in line)
    program = (
        f"source {shlex.quote(str(script_path))}\n"
        f"COMP_WORDS=({words}); COMP_CWORD={len(line) - 1}; COMPREPLY=()\n"
        f'_edgepolicy\nprintf "%s\\n" "${{COMPREPLY[@]}}"\n'
    )
    completed = subprocess.run(
        [require("bash"), "--norc", "--noprofile", "-c", program],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert completed.stderr == ""
    return [line for line in completed.stdout.splitlines() if line]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (["edgepolicy", ""], COMMANDS),
        (["edgepolicy", "c"], ["check", "completion"]),
        (["edgepolicy", "--v"], ["--version"]),
        (["edgepolicy", "check", "--out"], ["--output"]),
        (["edgepolicy", "check", "--output", ""], ["text", "json", "junit", "sarif"]),
        (["edgepolicy", "check", "-o", "j"], ["json", "junit"]),
        (["edgepolicy", "verify", "--output", ""], ["text", "json", "junit", "sarif"]),
        (["edgepolicy", "check", "--output", "=", "s"], ["sarif"]),  # --output=s, split at =
        (["edgepolicy", "check", "--output=s"], ["--output=sarif"]),  # = not a word break
        (["edgepolicy", "check", "--st"], ["--strict"]),
        (["edgepolicy", "check", "manifest"], ["manifest-a.yaml", "manifests"]),
        (["edgepolicy", "check", "-o", "json", "manifest-"], ["manifest-a.yaml"]),
        (["edgepolicy", "check", "--policy", "pol"], ["policy.tar.gz"]),
        (["edgepolicy", "check", "--namespace", ""], []),  # a name: nothing to offer
        (["edgepolicy", "serve", "--log-level", "w"], ["warning"]),
        (["edgepolicy", "serve", "--port", ""], []),
        (["edgepolicy", "bundle", ""], ["build", "publish", "pull", "serve", "watch"]),
        (["edgepolicy", "bundle", "build", "--o"], ["--out", "--opa"]),
        (["edgepolicy", "bundle", "publish", "pol"], ["policy.tar.gz"]),
        (["edgepolicy", "completion", ""], ["bash", "zsh", "fish"]),
    ],
)
def test_bash_completes_subcommands_flags_choices_and_files(
    line: list[str], expected: list[str], tmp_path: Path, workspace: Path
) -> None:
    offered = bash_complete(generated("bash", tmp_path), workspace, line)
    assert sorted(offered) == sorted(expected)


def test_bash_script_registers_the_function(tmp_path: Path) -> None:
    path = generated("bash", tmp_path)
    completed = subprocess.run(
        [
            require("bash"),
            "--norc",
            "-c",
            f"source {shlex.quote(str(path))}; complete -p edgepolicy",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert completed.stdout.strip() == "complete -F _edgepolicy edgepolicy"


def fish_complete(script_path: Path, cwd: Path, line: str) -> list[str]:
    program = f"source {shlex.quote(str(script_path))}; complete -C{shlex.quote(line)}"
    completed = subprocess.run(
        [require("fish"), "--no-config", "-c", program],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert completed.stderr == ""
    return sorted(entry.split("\t")[0] for entry in completed.stdout.splitlines())


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("edgepolicy ", sorted(COMMANDS)),
        ("edgepolicy check --output ", ["json", "junit", "sarif", "text"]),
        ("edgepolicy check --output=j", ["--output=json", "--output=junit"]),
        ("edgepolicy check -o json --st", ["--strict"]),
        ("edgepolicy check -o json manifest", ["manifest-a.yaml", "manifests/"]),
        ("edgepolicy bundle ", ["build", "publish", "pull", "serve", "watch"]),
        ("edgepolicy bundle build --ou", ["--out"]),
        ("edgepolicy completion ", ["bash", "fish", "zsh"]),
    ],
)
def test_fish_completes_with_its_own_engine(
    line: str, expected: list[str], tmp_path: Path, workspace: Path
) -> None:
    assert fish_complete(generated("fish", tmp_path), workspace, line) == expected


def test_fish_script_is_valid_fish(tmp_path: Path) -> None:
    subprocess.run([require("fish"), "-n", str(generated("fish", tmp_path))], check=True)


ZSH_STUBS = """\
compdef() { print -r -- "compdef $*" }
compadd() { [[ $1 == -- ]] && shift; print -r -- "compadd $*" }
_files() { print -r -- "_files" }
compset() { print -r -- "compset $*" }
"""


def zsh_complete(script_path: Path, line: list[str]) -> list[str]:
    words = " ".join(shlex.quote(word) for word in line)
    program = (
        f"{ZSH_STUBS}source {shlex.quote(str(script_path))}\n"
        f"words=({words}); CURRENT={len(line)}; _edgepolicy\n"
    )
    completed = subprocess.run(
        [require("zsh"), "-f", "-c", program],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert completed.stderr == ""
    return completed.stdout.splitlines()


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (["edgepolicy", ""], [f"compadd {' '.join(COMMANDS)}"]),
        (["edgepolicy", "check", "--output", ""], ["compadd text json junit sarif"]),
        (["edgepolicy", "check", "--output=j"], ["compset -P *=", "compadd text json junit sarif"]),
        (["edgepolicy", "check", "-o", "json", ""], ["_files"]),
        (["edgepolicy", "check", "--policy", ""], ["_files"]),
        (["edgepolicy", "bundle", ""], ["compadd build publish pull serve watch"]),
        (["edgepolicy", "completion", ""], ["compadd bash zsh fish"]),
        (["edgepolicy", "serve", "--port", ""], []),
    ],
)
def test_zsh_function_offers_what_the_parser_defines(
    line: list[str], expected: list[str], tmp_path: Path
) -> None:
    path = generated("zsh", tmp_path)
    assert zsh_complete(path, line) == ["compdef _edgepolicy edgepolicy", *expected]


# Types a line and two tabs into an interactive zsh (zsh/zpty) that loaded the script after
# compinit, and prints the screen until WANT shows up (or 10 seconds pass).
ZSH_TERMINAL = r"""
zmodload zsh/zpty
zpty -b shell 'zsh -f -i'
zpty -w shell "PS1='%% '; autoload -Uz compinit && compinit -u -D; source ${(q)SCRIPT}"
zpty -n -w shell "$LINE"$'\t\t'
screen=""
for attempt in {1..100}; do
    while zpty -r -t shell chunk; do screen+=$chunk; done
    [[ $screen == *$~WANT* ]] && break
    sleep 0.1
done
zpty -d shell
print -r -- "$screen"
"""


@pytest.mark.parametrize(
    ("line", "listed"),
    [
        ("edgepolicy check --output ", "json*junit*sarif*text"),
        ("edgepolicy bundle ", "build*publish*pull*serve*watch"),
        ("edgepolicy completion ", "bash*fish*zsh"),
    ],
)
def test_zsh_completes_in_an_interactive_shell(line: str, listed: str, tmp_path: Path) -> None:
    completed = subprocess.run(
        [require("zsh"), "-f", "-c", ZSH_TERMINAL],
        env={
            "SCRIPT": str(generated("zsh", tmp_path)),
            "LINE": line,
            "WANT": listed,
            "TERM": "dumb",
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    screen = completed.stdout.split(line.strip(), 1)[-1]  # what came after the typed line
    words = listed.split("*")
    positions = [screen.find(word) for word in words]
    assert -1 not in positions, completed.stdout
    assert positions == sorted(positions)  # zsh lists the matches sorted


def test_zsh_script_is_valid_zsh(tmp_path: Path) -> None:
    subprocess.run([require("zsh"), "-n", str(generated("zsh", tmp_path))], check=True)


def test_the_tree_follows_the_parser() -> None:
    assert {"check", "serve", "bundle", "completion"} <= set(COMMANDS)
    tree = {command.key: command for command in commands(cli.build_parser())}
    check = tree["check"]
    output = next(option for option in check.options if "--output" in option.flags)
    assert output.flags == ("--output", "-o")
    assert output.values == ("text", "json", "junit", "sarif")
    assert check.positionals == (FILES,)
    strict = next(option for option in check.options if "--strict" in option.flags)
    assert strict.values is None
    assert [name for name, _ in tree["bundle"].subcommands] == [
        "build",
        "publish",
        "pull",
        "serve",
        "watch",
    ]


def test_unknown_shell_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown shell 'tcsh': expected one of bash, zsh, fish"):
        script(cli.build_parser(), "tcsh")
