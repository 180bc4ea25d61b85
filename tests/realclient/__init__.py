"""The real-client tier: hermes-agent 0.19.0's terminal UI, unmodified, against a real daphne.

Run with ``pytest -m realclient`` (the default run deselects it). Needs ``node`` and ``tmux``.
"""
