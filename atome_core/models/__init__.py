"""The book's models, one file each, each with a config dataclass.

atto (chapter 1), routed / vanilla / modern (chapters 4 and 5). Import the
module you need, e.g. `from atome_core.models import routed`.
"""
