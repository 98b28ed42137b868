"""The decision node."""
