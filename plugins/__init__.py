"""The built-in checks, one module each.

Installed as the package ``sanitycheck_plugins`` and registered through the ``sanitycheck`` entry-point
group in ``pyproject.toml``, exactly like a third-party plugin. Modules import torch lazily (inside
``run``) so ``sanitycheck list`` and ``explain`` stay quick.
"""
