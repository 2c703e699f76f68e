"""Thin gRPC servicers: validate, call the domain, build the response."""
