"""Predict on a user's own images: preparing inputs, running the models, writing masks."""
