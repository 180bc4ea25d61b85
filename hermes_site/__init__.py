"""hermes_site: the host project that ships with ws_gateway (demo, test bed, deployment example)."""
