"""Compressed sensor topics readable by ROS image_transport plugins."""
