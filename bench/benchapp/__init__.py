"""Bench-only RPC methods, registered through the public registry as a host project would."""
