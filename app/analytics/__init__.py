"""Feedback loop: served lists, attribution, recommendation and campaign analytics."""
