"""Deployment files and the processes of the local and production-like stacks (not Prefect tasks)."""
