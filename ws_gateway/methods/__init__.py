"""Built-in RPC handlers, one module per namespace. Importing registers them."""

from . import (  # noqa: F401
    commands,
    config,
    gateway,
    interact,
    process,
    prompt,
    session,
    shell,
    subagent,
    tools,
    unavailable,
    workspace,
)
