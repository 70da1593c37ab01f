"""The offline library's tests: no database, no app; the shared fixtures are tests/conftest.py's."""
