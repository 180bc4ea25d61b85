"""The environment of every command: built from an allowlist, never inherited from the server.

The server's environment holds its secret key, database and Redis URLs, API
keys and tokens; a command sees none of it. It gets only the variables named in
``COMMAND_ENV_PASSTHROUGH`` (copied when the server has them), what the
deployment sets in ``COMMAND_ENV``, and the session's own secrets (``!secret``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from ..conf import gateway_settings

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def command_env(
    secrets: Mapping[str, str] | None = None, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The variables a command gets; ``base`` (the backend's own) wins over the server's."""
    env = {name: os.environ[name] for name in gateway_settings.COMMAND_ENV_PASSTHROUGH if name in os.environ}
    # Relative or empty PATH entries would look commands up in the session's cwd (`./ls`).
    path = [p for p in env.get("PATH", "").split(os.pathsep) if os.path.isabs(p)]
    env["PATH"] = os.pathsep.join(path) or DEFAULT_PATH
    env.setdefault("LANG", "C.UTF-8")
    env.update(base or {})
    env.update({str(k): str(v) for k, v in gateway_settings.COMMAND_ENV.items()})
    env.update(secrets or {})
    return env
