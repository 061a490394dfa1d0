"""Live observability: a Prometheus endpoint (`metrics`) and what stages publish on it
(`stage_metrics`)."""
