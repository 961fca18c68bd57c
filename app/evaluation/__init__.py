"""Offline evaluation report: every model family on a temporal holdout, as one HTML page."""
