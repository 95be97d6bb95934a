"""Generated gRPC messages and stubs of the party service (source: vfl.proto)."""
