"""Build of the Bitlet SDK: package ``bitlet`` (sdk/bitlet) with ``bitlet.drivers``
(drivers/), and the cffi extensions compiled from C at install time.

The kernel's C sources (hls/) are also copied into the package as
``bitlet/hls/`` so that an installed SDK carries the exact source its
reference was compiled from (for C-simulation and for ``bitlet info``).
"""
import glob
import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


class BuildPyWithKernelSources(build_py):
    """build_py that also ships hls/*.c, hls/*.h, hls/*.tcl, hls/*.md as bitlet/hls/
    and hls/rtl/*.json as bitlet/hls/rtl/."""

    def run(self):
        super().run()
        target = os.path.join(self.build_lib, "bitlet", "hls")
        os.makedirs(target, exist_ok=True)
        for pattern in ("*.c", "*.h", "*.tcl", "*.md"):
            for path in glob.glob(os.path.join(HERE, "hls", pattern)):
                shutil.copy2(path, target)
        # the yosys area report of the RTL PE (read by bitlet.overlays.resources)
        for path in glob.glob(os.path.join(HERE, "hls", "rtl", "*.json")):
            os.makedirs(os.path.join(target, "rtl"), exist_ok=True)
            shutil.copy2(path, os.path.join(target, "rtl"))


setup(
    package_dir={"": "sdk", "bitlet.drivers": "drivers"},
    packages=["bitlet", "bitlet.compiler", "bitlet.demo", "bitlet.overlays", "bitlet.drivers"],
    package_data={
        "bitlet.overlays": ["*/*.hwh", "*/*.json", "*/*.bit", "*/*.rpt", "resources.json"],
        "bitlet.demo": ["*.onnx", "*.json", "*.npz"],
    },
    cffi_modules=[
        "sdk/bitlet/_reference_build.py:ffibuilder",
        "sdk/bitlet/_fast_build.py:ffibuilder",
    ],
    cmdclass={"build_py": BuildPyWithKernelSources},
)
