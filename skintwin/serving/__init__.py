"""Serving: the model loader the application and the service share, and the HTTP service."""
