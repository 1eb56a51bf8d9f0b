"""Device profiling and latency prediction (latency lookup tables)."""
