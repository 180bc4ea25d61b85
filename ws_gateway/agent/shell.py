"""Parse a shell command line into simple commands, words and redirections (tree-sitter-bash).

The command policy (:mod:`.policy`) decides on this structure, never on the raw
text. Only a small, well-understood subset of bash is represented: simple
commands joined by pipes and lists, words made of literal text, quotes and
parameter expansions, and redirections. Everything else (substitutions,
subshells, functions, control flow, assignments, comments, syntax the parser
flags as an error) is reported in :attr:`Parsed.unsupported`, so the policy
asks: the parser is a grammar, not bash itself, and a construct it might read
differently from bash must never be taken as harmless.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

import tree_sitter_bash
from tree_sitter import Language, Node, Parser

# Raw-text tripwires, checked before the tree: any of these makes the command
# unsupported whatever the parser made of it (quotes included, on purpose).
TRIPWIRES = {
    "`": "command substitution (backticks)",
    "$(": "command or arithmetic substitution",
    "$[": "arithmetic substitution",
    "<(": "process substitution",
    ">(": "process substitution",
    "\\\n": "line continuation",
}
# Control characters (other than tab and newline) may split words differently for the parser and bash.
DELIMITER = re.compile(r"(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\1|\\([A-Za-z_][A-Za-z0-9_]*)")
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")

# Node types that only group simple commands.
STRUCTURE = {"program", "pipeline", "list", "redirected_statement"}
REDIRECTS = {"file_redirect", "heredoc_redirect", "herestring_redirect"}
SEPARATORS = {";", "&", "&&", "||", "|", "|&", "\n"}

UNSUPPORTED = {
    "command_substitution": "command substitution",
    "process_substitution": "process substitution",
    "arithmetic_expansion": "arithmetic expansion",
    "subshell": "subshell",
    "compound_statement": "command group",
    "function_definition": "function definition",
    "variable_assignment": "variable assignment",
    "declaration_command": "declaration (export/declare/local/readonly)",
    "unset_command": "unset",
    "negated_command": "negation (!)",
    "comment": "comment",
    "test_command": "test expression",
}
CONTROL_FLOW = ("for_statement", "c_style_for_statement", "while_statement", "if_statement", "case_statement")


@dataclass(frozen=True)
class Word:
    """One shell word: its source text and, when it has no expansion, its value after quote removal."""

    text: str
    value: str | None  # None: the value is only known at run time ($VAR, ${...}, $'...')
    glob: bool = False  # an unquoted * ? or [
    tilde: bool = False  # an unquoted leading ~
    brace: bool = False  # an unquoted { or } (brace expansion)

    @property
    def literal(self) -> bool:
        """True when the shell passes exactly ``value`` (no expansion of any kind)."""
        return self.value is not None and not (self.glob or self.tilde or self.brace)


@dataclass(frozen=True)
class Redirect:
    op: str  # > >> >| &> &>> >& <& < <> << <<- <<<
    fd: str | None
    target: Word | None
    heredoc: str | None = None  # the body of a here-document


@dataclass
class SimpleCommand:
    name: Word
    args: list[Word]
    redirects: list[Redirect]
    piped: bool  # reads a pipe (not the first command of a pipeline)


@dataclass
class Parsed:
    commands: list[SimpleCommand] = field(default_factory=list)
    redirects: list[Redirect] = field(default_factory=list)  # every redirection, wherever it is
    unsupported: list[str] = field(default_factory=list)  # why the structure is not fully understood


class Unsupported(Exception):
    """A construct the policy does not interpret."""


@lru_cache(maxsize=1)
def _parser() -> Parser:
    return Parser(Language(tree_sitter_bash.language()))


def parse(command: str) -> Parsed:
    """Parse ``command``; anything not fully understood is listed in ``unsupported``."""
    parsed = Parsed()
    for needle, reason in TRIPWIRES.items():
        if needle in command and reason not in parsed.unsupported:
            parsed.unsupported.append(reason)
    if CONTROL.search(command):
        parsed.unsupported.append("a control character")
    tree = _parser().parse(command.encode())
    if tree.root_node.has_error:
        parsed.unsupported.append("the parser cannot read it")
        return parsed
    _visit(tree.root_node, parsed, piped=False)
    return parsed


def _note(parsed: Parsed, reason: str) -> None:
    if reason not in parsed.unsupported:
        parsed.unsupported.append(reason)


def _visit(node: Node, parsed: Parsed, piped: bool) -> None:
    if node.type in STRUCTURE or node.type == "heredoc_redirect":
        if node.type == "heredoc_redirect":
            _add_redirect(node, parsed)
        seen_command = False
        for child in node.children:
            if not child.is_named:
                if node.type in STRUCTURE and child.type not in SEPARATORS:
                    _note(parsed, f"unsupported syntax ({child.type!r})")
                continue
            if node.type == "redirected_statement" and child.type in REDIRECTS:
                if child.type == "heredoc_redirect":
                    _visit(child, parsed, piped)
                else:
                    _add_redirect(child, parsed)
                continue
            if node.type == "heredoc_redirect":
                if child.type.startswith("heredoc_"):
                    continue
                # `cat <<EOF | sh`: the pipeline after the here-document reads the first command.
                _visit(child, parsed, piped or child.type == "pipeline")
                continue
            # In a pipeline every command after the first reads the previous one's output.
            _visit(child, parsed, piped or (node.type == "pipeline" and seen_command))
            seen_command = True
        return
    if node.type == "command":
        _command(node, parsed, piped)
        return
    if node.type in UNSUPPORTED:
        _note(parsed, UNSUPPORTED[node.type])
    elif node.type in CONTROL_FLOW:
        _note(parsed, "control flow (for/while/if/case)")
    else:
        _note(parsed, f"unsupported syntax ({node.type})")


def _add_redirect(node: Node, parsed: Parsed) -> Redirect | None:
    try:
        redirect = _redirect(node)
    except Unsupported as exc:
        _note(parsed, str(exc))
        return None
    parsed.redirects.append(redirect)
    return redirect


def _command(node: Node, parsed: Parsed, piped: bool) -> None:
    name: Word | None = None
    args: list[Word] = []
    redirects: list[Redirect] = []
    try:
        for child in node.children:
            if child.type == "command_name":
                if child.named_child_count != 1:
                    raise Unsupported("unsupported command name")
                name = word(child.named_children[0])
            elif child.type == "heredoc_redirect":
                _visit(child, parsed, piped)
            elif child.type in REDIRECTS:
                redirect = _redirect(child)
                parsed.redirects.append(redirect)
                redirects.append(redirect)
            elif child.type in UNSUPPORTED:
                raise Unsupported(UNSUPPORTED[child.type])
            elif child.is_named:
                args.append(word(child))
            else:
                raise Unsupported(f"unsupported syntax ({child.type!r})")
    except Unsupported as exc:
        _note(parsed, str(exc))
        return
    if name is None:
        _note(parsed, "a redirection without a command")
        return
    parsed.commands.append(SimpleCommand(name, args, redirects, piped))


def _redirect(node: Node) -> Redirect:
    fd = None
    op = ""
    target: Word | None = None
    heredoc = None
    if node.type == "heredoc_redirect":
        _check_heredoc(node)
    for child in node.children:
        if child.type == "file_descriptor":
            fd = _text(child)
        elif not child.is_named:
            op = op or _text(child)
        elif child.type == "heredoc_body":
            heredoc = _text(child)
        elif child.type in ("heredoc_start", "heredoc_end"):
            continue
        elif node.type == "heredoc_redirect":
            continue  # the rest of the line (a pipeline after <<EOF) is visited as structure
        else:
            target = word(child)
    return Redirect(op, fd, target, heredoc)


def _check_heredoc(node: Node) -> None:
    """The here-document must end where bash ends it, or lines bash runs could hide in its body.

    Only a plain delimiter word is accepted (``EOF``, ``'EOF'``, ``"EOF"``, ``\\EOF``); bash
    ends the body at the first line equal to it (tabs stripped for ``<<-``).
    """
    start = next((c for c in node.children if c.type == "heredoc_start"), None)
    end = next((c for c in node.children if c.type == "heredoc_end"), None)
    body = next((c for c in node.children if c.type == "heredoc_body"), None)
    match = DELIMITER.fullmatch(_text(start) if start else "")
    if start is None or end is None or match is None:
        raise Unsupported("here-document delimiter")
    delimiter = match.group(2) or match.group(3)
    strip_tabs = any(not c.is_named and _text(c) == "<<-" for c in node.children)
    lines = _text(body).split("\n") if body is not None else []
    ends = [line.lstrip("\t") if strip_tabs else line for line in lines]
    if _text(end) != delimiter or delimiter in ends:
        raise Unsupported("here-document delimiter")


def _text(node: Node) -> str:
    return (node.text or b"").decode(errors="replace")


def word(node: Node) -> Word:
    """The :class:`Word` of an argument node; :class:`Unsupported` for anything not understood."""
    kind = node.type
    text = _text(node)
    if kind in ("word", "number"):
        return _unquoted(text)
    if kind == "raw_string":
        return Word(text, text[1:-1])
    if kind == "string":
        return _double_quoted(node, text)
    if kind == "concatenation":
        parts = [word(child) for child in node.named_children]
        values = [p.value for p in parts]
        return Word(
            text,
            None if None in values else "".join(v for v in values if v is not None),
            glob=any(p.glob for p in parts),
            tilde=bool(parts) and parts[0].tilde,
            brace=any(p.brace for p in parts),
        )
    if kind in ("simple_expansion", "expansion"):
        _expansion_only(node)
        return Word(text, None)
    if kind == "ansi_c_string":
        return Word(text, None)
    if kind == "brace_expression":
        return Word(text, None, brace=True)
    if kind in UNSUPPORTED:
        raise Unsupported(UNSUPPORTED[kind])
    raise Unsupported(f"unsupported word ({kind})")


def _expansion_only(node: Node) -> None:
    """A parameter expansion may hold words, never a substitution."""
    for child in node.named_children:
        if child.type in UNSUPPORTED:
            raise Unsupported(UNSUPPORTED[child.type])
        _expansion_only(child)


def _unquoted(text: str) -> Word:
    out: list[str] = []
    glob = brace = False
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            continue
        if ch in "*?[":
            glob = True
        elif ch in "{}":
            brace = True
        out.append(ch)
        i += 1
    return Word(text, "".join(out), glob=glob, tilde=text.startswith("~"), brace=brace)


def _double_quoted(node: Node, text: str) -> Word:
    out: list[str] = []
    dynamic = False
    for child in node.named_children:
        if child.type == "string_content":
            out.append(_unescape_dq(_text(child)))
        elif child.type in ("simple_expansion", "expansion"):
            _expansion_only(child)
            dynamic = True
        elif child.type in UNSUPPORTED:
            raise Unsupported(UNSUPPORTED[child.type])
        else:
            raise Unsupported(f"unsupported string part ({child.type})")
    return Word(text, None if dynamic else "".join(out))


def _unescape_dq(text: str) -> str:
    """Inside double quotes a backslash escapes only $ ` " \\ and a newline."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in '$`"\\\n':
            if text[i + 1] != "\n":
                out.append(text[i + 1])
            i += 2
            continue
        out.append(text[i])
        i += 1
    return "".join(out)
