"""Shopper profiles, predictions and segments (served from the live version)."""
