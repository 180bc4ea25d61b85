"""Built-in RPC handlers, one module per namespace. Importing registers them."""

from . import commands, config, interact, process, prompt, session, subagent, unavailable  # noqa: F401
