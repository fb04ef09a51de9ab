"""dcgan-completion: semantic face inpainting with a DCGAN (Yeh et al. 2017)."""

from .bundle import Model, default_model_path, load_model
from .config import ModelConfig
from .errors import CompletionError, ImageError, MaskError, ModelFileError

__version__ = "0.1.0"
__all__ = [
    "CompletionError",
    "ImageError",
    "MaskError",
    "Model",
    "ModelConfig",
    "ModelFileError",
    "default_model_path",
    "load_model",
]
