"""Serving logic behind the routers: plain classes, testable without HTTP."""
