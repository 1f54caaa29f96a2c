"""Thin HTTP routers: take the request, call the service, return its result."""
