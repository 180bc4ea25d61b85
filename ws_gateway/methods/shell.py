"""``shell.exec``: the hermes client's ``!command`` line (PROTOCOL.md section 13).

It goes through the terminal tool's command policy and backend: the session's
cwd, a clean environment, the timeout and the output cap. The call has no
approval step, so a command the policy would ask about is refused with the
reason, unless the session already approved its pattern (or may run with
approvals off). The client sends no ``session_id``: the caller's most recently
active session is used.
"""

from __future__ import annotations

import threading
from typing import Any

from .. import terminal
from ..agent import approvals
from ..conf import gateway_settings
from ..errors import BAD_VALUE, EMPTY_COMMAND, SESSION_ID_REQUIRED
from ..rpc import RpcError, method
from ..rpc.call import Call
from .workspace import caller_session

_never = threading.Event()  # shell.exec has nobody to interrupt it: it ends by itself or times out


@method("shell.exec", pool=True)
def shell_exec(call: Call) -> dict[str, Any]:
    if not gateway_settings.SHELL_EXEC:
        raise RpcError(BAD_VALUE, "shell commands are turned off on this gateway (WS_GATEWAY['SHELL_EXEC'])")
    command = (call.params.string("command") or "").strip()
    if not command:
        raise RpcError(EMPTY_COMMAND, "empty command")
    live = caller_session(call)
    if live is None:
        raise RpcError(SESSION_ID_REQUIRED, "open a session first: commands run in its working directory")
    assessment = approvals.assess(live, command)
    allowed = not assessment.ask or approvals.approvals_off(live)
    if not allowed and not approvals.pre_approved(live, assessment.key):
        raise RpcError(
            BAD_VALUE,
            f"not run: {assessment.description}. This command needs an approval, which a shell "
            "line cannot ask for: ask the agent to run it instead.",
        )
    try:
        result = terminal.run(
            terminal.backend(),
            command,
            live.cwd,
            dict(live.secret_env),
            gateway_settings.COMMAND_TIMEOUT_S,
            gateway_settings.COMMAND_OUTPUT_CHARS,
            _never.wait,
        )
    except (terminal.BackendUnavailable, OSError) as exc:
        raise RpcError(BAD_VALUE, f"cannot run the command: {exc}") from None
    # Both streams arrive merged (in order) on one pipe; stderr stays empty.
    return {"stdout": result.output, "stderr": "", "code": result.exit_code}
