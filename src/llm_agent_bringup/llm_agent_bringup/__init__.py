"""The robot's entry point."""
