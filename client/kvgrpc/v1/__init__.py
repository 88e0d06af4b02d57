"""Generated stubs for the kvgrpc.v1 contract (proto/kvgrpc/v1/keyvalue.proto)."""
