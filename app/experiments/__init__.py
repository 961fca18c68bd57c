"""A/B experiments: deterministic assignment, results with statistics."""
