"""The result profile's JSON Schema files (package data; no code)."""

__all__: list[str] = []
