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
    """build_py that also ships hls/*.c, hls/*.h, hls/*.tcl, hls/*.md as bitlet/hls/,
    hls/rtl/*.json as bitlet/hls/rtl/, hls/tools/*.py as bitlet/hls/tools/ and
    overlay/make_metadata.py, overlay/boards.tcl as bitlet/overlay/."""

    def run(self):
        super().run()
        target = os.path.join(self.build_lib, "bitlet", "hls")
        os.makedirs(target, exist_ok=True)
        for pattern in ("*.c", "*.h", "*.tcl", "*.md"):
            for path in glob.glob(os.path.join(HERE, "hls", pattern)):
                shutil.copy2(path, target)
        # the yosys area report of the RTL PE (read by bitlet.tools.resources)
        for path in glob.glob(os.path.join(HERE, "hls", "rtl", "*.json")):
            os.makedirs(os.path.join(target, "rtl"), exist_ok=True)
            shutil.copy2(path, os.path.join(target, "rtl"))
        # the on-chip fit tool and the board table it reads, laid out as in the
        # source tree (bitlet/ standing for the root: bitlet/hls/tools/fit_table.py
        # finds bitlet/hls and bitlet/overlay/boards.tcl), so the resource model
        # of an installed SDK counts the buffers exactly as a source tree does
        for path in glob.glob(os.path.join(HERE, "hls", "tools", "*.py")):
            os.makedirs(os.path.join(target, "tools"), exist_ok=True)
            shutil.copy2(path, os.path.join(target, "tools"))
        overlay = os.path.join(self.build_lib, "bitlet", "overlay")
        os.makedirs(overlay, exist_ok=True)
        for name in ("make_metadata.py", "boards.tcl"):
            shutil.copy2(os.path.join(HERE, "overlay", name), overlay)


setup(
    package_dir={"": "sdk", "bitlet.drivers": "drivers"},
    packages=[
        "bitlet", "bitlet.engines", "bitlet.program", "bitlet.compiler", "bitlet.runtime",
        "bitlet.numerics", "bitlet.tools", "bitlet.demo",
        "bitlet.drivers", "bitlet.drivers.link", "bitlet.drivers.overlays",
    ],
    package_data={
        "bitlet.drivers.overlays": ["*/*.hwh", "*/*.json", "*/*.bit", "*/*.rpt"],
        "bitlet.tools": ["resources.json"],
        "bitlet.demo": ["*.onnx", "*.json", "*.npz"],
    },
    cffi_modules=[
        "sdk/bitlet/engines/_reference_build.py:ffibuilder",
        "sdk/bitlet/engines/_fast_build.py:ffibuilder",
    ],
    cmdclass={"build_py": BuildPyWithKernelSources},
)
