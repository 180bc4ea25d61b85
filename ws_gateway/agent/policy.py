"""The command policy: may a terminal command run without asking a person? (PROTOCOL.md section 9)

Deny by default, decided on the parse (:mod:`.shell`), never on the raw text. A
command runs without asking only when

- the parser understood all of it (no substitution, subshell, function, control
  flow, assignment, comment, ``eval``-like construct or syntax error),
- every simple command is on the read-only allowlist (``SAFE_COMMANDS``), named
  literally (no variable, quote trick or path in command position), without an
  option the allowlist marks as writing or escaping (``date -s``, ``grep -r``),
- nothing is redirected to a file (``2>&1`` and ``>/dev/null`` are fine),
- every path argument (and ``< FILE``) stays inside the session's cwd once
  resolved (symlinks, ``..``, globs included), is not under ``/proc``, ``/sys``
  or ``/dev``, and does not look like a secret (``SECRET_FILE_PATTERNS``: ``.env``,
  databases, keys, settings files), and no path argument is computed at run time.

Everything else asks, with the reasons as the approval's description, and a
stable pattern key: for each simple command that asks, its name and the set of
its flags (``rm -rf D`` and ``rm -f -r E`` are both ``cmd:rm -f -r``), plus the
operands that made it ask (a path outside the cwd, a redirection target); for
commands that run code (shells, interpreters, ``eval``, ``find``, ``awk``, ``git``
...) the whole argument list, and for anything the parser could not fully read
the exact text (``exact:...``). ``session`` / ``always`` approvals remember this
key.
"""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import itertools
import os
import re
from dataclasses import dataclass, field

from ..conf import gateway_settings
from .shell import Parsed, Redirect, SimpleCommand, Word, parse

KEY_MAX = 255
GLOB_MAX_MATCHES = 1000
SYSTEM_PREFIXES = ("/proc", "/sys", "/dev")
QUIET_TARGETS = ("/dev/null",)


@dataclass(frozen=True)
class Spec:
    """What the policy knows about an allowlisted command."""

    paths: bool = True  # its operands are file names (checked); False: plain text (echo)
    deny: frozenset[str] = frozenset()  # options that write, escape or recurse: ask
    deny_letters: str = ""  # the same as letters of a short-option cluster


SPECS: dict[str, Spec] = {
    "echo": Spec(paths=False),
    # printf -v assigns a variable: `printf -v PATH .; ls` would run ./ls.
    "printf": Spec(paths=False, deny_letters="v"),
    "pwd": Spec(paths=False),
    "true": Spec(paths=False),
    "false": Spec(paths=False),
    "exit": Spec(paths=False),
    "wait": Spec(paths=False, deny_letters="p"),  # wait -p VAR assigns a variable
    "sleep": Spec(paths=False),
    "seq": Spec(paths=False),
    "date": Spec(deny=frozenset({"--set"}), deny_letters="s"),
    # -r / -R read every file below (secrets included) and -R follows symlinks out of the cwd.
    "grep": Spec(
        deny=frozenset({"--recursive", "--dereference-recursive", "--directories", "--devices"}),
        deny_letters="rRdD",
    ),
    "ls": Spec(),
    "cat": Spec(),
    "head": Spec(),
    "tail": Spec(),
    "wc": Spec(),
}

SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "mksh", "fish", "csh", "tcsh", "busybox"})
INTERPRETERS = frozenset(
    {
        "python", "python2", "python3", "perl", "ruby", "node", "nodejs", "deno", "bun", "php",
        "lua", "luajit", "tclsh", "wish", "Rscript", "R", "julia", "osascript", "pwsh", "powershell",
        "irb", "jshell", "groovy", "scala", "guile", "racket", "sbcl", "ghci", "runghc",
    }
)  # fmt: skip
CODE_FLAGS = frozenset({"-c", "-e", "-E", "-r", "--eval", "--command", "-x", "--exec", "-m", "-p"})
# Commands whose operands are code or commands: their approval key keeps every argument.
RUNS_CODE = (
    SHELLS
    | INTERPRETERS
    | frozenset(
        {
            "eval", "exec", "source", ".", "command", "builtin", "xargs", "env", "sudo", "su", "doas",
            "pkexec", "nice", "nohup", "timeout", "time", "watch", "strace", "ltrace", "setsid",
            "chroot", "unshare", "nsenter", "find", "awk", "gawk", "mawk", "nawk", "sed", "git",
            "make", "ssh", "scp", "dd", "tar", "zip", "unzip", "vim", "vi", "nvim", "emacs", "ed",
            "less", "more", "man", "crontab", "at", "trap", "alias", "ssh-keygen", "install",
            "parallel", "script", "expect", "socat", "nc", "ncat", "docker", "kubectl", "systemctl",
        }
    )
)  # fmt: skip

WHY: dict[str, str] = {
    **{name: "runs a shell" for name in SHELLS},
    **{name: "runs an interpreter" for name in INTERPRETERS},
    "rm": "deletes files", "rmdir": "deletes directories", "shred": "destroys files",
    "unlink": "deletes a file", "mv": "moves or renames files", "cp": "copies files",
    "ln": "creates links", "tee": "writes files", "touch": "creates or changes files",
    "mkdir": "creates directories", "truncate": "truncates files", "install": "copies files",
    "chmod": "changes permissions", "chown": "changes ownership", "chgrp": "changes group ownership",
    "dd": "raw copy to and from files and devices", "sed": "stream editor (can write files)",
    "awk": "awk program (can write files and run commands)", "find": "can delete files or run commands",
    "xargs": "runs commands built from its input", "eval": "evaluates text as shell code",
    "exec": "replaces the shell with a command", "source": "runs a shell script", ".": "runs a shell script",
    "env": "prints or changes the environment", "printenv": "prints the environment",
    "set": "prints or changes shell settings", "sudo": "privilege escalation", "su": "privilege escalation",
    "doas": "privilege escalation", "pkexec": "privilege escalation", "curl": "network transfer",
    "wget": "network transfer", "ssh": "remote shell", "scp": "remote copy", "nc": "network connection",
    "git": "git (can push, rewrite history, run hooks and pagers)",
    "tar": "archive (can write files, run commands)",
    "kill": "signals processes", "pkill": "signals processes", "killall": "signals processes",
    "less": "pager (can run commands)", "more": "pager (can run commands)",
    "vim": "editor (can run commands)",
    "vi": "editor (can run commands)", "man": "pager (can run commands)", "mkfs": "formats a filesystem",
    "mount": "mounts filesystems", "umount": "unmounts filesystems", "crontab": "schedules commands",
    "command": "runs another command", "builtin": "runs a shell builtin", "time": "runs another command",
    "nohup": "runs another command", "timeout": "runs another command", "nice": "runs another command",
    "base64": "decodes data (often code)", "ssh-keygen": "writes keys",
}  # fmt: skip


@dataclass(frozen=True)
class Decision:
    """The policy's answer: ask or not, why, and the pattern key approvals remember."""

    ask: bool
    reasons: tuple[str, ...]
    key: str

    @property
    def description(self) -> str:
        return "; ".join(self.reasons[:3]) if self.reasons else "run this command"


@dataclass
class _Findings:
    reasons: list[str] = field(default_factory=list)
    key_parts: list[str] = field(default_factory=list)
    redirect_parts: list[str] = field(default_factory=list)
    exact: bool = False

    def add(self, reason: str) -> None:
        if reason not in self.reasons:
            self.reasons.append(reason)


def safe_commands() -> frozenset[str]:
    return frozenset(gateway_settings.SAFE_COMMANDS)


def decide(command: str, cwd: str) -> Decision:
    """Decide on ``command`` run in ``cwd`` (the session's working directory)."""
    parsed = parse(command)
    found = _Findings()
    if parsed.unsupported:
        found.exact = True
        for reason in parsed.unsupported:
            found.add(reason)
    root = os.path.realpath(cwd or os.getcwd())
    for simple in parsed.commands:
        _check_command(simple, root, parsed, found)
    for redirect in parsed.redirects:
        _check_redirect(redirect, root, found)
    if not parsed.commands and not parsed.unsupported:
        found.add("empty command")
        found.exact = True
    return Decision(bool(found.reasons), tuple(found.reasons), _key(command, parsed, found))


# -- simple commands -------------------------------------------------------


def _check_command(simple: SimpleCommand, root: str, parsed: Parsed, found: _Findings) -> None:
    name = simple.name
    if not name.literal or not name.value:
        found.add(f"the command name is computed at run time ({name.text})")
        found.exact = True
        return
    value = name.value
    before = len(found.reasons)
    sensitive: list[str] = []
    if "/" in value:
        found.add(f"runs a program by path ({value})")
    elif value not in safe_commands():
        found.add(_why(value, simple))
    if os.path.basename(value) in SHELLS | INTERPRETERS:
        # Code comes from the arguments, a pipe or a here-document: only this exact text is approved.
        found.exact = True
    spec = SPECS.get(value, Spec()) if value in safe_commands() else Spec()
    if value in safe_commands():
        _check_options(value, simple.args, spec, found)
    # Operands are checked for every command: outside paths make the key, and for an
    # allowlisted command they make it ask.
    for arg, reason in _path_problems(simple.args, spec, root):
        sensitive.append(arg.text)
        if value in safe_commands() and "/" not in value:
            found.add(reason)
    if len(found.reasons) > before:
        found.key_parts.append(_render(value, simple.args, sensitive))


def _why(name: str, simple: SimpleCommand) -> str:
    base = os.path.basename(name)
    if base in SHELLS or base in INTERPRETERS:
        given = [a.value for a in simple.args if a.value in CODE_FLAGS]
        if given:
            return f"interpreter given code ({name} {given[0]})"
        if simple.piped:
            return f"pipes into {'a shell' if base in SHELLS else 'an interpreter'} ({name})"
    if base.startswith("mkfs"):
        return f"{name} formats a filesystem"
    why = WHY.get(base)
    return f"{name} {why}" if why else f"{name} is not on the read-only allowlist"


def _check_options(name: str, args: list[Word], spec: Spec, found: _Findings) -> None:
    if spec.deny or spec.deny_letters:
        # A computed word where an option may stand could be the denied one (printf $X PATH .).
        for arg in args:
            if arg.value is None:
                found.add(f"{name}: an option may be computed at run time ({arg.text})")
                break
            if arg.value == "--" or not arg.value.startswith("-"):
                break
    for arg in _options(args):
        opt = arg.value or ""
        if opt.startswith("--"):
            if opt.split("=", 1)[0] in spec.deny:
                found.add(f"{name} {opt.split('=', 1)[0]} is not read-only")
        elif any(letter in spec.deny_letters for letter in opt[1:]):
            found.add(f"{name} {opt} is not read-only")


def _options(args: list[Word]) -> list[Word]:
    out = []
    for arg in args:
        if arg.value == "--":
            break
        if arg.value is not None and arg.value.startswith("-") and arg.value != "-":
            out.append(arg)
    return out


def _path_problems(args: list[Word], spec: Spec, root: str) -> list[tuple[Word, str]]:
    """(argument, reason) for each operand that is not a plain path inside ``root``."""
    problems: list[tuple[Word, str]] = []
    options_done = False
    for arg in args:
        if arg.value == "--" and not options_done:
            options_done = True
            continue
        if not spec.paths:
            continue
        if arg.value is None:
            problems.append((arg, f"a path argument is computed at run time ({arg.text})"))
            continue
        candidate = arg.value
        if not options_done and candidate.startswith("-") and candidate != "-":
            if candidate.startswith("--"):
                if "=" not in candidate:
                    continue
                candidate = candidate.split("=", 1)[1]
            elif not re.fullmatch(r"-[A-Za-z0-9]+", candidate):
                # A short option with a value attached (-f.env, -f/etc/x) may name a file.
                problems.append((arg, f"an option carries a value that may be a path ({arg.text})"))
                continue
            else:
                continue
        reason = path_problem(Word(arg.text, candidate, arg.glob, arg.tilde, arg.brace), root)
        if reason:
            problems.append((arg, reason))
    return problems


def path_problem(arg: Word, root: str) -> str | None:
    """Why a path operand is not harmless in ``root`` (None when it is)."""
    value = arg.value or ""
    if value in ("", "-") or (value in QUIET_TARGETS and arg.literal):
        return None
    if arg.tilde or value.startswith("~"):
        return f"a path in a home directory ({arg.text})"
    if arg.brace:
        return f"brace expansion in a path ({arg.text})"
    if root == "/":
        return f"the session's cwd is the filesystem root ({arg.text})"
    if arg.glob:
        return _glob_problem(arg, value, root)
    return _resolved_problem(arg.text, value, root)


def _resolved_problem(text: str, value: str, root: str) -> str | None:
    joined = os.path.join(root, value)
    for candidate in (os.path.normpath(joined), os.path.realpath(joined)):
        if any(candidate == p or candidate.startswith(p + "/") for p in SYSTEM_PREFIXES):
            return f"reads system state ({text})"
        if candidate != root and not candidate.startswith(root + os.sep):
            return f"a path outside the session's cwd ({text})"
        relative = os.path.relpath(candidate, root)
        for part in relative.split(os.sep):
            if _secret(part):
                return f"looks like a secret file ({text})"
    return None


def _glob_problem(arg: Word, value: str, root: str) -> str | None:
    parts = value.split("/")
    # Bash may match `.` and `..` with a pattern that starts with a dot (.* .[!a] ...).
    if any(p.startswith(".") and any(c in p for c in "*?[") for p in parts) or any(
        "[" in p and "." in p for p in parts
    ):
        return f"a pattern that may match '..' ({arg.text})"
    first = next((i for i, p in enumerate(parts) if any(c in p for c in "*?[")), len(parts))
    static = "/".join(parts[:first])
    if value.startswith("/") or static:
        problem = _resolved_problem(arg.text, static or "/", root)
        if problem:
            return problem
    matches = list(itertools.islice(glob.iglob(value, root_dir=root), GLOB_MAX_MATCHES + 1))
    if len(matches) > GLOB_MAX_MATCHES:
        return f"a pattern matching too many files ({arg.text})"
    for match in matches:
        problem = _resolved_problem(arg.text, match, root)
        if problem:
            return problem
    return None


def _secret(name: str) -> bool:
    lowered = name.lower()
    return any(fnmatch.fnmatchcase(lowered, p.lower()) for p in gateway_settings.SECRET_FILE_PATTERNS)


# -- redirections ----------------------------------------------------------


def _check_redirect(redirect: Redirect, root: str, found: _Findings) -> None:
    op, target = redirect.op, redirect.target
    value = target.value if target is not None and target.literal else None
    if op in ("<<", "<<-"):
        body = redirect.heredoc or ""
        if any(c in body for c in "$`\\"):
            found.add("a here-document with expansions")
            found.exact = True
        return
    if op == "<<<":
        return
    if op in (">&", "<&") and value is not None and (value.isdigit() or value == "-"):
        return
    if op in (">", ">>", ">|", "&>", "&>>", ">&") and value in QUIET_TARGETS:
        return
    if op == "<" and target is not None:
        problem = path_problem(target, root) if target.value is not None else f"reads {target.text}"
        if problem:
            found.add(problem)
            found.redirect_parts.append(f"< {target.text}")
        return
    shown = target.text if target is not None else ""
    found.add(f"writes to a file ({op} {shown})" if op != "<&" else f"redirection {op} {shown}")
    found.redirect_parts.append(f"{op} {shown}")


# -- the pattern key -------------------------------------------------------


def _render(name: str, args: list[Word], sensitive: list[str]) -> str:
    if os.path.basename(name) in RUNS_CODE:
        return " ".join([name, *(a.text for a in args)])
    flags: set[str] = set()
    for arg in _options(args):
        opt = arg.value or ""
        if opt.startswith("--"):
            flags.add(opt.split("=", 1)[0])
        else:
            flags.update(f"-{letter}" for letter in opt[1:])
    return " ".join([name, *sorted(flags), *sensitive])


def _key(command: str, parsed: Parsed, found: _Findings) -> str:
    if found.exact:
        key = "exact:" + command.strip()
    else:
        # Without a command of its own to blame (a redirection, a dangerous pattern), the key
        # names every command.
        parts = found.key_parts or [_render(c.name.value or "", c.args, []) for c in parsed.commands]
        key = "cmd:" + " ; ".join(dict.fromkeys([*parts, *found.redirect_parts]))
    return bounded_key(key)


def bounded_key(key: str) -> str:
    """``key`` as stored (at most KEY_MAX characters: a long one keeps its start and a digest)."""
    if len(key) > KEY_MAX:
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]
        key = f"{key[: KEY_MAX - 34]} #{digest}"
    return key
