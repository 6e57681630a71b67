"""Handler modules for the MESH3xx fixtures (imported by `meshc validate --resolve`).

The fixtures run with tests/validator/fixtures as the current directory, so these
modules are importable as `handlers.<name>`.
"""
