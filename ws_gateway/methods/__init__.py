"""Built-in RPC handlers, one module per namespace. Importing registers them."""

from . import session  # noqa: F401
