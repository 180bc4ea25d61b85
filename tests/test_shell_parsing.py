"""The shell parser under the command policy, case by case: constructs it cannot vouch for are
reported (so the policy asks), and the words and redirections of what it reads are exact. The
policy's decisions on whole commands are in tests/test_command_policy.py."""

from __future__ import annotations

import pytest

from ws_gateway.agent.shell import parse


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        ("ls ;;", "unsupported syntax (';;')"),
        ("echo =~ x", "unsupported syntax ('=~')"),
        ("cat << 'E F'\nx\nE F\n", "here-document delimiter"),
        ("cat <<$X\nx\n$X\n", "here-document delimiter"),
        ("cat <<EOF arg\nx\nEOF\n", "unsupported syntax (word)"),
        ("((x++))", "command group"),
        ("select x in a; do ls; done", "control flow (for/while/if/case)"),
        ("ls | while read l; do echo $l; done", "control flow (for/while/if/case)"),
        ("echo $[1]", "arithmetic substitution"),
        ('echo "$((1+2))"', "arithmetic expansion"),
        ("echo ${x:-$(ls)}", "command substitution"),
        ('echo "\\$(ls)"', "command or arithmetic substitution"),  # the raw-text tripwire, quotes or not
        ("cat <<EOF\n$(ls)\nEOF\n", "command or arithmetic substitution"),  # inside a here-document
        ("ls 3<>f", "the parser cannot read it"),
        ("x=1 ls", "variable assignment"),
        ("ls && { ls; }", "command group"),
        ("echo a\x01b", "a control character"),
        ('echo "a\\\nb"', "line continuation"),
    ],
)
def test_what_the_parser_cannot_vouch_for_is_reported(command: str, reason: str) -> None:
    assert reason in parse(command).unsupported


@pytest.mark.parametrize(
    ("command", "words"),
    [
        ('echo "a\\$b\\"c\\\\d\\q"', ["echo", 'a$b"c\\d\\q']),  # \ escapes only $ ` " \ in double quotes
        ('echo "$"', ["echo", ""]),
        ("echo 'q'\"d\"u", ["echo", "qdu"]),
        ("echo a\\ b", ["echo", "a b"]),
        ('echo $\'a\\n\' "$x"y "${x/a/b}"', ["echo", None, None, None]),  # known only at run time
        ("echo a = b", ["echo", "a", "=", "b"]),
        ("echo -- -x 3", ["echo", "--", "-x", "3"]),
    ],
)
def test_words_are_read_as_bash_reads_them(command: str, words: list[str | None]) -> None:
    parsed = parse(command)
    assert not parsed.unsupported
    (cmd,) = parsed.commands
    assert [cmd.name.value, *(a.value for a in cmd.args)] == words


@pytest.mark.parametrize(
    ("word", "glob", "tilde", "brace", "literal"),
    [
        ("plain", False, False, False, True),
        ("[ab]", True, False, False, False),
        ("~/a", False, True, False, False),
        ("a{b", False, False, True, False),
        ("{a,b}", False, False, True, False),
        ("'*'", False, False, False, True),  # quoted: no glob
    ],
)
def test_expansions_are_flagged(word: str, glob: bool, tilde: bool, brace: bool, literal: bool) -> None:
    (cmd,) = parse(f"echo {word}").commands
    (arg,) = cmd.args
    assert (arg.glob, arg.tilde, arg.brace, arg.literal) == (glob, tilde, brace, literal)


@pytest.mark.parametrize(
    ("command", "redirects"),
    [
        ("ls 2>&-", [(">&-", "2", None)]),
        ("ls 1>&2 2> f", [(">&", "1", "2"), (">", "2", "f")]),
        ("2>x ls", [(">", "2", "x")]),
        ("cat <<< word", [("<<<", None, "word")]),
        ('echo > "$x"', [(">", None, None)]),  # a target known only at run time
    ],
)
def test_redirections_are_collected(
    command: str, redirects: list[tuple[str, str | None, str | None]]
) -> None:
    parsed = parse(command)
    assert not parsed.unsupported
    assert [(r.op, r.fd, r.target.value if r.target else None) for r in parsed.redirects] == redirects


def test_a_here_document_feeds_the_pipeline_after_it() -> None:
    parsed = parse("cat <<EOF | sh\nhi\nEOF\n")
    assert [(c.name.value, c.piped) for c in parsed.commands] == [("cat", False), ("sh", True)]
    assert parsed.redirects[0].heredoc == "hi\n"


def test_every_command_after_the_first_of_a_pipeline_reads_a_pipe() -> None:
    parsed = parse("ls |& cat | wc -l; echo & ls")
    assert [(c.name.value, c.piped) for c in parsed.commands] == [
        ("ls", False),
        ("cat", True),
        ("wc", True),
        ("echo", False),
        ("ls", False),
    ]
