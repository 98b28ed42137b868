"""A small built-in 2D world (walls."""
