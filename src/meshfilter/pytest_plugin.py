"""pytest plugin for filter authors: fixtures for a real Envoy and for the Wasm host emulator.

Registered through the ``pytest11`` entry point, so installing meshfilter makes the fixtures
available in any test suite.
"""
