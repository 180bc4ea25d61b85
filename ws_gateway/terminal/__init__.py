"""Where terminal commands run: the clean environment, the backends (local, sandbox), output capture."""

from .backends import Backend, BackendUnavailable, backend
from .capture import Capture, CommandResult, run
from .env import command_env

__all__ = ["Backend", "BackendUnavailable", "Capture", "CommandResult", "backend", "command_env", "run"]
