"""Local server processes the project starts itself: start, health-check, stop by PID."""
