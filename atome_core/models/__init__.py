"""The book's models, one file each, each with a config dataclass, and the one registry
of model families.

atto and tiny_transformer (chapter 1), routed / vanilla / modern (chapters 4 and 5). Import the
module you need, e.g. `from atome_core.models import routed`.

`family(name)` gives a family's (config class, model class) and `family_of(model)` the
name of a model's family: the names a model file (atome_core.formats.model_file)
records. Classes are imported on first use, so importing this package loads no torch.
"""
import importlib

# family name -> (module under atome_core.models, config class, model class)
REGISTRY = {
    "routed": ("routed", "RoutedConfig", "RoutedLM"),
    "vanilla": ("vanilla", "VanillaConfig", "VanillaGPT"),
    "modern": ("modern", "ModernConfig", "ModernLM"),
    "atto": ("atto", "AttoConfig", "AttoModel"),
    "tiny_transformer": ("tiny_transformer", "TinyTransformerConfig", "TinyTransformer"),
}


def family(name: str) -> tuple[type, type]:
    """(config class, model class) of a registered family."""
    if name not in REGISTRY:
        raise ValueError(f"unknown model family {name!r}; choose one of {', '.join(REGISTRY)}")
    module, config_cls, model_cls = REGISTRY[name]
    m = importlib.import_module(f"{__name__}.{module}")
    return getattr(m, config_cls), getattr(m, model_cls)


def family_of(model) -> str | None:
    """The registered family of a model (an instance of its exact class), None for others."""
    for name, (module, _, model_cls) in REGISTRY.items():
        cls = type(model)
        if cls.__name__ == model_cls and cls.__module__ == f"{__name__}.{module}":
            return name
    return None
