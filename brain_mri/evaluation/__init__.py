"""Scores from predictions and truths, predictions on the processed test split, and figures."""
