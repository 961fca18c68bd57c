"""The operator dashboard: a server-rendered page over the /v1/ops/status facts."""
