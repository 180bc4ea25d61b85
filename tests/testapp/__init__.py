"""A test-only Django app: RPC methods that drive the gateway from inside the server process."""
