"""atome_core: the code behind the atome book.

Kept import-light: submodules (data, book, models, ...) are imported where used.
"""
__version__ = "0.2.0"
