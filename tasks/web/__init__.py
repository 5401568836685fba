"""Static web page templates (review and comparison pages)."""
