"""Asynchronous ROS 2 action server running skills with feedback."""
