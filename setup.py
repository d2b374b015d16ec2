"""Build of the Bitlet SDK: package ``bitlet`` (sdk/bitlet) with ``bitlet.drivers``
(drivers/), and the cffi extensions compiled from C at install time."""
from setuptools import setup

setup(
    package_dir={"": "sdk", "bitlet.drivers": "drivers"},
    packages=["bitlet", "bitlet.compiler", "bitlet.overlays", "bitlet.drivers"],
    package_data={"bitlet.overlays": ["*/*.hwh", "*/*.json", "*/*.bit"]},
    cffi_modules=[
        "sdk/bitlet/_reference_build.py:ffibuilder",
        "sdk/bitlet/_fast_build.py:ffibuilder",
    ],
)
