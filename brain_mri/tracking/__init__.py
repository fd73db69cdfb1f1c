"""MLflow: where runs go, the run of a stage and its parent, logged models."""
