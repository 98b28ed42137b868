"""Real photographs and a real depth map from scikit-image for tests and the bench."""
