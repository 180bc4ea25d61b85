"""Built-in RPC handlers, one module per namespace. Importing registers them."""

from . import prompt, session  # noqa: F401
