"""Authentication (who is calling) and authorization (may they): one
interceptor and one policy table decide every RPC."""
