"""Generated protobuf and gRPC code for the kumo v1 API (`make proto`)."""
