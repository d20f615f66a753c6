"""Tools the model may call. Each is reached only through the broker."""
