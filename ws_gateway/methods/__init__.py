"""Built-in RPC handlers, one module per namespace. Importing registers them."""

from . import commands, config, prompt, session  # noqa: F401
