"""Placeholder: filled in by the family's author."""

__all__ = []
