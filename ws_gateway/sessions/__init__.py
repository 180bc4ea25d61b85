"""Live sessions: the registry, attached clients, persistence and the reaper."""
