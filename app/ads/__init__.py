"""Ad targeting: per-shopper campaign scores, audiences and budget allocation."""
