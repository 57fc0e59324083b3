"""The device side: protocol v1, registry, gateway and ingest."""
