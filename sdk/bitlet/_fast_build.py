"""cffi build of ``bitlet._fast`` (the fast bit-exact emulator). Placeholder until
the fast engine lands: it builds an empty module so the install works."""
from cffi import FFI

ffibuilder = FFI()
ffibuilder.cdef("int bitlet_fast_available(void);")
ffibuilder.set_source("bitlet._fast", "static int bitlet_fast_available(void) { return 0; }")

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
