"""Models: preprocessing, scikit-learn estimators, the PyTorch network, artifacts."""

from labline.models.artifact import ArtifactError, LoadedModel, load_model, save_sklearn_model, save_torch_model

__all__ = ["ArtifactError", "LoadedModel", "load_model", "save_sklearn_model", "save_torch_model"]
