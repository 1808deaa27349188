# kvbm: this repository's KV-cache block manager (C++), through its pybind11 extension kvbm._kvbm
# (python/*.cc); __init__.pyi beside this file types it (PEP 561: py.typed).
#
# Not the PyPI distribution named `kvbm` (NVIDIA Dynamo's KVBM, ai-dynamo/dynamo), which is imported under
# the same name: only this package has `kvbm.__origin__` (README.md, "Python quick start").
from . import _kvbm
from ._kvbm import *  # noqa: F403 -- the whole API is the extension's
from ._kvbm import __version__

__doc__ = _kvbm.__doc__
__origin__ = "kvbm-cpp"
