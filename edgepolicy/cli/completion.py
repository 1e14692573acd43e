"""Shell completion scripts for bash, zsh and fish, generated from the argparse parser tree.

The tree is read once into :class:`Command` records (subcommands, options, what each option's
value and the positional arguments complete to); each shell then gets a script holding that data
and a small function that finds the subcommand being typed, skipping option values. Values
complete to their ``choices``, to nothing for numbers and for a metavar that names no path (``NS``,
``URL``), and to file names otherwise, so new subcommands and flags are completed without
touching this module.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Iterator
from dataclasses import dataclass

from edgepolicy.errors import UsageError

SHELLS = ("bash", "zsh", "fish")
FILES = "@files"  # the value or argument completes to file names
_NUMBERS = (int, float)
# An option's metavar naming a path; an option without a metavar completes file names too.
_PATH_METAVARS = ("FILE", "PATH", "DIR", "PEM", "BUNDLE")


@dataclass(frozen=True)
class Option:
    """One option of a command: its flags, and what its value completes to.

    ``values`` is None for a flag without a value, ``()`` for a value nothing completes (a
    number), ``(FILES,)`` for a file name, or the choices.
    """

    flags: tuple[str, ...]
    values: tuple[str, ...] | None
    help: str


@dataclass(frozen=True)
class Command:
    """One command of the tree: its path from the program (``()`` for the program itself), its
    options, subcommands (name and help), and what its positional arguments complete to."""

    path: tuple[str, ...]
    options: tuple[Option, ...]
    subcommands: tuple[tuple[str, str], ...]
    positionals: tuple[str, ...]

    @property
    def key(self) -> str:
        """The path as the scripts spell it: subcommand names joined by spaces."""
        return " ".join(self.path)


def commands(parser: argparse.ArgumentParser) -> list[Command]:
    """Every command of ``parser``'s tree, the program first, depth first."""
    return list(_tree(parser, ()))


def _tree(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> Iterator[Command]:
    options: list[Option] = []
    subcommands: list[tuple[str, str]] = []
    children: list[tuple[str, argparse.ArgumentParser]] = []
    positionals: tuple[str, ...] = ()
    for action in parser._actions:
        if action.help == argparse.SUPPRESS:
            continue
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            for name, child in action.choices.items():
                subcommands.append((name, helps.get(name, "")))
                children.append((name, child))
        elif action.option_strings:
            options.append(Option(tuple(action.option_strings), _values(action), action.help or ""))
        elif not positionals:
            positionals = _values(action) or ()
    yield Command(path, tuple(options), tuple(subcommands), positionals)
    for name, child in children:
        yield from _tree(child, (*path, name))


def _values(action: argparse.Action) -> tuple[str, ...] | None:
    if action.nargs == 0:
        return None
    if action.choices is not None:
        return tuple(str(choice) for choice in action.choices)
    if action.type in _NUMBERS:
        return ()
    metavar = action.metavar if isinstance(action.metavar, str) else None
    if metavar is not None and not any(word in metavar.upper() for word in _PATH_METAVARS):
        return ()  # a name, an id, a URL: nothing to offer
    return (FILES,)


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    """The completion script for ``shell`` (one of ``SHELLS``) of ``parser``'s program.

    Raises:
        UsageError: ``shell`` is not one of ``SHELLS``.
    """
    writers = {"bash": _bash, "zsh": _zsh, "fish": _fish}
    if shell not in writers:
        raise UsageError(f"unknown shell {shell!r}: expected one of {', '.join(SHELLS)}")
    return writers[shell](parser.prog, commands(parser))


def _name(prog: str) -> str:
    """The prefix of the script's function names."""
    return "_" + "".join(char if char.isalnum() else "_" for char in prog)


def _case(
    function: str, arms: list[tuple[list[str], str]], *, subject: str = '"$1"', fallback: str = ""
) -> str:
    """A function printing a word list chosen by ``case SUBJECT`` (bash and zsh)."""
    lines = [f"{function}() {{", f"    case {subject} in"]
    for patterns, words in arms:
        pattern = "|".join(shlex.quote(p) if p else '""' for p in patterns)
        lines.append(f"        {pattern}) echo {shlex.quote(words)} ;;")
    if fallback:
        lines.append(f"        *) {fallback} ;;")
    lines += ["    esac", "}"]
    return "\n".join(lines)


def _shared_functions(name: str, tree: list[Command]) -> str:
    """The data functions bash and zsh share: subcommands, options, option values and
    positional arguments of a command path."""
    subcommands = [([c.key], " ".join(n for n, _ in c.subcommands)) for c in tree if c.subcommands]
    options = [([c.key], " ".join(f for o in c.options for f in o.flags)) for c in tree]
    values = [
        ([f"{c.key} {flag}" if c.key else flag for flag in option.flags], " ".join(option.values))
        for c in tree
        for option in c.options
        if option.values is not None
    ]
    positionals = [([c.key], " ".join(c.positionals)) for c in tree if c.positionals]
    return "\n\n".join(
        [
            _case(f"{name}_subcommands", subcommands),
            _case(f"{name}_options", options),
            "# what the value of option $2 of command $1 completes to; fails for a flag\n"
            + _case(f"{name}_values_of", values, subject='"${1:+$1 }$2"', fallback="return 1"),
            _case(f"{name}_positionals", positionals),
        ]
    )


# The walk both bash and zsh use: find the command path and whether an option's value is being
# completed. @NAME@ (the functions' prefix), @WORDS@ (the words array), @FIRST@ (index of the
# first argument) and @CURRENT@ (index of the word being completed) are filled in per shell.
_WALK = """\
    local command="" word value_of="" i
    for ((i = @FIRST@; i < @CURRENT@; i++)); do
        word="${@WORDS@[i]}"
        case "$word" in
            --*=*) ;;
            -*)
                if @NAME@_values_of "$command" "$word" >/dev/null; then
                    if [[ "${@WORDS@[i + 1]}" == "=" ]] && ((i + 1 < @CURRENT@)); then
                        ((i++))
                    fi
                    if ((i + 1 == @CURRENT@)); then
                        value_of="$word"
                    fi
                    ((i++))
                fi
                ;;
            *)
                if [[ " $(@NAME@_subcommands "$command") " == *" $word "* ]]; then
                    command="${command:+$command }$word"
                fi
                ;;
        esac
    done
"""


def _shell_walk(name: str, words: str, first: str, current: str) -> str:
    """``_WALK`` for one shell."""
    walk = _WALK
    for placeholder, value in (
        ("@NAME@", name),
        ("@WORDS@", words),
        ("@FIRST@", first),
        ("@CURRENT@", current),
    ):
        walk = walk.replace(placeholder, value)
    return walk


def _bash(prog: str, tree: list[Command]) -> str:
    name = _name(prog)
    walk = _shell_walk(name, "COMP_WORDS", "1", "COMP_CWORD")
    return f"""\
# bash completion for {prog}, generated from its parser by `{prog} completion bash`.
# Load it with:  source <({prog} completion bash)

{_shared_functions(name, tree)}

{name}_reply() {{
    local line
    if [[ "$1" == "{FILES}" ]]; then
        compopt -o filenames 2>/dev/null
        while IFS= read -r line; do COMPREPLY+=("$3$line"); done < <(compgen -f -- "$2")
    elif [[ -n "$1" ]]; then
        while IFS= read -r line; do COMPREPLY+=("$3$line"); done < <(compgen -W "$1" -- "$2")
    fi
}}

{name}() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" prefix=""
    COMPREPLY=()
{walk}    if [[ -z "$value_of" && "$cur" == --*=* ]]; then
        value_of="${{cur%%=*}}"
        prefix="$value_of="
        cur="${{cur#*=}}"
    elif [[ -n "$value_of" && "$cur" == "=" ]]; then
        cur=""
    fi
    if [[ -n "$value_of" ]]; then
        {name}_reply "$({name}_values_of "$command" "$value_of")" "$cur" "$prefix"
    elif [[ "$cur" == -* ]]; then
        {name}_reply "$({name}_options "$command")" "$cur"
    elif [[ -n "$({name}_subcommands "$command")" ]]; then
        {name}_reply "$({name}_subcommands "$command")" "$cur"
    else
        {name}_reply "$({name}_positionals "$command")" "$cur"
    fi
    return 0
}}

complete -F {name} {prog}
"""


def _zsh(prog: str, tree: list[Command]) -> str:
    name = _name(prog)
    walk = _shell_walk(name, "words", "2", "CURRENT")
    return f"""\
#compdef {prog}
# zsh completion for {prog}, generated from its parser by `{prog} completion zsh`.
# Load it with:  source <({prog} completion zsh)   (after compinit)
# or save it as _{prog} in a directory of $fpath.

{_shared_functions(name, tree)}

{name}_add() {{
    if [[ "$1" == "{FILES}" ]]; then
        _files
    elif [[ -n "$1" ]]; then
        compadd -- ${{=1}}
    fi
}}

{name}() {{
    local cur="${{words[CURRENT]}}"
{walk}    if [[ -z "$value_of" && "$cur" == --*=* ]]; then
        value_of="${{cur%%=*}}"
        compset -P '*='
    fi
    if [[ -n "$value_of" ]]; then
        {name}_add "$({name}_values_of "$command" "$value_of")"
    elif [[ "$cur" == -* ]]; then
        {name}_add "$({name}_options "$command")"
    elif [[ -n "$({name}_subcommands "$command")" ]]; then
        {name}_add "$({name}_subcommands "$command")"
    else
        {name}_add "$({name}_positionals "$command")"
    fi
}}

if [[ "${{funcstack[1]}}" == "{name}" ]]; then
    {name} "$@"
else
    compdef {name} {prog}
fi
"""


def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _fish(prog: str, tree: list[Command]) -> str:
    name = _name(prog)
    takes_value = [
        f"{c.key} {flag}" if c.key else flag
        for c in tree
        for option in c.options
        if option.values is not None
        for flag in option.flags
    ]
    subcommand_arms = "\n".join(
        f"        case {_fish_quote(c.key)}\n"
        f"            printf '%s\\n' {' '.join(_fish_quote(n) for n, _ in c.subcommands)}"
        for c in tree
        if c.subcommands
    )
    lines = [
        f"# fish completion for {prog}, generated from its parser by `{prog} completion fish`.",
        f"# Load it with:  {prog} completion fish | source",
        "",
        f"function {name}_subcommands --argument-names command",
        "    switch $command",
        subcommand_arms,
        "    end",
        "end",
        "",
        f"function {name}_command --description 'The {prog} subcommand being typed'",
        "    set -l command ''",
        "    set -l skip 0",
        "    for token in (commandline -opc)[2..-1]",
        "        if test $skip = 1",
        "            set skip 0",
        "            continue",
        "        end",
        '        set -l key (string trim -- "$command $token")',
        "        if contains -- $key " + " ".join(_fish_quote(k) for k in takes_value),
        "            set skip 1",
        f"        else if contains -- $token ({name}_subcommands $command)",
        '            set command (string trim -- "$command $token")',
        "        end",
        "    end",
        "    echo $command",
        "end",
        "",
        f"function {name}_is --argument-names expected",
        f'    test "$({name}_command)" = "$expected"',
        "end",
        "",
        f"complete -c {prog} -f",
    ]
    for command in tree:
        when = f"-n {_fish_quote(f'{name}_is {_fish_quote(command.key)}')}"
        for sub, help_text in command.subcommands:
            lines.append(
                f"complete -c {prog} {when} -a {_fish_quote(sub)} -d {_fish_quote(help_text)}"
            )
        for option in command.options:
            flags = " ".join(
                f"-l {flag[2:]}" if flag.startswith("--") else f"-s {flag[1:]}"
                for flag in option.flags
            )
            if option.values is None:
                value = ""
            elif option.values == (FILES,):
                value = " -r -F"
            elif option.values:
                value = f" -x -a {_fish_quote(' '.join(option.values))}"
            else:
                value = " -x"
            short = option.help.replace("%%", "%").split(" (")[0].strip()
            help_text = _fish_quote(short or option.help)
            lines.append(f"complete -c {prog} {when} {flags}{value} -d {help_text}")
        if command.positionals == (FILES,):
            lines.append(f"complete -c {prog} {when} -F")
        elif command.positionals:
            words = _fish_quote(" ".join(command.positionals))
            lines.append(f"complete -c {prog} {when} -a {words}")
    return "\n".join(lines) + "\n"
