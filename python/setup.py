"""setuptools' hook for one thing pyproject.toml cannot say: a package built from a checkout (pip
install ./python) records that checkout in kiln/_checkout.py, so that the installed package finds
kiln-supervisor in the checkout's build trees, as the checkout's own package does. The package
holds no binaries; a package installed by CMake or the .deb has no such record and finds the
supervisor beside its prefix."""

import os

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithCheckout(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install imports the checkout's own package, which looks there
        checkout = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        with open(os.path.join(self.build_lib, "kiln", "_checkout.py"), "w") as f:
            f.write('"""Written by setup.py: the checkout this package was built from."""\n\n')
            f.write(f"CHECKOUT = {checkout!r}\n")


setup(cmdclass={"build_py": BuildPyWithCheckout})
