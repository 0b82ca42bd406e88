"""HTTP API: app factory, auth dependencies, one error mapping, v2 resources, health and metrics."""
