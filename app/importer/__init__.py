"""`brandlift import`: bulk loading of events and catalog rows from CSV, JSON lines or Parquet."""
