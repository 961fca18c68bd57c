"""brandlift: recommendations and ad targeting from shoppers' behaviour."""

__version__ = "0.1.0"
