"""Runs the service's local stack: stores, Dapr sidecars and both apps.

`./run` and the integration tests start processes through this package only, so what the tests
prove is what a developer runs.
"""
