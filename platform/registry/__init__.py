"""The MLflow model registry: register versions with their evidence, promote them behind metric gates."""
