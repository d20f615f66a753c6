"""SQL diagnostics on read-only PostgreSQL replicas: classify, connect, run, render evidence."""
