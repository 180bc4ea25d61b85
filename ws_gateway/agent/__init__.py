"""Agents: the backend interface, the turn runner and the built-in backends."""
