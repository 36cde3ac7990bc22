"""Deployment: compression (`deploy.compress`) and export (`deploy.export`)."""
