"""kiln.inductor: PyTorch Inductor compiles on Kiln.

    import kiln.inductor
    kiln.inductor.install(workers=4)     # before the first torch.compile
    ...
    kiln.inductor.uninstall()            # Inductor's own pools again

See _install.py for what install() changes, _subproc.py for the pool that replaces Inductor's
SubprocPool, and `python -m kiln.inductor --help` for running a script unchanged.
"""

from ._subproc import KilnSubprocPool
from ._install import install, installed, uninstall

__all__ = ["KilnSubprocPool", "install", "installed", "uninstall"]
